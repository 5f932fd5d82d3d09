// Byte-level writers and readers shared by the protocol encoders and decoders (private to
// src/protocol). Writers append; a message's length is written as a placeholder and patched.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgmux::protocol::detail {

inline void put_int16(std::string& out, std::int16_t v) {
  const auto u = static_cast<std::uint16_t>(v);
  out.push_back(static_cast<char>(u >> 8));
  out.push_back(static_cast<char>(u));
}

inline void put_int32(std::string& out, std::int32_t v) {
  const auto u = static_cast<std::uint32_t>(v);
  const char bytes[4] = {static_cast<char>(u >> 24), static_cast<char>(u >> 16), static_cast<char>(u >> 8),
                         static_cast<char>(u)};
  out.append(bytes, 4);  // one append: four push_backs check the capacity four times
}

inline void put_cstr(std::string& out, std::string_view s) {
  out.append(s);
  out.push_back('\0');
}

// Starts a tagged message (tag 0: untagged) and returns where its length field is.
inline std::size_t begin(std::string& out, char tag) {
  const char header[5] = {tag, 0, 0, 0, 0};
  const std::size_t skip = tag != 0 ? 0 : 1;
  out.append(header + skip, 5 - skip);
  return out.size() - 4;
}

// Writes the length of the message begun at `length_at`: everything appended since, itself included.
inline void finish(std::string& out, std::size_t length_at) {
  const auto length = static_cast<std::uint32_t>(out.size() - length_at);
  out[length_at] = static_cast<char>(length >> 24);
  out[length_at + 1] = static_cast<char>(length >> 16);
  out[length_at + 2] = static_cast<char>(length >> 8);
  out[length_at + 3] = static_cast<char>(length);
}

// Reads a NUL-terminated string at `pos`, advancing past the NUL. nullopt when unterminated.
inline std::optional<std::string_view> read_cstr(std::string_view body, std::size_t& pos) {
  const auto end = body.find('\0', pos);
  if (end == std::string_view::npos) return std::nullopt;
  auto s = body.substr(pos, end - pos);
  pos = end + 1;
  return s;
}

}  // namespace pgmux::protocol::detail
