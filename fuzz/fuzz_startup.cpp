// Startup packets, the first bytes any client sends: SSLRequest, GSSENCRequest, CancelRequest,
// StartupMessage, and the session settings (with the `options` parameter) read from it.
// Input: untagged packets back to back, as a client sends them before authentication.
#include <string>

#include "fuzz_support.hpp"
#include "pgmux/protocol/decode.hpp"
#include "pgmux/protocol/encode.hpp"
#include "pgmux/protocol/frame.hpp"
#include "pgmux/protocol/session_settings.hpp"

using namespace pgmux::protocol;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  // A client may send at most an SSLRequest or GSSENCRequest before its startup packet; more
  // packets here only reach more code faster.
  while (!rest.empty()) {
    const auto f = parse_startup_frame(rest);
    if (f.status == parse_status::invalid) {
      FUZZ_CHECK(f.error != nullptr);
      break;
    }
    if (f.status == parse_status::need_more) break;
    FUZZ_CHECK(f.consumed >= 8 && f.consumed <= rest.size() && f.consumed <= max_startup_packet);
    FUZZ_CHECK(f.msg.tag == 0 && f.msg.body.size() + 4 == f.consumed);
    const auto packet_bytes = rest.substr(0, f.consumed);
    rest.remove_prefix(f.consumed);

    std::string error;
    const auto p = decode_startup_packet(f.msg.body, error);
    if (!p) {
      FUZZ_CHECK(!error.empty());
      continue;
    }
    std::string out;
    switch (p->kind) {
      case startup_kind::ssl_request:
        encode_ssl_request(out);
        FUZZ_CHECK(out == packet_bytes);
        break;
      case startup_kind::cancel_request:
        encode_cancel_request(out, p->cancel);
        FUZZ_CHECK(out == packet_bytes);
        break;
      case startup_kind::gssenc_request:
        break;
      case startup_kind::startup: {
        FUZZ_CHECK(!p->startup.user().empty());
        FUZZ_CHECK(!p->startup.database().empty());
        // What pgmux would send a server for this client decodes to the same parameters.
        encode_startup_message(out, p->startup.parameters);
        const auto again = parse_startup_frame(out);
        if (again.status == parse_status::complete) {
          std::string error2;
          const auto q = decode_startup_packet(again.msg.body, error2);
          FUZZ_CHECK(q && q->startup.parameters == p->startup.parameters);
          if (p->startup.protocol == 196608) FUZZ_CHECK(out == packet_bytes);
        }
        std::string why;
        if (const auto settings = settings_from_startup(p->startup.parameters, why)) {
          const session_settings none;
          const auto changes = settings_changes(*settings, none, none);
          (void)changes;
        } else {
          FUZZ_CHECK(!why.empty());
        }
        break;
      }
    }
  }
  return 0;
}
