// The client side of SCRAM-SHA-256, as pgmux logs in to servers: server-first-message and
// server-final-message from the server.
// Input: an option byte, then "server-first\nserver-final". The client nonce is RFC 7677's
// ("rOprNGfwEbeRWgbNEkqO"), the password "pencil", so the RFC example is a valid seed.
#include <charconv>
#include <string>

#include "fuzz_support.hpp"
#include "pgmux/auth/scram_client.hpp"

using namespace pgmux::auth;

namespace {

constexpr std::string_view nonce = "rOprNGfwEbeRWgbNEkqO";

// The iteration count the message asks for, if it says one: each costs an HMAC.
long iterations(std::string_view msg) {
  for (std::size_t pos = 0; pos < msg.size();) {
    auto end = msg.find(',', pos);
    if (end == std::string_view::npos) end = msg.size();
    const auto part = msg.substr(pos, end - pos);
    if (part.size() > 2 && part[0] == 'i' && part[1] == '=') {
      long n = 0;
      std::from_chars(part.data() + 2, part.data() + part.size(), n);
      return n;
    }
    pos = end + 1;
  }
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pgmux::fuzz::input in(data, size);
  const auto options = in.byte();
  std::string_view rest = in.rest();
  const auto split = rest.find('\n');
  const auto server_first = rest.substr(0, split);
  const auto server_final = split == std::string_view::npos ? std::string_view{} : rest.substr(split + 1);

  // From a password unless the server asks for more iterations than a fuzzer can afford per
  // input (servers choose the count; up to 10 million are accepted); else from keys.
  const long n = iterations(server_first);
  auto client = (options & 1) && n <= 64
                    ? scram_client("pencil", std::string(nonce))
                    : scram_client::from_keys(std::string(32, 'c'), std::string(32, 's'), std::string(nonce));
  FUZZ_CHECK(client.client_first_message() == "n,,n=,r=" + std::string(nonce));
  std::string error;
  const auto final_message = client.handle_server_first(server_first, error);
  if (!final_message) {
    FUZZ_CHECK(!error.empty());
    FUZZ_CHECK(!client.verify_server_final(server_final, error));
    return 0;
  }
  FUZZ_CHECK(final_message->rfind("c=biws,r=" + std::string(nonce), 0) == 0);
  FUZZ_CHECK(final_message->find(",p=") != std::string::npos);
  error.clear();
  if (!client.verify_server_final(server_final, error)) FUZZ_CHECK(!error.empty());
  return 0;
}
