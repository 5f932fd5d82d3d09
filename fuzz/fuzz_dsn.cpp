// Server DSNs (URI and key=value, through libpq's parser) and .pgpass text.
// Input: an option byte; bit 0 chooses the passfile lookup, else the DSN parser.
#include <string>

#include "fuzz_support.hpp"
#include "pgmux/config/dsn.hpp"

using namespace pgmux::config;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pgmux::fuzz::input in(data, size);
  const auto options = in.byte();
  const auto text = in.rest();
  if (options & 1) {
    // Passfile lines as libpq reads them, looked up for a fixed target and one from the text.
    (void)lookup_passfile(text, "localhost", 5432, "app", "alice");
    const auto line_end = text.find('\n');
    const auto first = text.substr(0, line_end);
    (void)lookup_passfile(text, first, static_cast<std::uint16_t>(options << 8 | 0x38), first, first);
    return 0;
  }
  const auto parsed = parse_dsn(text);
  if (const auto* error = std::get_if<std::string>(&parsed)) {
    FUZZ_CHECK(!error->empty());
    return 0;
  }
  const auto& target = std::get<server_target>(parsed);
  FUZZ_CHECK(!target.host.empty());
  FUZZ_CHECK(parse_ssl_mode(to_string(target.sslmode)) == target.sslmode);
  if (target.unix_socket()) FUZZ_CHECK(!target.tls_possible());
  return 0;
}
