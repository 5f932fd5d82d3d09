// A fixed-size byte buffer for one relay direction: unconsumed bytes sit at the front.
// Blocks are recycled through a per-thread free list, so idle clients hold none and busy
// ones allocate nothing per message. The list gives back, at each trim_cache(), the blocks
// that no buffer took since the trim before: a burst of logins or of busy clients leaves
// nothing behind once it has passed.
#pragma once
#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace pgmux::net {

class io_buffer {
 public:
  static constexpr std::size_t block_size = 16 * 1024;

  io_buffer() = default;
  io_buffer(io_buffer&&) noexcept = default;
  io_buffer& operator=(io_buffer&&) noexcept = default;
  ~io_buffer() { release(); }

  bool allocated() const noexcept { return data_ != nullptr; }
  void ensure();   // takes a block from the free list when none is held
  void release();  // gives the block back; only when empty()

  // Frees the calling thread's cached blocks that sat unused since its previous call; how
  // many. Each worker calls it now and then (io/workers).
  static std::size_t trim_cache();
  // Blocks in the calling thread's free list.
  static std::size_t cached();

  std::string_view view() const noexcept { return {data_.get(), size_}; }
  char* data() noexcept { return data_.get(); }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  bool full() const noexcept { return size_ == block_size; }
  char* free_begin() noexcept { return data_.get() + size_; }
  std::size_t free_size() const noexcept { return block_size - size_; }

  void commit(std::size_t n) noexcept { size_ += n; }
  // Drops the first n bytes, moving the rest (a partial header, typically) to the front.
  void consume(std::size_t n) noexcept {
    if (n >= size_) {
      size_ = 0;
      return;
    }
    std::memmove(data_.get(), data_.get() + n, size_ - n);
    size_ -= n;
  }
  void clear() noexcept { size_ = 0; }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t size_ = 0;
};

}  // namespace pgmux::net
