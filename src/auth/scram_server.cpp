// SCRAM-SHA-256 server exchange (RFC 5802 section 5, RFC 7677), with PostgreSQL's choices:
// tls-server-end-point as the only channel binding type, no authzid, the SCRAM user name
// ignored, mock exchanges for unknown users.
#include "pgmux/auth/scram_server.hpp"

#include <stdexcept>

#include "pgmux/auth/crypto.hpp"

namespace pgmux::auth {
namespace {

constexpr std::string_view cb_type = "tls-server-end-point";
constexpr std::size_t server_nonce_bytes = 18;  // as PostgreSQL
constexpr std::string_view invalid_proof_error = "invalid SCRAM proof";

// RFC 5802 "printable": %x21-7E except ','. Nonces must be made of these.
bool is_printable(std::string_view s) {
  for (char c : s)
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  return true;
}

// Client text goes into errors (and logs) only when it is short printable ASCII.
std::string quoted(std::string_view s) {
  if (s.size() > 64 || !is_printable(s)) return "(not shown)";
  return "\"" + std::string(s) + "\"";
}

std::vector<std::string_view> split_commas(std::string_view s) {
  std::vector<std::string_view> parts;
  for (;;) {
    const auto at = s.find(',');
    parts.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return parts;
    s.remove_prefix(at + 1);
  }
}

// "x=value" with an attribute letter; the value of `name`, or nullopt.
std::optional<std::string_view> attribute(std::string_view part, char name) {
  if (part.size() < 2 || part[0] != name || part[1] != '=') return std::nullopt;
  return part.substr(2);
}

// RFC 5802 extensions (any "<letter>=<value>") are allowed and ignored, as PostgreSQL does.
bool are_extensions(const std::vector<std::string_view>& parts, std::size_t from) {
  for (std::size_t i = from; i < parts.size(); ++i) {
    const auto p = parts[i];
    const bool letter = !p.empty() && ((p[0] >= 'a' && p[0] <= 'z') || (p[0] >= 'A' && p[0] <= 'Z'));
    if (!letter || p.size() < 2 || p[1] != '=') return false;
  }
  return true;
}

}  // namespace

scram_server::scram_server(scram_verifier verifier, std::string channel_binding, std::string server_nonce)
    : verifier_(std::move(verifier)), channel_binding_(std::move(channel_binding)), server_nonce_(std::move(server_nonce)) {
  if (server_nonce_.empty()) server_nonce_ = base64_encode(random_bytes(server_nonce_bytes));
}

scram_server scram_server::for_unknown_user(std::string_view user, std::string_view mock_secret,
                                            std::string channel_binding, std::string server_nonce) {
  if (mock_secret.empty()) throw std::invalid_argument("scram_server::for_unknown_user needs a mock secret");
  std::string seed(mock_secret);
  seed.append(user);
  // Keys of zeros: no ClientKey hashes to them, and the exchange fails on mock_ regardless.
  scram_verifier fake{scram_default_iterations, sha256(seed).substr(0, scram_default_salt_size),
                      std::string(scram_key_size, '\0'), std::string(scram_key_size, '\0')};
  scram_server s(std::move(fake), std::move(channel_binding), std::move(server_nonce));
  s.mock_ = true;
  return s;
}

std::vector<std::string_view> scram_server::mechanisms() const {
  if (channel_binding_.empty()) return {scram_sha_256_mechanism};
  return {scram_sha_256_plus_mechanism, scram_sha_256_mechanism};
}

scram_reply scram_server::fail(scram_failure failure, std::string error) {
  state_ = state::failed;
  client_key_.clear();
  return {failure, {}, std::move(error)};
}

scram_reply scram_server::handle_client_first(std::string_view mechanism, std::string_view client_first) {
  constexpr auto malformed = scram_failure::protocol_violation;
  if (state_ != state::expect_first) return fail(malformed, "unexpected SCRAM client-first-message");
  if (mechanism == scram_sha_256_plus_mechanism && !channel_binding_.empty()) plus_ = true;
  else if (mechanism != scram_sha_256_mechanism)
    return fail(malformed, "client selected an invalid SASL authentication mechanism " + quoted(mechanism));
  if (client_first.empty()) return fail(malformed, "malformed SCRAM message (empty message)");
  if (client_first.find('\0') != std::string_view::npos)
    return fail(malformed, "malformed SCRAM message (NUL byte in client-first-message)");

  // gs2-header: gs2-cbind-flag "," [authzid] ","
  std::string_view rest = client_first;
  switch (rest[0]) {
    case 'n':
    case 'y':
      if (rest.size() < 2 || rest[1] != ',')
        return fail(malformed, "malformed SCRAM message (unexpected channel-binding flag)");
      if (plus_)
        return fail(malformed, "the client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include "
                               "channel binding data");
      // "y": the client could bind but believes the server cannot. This server can, so someone
      // between the two removed SCRAM-SHA-256-PLUS from the offer: a downgrade attack.
      if (rest[0] == 'y' && !channel_binding_.empty())
        return fail(malformed, "SCRAM channel binding negotiation error: the client supports channel binding but "
                               "thinks the server does not, yet this server does support it");
      rest.remove_prefix(2);
      break;
    case 'p': {
      const auto comma = rest.find(',');
      if (rest.size() < 2 || rest[1] != '=' || comma == std::string_view::npos)
        return fail(malformed, "malformed SCRAM message (unexpected channel-binding flag)");
      if (!plus_)
        return fail(malformed, "the client selected SCRAM-SHA-256 without channel binding, but the SCRAM message "
                               "includes channel binding data");
      const auto name = rest.substr(2, comma - 2);
      if (name != cb_type) return fail(malformed, "unsupported SCRAM channel-binding type " + quoted(name));
      rest.remove_prefix(comma + 1);
      break;
    }
    default:
      return fail(malformed, "malformed SCRAM message (unexpected channel-binding flag)");
  }
  if (rest.substr(0, 2) == "a=") return fail(malformed, "client uses authorization identity, but it is not supported");
  if (rest.empty() || rest[0] != ',')
    return fail(malformed, "malformed SCRAM message (unexpected attribute in client-first-message)");
  rest.remove_prefix(1);
  gs2_header_ = std::string(client_first.substr(0, client_first.size() - rest.size()));

  // client-first-message-bare: [reserved-mext ","] username "," nonce ["," extensions]
  const auto parts = split_commas(rest);
  if (attribute(parts[0], 'm')) return fail(malformed, "client requires an unsupported SCRAM extension");
  // The user name is read and ignored: the startup packet's user is the one being authenticated.
  const auto nonce = parts.size() >= 2 ? attribute(parts[1], 'r') : std::nullopt;
  if (!attribute(parts[0], 'n') || !nonce || !are_extensions(parts, 2))
    return fail(malformed, "malformed SCRAM message (expected n=<user>,r=<nonce> in client-first-message)");
  if (nonce->empty() || !is_printable(*nonce))
    return fail(malformed, "malformed SCRAM message (invalid nonce in client-first-message)");

  client_first_bare_ = std::string(rest);
  nonce_ = std::string(*nonce) + server_nonce_;
  server_first_ = "r=" + nonce_ + ",s=" + base64_encode(verifier_.salt) + ",i=" + std::to_string(verifier_.iterations);
  state_ = state::expect_final;
  return {scram_failure::none, server_first_, {}};
}

scram_reply scram_server::handle_client_final(std::string_view client_final) {
  constexpr auto malformed = scram_failure::protocol_violation;
  if (state_ != state::expect_final) return fail(malformed, "unexpected SCRAM client-final-message");
  if (client_final.find('\0') != std::string_view::npos)
    return fail(malformed, "malformed SCRAM message (NUL byte in client-final-message)");

  // client-final-message-without-proof "," proof; the proof comes last and holds no comma.
  const auto proof_at = client_final.rfind(",p=");
  if (proof_at == std::string_view::npos)
    return fail(malformed, "malformed SCRAM message (no proof in client-final-message)");
  const auto without_proof = client_final.substr(0, proof_at);
  const auto parts = split_commas(without_proof);
  const auto binding = attribute(parts[0], 'c');
  const auto nonce = parts.size() >= 2 ? attribute(parts[1], 'r') : std::nullopt;
  if (!binding || !nonce || !are_extensions(parts, 2))
    return fail(malformed, "malformed SCRAM message (expected c=<binding>,r=<nonce> in client-final-message)");

  // c= must repeat the gs2 header, followed by the channel binding data when the client bound.
  const auto binding_raw = base64_decode(*binding);
  if (!binding_raw) return fail(malformed, "malformed SCRAM message (channel binding is not base64)");
  if (*binding_raw != gs2_header_ + (plus_ ? channel_binding_ : std::string()))
    return fail(malformed, "SCRAM channel binding check failed");
  if (*nonce != nonce_) return fail(malformed, "invalid SCRAM response (nonce mismatch)");
  const auto proof = base64_decode(client_final.substr(proof_at + 3));
  if (!proof || proof->size() != scram_key_size)
    return fail(malformed, "malformed SCRAM message (malformed proof in client-final-message)");

  // ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the client knew the password
  // (or its ClientKey) if H(ClientKey) is the StoredKey. Mock exchanges do the same work, so
  // their timing gives nothing away either.
  const std::string auth_message = client_first_bare_ + "," + server_first_ + "," + std::string(without_proof);
  std::string client_key = xor_bytes(*proof, hmac_sha256(verifier_.stored_key, auth_message));
  const bool proof_ok = constant_time_equal(sha256(client_key), verifier_.stored_key);
  if (!proof_ok || mock_) return fail(scram_failure::invalid_proof, std::string(invalid_proof_error));

  client_key_ = std::move(client_key);
  state_ = state::succeeded;
  return {scram_failure::none, "v=" + base64_encode(hmac_sha256(verifier_.server_key, auth_message)), {}};
}

}  // namespace pgmux::auth
