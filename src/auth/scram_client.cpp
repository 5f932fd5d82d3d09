// SCRAM-SHA-256 client exchange (RFC 5802 section 3, RFC 7677), no channel binding ("n,,").
#include "pgmux/auth/scram_client.hpp"

#include <charconv>
#include <stdexcept>

#include "pgmux/auth/crypto.hpp"

namespace pgmux::auth {
namespace {

constexpr std::string_view gs2_header = "n,,";

// Value of attribute `name` ("r=...,s=...") in a SCRAM message.
std::optional<std::string_view> attribute(std::string_view msg, char name) {
  std::size_t pos = 0;
  while (pos < msg.size()) {
    auto end = msg.find(',', pos);
    if (end == std::string_view::npos) end = msg.size();
    auto part = msg.substr(pos, end - pos);
    if (part.size() >= 2 && part[0] == name && part[1] == '=') return part.substr(2);
    pos = end + 1;
  }
  return std::nullopt;
}

}  // namespace

scram_client::scram_client(std::string password, std::string nonce, std::string_view user)
    : password_(std::move(password)), nonce_(std::move(nonce)) {
  if (nonce_.empty()) nonce_ = base64_encode(random_bytes(18));
  // PostgreSQL ignores the SCRAM user name (it uses the startup user), so it is usually empty.
  // RFC 5802 saslname: '=' and ',' are written as "=3D" and "=2C".
  client_first_bare_ = "n=";
  for (char c : user) {
    if (c == '=') client_first_bare_ += "=3D";
    else if (c == ',') client_first_bare_ += "=2C";
    else client_first_bare_.push_back(c);
  }
  client_first_bare_ += ",r=" + nonce_;
}

scram_client scram_client::from_keys(std::string client_key, std::string server_key, std::string nonce,
                                     std::string_view user) {
  if (client_key.size() != 32 || server_key.size() != 32)
    throw std::invalid_argument("scram_client::from_keys needs 32-byte ClientKey and ServerKey");
  scram_client c({}, std::move(nonce), user);
  c.client_key_ = std::move(client_key);
  c.server_key_ = std::move(server_key);
  return c;
}

std::string scram_client::client_first_message() const { return std::string(gs2_header) + client_first_bare_; }

std::optional<std::string> scram_client::handle_server_first(std::string_view server_first, std::string& error) {
  const auto nonce = attribute(server_first, 'r');
  const auto salt_b64 = attribute(server_first, 's');
  const auto iter_text = attribute(server_first, 'i');
  if (!nonce || !salt_b64 || !iter_text) {
    error = "malformed SCRAM server-first-message";
    return std::nullopt;
  }
  if (nonce->size() <= nonce_.size() || nonce->substr(0, nonce_.size()) != nonce_) {
    error = "SCRAM server nonce does not extend the client nonce";
    return std::nullopt;
  }
  const auto salt = base64_decode(*salt_b64);
  int iterations = 0;
  const auto [ptr, ec] = std::from_chars(iter_text->data(), iter_text->data() + iter_text->size(), iterations);
  if (!salt || salt->empty() || ec != std::errc{} || ptr != iter_text->data() + iter_text->size() ||
      iterations < 1 || iterations > 10'000'000) {
    error = "invalid SCRAM salt or iteration count";
    return std::nullopt;
  }

  std::string client_key = client_key_, server_key = server_key_;
  if (client_key.empty()) {
    const std::string salted = pbkdf2_sha256(password_, *salt, iterations);
    client_key = hmac_sha256(salted, "Client Key");
    server_key = hmac_sha256(salted, "Server Key");
  }
  const std::string stored_key = sha256(client_key);
  const std::string without_proof = "c=" + base64_encode(gs2_header) + ",r=" + std::string(*nonce);
  const std::string auth_message = client_first_bare_ + "," + std::string(server_first) + "," + without_proof;
  const std::string client_signature = hmac_sha256(stored_key, auth_message);
  const std::string proof = xor_bytes(client_key, client_signature);
  expected_server_signature_ = hmac_sha256(server_key, auth_message);
  return without_proof + ",p=" + base64_encode(proof);
}

bool scram_client::verify_server_final(std::string_view server_final, std::string& error) const {
  if (auto e = attribute(server_final, 'e')) {
    error = "SCRAM server error: " + std::string(*e);
    return false;
  }
  const auto v = attribute(server_final, 'v');
  const auto signature = v ? base64_decode(*v) : std::nullopt;
  if (!signature || expected_server_signature_.empty() || *signature != expected_server_signature_) {
    error = "SCRAM server signature does not match: the server does not know the password";
    return false;
  }
  return true;
}

}  // namespace pgmux::auth
