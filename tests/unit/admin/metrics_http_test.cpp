// The metrics endpoint's HTTP/1.x request heads and answers.
// Cases:
//   a Prometheus-style HTTP/1.1 GET is complete, kept alive, and its head size excludes what follows
//   HTTP/1.0 closes unless it asks for keep-alive; Connection: close ends HTTP/1.1
//   a head arriving byte by byte stays incomplete until its blank line, bare LF line ends work
//   past the size bound: 431, whether or not a line end came; at the bound exactly: complete
//   malformed request lines and headers are 400 at once; other HTTP versions 505
//   query strings and absolute-form targets reduce to the path
//   answers: GET and HEAD of /metrics, /healthz and /readyz 200 (HEAD without body), other paths 404, other methods
//   405 with Allow; a request with a body is answered and the connection closed
//   response heads carry the length, the type and the connection decision
#include <doctest/doctest.h>

#include <string>

#include "pgmux/admin/metrics_http.hpp"

using namespace pgmux::app::metrics_http;

TEST_SUITE("metrics_http") {

TEST_CASE("a Prometheus GET is complete and kept alive") {
  const std::string head =
      "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9930\r\nUser-Agent: Prometheus/2.45.0\r\n"
      "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n"
      "Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n";
  const auto r = parse_head(head + "GET /next");
  REQUIRE(r.status == head_status::complete);
  CHECK(r.head_size == head.size());
  CHECK(r.req.method == "GET");
  CHECK(r.req.path == "/metrics");
  CHECK(r.req.minor_version == 1);
  CHECK(r.req.keep_alive);
  CHECK_FALSE(r.req.has_body);
}

TEST_CASE("connection persistence by version and Connection header") {
  CHECK_FALSE(parse_head("GET /metrics HTTP/1.0\r\n\r\n").req.keep_alive);
  CHECK(parse_head("GET /metrics HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").req.keep_alive);
  CHECK_FALSE(parse_head("GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n").req.keep_alive);
  CHECK_FALSE(parse_head("GET /metrics HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n").req.keep_alive);
  CHECK(parse_head("GET /metrics HTTP/1.1\r\nConnection: upgrade\r\n\r\n").req.keep_alive);
}

TEST_CASE("incomplete until the blank line, bare LF accepted") {
  const std::string head = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  for (std::size_t n = 0; n < head.size(); ++n)
    CHECK_MESSAGE(parse_head(head.substr(0, n)).status == head_status::incomplete, n);
  CHECK(parse_head(head).status == head_status::complete);
  const auto lf = parse_head("\r\nGET /metrics HTTP/1.1\nHost: x\n\n");
  CHECK(lf.status == head_status::complete);
  CHECK(lf.head_size == 2 + 22 + 8 + 1);
}

TEST_CASE("the size bound") {
  const std::string start = "GET /metrics HTTP/1.1\r\nX-Pad: ";
  // No line end within the bound.
  CHECK(parse_head(start + std::string(max_head_bytes, 'a')).status == head_status::too_large);
  CHECK(parse_head(std::string(max_head_bytes + 1, 'G')).status == head_status::too_large);
  // Line ends, but the head goes on past the bound.
  std::string many = "GET /metrics HTTP/1.1\r\n";
  while (many.size() <= max_head_bytes) many += "X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
  CHECK(parse_head(many).status == head_status::too_large);
  CHECK(parse_head(many + "\r\n").status == head_status::too_large);
  // Exactly at the bound.
  std::string exact = start;
  exact += std::string(max_head_bytes - exact.size() - 4, 'a') + "\r\n\r\n";
  REQUIRE(exact.size() == max_head_bytes);
  CHECK(parse_head(exact).status == head_status::complete);
  CHECK(decide(head_status::too_large).status == 431);
  CHECK_FALSE(decide(head_status::too_large).keep_alive);
}

TEST_CASE("malformed heads are refused at once") {
  for (const char* bad : {"GET\r\n", "GET /metrics\r\n", "GET  /metrics HTTP/1.1\r\n", "GET /metrics HTTP/1.1 x\r\n",
                          "GET /metrics http/1.1\r\n", "G(T /metrics HTTP/1.1\r\n", "GET /met\x01rics HTTP/1.1\r\n",
                          "GET /metrics HTTP/1.1\r\nno colon\r\n", "GET /metrics HTTP/1.1\r\nHost : x\r\n",
                          "GET /metrics HTTP/1.1\r\n folded\r\n", "GET /metrics HTTP/1.1\r\nX: a\x01" "b\r\n",
                          "GET /metrics HTTP/1.1\r\nContent-Length: 1x\r\n",
                          "GET /metrics HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n",
                          "\x16\x03\x01\x02\x05\x01\x02\x03\xfc\x03\x03\n"})
    CHECK_MESSAGE(parse_head(bad).status == head_status::bad, bad);
  CHECK(parse_head("GET /metrics HTTP/2.0\r\n\r\n").status == head_status::bad_version);
  CHECK(parse_head("GET /metrics HTTP/1.2\r\n").status == head_status::bad_version);
  CHECK(decide(head_status::bad).status == 400);
  CHECK(decide(head_status::bad_version).status == 505);
}

TEST_CASE("targets reduce to their path") {
  CHECK(parse_head("GET /metrics?name[]=x HTTP/1.1\r\n\r\n").req.path == "/metrics");
  CHECK(parse_head("GET http://127.0.0.1:9930/metrics HTTP/1.1\r\n\r\n").req.path == "/metrics");
  CHECK(parse_head("GET http://127.0.0.1:9930 HTTP/1.1\r\n\r\n").req.path == "/");
  CHECK(parse_head("OPTIONS * HTTP/1.1\r\n\r\n").req.path == "*");
}

TEST_CASE("answers by method and path") {
  auto answer_to = [](const std::string& head) { return decide(parse_head(head).req); };
  auto a = answer_to("GET /metrics HTTP/1.1\r\n\r\n");
  CHECK(a.status == 200);
  CHECK(a.body);
  CHECK(a.keep_alive);
  CHECK(a.what == resource::metrics);
  CHECK(answer_to("GET /healthz HTTP/1.1\r\n\r\n").what == resource::healthz);
  CHECK(answer_to("HEAD /readyz?verbose HTTP/1.1\r\n\r\n").what == resource::readyz);
  CHECK(answer_to("GET /readyz/ HTTP/1.1\r\n\r\n").status == 404);
  CHECK(answer_to("POST /healthz HTTP/1.1\r\n\r\n").status == 405);
  a = answer_to("HEAD /metrics HTTP/1.1\r\n\r\n");
  CHECK(a.status == 200);
  CHECK_FALSE(a.body);
  CHECK(answer_to("GET / HTTP/1.1\r\n\r\n").status == 404);
  CHECK(answer_to("GET /metrics/ HTTP/1.1\r\n\r\n").status == 404);
  CHECK(answer_to("get /metrics HTTP/1.1\r\n\r\n").status == 405);
  a = answer_to("POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
  CHECK(a.status == 405);
  CHECK_FALSE(a.keep_alive);
  a = answer_to("GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
  CHECK(a.status == 200);
  CHECK_FALSE(a.keep_alive);
  CHECK(answer_to("GET /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").keep_alive);
}

TEST_CASE("response heads") {
  auto h = response_head({200, true, true}, 1, "text/plain; version=0.0.4; charset=utf-8", 1234);
  CHECK(h == "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: 1234\r\n\r\n");
  h = response_head({200, true, true}, 0, "text/plain", 5);
  CHECK(h.rfind("HTTP/1.0 200 OK\r\n", 0) == 0);
  CHECK(h.find("Connection: keep-alive\r\n") != std::string::npos);
  h = response_head({405, true, false}, 1, "text/plain", 19);
  CHECK(h.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0) == 0);
  CHECK(h.find("Allow: GET, HEAD\r\n") != std::string::npos);
  CHECK(h.find("Connection: close\r\n") != std::string::npos);
  CHECK(h.substr(h.size() - 4) == "\r\n\r\n");
  CHECK(response_head({431, true, false}, 1, "text/plain", 3).rfind("HTTP/1.1 431 Request Header Fields Too Large\r\n", 0) == 0);
  CHECK(error_body(404) == "Not Found\n");
}

}  // TEST_SUITE
