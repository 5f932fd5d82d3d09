// Matching backend messages to the requests they answer.
#include "pgmux/protocol/response_queue.hpp"

#include <cassert>

#include "pgmux/protocol/extended.hpp"

namespace pgmux::protocol {
namespace {

constexpr std::size_t initial_capacity = 16;  // a power of two

// Whether a message of type `tag` (other than ErrorResponse and the asynchronous ones) can
// answer a request of `kind`, and whether it is the last answer.
bool answers(request_kind kind, char tag, bool& last) noexcept {
  last = true;
  switch (kind) {
    case request_kind::parse: return tag == '1';
    case request_kind::bind: return tag == '2';
    case request_kind::close: return tag == '3';
    case request_kind::describe_portal: return tag == 'T' || tag == 'n';
    case request_kind::describe_statement:
      if (tag == 't') {
        last = false;
        return true;
      }
      return tag == 'T' || tag == 'n';
    case request_kind::execute:
      switch (tag) {
        case 'C': case 'I': case 's': return true;
        case 'D': case 'G': case 'H': case 'W': case 'd': case 'c': last = false; return true;
        default: return false;
      }
    case request_kind::sync: return tag == 'Z';
    case request_kind::query:
      switch (tag) {
        case 'Z': return true;
        case 'T': case 'D': case 'C': case 'I': case 'G': case 'H': case 'W': case 'd': case 'c':
          last = false;
          return true;
        default: return false;
      }
    case request_kind::function_call:
      if (tag == 'V') {
        last = false;
        return true;
      }
      return tag == 'Z';
  }
  return false;
}

// Requests after which an ErrorResponse is followed by ReadyForQuery rather than a skip.
bool ends_at_ready_for_query(request_kind kind) noexcept {
  return kind == request_kind::sync || kind == request_kind::query || kind == request_kind::function_call;
}

}  // namespace

response_queue::response_queue() : ring_(initial_capacity) { skipped_.reserve(8); }

bool response_queue::push(request_kind kind, response_action action, std::uint32_t watch) {
  assert(action != response_action::synthesize || kind == request_kind::parse || kind == request_kind::bind ||
         kind == request_kind::close);
  const bool request = kind == request_kind::query || kind == request_kind::execute || kind == request_kind::function_call;
  if (request) copy_end_since_request_ = false;
  const entry e{kind, action, watch, kind == request_kind::sync && copy_end_since_request_};
  if (skipping_) {
    if (kind != request_kind::sync) {
      skip(e);
      return false;
    }
    skipping_ = false;
  } else if (copy_in_ && kind == request_kind::sync) {
    skip(e);
    return false;
  }
  if (count_ == ring_.size()) grow();
  at(count_) = e;
  ++count_;
  return true;
}

backend_decision response_queue::on_backend(char tag) {
  backend_decision d;
  if (tag == 'N' || tag == 'S' || tag == 'A') return d;  // asynchronous: never an answer
  if (count_ == 0) {
    // A FATAL ErrorResponse (shutdown, idle_session_timeout) can come unasked; nothing else may.
    d.unexpected = tag != 'E';
    return d;
  }
  const entry& e = front();
  assert(e.action != response_action::synthesize);  // take_ready was not called
  if (tag == 'E') {
    // Forwarded even for a hidden request: the client's next request would have failed too.
    d.failed = e.watch;
    copy_in_ = false;  // an error during COPY FROM STDIN ends it
    if (!ends_at_ready_for_query(e.kind)) {
      pop();
      fail_until_sync();
    }
    return d;
  }
  bool last = false;
  if (!answers(e.kind, tag, last)) {
    d.unexpected = true;
    return d;
  }
  d.forward = e.action == response_action::forward;
  if (tag == 'T' || tag == 'n') {
    if (e.kind == request_kind::describe_statement || e.kind == request_kind::describe_portal) d.described = e.watch;
  }
  if (tag == 'G') {
    // A client that ended the COPY before it started has nothing more for it.
    copy_in_ = !copy_end_since_request_;
    drop_syncs_after_front();
  }
  if (last) {
    copy_in_ = false;
    pop();
  }
  return d;
}

bool response_queue::ready() const noexcept {
  return count_ > 0 && front().action == response_action::synthesize;
}

std::size_t response_queue::take_ready(std::string& out) {
  std::size_t n = 0;
  for (; ready(); ++n) {
    switch (front().kind) {
      case request_kind::parse: encode_parse_complete(out); break;
      case request_kind::bind: encode_bind_complete(out); break;
      case request_kind::close: encode_close_complete(out); break;
      default: assert(false); break;
    }
    pop();
  }
  return n;
}

void response_queue::clear() noexcept {
  head_ = 0;
  count_ = 0;
  skipped_.clear();
  skipping_ = false;
  copy_in_ = false;
  copy_end_since_request_ = false;
}

void response_queue::pop() noexcept {
  head_ = (head_ + 1) & (ring_.size() - 1);
  --count_;
}

void response_queue::grow() {
  std::vector<entry> bigger(ring_.size() * 2);
  for (std::size_t i = 0; i < count_; ++i) bigger[i] = at(i);
  ring_.swap(bigger);
  head_ = 0;
}

void response_queue::skip(const entry& e) {
  if (e.watch != 0) skipped_.push_back(e.watch);
}

void response_queue::fail_until_sync() {
  // Entries the server will discard: synthesized answers are never sent, hidden requests
  // never take effect.
  while (count_ > 0 && front().kind != request_kind::sync) {
    skip(front());
    pop();
  }
  skipping_ = count_ == 0;
}

void response_queue::drop_syncs_after_front() {
  // CopyInResponse: Syncs sent after the request that started the COPY reach the server while
  // it reads COPY data, which ignores them. They will never be answered.
  // Syncs sent after an early CopyDone reach it after the COPY: they are answered.
  std::size_t kept = 1;
  for (std::size_t i = 1; i < count_; ++i) {
    const entry e = at(i);
    if (e.kind == request_kind::sync && !e.after_copy_end) {
      skip(e);
      continue;
    }
    at(kept++) = e;
  }
  count_ = kept;
}

}  // namespace pgmux::protocol
