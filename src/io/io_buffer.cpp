// Per-thread recycling of relay buffer blocks.
#include "pgmux/io/io_buffer.hpp"

#include <vector>

namespace pgmux::net {
namespace {

constexpr std::size_t max_cached_blocks = 256;

std::vector<std::unique_ptr<char[]>>& free_blocks() {
  thread_local std::vector<std::unique_ptr<char[]>> blocks;
  return blocks;
}

}  // namespace

void io_buffer::ensure() {
  if (data_) return;
  auto& blocks = free_blocks();
  if (!blocks.empty()) {
    data_ = std::move(blocks.back());
    blocks.pop_back();
  } else {
    data_ = std::make_unique_for_overwrite<char[]>(block_size);
  }
  size_ = 0;
}

void io_buffer::release() {
  if (!data_ || size_ != 0) return;
  auto& blocks = free_blocks();
  if (blocks.size() < max_cached_blocks) blocks.push_back(std::move(data_));
  data_.reset();
}

}  // namespace pgmux::net
