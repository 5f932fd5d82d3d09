// Thin wrappers over OpenSSL for the hashes, MACs and encodings the auth code needs.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace pgmux::auth {

std::string sha256(std::string_view data);                            // 32 raw bytes
std::string hmac_sha256(std::string_view key, std::string_view data);  // 32 raw bytes
std::string pbkdf2_sha256(std::string_view password, std::string_view salt, int iterations);
std::string md5_hex(std::string_view data);                            // 32 lowercase hex digits
std::string base64_encode(std::string_view raw);
std::optional<std::string> base64_decode(std::string_view text);
std::string random_bytes(std::size_t n);  // cryptographically secure
std::string xor_bytes(std::string_view a, std::string_view b);  // equal lengths

// Equal contents, in time that depends only on the lengths: for comparing secrets and proofs,
// where an early exit would tell an attacker how many leading bytes were right.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace pgmux::auth
