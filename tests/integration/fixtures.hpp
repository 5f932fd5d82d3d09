// Fixtures of the integration tests: a throwaway PostgreSQL 15 cluster per test process, a pgmux
// process per test case, and small libpq, raw-socket and subprocess helpers. Every wait has a deadline.
//
// Why one cluster per process: ctest runs each TEST_CASE as its own process
// (`integration_tests --test-case=NAME`). initdb --no-sync, start with fsync=off, and creating the role
// and database take about 0.8 s here, so sharing one cluster between processes (locking, reference
// counts, cleaning up after someone else) is not worth its failure modes. Each cluster lives in its own
// mkdtemp directory on a random free port, so a stale cluster of a killed run cannot collide with a new
// one. A guardian process stops and deletes the cluster when the test process ends in any way (normal
// exit, failed assertion, abort, SIGKILL from a ctest timeout); pgmux dies with the test process
// (PDEATHSIG); a sweep at start-up removes directories whose owner died and were not cleaned.
// A watchdog (alarm) ends a test case that runs too long, so nothing hangs the suite.
//
// pg_instance::enable_ssl turns TLS on in the cluster for the tests of TLS towards servers.
//
// Environment:
//   PGMUX_IT_BINARY        pgmux to test instead of the one built with the tests
//   PGMUX_IT_KEEP=1        keep cluster and proxy directories (logs, configs) for inspection
//   PGMUX_IT_TEST_TIMEOUT  seconds a test case may run (default 150)
//   PGMUX_PG_BINDIR        PostgreSQL programs (default /usr/lib/postgresql/15/bin)
#pragma once

#include <libpq-fe.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace it {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------------
// Subprocesses and small utilities

struct run_result {
  int code = -1;       // exit status; 124 when `timeout` killed the command
  std::string output;  // stdout and stderr together
};

// Runs `cmd` through /bin/sh under `timeout`, so nothing can hang the suite.
run_result run(const std::string& cmd, int timeout_seconds = 60);

std::string shell_quote(std::string_view s);
// A JSON string literal of `s` (quotes and backslashes escaped), for config files.
std::string json_string(std::string_view s);

// A free TCP port on 127.0.0.1 in [20000, 32000) (below the ephemeral range), checked with bind().
int free_port();

// Polls `pred` every `step` until it is true or `timeout` passes; returns its last value.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds step = 25ms);

double seconds_since(clock::time_point t);

std::string tail_lines(const std::string& text, std::size_t lines);
// The config member that serves /metrics on 127.0.0.1:`port`, for proxy_options::top_level.
std::string metrics_member(int port);
// `text` with its first `from` replaced by `to`; REQUIREs `from` to be there.
std::string replace_first(std::string text, const std::string& from, const std::string& to);
std::string read_file(const std::string& path);

// "exit code N" or "killed by signal NAME", for a waitpid status.
std::string describe_status(int status);

// True when an assertion of the current test case has failed (set by a doctest listener).
bool current_test_failed();
// Test cases (or subcase passes) started in this process.
int test_cases_started();

// ---------------------------------------------------------------------------------------------------
// PostgreSQL

// Where the PostgreSQL programs are (PGMUX_PG_BINDIR).
std::string pg_bindir();

class pg_instance {
 public:
  // The cluster of this test process, created on first use and stopped when the process exits.
  static pg_instance& get();

  int port() const { return port_; }
  const std::string& socket_dir() const { return dir_; }
  const std::string& password() const { return password_; }
  std::string user() const { return "pgmux_test"; }
  std::string database() const { return "pgmux_test"; }

  // As superuser postgres over the Unix socket, bypassing pgmux: for checks such as pg_stat_activity.
  std::string admin_conninfo() const;
  // As pgmux_test over TCP with SCRAM, bypassing pgmux.
  std::string direct_conninfo() const;
  // libpq key=value DSN pgmux uses to reach the server (TCP, so SCRAM is required).
  std::string server_dsn(std::string_view dbname = {}) const;
  std::string log_tail(std::size_t lines = 30) const;
  // A shell command running pg_ctl on this cluster with `args` (as postgres when we are root),
  // for restarts: e.g. pg_ctl_command("-m fast -w restart").
  std::string pg_ctl_command(const std::string& args) const;

  // Turns TLS on in the running cluster (ssl = on with these PEM files, copied into the data
  // directory; with `ca_file` the server asks for client certificates and verifies them) and
  // waits until new connections can use it. disable_ssl() turns it off again; ssl_guard does
  // both for one scope, so later test cases in the same process get the plain cluster back.
  void enable_ssl(const std::string& cert_file, const std::string& key_file, const std::string& ca_file = {});
  void disable_ssl();

  pg_instance(const pg_instance&) = delete;
  pg_instance& operator=(const pg_instance&) = delete;
  ~pg_instance();

 private:
  pg_instance();
  void start();
  void start_guardian();
  void stop();

  std::string dir_;
  int port_ = 0;
  std::string password_;
  pid_t owner_ = 0;
  int life_fd_ = -1;  // write end held by this process; the guardian acts at EOF
  int done_fd_ = -1;  // read end; EOF when the guardian finished cleaning up
};

inline pg_instance& pg() { return pg_instance::get(); }

class ssl_guard {
 public:
  ssl_guard(const std::string& cert_file, const std::string& key_file, const std::string& ca_file = {}) {
    pg().enable_ssl(cert_file, key_file, ca_file);
  }
  ~ssl_guard() { pg().disable_ssl(); }
  ssl_guard(const ssl_guard&) = delete;
  ssl_guard& operator=(const ssl_guard&) = delete;
};

// RAII owner of a PGresult.
class pg_result {
 public:
  pg_result() = default;
  explicit pg_result(PGresult* r) : r_(r, &PQclear) {}
  PGresult* get() const { return r_.get(); }
  explicit operator bool() const { return r_ != nullptr; }
  ExecStatusType status() const { return r_ ? PQresultStatus(r_.get()) : PGRES_FATAL_ERROR; }
  bool ok() const { return status() == PGRES_TUPLES_OK || status() == PGRES_COMMAND_OK; }
  std::string sqlstate() const;
  std::string error() const;  // primary message, or "" when none
  int rows() const { return r_ ? PQntuples(r_.get()) : 0; }
  std::string value(int row = 0, int col = 0) const;
  bool is_null(int row = 0, int col = 0) const { return PQgetisnull(r_.get(), row, col) != 0; }

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> r_{nullptr, &PQclear};
};

// RAII owner of a PGconn. Does not assert: check ok() (or use connect()).
class pg_conn {
 public:
  pg_conn() = default;
  explicit pg_conn(const std::string& conninfo);
  pg_conn(pg_conn&&) noexcept = default;
  pg_conn& operator=(pg_conn&&) noexcept = default;

  PGconn* get() const { return c_.get(); }
  bool ok() const { return c_ && PQstatus(c_.get()) == CONNECTION_OK; }
  std::string error() const { return c_ ? PQerrorMessage(c_.get()) : "no connection"; }
  pg_result exec(const std::string& sql) const { return pg_result(PQexec(c_.get(), sql.c_str())); }
  pg_result exec_params(const std::string& sql, const std::vector<std::string>& params) const;
  // Closes the socket under libpq (no Terminate), as a killed client would, then frees the connection.
  void abort_socket();
  void reset() { c_.reset(); }

  // NoticeResponses received ("SEVERITY|SQLSTATE|message"); collect_notices() starts afresh.
  void collect_notices();
  const std::vector<std::string>& notices() const { return *notices_; }
  void clear_notices() { notices_->clear(); }

 private:
  std::unique_ptr<PGconn, void (*)(PGconn*)> c_{nullptr, &PQfinish};
  std::unique_ptr<std::vector<std::string>> notices_ = std::make_unique<std::vector<std::string>>();
};

// Connects and REQUIREs success, reporting libpq's message.
pg_conn connect(const std::string& conninfo);

// As postgres over the Unix socket in database pgmux_test, then SET ROLE pgmux_test: creates objects the
// test role owns without appearing as a pgmux_test backend in pg_stat_activity.
pg_conn setup_connection();

// First column of the first row; throws std::runtime_error (failing the test with its message) when
// the statement fails or returns no row.
std::string scalar(const pg_conn& c, const std::string& sql);
// CHECKs that `sql` succeeds.
void exec_ok(const pg_conn& c, const std::string& sql);

// Client backends of `user` in `db` as pg_stat_activity shows them, excluding the asking connection.
int server_connections(const pg_conn& admin, const std::string& db = "pgmux_test",
                       const std::string& user = "pgmux_test");
int server_connections(const std::string& db = "pgmux_test", const std::string& user = "pgmux_test");

// Waits for the next result of an asynchronous query, up to `timeout`. Returns an empty pg_result on
// timeout (and when the query has no more results: check PQisBusy/timed_out to tell them apart).
pg_result get_result(const pg_conn& c, std::chrono::milliseconds timeout, bool* timed_out = nullptr);

// Watches server_connections() from a thread and remembers the highest count seen.
class connection_sampler {
 public:
  explicit connection_sampler(std::string db = "pgmux_test", std::string user = "pgmux_test");
  ~connection_sampler();
  int max_seen() const;
  int samples() const;
  void stop();

 private:
  struct state;
  std::unique_ptr<state> s_;
};

// ---------------------------------------------------------------------------------------------------
// pgmux

// What a test changes in pgmux's config; everything else has test defaults (transaction mode,
// min_size 0, max_size 10, query_wait_timeout 10s, one "pgmux_test" database plus "*").
// proxy_options().workers(2).pool("max_size", "1").pool("command_timeout", "500ms")
// Worker threads of a pgmux whose test does not choose: PGMUX_IT_WORKERS, else 1. deploy/test
// runs the suite with 1 (plain step) and 2 (sanitize step).
unsigned default_workers();

struct proxy_options {
  unsigned n_workers = default_workers();
  std::map<std::string, std::string> pool_overrides;     // pool_defaults
  std::map<std::string, std::string> db_pool_overrides;  // "pool" of the "pgmux_test" database entry
  std::string extra_databases;                           // raw JSON members of "databases"
  std::string extra_top_level;                           // raw JSON members of the top level
  bool unix_socket_listen = false;
  bool reuse_port = false;
  int shared_port = 0;  // with reuse_port: the port of another instance; 0: a free one
  std::string unix_socket_dir;  // with unix_socket_listen: where, instead of the proxy's own dir

  proxy_options& workers(unsigned n) { n_workers = n; return *this; }
  // listen.reuse_port, on `port` (another pgmux's, which keeps listening) or on a free port.
  proxy_options& share_port(int port = 0) {
    reuse_port = true;
    shared_port = port;
    return *this;
  }
  // Values are written as JSON numbers when all digits, as they are when they start with '{' (an
  // object), else as strings: ("max_size", "1"), ("mode", "session"), ("adaptive", R"({"enabled": true})").
  proxy_options& pool(const std::string& key, const std::string& value) { pool_overrides[key] = value; return *this; }
  proxy_options& db_pool(const std::string& key, const std::string& value) { db_pool_overrides[key] = value; return *this; }
  // A raw JSON member added to "databases", e.g. R"("other": {"dsn": "..."})".
  proxy_options& database(const std::string& member) {
    extra_databases += (extra_databases.empty() ? "" : ",\n    ") + member;
    return *this;
  }
  // A raw JSON member added at the top level, e.g. R"("max_message_size": "1MB")".
  proxy_options& top_level(const std::string& member) {
    extra_top_level += (extra_top_level.empty() ? "" : ",\n  ") + member;
    return *this;
  }
  // Also listen on a Unix socket in the proxy's temp dir (or in `dir`).
  proxy_options& unix_socket(std::string dir = {}) {
    unix_socket_listen = true;
    unix_socket_dir = std::move(dir);
    return *this;
  }
};

// The first sanitizer report (AddressSanitizer, LeakSanitizer, UndefinedBehaviorSanitizer) in a
// log and what follows it, or "" when there is none.
std::string sanitizer_report(const std::string& log);

class proxy_instance {
 public:
  explicit proxy_instance(proxy_options opts = {});
  ~proxy_instance();
  proxy_instance(const proxy_instance&) = delete;
  proxy_instance& operator=(const proxy_instance&) = delete;

  int port() const { return port_; }
  unsigned workers() const { return opts_.n_workers; }
  pid_t pid() const { return pid_; }
  const std::string& dir() const { return dir_; }  // also the Unix socket dir when enabled
  std::string config_text() const { return config_; }
  // Replaces the config file (for SIGHUP reload tests); the running pgmux is not told.
  void rewrite_config(const std::string& text);
  // Replaces the first `from` in the config file with `to` (REQUIREd to be there); the running
  // pgmux is not told. edit_and_reload() then sends SIGHUP.
  void edit_config(const std::string& from, const std::string& to);
  void edit_and_reload(const std::string& from, const std::string& to);
  std::string conninfo(const std::string& db = "pgmux_test", const std::string& user = "pgmux_test") const;

  // Still running (not exited, not a zombie).
  bool alive();
  // Sends `sig`; pgmux exiting afterwards is then expected, not a test failure.
  void send_signal(int sig);
  // Waits up to `timeout` for pgmux to exit by itself; true if it did (status in *status).
  bool wait_exit(std::chrono::milliseconds timeout, int* status = nullptr);
  // SIGTERM, then waits up to `grace`; true if it exited by then (status in *status).
  bool terminate(std::chrono::milliseconds grace, int* status = nullptr);

  // pgmux writes its log through a thread of its own, within about 10 ms of each line: a test
  // waits for a line (logged), or, to check that a line is absent, for every line logged so far
  // (settled_log).
  std::string log() const;
  std::string log_tail(std::size_t lines = 40) const;
  // Whether the log has `text`, waiting up to `within` for it.
  bool logged(const std::string& text, std::chrono::milliseconds within = 5s) const;
  // The log once every line pgmux logged before the call is in it: a connection of the test's
  // own (`conninfo`) opens and closes, and its disconnect line, logged after them, is waited for.
  std::string settled_log(const std::string& conninfo) const;
  // Built with AddressSanitizer (its runtime is mapped into the process).
  bool sanitized() const;
  // Resident memory high-water mark (VmHWM) in kB, or -1.
  long peak_rss_kb() const;
  // User+system CPU time consumed so far, in seconds, or -1.
  double cpu_seconds() const;

 private:
  bool launch();  // false when the port was taken; fails the test on other errors
  void kill_now();

  proxy_options opts_;
  std::string dir_;
  std::string config_path_;
  std::string log_path_;
  std::string config_;
  int port_ = 0;
  pid_t pid_ = -1;
  bool reaped_ = false;
  bool stopped_by_us_ = false;
  int exit_status_ = 0;
};

// Runs the enclosing test case once with workers=1 and once with workers=2.
#define IT_FOR_EACH_WORKER_COUNT(var) \
  unsigned var = 1;                   \
  SUBCASE("workers=1") { var = 1; }   \
  SUBCASE("workers=2") { var = 2; }   \
  CAPTURE(var)

// ---------------------------------------------------------------------------------------------------
// Raw sockets and wire bytes, for input libpq would never send

namespace wire {
// A message with a type byte: type, int32 length (including itself), body.
std::string msg(char type, std::string_view body);
// A startup-family packet: int32 length, int32 code, body.
std::string startup_packet(std::uint32_t code, std::string_view body);
std::string startup_message(const std::string& user, const std::string& db);
std::string cstr(std::string_view s);  // s + NUL
std::string be32(std::uint32_t v);
// Fields of an ErrorResponse or NoticeResponse body by code: 'C' SQLSTATE, 'M' message, 'S' severity.
std::map<char, std::string> error_fields(std::string_view body);
}  // namespace wire

class raw_socket {
 public:
  explicit raw_socket(int port);  // connects to 127.0.0.1:port; REQUIREs success
  ~raw_socket();
  raw_socket(const raw_socket&) = delete;
  raw_socket& operator=(const raw_socket&) = delete;

  bool send(std::string_view bytes);  // false when the peer already closed
  void shutdown_write();
  int fd() const { return fd_; }

  struct read_outcome {
    std::string data;
    bool closed = false;  // EOF or reset seen before the deadline
  };
  // Reads until the peer closes or `timeout` passes.
  read_outcome read_until_closed(std::chrono::milliseconds timeout);
  // Reads one backend message (type + body); nullopt on EOF, error or timeout.
  std::optional<std::pair<char, std::string>> read_message(std::chrono::milliseconds timeout);
  // Sends a StartupMessage and reads up to ReadyForQuery; true when it arrived.
  bool startup(const std::string& user = "pgmux_test", const std::string& db = "pgmux_test");
  // The body of the BackendKeyData startup() received (pid and secret, 8 bytes), or "".
  const std::string& backend_key() const { return backend_key_; }

 private:
  std::string backend_key_;
  bool read_exact(std::string& out, std::size_t n, clock::time_point deadline);
  int fd_ = -1;
};

// ---------------------------------------------------------------------------------------------------
// Prometheus endpoint

// GET /metrics over a plain socket; the body (REQUIREs an HTTP answer).
std::string scrape_metrics(int port);
struct http_answer {
  int status = 0;  // 0: no HTTP answer (refused, closed, timed out after 5 s)
  std::string body;
};
// GET `path` over HTTP/1.0 on 127.0.0.1:port; does not assert.
http_answer http_get(int port, const std::string& path);
// The value of the sample `name{labels}` (labels as the exposer writes them), or -1.
double metric_value(const std::string& body, const std::string& sample);

}  // namespace it
