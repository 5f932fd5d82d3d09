// The metrics endpoint's HTTP/1.x: reading a request head and deciding the answer. Pure: the
// socket loop in metrics.cpp feeds bytes in and writes what comes out.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace pgmux::app::metrics_http {

// Bytes a request head (request line and headers) may take; past it the answer is 431.
inline constexpr std::size_t max_head_bytes = 8192;

struct request {
  std::string method;
  std::string path;        // without query string; absolute-form targets are reduced to their path
  int minor_version = 1;   // HTTP/1.0 or HTTP/1.1
  bool keep_alive = true;  // after the version's default and any Connection header
  bool has_body = false;   // Content-Length > 0 or Transfer-Encoding: the body is not read
};

enum class head_status {
  incomplete,  // no blank line yet, within the bound: read more
  complete,    // `req` and `head_size` are set
  too_large,   // 431
  bad,         // 400
  bad_version  // 505
};

struct head_result {
  head_status status = head_status::incomplete;
  request req;
  std::size_t head_size = 0;  // bytes of `buffer` the head took, the blank line included
};

// Looks for a complete request head at the start of `buffer`. Lines may end in CRLF or LF.
head_result parse_head(std::string_view buffer, std::size_t max_head = max_head_bytes);

// What a GET or HEAD asks for.
enum class resource { none, metrics, healthz, readyz };

struct answer {
  int status = 200;        // for healthz and readyz, 503 replaces it when the check fails
  bool body = true;        // the metrics (200 on GET) or a short text; HEAD sends none
  bool keep_alive = true;  // keep reading requests on this connection after the answer
  resource what = resource::none;
};

// What to answer: 200 for GET and HEAD of /metrics, /healthz and /readyz, 404 for other paths,
// 405 for other methods.
// A request with a body is answered and the connection closed (the body is never read).
answer decide(const request& req);
// The answer to a head that could not be read; always closes the connection.
answer decide(head_status failure);

// The status line and headers, the blank line included. `content_length` is the body's size
// even for HEAD, which sends none.
std::string response_head(const answer& a, int minor_version, std::string_view content_type,
                          std::size_t content_length);
// The short plain-text body of an error status.
std::string error_body(int status);

}  // namespace pgmux::app::metrics_http
