// Which statement each request in flight runs, and how it ended: what per-query statistics
// (pool/query_stats.hpp) need from the two byte streams. A Query runs its own text. An
// extended-protocol batch, up to its Sync, runs the statement of its last Execute: the text of
// the unnamed statement's latest Parse, or the text a named statement was prepared with (so a
// prepared statement counts under its SQL text). A batch without Execute (a Parse and a Sync,
// a Describe) and a FunctionCall run no statement (fingerprint 0).
// The relay calls on_frontend for every client message as it passes, and on_backend for every
// server message it passes on to the client; answers are in order, so the oldest request not
// yet answered is the one the server speaks of.
// Pure: no sockets, no clock.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pgmux::protocol {

// Told the text of every Query and Parse as it passes (with its fingerprint), so that a
// statement is known, and normalised, before its first answer.
class statement_sink {
 public:
  virtual void seen(std::uint64_t fingerprint, std::string_view sql) = 0;

 protected:
  ~statement_sink() = default;
};

// One request whose ReadyForQuery came.
struct answered_request {
  std::uint64_t fingerprint = 0;  // 0: no statement, or not known
  bool failed = false;            // an ErrorResponse answered it
  // ...with an SQLSTATE of overload (overload_sqlstate), which the adaptive concurrency limit
  // backs off from.
  bool overloaded = false;
  std::uint64_t rows = 0;         // summed over its CommandComplete tags
};

// The rows a CommandComplete tag reports (SELECT, INSERT, UPDATE, DELETE, MERGE, FETCH, MOVE,
// COPY); 0 for the others.
std::uint64_t command_rows(std::string_view tag) noexcept;

// Whether an SQLSTATE says the server lacks resources for the load it has: 53000
// insufficient_resources, 53200 out_of_memory, 53300 too_many_connections. Not 53100 disk_full
// nor 53400 configuration_limit_exceeded (temp_file_limit): fewer statements at once do not
// cure those.
bool overload_sqlstate(std::string_view code) noexcept;
// Whether an ErrorResponse body's SQLSTATE is one of those.
bool overload_error(std::string_view error_body) noexcept;

// What one client's Parses and Binds named: the client's (its names outlive a lease), made at its
// first Parse or Bind, so that clients of the simple protocol pay nothing for it.
struct statement_names {
  // Named statements remembered at most; a new one past it takes the place of another.
  // DEALLOCATE, DISCARD ALL and Close forget them as PostgreSQL does. Names are kept to their
  // first 63 bytes, as PostgreSQL truncates them.
  static constexpr std::size_t max_named = 4096;
  static constexpr std::size_t max_name = 63;
  std::uint64_t unnamed_statement = 0;
  std::uint64_t unnamed_portal = 0;
  std::uint64_t named_portal = 0;  // the last Bind to a named portal (portals are not told apart)
  struct name_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view name) const noexcept { return std::hash<std::string_view>{}(name); }
  };
  std::unordered_map<std::string, std::uint64_t, name_hash, std::equal_to<>> named;

  void define(std::string_view name, std::uint64_t fingerprint);
  std::uint64_t find(std::string_view name) const noexcept;
  void forget(std::string_view name) { named.erase(std::string(name.substr(0, max_name))); }
  // A Query's text, if it DEALLOCATEs or DISCARDs ALL: the names it ends are forgotten.
  void note_query(std::string_view sql);
};

// The requests in flight on one server connection: the connection's.
class statement_tracker {
 public:
  // Requests in flight remembered at most: past it, the newer ones are not known.
  static constexpr std::size_t max_in_flight = 1024;

  // Set by the relay for the client it serves: who is told the texts of Queries and Parses, and
  // where the client's statement names are (made here when first needed).
  statement_sink* sink = nullptr;
  std::unique_ptr<statement_names>* names = nullptr;

  // A client message passes to the server: `body` is as much of it as is buffered.
  void on_frontend(char tag, std::string_view body);
  // A server message passes to the client (`body` empty when not buffered whole).
  void on_backend(char tag, std::string_view body) noexcept;
  // The server said a COPY FROM STDIN started: the `count` newest Syncs reached it during the
  // COPY and are ignored (no ReadyForQuery answers them). The statement of the batch whose
  // Execute started the COPY goes with the Sync that ends it instead.
  void ignored_syncs(std::size_t count) noexcept;
  // The oldest answered request, in the order answered; false when none is left.
  bool take_answered(answered_request& out) noexcept;
  // After the relay's scans: `outstanding` requests are unanswered by the tracker of the
  // protocol (tx_tracker). Should the two ever disagree, what is in flight is not known: it is
  // forgotten rather than charged to the wrong statements.
  void realign(std::size_t outstanding) noexcept {
    if (in_flight() != outstanding) forget_requests(outstanding);
  }
  // A new lease: nothing in flight (nor the sink and names) is the new client's.
  void forget_in_flight() noexcept;
  // Requests not yet answered.
  std::size_t in_flight() const noexcept { return count_ - answered_ + dropped_; }

 private:
  struct request {
    std::uint64_t fingerprint;
    bool failed;
    bool overloaded;
    std::uint64_t rows;
  };
  void push(std::uint64_t fingerprint);
  void forget_requests(std::size_t unknown) noexcept;
  request* current() noexcept;  // the oldest request not yet answered
  statement_names& client_names();

  std::vector<request> ring_;   // grows by doubling up to max_in_flight
  std::size_t head_ = 0;        // oldest
  std::size_t count_ = 0;       // in the ring
  std::size_t answered_ = 0;    // of the oldest in the ring, how many got their ReadyForQuery
  std::size_t dropped_ = 0;     // newer requests beyond the ring, not known
  std::uint64_t batch_ = 0;     // the last Execute's statement since the last Sync
  // What the server said while no request was in flight (an extended COPY FROM STDIN, whose
  // Sync came early): it goes with the next request.
  bool batch_failed_ = false;
  bool batch_overloaded_ = false;
  std::uint64_t batch_rows_ = 0;
  statement_names no_names_;    // stands in when the relay set no names
};

}  // namespace pgmux::protocol
