// An allocator that keeps objects of one size together, for records every client has one of
// (its session): std::allocate_shared<T>(slab_allocator<T>{}, ...).
//
// Blocks come from 64 KiB chunks and go back to a free list of their size, never to malloc. The
// records of idle clients then sit side by side, instead of between the holes that each login's
// short-lived allocations (packets, coroutine frames, buffers) leave in the heap, holes that keep
// the heap's pages resident after they are freed. The free list is shared by every thread and
// taken with a short lock: one allocation and one free per client, not per request. Memory
// reaches the high-water mark of live records and stays there, as a free list does.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <new>

#include "pgmux/small_mutex.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define PGMUX_SLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PGMUX_SLAB_ASAN 1
#endif
#endif
#if defined(PGMUX_SLAB_ASAN)
#include <sanitizer/asan_interface.h>
#endif

namespace pgmux {

namespace detail {

template <std::size_t Size, std::size_t Align>
class slab {
  static constexpr std::size_t block = (Size + Align - 1) / Align * Align;
  static constexpr std::size_t chunk_bytes = 64 * 1024;
  static constexpr std::size_t per_chunk = chunk_bytes / block;
  static_assert(Align <= alignof(std::max_align_t) && per_chunk >= 8, "slab: for small records only");

  struct free_block {
    free_block* next;
  };

 public:
  static void* take() {
    std::lock_guard lock(mu_);
    if (!free_) carve();
    free_block* b = free_;
#if defined(PGMUX_SLAB_ASAN)
    ASAN_UNPOISON_MEMORY_REGION(b, block);
#endif
    free_ = b->next;
    return b;
  }

  static void give_back(void* p) noexcept {
    auto* b = static_cast<free_block*>(p);
    std::lock_guard lock(mu_);
    b->next = free_;
    free_ = b;
#if defined(PGMUX_SLAB_ASAN)
    // A use after free of a record reads poisoned memory, as it would after a free().
    ASAN_POISON_MEMORY_REGION(reinterpret_cast<char*>(b) + sizeof(free_block), block - sizeof(free_block));
#endif
  }

 private:
  static void carve() {
    auto* chunk = static_cast<char*>(std::malloc(chunk_bytes));
    if (!chunk) throw std::bad_alloc();
    // Handed out from the chunk's start: the first records of a burst share their pages.
    for (std::size_t i = per_chunk; i-- > 0;) {
      auto* b = reinterpret_cast<free_block*>(chunk + i * block);
      b->next = free_;
      free_ = b;
#if defined(PGMUX_SLAB_ASAN)
      ASAN_POISON_MEMORY_REGION(chunk + i * block + sizeof(free_block), block - sizeof(free_block));
#endif
    }
  }

  static inline small_mutex mu_;
  static inline free_block* free_ = nullptr;
};

}  // namespace detail

template <typename T>
struct slab_allocator {
  using value_type = T;
  slab_allocator() noexcept = default;
  template <typename U>
  slab_allocator(const slab_allocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    if (n != 1) return static_cast<T*>(::operator new(n * sizeof(T)));
    return static_cast<T*>(detail::slab<sizeof(T), alignof(T)>::take());
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (n != 1) return ::operator delete(p);
    detail::slab<sizeof(T), alignof(T)>::give_back(p);
  }
  template <typename U>
  bool operator==(const slab_allocator<U>&) const noexcept { return true; }
};

}  // namespace pgmux
