// The metrics endpoint's HTTP request heads, from anyone who can reach its port.
// Input: an option byte choosing the head bound, then the bytes of the connection.
#include <string>

#include "fuzz_support.hpp"
#include "pgmux/admin/metrics_http.hpp"

using namespace pgmux::app::metrics_http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pgmux::fuzz::input in(data, size);
  const std::size_t max_head = in.byte() & 1 ? 64 : max_head_bytes;
  std::string_view rest = in.rest();
  // Keep-alive: requests one after another, as the socket loop reads them.
  for (int requests = 0; requests < 16; ++requests) {
    const auto r = parse_head(rest, max_head);
    if (r.status == head_status::incomplete) {
      FUZZ_CHECK(rest.size() <= max_head);
      break;
    }
    if (r.status != head_status::complete) {
      const auto a = decide(r.status);
      FUZZ_CHECK(!a.keep_alive && a.status >= 400);
      FUZZ_CHECK(!response_head(a, 1, "text/plain", error_body(a.status).size()).empty());
      break;
    }
    FUZZ_CHECK(r.head_size > 0 && r.head_size <= rest.size() && r.head_size <= max_head);
    FUZZ_CHECK(r.req.minor_version == 0 || r.req.minor_version == 1);
    const auto a = decide(r.req);
    const auto head = response_head(a, r.req.minor_version, "text/plain", 42);
    FUZZ_CHECK(head.size() >= 4 && head.compare(head.size() - 4, 4, "\r\n\r\n") == 0);
    if (!a.keep_alive) break;
    rest.remove_prefix(r.head_size);
  }
  return 0;
}
