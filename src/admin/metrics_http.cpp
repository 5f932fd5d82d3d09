// HTTP/1.x request heads for the metrics endpoint: just enough of RFC 9112 for Prometheus,
// curl and browsers, strict about everything else (the answer to anything odd is 400 and close).
#include "pgmux/admin/metrics_http.hpp"

#include <algorithm>
#include <cctype>

namespace pgmux::app::metrics_http {
namespace {

bool is_tchar(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (std::isalnum(u)) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar); }

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Visible ASCII only in the request line (no controls, no bytes >= 0x80 unencoded).
bool is_visible(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

bool has_controls(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\t') || u == 0x7f;
  });
}

std::string path_of(std::string_view target) {
  if (target.front() != '/') {
    // absolute-form: scheme://authority/path
    const auto scheme = target.find("://");
    if (scheme == std::string_view::npos) return std::string(target);  // "*" or garbage: not /metrics
    const auto slash = target.find('/', scheme + 3);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  return std::string(target.substr(0, target.find_first_of("?#")));
}

head_status parse_request_line(std::string_view line, request& req) {
  const auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return head_status::bad;
  const auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) return head_status::bad;
  const auto method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1), version = line.substr(sp2 + 1);
  if (!is_token(method) || target.empty() || !is_visible(target)) return head_status::bad;
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || !std::isdigit(static_cast<unsigned char>(version[5])) ||
      version[6] != '.' || !std::isdigit(static_cast<unsigned char>(version[7])))
    return head_status::bad;
  if (version[5] != '1' || (version[7] != '0' && version[7] != '1')) return head_status::bad_version;
  req.method = std::string(method);
  req.path = path_of(target);
  req.minor_version = version[7] - '0';
  req.keep_alive = req.minor_version == 1;
  return head_status::complete;
}

}  // namespace

head_result parse_head(std::string_view buffer, std::size_t max_head) {
  head_result r;
  std::size_t pos = 0;
  // A server should skip empty lines before the request line (RFC 9112, 2.2).
  while (pos < buffer.size() && (buffer[pos] == '\r' || buffer[pos] == '\n')) ++pos;
  bool request_line = true;
  bool keep_alive_set = false, close = false, keep_alive = false;
  std::string content_length;
  for (;;) {
    const auto nl = buffer.find('\n', pos);
    if (nl == std::string_view::npos || nl >= max_head) {
      r.status = buffer.size() > max_head || (nl != std::string_view::npos && nl >= max_head) ? head_status::too_large
                                                                                               : head_status::incomplete;
      return r;
    }
    auto line = buffer.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = nl + 1;
    if (request_line) {
      r.status = parse_request_line(line, r.req);
      if (r.status != head_status::complete) return r;
      r.status = head_status::incomplete;
      request_line = false;
      continue;
    }
    if (line.empty()) break;
    // No obsolete line folding, no space before the colon.
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || !is_token(line.substr(0, colon)) || has_controls(line)) {
      r.status = head_status::bad;
      return r;
    }
    const auto name = lower(line.substr(0, colon));
    const auto value = trim(line.substr(colon + 1));
    if (name == "connection") {
      std::string_view rest = value;
      while (!rest.empty()) {
        const auto comma = rest.find(',');
        const auto option = lower(trim(rest.substr(0, comma)));
        if (option == "close") close = true;
        else if (option == "keep-alive") keep_alive = true;
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      }
      keep_alive_set = true;
    } else if (name == "content-length") {
      if (value.empty() || value.size() > 18 || !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
          (!content_length.empty() && content_length != value)) {
        r.status = head_status::bad;
        return r;
      }
      content_length = std::string(value);
      if (value.find_first_not_of('0') != std::string_view::npos) r.req.has_body = true;
    } else if (name == "transfer-encoding") {
      r.req.has_body = true;
    }
  }
  if (keep_alive_set) r.req.keep_alive = !close && (r.req.minor_version == 1 || keep_alive);
  r.status = head_status::complete;
  r.head_size = pos;
  return r;
}

answer decide(const request& req) {
  answer a;
  if (req.method != "GET" && req.method != "HEAD") a.status = 405;
  else if (req.path == "/metrics") a.what = resource::metrics;
  else if (req.path == "/healthz") a.what = resource::healthz;
  else if (req.path == "/readyz") a.what = resource::readyz;
  else a.status = 404;
  a.body = req.method != "HEAD";
  a.keep_alive = req.keep_alive && !req.has_body;
  return a;
}

answer decide(head_status failure) {
  answer a;
  a.status = failure == head_status::too_large ? 431 : failure == head_status::bad_version ? 505 : 400;
  a.keep_alive = false;
  return a;
}

namespace {

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
  }
  return "Error";
}

}  // namespace

std::string response_head(const answer& a, int minor_version, std::string_view content_type, std::size_t content_length) {
  std::string out = "HTTP/1.";
  out += minor_version == 0 ? '0' : '1';
  out += ' ';
  out += std::to_string(a.status);
  out += ' ';
  out += reason(a.status);
  out += "\r\nContent-Type: ";
  out += content_type;
  out += "\r\nContent-Length: ";
  out += std::to_string(content_length);
  out += "\r\n";
  if (a.status == 405) out += "Allow: GET, HEAD\r\n";
  // HTTP/1.1 keeps the connection unless told; HTTP/1.0 closes it unless told.
  if (!a.keep_alive) out += "Connection: close\r\n";
  else if (minor_version == 0) out += "Connection: keep-alive\r\n";
  out += "\r\n";
  return out;
}

std::string error_body(int status) { return std::string(reason(status)) + "\n"; }

}  // namespace pgmux::app::metrics_http
