// An allocator for the handler of an operation that stays pending for long (an idle client's
// wait): Asio's default recycles freed blocks for later operations of the thread, so such an
// operation would keep a block as large as the largest one freed before it. This one asks
// malloc for exactly the operation's size.
#pragma once
#include <cstddef>
#include <new>

namespace pgmux::net {

template <typename T>
struct exact_allocator {
  using value_type = T;
  exact_allocator() noexcept = default;
  template <typename U>
  exact_allocator(const exact_allocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p); }
  template <typename U>
  bool operator==(const exact_allocator<U>&) const noexcept { return true; }
};

}  // namespace pgmux::net
