// Tiny byte builders for protocol tests, in the spirit of Envoy's createPostgresMsg:
//   wire::msg('Q').cstr("select 1").str()          -> "Q\0\0\0\rselect 1\0"
//   wire::untagged().i32(80877103).str()           -> SSLRequest
//   wire::startup({{"user", "alice"}}).str()       -> StartupMessage 3.0
// Lengths are computed here, independently of the encoder under test.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace wire {

class builder {
 public:
  explicit builder(char tag) : tag_(tag) {}

  builder& i8(std::uint8_t v) {
    body_.push_back(static_cast<char>(v));
    return *this;
  }
  builder& i16(std::int16_t v) {
    const auto u = static_cast<std::uint16_t>(v);
    body_.push_back(static_cast<char>(u >> 8));
    body_.push_back(static_cast<char>(u));
    return *this;
  }
  builder& i32(std::int32_t v) {
    const auto u = static_cast<std::uint32_t>(v);
    for (int shift = 24; shift >= 0; shift -= 8) body_.push_back(static_cast<char>(u >> shift));
    return *this;
  }
  // A NUL-terminated string.
  builder& cstr(std::string_view s) {
    body_.append(s);
    body_.push_back('\0');
    return *this;
  }
  // Raw bytes, no terminator.
  builder& bytes(std::string_view s) {
    body_.append(s);
    return *this;
  }

  // The body alone, as a decoder sees it in frame::body.
  const std::string& body() const { return body_; }

  // The whole message: tag (unless untagged), int32 length counting itself, body.
  std::string str() const { return with_length(static_cast<std::int32_t>(body_.size() + 4)); }

  // The whole message with a length field of your choosing (for malformed-length tests).
  std::string with_length(std::int32_t length) const {
    std::string out;
    if (tag_ != 0) out.push_back(tag_);
    const auto u = static_cast<std::uint32_t>(length);
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(u >> shift));
    out += body_;
    return out;
  }

 private:
  char tag_;
  std::string body_;
};

// A tagged message.
inline builder msg(char tag) { return builder(tag); }

// An untagged startup-family packet (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest).
inline builder untagged() { return builder(0); }

inline constexpr std::int32_t protocol_3_0 = 3 << 16;  // 196608
inline constexpr std::int32_t cancel_code = (1234 << 16) | 5678;
inline constexpr std::int32_t ssl_code = (1234 << 16) | 5679;
inline constexpr std::int32_t gssenc_code = (1234 << 16) | 5680;

// A StartupMessage with the given parameters and the final empty name.
inline builder startup(std::initializer_list<std::pair<std::string_view, std::string_view>> params,
                       std::int32_t protocol = protocol_3_0) {
  builder b(0);
  b.i32(protocol);
  for (const auto& [name, value] : params) b.cstr(name).cstr(value);
  b.i8(0);
  return b;
}

// std::string from a literal that may hold NULs: wire::bin("Z\0\0\0\5I").
template <std::size_t N>
std::string bin(const char (&s)[N]) {
  return std::string(s, N - 1);
}

}  // namespace wire
