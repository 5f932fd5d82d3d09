// Shared by the fuzz targets: invariant checks that stay on in every build, and a reader for
// the few option bytes some targets take before their payload.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

// An invariant of the code under test: a violation is a finding, reported like a crash.
#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

namespace pgmux::fuzz {

// The input as option bytes, then the payload. Missing option bytes read as 0, so that any
// input is valid and a raw capture works as a seed once its option bytes are prepended.
class input {
 public:
  input(const std::uint8_t* data, std::size_t size) : bytes_(reinterpret_cast<const char*>(data), size) {}

  std::uint8_t byte() {
    if (bytes_.empty()) return 0;
    const auto b = static_cast<std::uint8_t>(bytes_.front());
    bytes_.remove_prefix(1);
    return b;
  }
  std::uint16_t u16() { return static_cast<std::uint16_t>(byte() << 8 | byte()); }
  // Up to n bytes of what is left.
  std::string_view take(std::size_t n) {
    const auto out = bytes_.substr(0, n);
    bytes_.remove_prefix(out.size());
    return out;
  }
  std::string_view rest() const { return bytes_; }
  bool empty() const { return bytes_.empty(); }

 private:
  std::string_view bytes_;
};

// Read sizes a socket might deliver, varied by a seed byte: 1 byte at a time up to whole reads.
inline std::size_t read_size(std::uint8_t seed, std::size_t round) {
  if (seed == 0) return SIZE_MAX;
  return 1 + (static_cast<std::size_t>(seed) * 131 + round * 37) % (static_cast<std::size_t>(seed) * 4 + 1);
}

}  // namespace pgmux::fuzz
