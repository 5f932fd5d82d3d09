// Handing freed memory back to the system.
#include "pgmux/io/memory.hpp"

#include <malloc.h>

#include <atomic>
#include <system_error>
#include <thread>

namespace pgmux::net {

void release_freed_memory() {
  static std::atomic<unsigned> requests{0};
  if (requests.fetch_add(1, std::memory_order_acq_rel) != 0) return;  // the running trim goes round again
  try {
    std::thread([] {
      unsigned seen = 0;
      do {
        seen = requests.load(std::memory_order_acquire);
        ::malloc_trim(0);
      } while (requests.fetch_sub(seen, std::memory_order_acq_rel) != seen);
    }).detach();
  } catch (const std::system_error&) {
    requests.store(0, std::memory_order_release);  // no thread to be had: the memory stays with the allocator
  }
}

}  // namespace pgmux::net
