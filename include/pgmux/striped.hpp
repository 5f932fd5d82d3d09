// A table that every worker writes (at each login and logout), split into shards with a lock
// each, so that threads seldom wait for one another: the key's shard is chosen by the top bits
// of a multiplicative hash of it.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace pgmux {

template <class Map, unsigned ShardBits = 4>
class striped {
 public:
  struct alignas(64) shard {  // a cache line of its own, so that shards do not share one
    mutable std::mutex mu;
    Map map;
  };

  shard& of(std::uint64_t key) noexcept { return shards_[index(key)]; }
  const shard& of(std::uint64_t key) const noexcept { return shards_[index(key)]; }
  auto& all() noexcept { return shards_; }
  const auto& all() const noexcept { return shards_; }

 private:
  static std::size_t index(std::uint64_t key) noexcept { return (key * 0x9E3779B97F4A7C15ull) >> (64 - ShardBits); }
  std::array<shard, std::size_t{1} << ShardBits> shards_;
};

}  // namespace pgmux
