// Which request each backend message answers, on one server connection: the relay records
// every request it sends (or answers itself) and asks, for every message the server sends
// back, whether the client gets it. This is what lets pgmux inject its own Parse and Close
// messages, hide their answers, and answer a client's Parse or Close in place of the server,
// in the right place of the response stream.
//
// Rules of the protocol it follows (PostgreSQL "Message Flow"):
// - Parse -> ParseComplete; Bind -> BindComplete; Close -> CloseComplete; Describe statement ->
//   ParameterDescription, then RowDescription or NoData; Describe portal -> RowDescription or
//   NoData; Execute -> DataRow and COPY messages, then CommandComplete, EmptyQueryResponse or
//   PortalSuspended; Sync, Query and FunctionCall -> everything up to ReadyForQuery. Flush and
//   CopyData get no answer and no entry.
// - An ErrorResponse ends an extended-query request, and the server then discards every
//   message up to the next Sync, Query and FunctionCall included. For Query, FunctionCall and
//   Sync an ErrorResponse is one more answer before ReadyForQuery.
// - NoticeResponse, ParameterStatus and NotificationResponse come at any time.
// - During COPY FROM STDIN the server ignores Sync and Flush.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace pgmux::protocol {

enum class request_kind : std::uint8_t {
  parse,
  bind,
  describe_statement,
  describe_portal,
  execute,
  close,
  sync,
  query,
  function_call,
};

enum class response_action : std::uint8_t {
  forward,     // the client's request: its answers go to the client
  hide,        // pgmux's own request: its answers are dropped, except an ErrorResponse
  synthesize,  // not sent to the server (parse, bind or close only): pgmux answers it with
               // ParseComplete / BindComplete / CloseComplete when its turn comes
};

struct backend_decision {
  bool forward = true;       // pass this message to the client
  bool unexpected = false;   // no request in flight can have sent it: client and server are out
                             // of step, and the server connection should be closed
  std::uint32_t failed = 0;  // this ErrorResponse answers the request watched with this token
  std::uint32_t described = 0;  // this RowDescription or NoData answers the Describe watched with this token
};

class response_queue {
 public:
  response_queue();

  // Records a request sent to the server, or answered here (synthesize). `watch` (0: none) is
  // the relay's token for a request whose fate it needs: an ErrorResponse answering it is
  // reported in backend_decision::failed; if the server skips it, it is listed in skipped().
  // Returns false when the server will skip it: after an error until Sync, or a Sync sent
  // during COPY FROM STDIN. Nothing is queued then, and a skipped Parse or Close to be
  // synthesized must not be answered.
  bool push(request_kind kind, response_action action = response_action::forward, std::uint32_t watch = 0);

  // The client sent CopyDone or CopyFail: the server reads Syncs again. Sent before the server
  // said a COPY started, it ends that COPY when it starts: Syncs pushed after it are answered.
  void copy_ended() noexcept {
    if (!copy_in_) copy_end_since_request_ = true;
    copy_in_ = false;
  }

  // The header of the next backend message. Call only with no synthesized answer waiting
  // (take_ready), and call take_ready again once this message has been passed on or dropped.
  backend_decision on_backend(char tag);

  // True when the oldest request is answered by pgmux: take_ready has something to append.
  bool ready() const noexcept;
  // True when the oldest request is pgmux's own (hide): its answers other than an ErrorResponse
  // will be dropped, so the relay must hold them whole first.
  bool next_hidden() const noexcept { return count_ > 0 && front().action == response_action::hide; }
  // Appends the synthesized answers that are due now and forgets their requests; returns how
  // many. Call after each push and after each backend message, at message boundaries of the
  // stream towards the client.
  std::size_t take_ready(std::string& out);

  // Tokens of watched requests the server skipped (or will skip) since the last clear_skipped.
  std::span<const std::uint32_t> skipped() const noexcept { return skipped_; }
  void clear_skipped() noexcept { skipped_.clear(); }

  // The server discards everything until the next Sync.
  bool skipping() const noexcept { return skipping_; }
  // The server is in COPY FROM STDIN.
  bool copy_in() const noexcept { return copy_in_; }

  bool empty() const noexcept { return count_ == 0; }
  std::size_t size() const noexcept { return count_; }
  // Forgets everything: the server connection is gone or reset.
  void clear() noexcept;

 private:
  struct entry {
    request_kind kind;
    response_action action;
    std::uint32_t watch;
    bool after_copy_end = false;  // a Sync sent after an early CopyDone or CopyFail (copy_ended)
  };

  entry& front() noexcept { return ring_[head_]; }
  const entry& front() const noexcept { return ring_[head_]; }
  entry& at(std::size_t i) noexcept { return ring_[(head_ + i) & (ring_.size() - 1)]; }
  void pop() noexcept;
  void grow();
  void skip(const entry& e);
  void fail_until_sync();
  void drop_syncs_after_front();

  std::vector<entry> ring_;  // power-of-two size; grows by doubling, never shrinks
  std::size_t head_ = 0;
  std::size_t count_ = 0;
  std::vector<std::uint32_t> skipped_;
  bool skipping_ = false;
  bool copy_in_ = false;
  bool copy_end_since_request_ = false;  // CopyDone or CopyFail sent, no COPY known, since the last request
};

}  // namespace pgmux::protocol
