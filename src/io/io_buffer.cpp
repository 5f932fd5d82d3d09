// Per-thread recycling of relay buffer blocks.
#include "pgmux/io/io_buffer.hpp"

#include <algorithm>
#include <vector>

namespace pgmux::net {
namespace {

constexpr std::size_t max_cached_blocks = 256;

struct block_cache {
  std::vector<std::unique_ptr<char[]>> blocks;
  // The fewest blocks the list held since the last trim: that many sat there unused throughout.
  std::size_t fewest_since_trim = 0;
};

block_cache& cache() {
  thread_local block_cache c;
  return c;
}

}  // namespace

void io_buffer::ensure() {
  if (data_) return;
  auto& c = cache();
  if (!c.blocks.empty()) {
    data_ = std::move(c.blocks.back());
    c.blocks.pop_back();
    c.fewest_since_trim = std::min(c.fewest_since_trim, c.blocks.size());
  } else {
    data_ = std::make_unique_for_overwrite<char[]>(block_size);
  }
  size_ = 0;
}

void io_buffer::release() {
  if (!data_ || size_ != 0) return;
  auto& c = cache();
  if (c.blocks.size() < max_cached_blocks) c.blocks.push_back(std::move(data_));
  data_.reset();
}

std::size_t io_buffer::trim_cache() {
  auto& c = cache();
  // The list is taken from and given back to at its end: the unused blocks are its first ones.
  const auto unused = std::min(c.fewest_since_trim, c.blocks.size());
  c.blocks.erase(c.blocks.begin(), c.blocks.begin() + static_cast<std::ptrdiff_t>(unused));
  c.fewest_since_trim = c.blocks.size();
  return unused;
}

std::size_t io_buffer::cached() { return cache().blocks.size(); }

}  // namespace pgmux::net
