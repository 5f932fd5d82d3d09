// Framing of the v3 wire protocol: find message boundaries in a byte buffer without copying.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pgmux::protocol {

enum class parse_status { complete, need_more, invalid };

// A message as it lies in the buffer. tag is 0 for untagged startup-family packets.
struct frame {
  char tag = 0;
  std::string_view body;
};

struct frame_result {
  parse_status status = parse_status::need_more;
  frame msg;
  std::size_t consumed = 0;      // bytes of the whole message (header included) when complete
  const char* error = nullptr;   // why, when invalid
};

inline constexpr std::size_t header_size = 5;          // tag + int32 length
inline constexpr std::size_t max_startup_packet = 10000;  // as PostgreSQL's MAX_STARTUP_PACKET_LENGTH

// Reads a big-endian int32 / int16 from at least 4 / 2 bytes.
std::int32_t read_int32(const char* p) noexcept;
std::int16_t read_int16(const char* p) noexcept;

// Header of a tagged message: tag and the length field (which counts itself, not the tag).
struct header {
  char tag = 0;
  std::uint32_t length = 0;
  std::size_t total() const noexcept { return 1 + static_cast<std::size_t>(length); }
  std::size_t body_size() const noexcept { return static_cast<std::size_t>(length) - 4; }
};

// Validates the header at the start of `in`. need_more below 5 bytes; invalid when the length
// field is below 4 or the message would exceed max_len bytes.
struct header_result {
  parse_status status = parse_status::need_more;
  header hdr;
  const char* error = nullptr;
};
header_result parse_header(std::string_view in, std::size_t max_len) noexcept;

// A complete tagged message at the start of `in`.
frame_result parse_frame(std::string_view in, std::size_t max_len) noexcept;

// A complete untagged packet (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest).
frame_result parse_startup_frame(std::string_view in) noexcept;

}  // namespace pgmux::protocol
