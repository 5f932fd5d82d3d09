// The relay buffers' per-thread free list: blocks are reused, and a trim gives back only the
// blocks that no buffer took since the trim before. Each case runs on a thread of its own, whose
// free list starts empty.
#include <doctest/doctest.h>

#include <thread>
#include <vector>

#include "pgmux/io/io_buffer.hpp"

namespace {

using pgmux::net::io_buffer;

template <typename F>
void on_fresh_thread(F f) {
  std::thread(f).join();
}

// `n` buffers that hold a block at once, then give them back.
void use_at_once(std::size_t n) {
  std::vector<io_buffer> buffers(n);
  for (auto& b : buffers) b.ensure();
}

}  // namespace

TEST_CASE("a released block is reused by the next buffer of the thread") {
  on_fresh_thread([] {
    io_buffer a;
    a.ensure();
    const char* block = a.data();
    a.release();
    CHECK(io_buffer::cached() == 1);
    io_buffer b;
    b.ensure();
    CHECK(b.data() == block);
    CHECK(io_buffer::cached() == 0);
  });
}

TEST_CASE("a buffer that holds bytes keeps its block") {
  on_fresh_thread([] {
    io_buffer a;
    a.ensure();
    a.commit(3);
    a.release();
    CHECK(a.allocated());
    CHECK(io_buffer::cached() == 0);
  });
}

TEST_CASE("a trim gives back the blocks that stayed unused since the trim before, and keeps those in use") {
  on_fresh_thread([] {
    use_at_once(5);
    CHECK(io_buffer::cached() == 5);
    CHECK(io_buffer::trim_cache() == 0);  // all five were in use since the last trim (none yet)
    CHECK(io_buffer::cached() == 5);

    use_at_once(2);  // two taken and given back: three never left the list
    CHECK(io_buffer::trim_cache() == 3);
    CHECK(io_buffer::cached() == 2);

    CHECK(io_buffer::trim_cache() == 2);  // nothing used them since
    CHECK(io_buffer::cached() == 0);
    CHECK(io_buffer::trim_cache() == 0);
  });
}

TEST_CASE("after a trim, the blocks still held by buffers come back to the list") {
  on_fresh_thread([] {
    use_at_once(3);
    io_buffer held;
    held.ensure();  // one of the three
    CHECK(io_buffer::trim_cache() == 0);
    CHECK(io_buffer::trim_cache() == 2);  // the other two sat unused through a whole period
    held.release();
    CHECK(io_buffer::cached() == 1);
    CHECK(io_buffer::trim_cache() == 0);  // it was in use during this period
    CHECK(io_buffer::trim_cache() == 1);
  });
}
