// Framing of the v3 wire protocol.
#include "pgmux/protocol/frame.hpp"

namespace pgmux::protocol {

std::int32_t read_int32(const char* p) noexcept {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<std::int32_t>((std::uint32_t{u[0]} << 24) | (std::uint32_t{u[1]} << 16) |
                                   (std::uint32_t{u[2]} << 8) | std::uint32_t{u[3]});
}

std::int16_t read_int16(const char* p) noexcept {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<std::int16_t>((u[0] << 8) | u[1]);
}

header_result parse_header(std::string_view in, std::size_t max_len) noexcept {
  header_result r;
  if (in.size() < header_size) return r;
  const auto length = static_cast<std::uint32_t>(read_int32(in.data() + 1));
  r.hdr = header{in[0], length};
  if (length < 4) {
    r.status = parse_status::invalid;
    r.error = "message length field below 4";
  } else if (static_cast<std::size_t>(length) + 1 > max_len) {
    r.status = parse_status::invalid;
    r.error = "message exceeds max_message_size";
  } else {
    r.status = parse_status::complete;
  }
  return r;
}

frame_result parse_frame(std::string_view in, std::size_t max_len) noexcept {
  frame_result r;
  const auto h = parse_header(in, max_len);
  if (h.status != parse_status::complete) {
    r.status = h.status;
    r.error = h.error;
    return r;
  }
  if (in.size() < h.hdr.total()) return r;
  r.status = parse_status::complete;
  r.msg = frame{h.hdr.tag, in.substr(header_size, h.hdr.body_size())};
  r.consumed = h.hdr.total();
  return r;
}

frame_result parse_startup_frame(std::string_view in) noexcept {
  frame_result r;
  if (in.size() < 4) return r;
  const auto length = read_int32(in.data());
  if (length < 8 || static_cast<std::size_t>(length) > max_startup_packet) {
    r.status = parse_status::invalid;
    r.error = "invalid startup packet length";
    return r;
  }
  if (in.size() < static_cast<std::size_t>(length)) return r;
  r.status = parse_status::complete;
  r.msg = frame{0, in.substr(4, static_cast<std::size_t>(length) - 4)};
  r.consumed = static_cast<std::size_t>(length);
  return r;
}

}  // namespace pgmux::protocol
