// The server side of SCRAM-SHA-256 as pgmux runs it towards clients: SASLInitialResponse
// (mechanism and client-first-message) and SASLResponse (client-final-message) from anyone
// who connects.
// Input: an option byte, then "mechanism\nclient-first\nclient-final[\nanother final]"; the
// server nonce is fixed ("fuzznonce") so that seeds can hold a valid exchange for password
// "pencil" (salt "fuzzsalt", 4096 iterations).
#include <string>

#include "fuzz_support.hpp"
#include "pgmux/auth/scram_server.hpp"
#include "pgmux/auth/scram_verifier.hpp"

using namespace pgmux::auth;

namespace {

std::string_view next_line(std::string_view& rest) {
  const auto end = rest.find('\n');
  const auto line = rest.substr(0, end);
  rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
  return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const scram_verifier verifier = compute_scram_verifier("pencil", "fuzzsalt", 4096);
  pgmux::fuzz::input in(data, size);
  const auto options = in.byte();
  // tls-server-end-point data when the client is on TLS: SCRAM-SHA-256-PLUS is offered.
  std::string binding = options & 1 ? std::string(32, '\x5a') : std::string();
  const bool mock = options & 2;
  auto server = mock ? scram_server::for_unknown_user("alice", "mock secret", binding, "fuzznonce")
                     : scram_server(verifier, binding, "fuzznonce");
  const auto offered = server.mechanisms();
  FUZZ_CHECK(offered.size() == (binding.empty() ? 1u : 2u));

  std::string_view rest = in.rest();
  const auto mechanism = next_line(rest);
  const auto first = server.handle_client_first(mechanism, next_line(rest));
  FUZZ_CHECK(first ? !first.message.empty() : !first.error.empty());
  bool ok = static_cast<bool>(first);
  while (!rest.empty()) {
    const auto final_reply = server.handle_client_final(next_line(rest));
    FUZZ_CHECK(final_reply ? final_reply.message.rfind("v=", 0) == 0 : !final_reply.error.empty());
    // Only the first final message of a live exchange can succeed; nothing after it.
    FUZZ_CHECK(!final_reply || ok);
    ok = false;
  }
  if (server.authenticated()) {
    FUZZ_CHECK(!mock);
    FUZZ_CHECK(server.client_key().size() == scram_key_size);
  } else {
    FUZZ_CHECK(server.client_key().empty() && !server.channel_bound());
  }
  if (server.channel_bound()) FUZZ_CHECK(!binding.empty());
  return 0;
}
