// Fixtures of the integration tests: PostgreSQL cluster, pgmux process, libpq and socket helpers.
#include "integration/fixtures.hpp"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#ifndef PGMUX_BINARY
#error "PGMUX_BINARY must be defined by the build"
#endif

namespace it {
namespace {

std::atomic<bool> g_test_failed{false};
std::atomic<int> g_test_cases_started{0};

// Marks the current test case failed on any failed assertion or exception, and arms a watchdog so a
// hung test case ends the process (the cluster guardian and PDEATHSIG then clean up).
char g_current_test[256] = "(none)";

void on_watchdog(int) {
  const char a[] = "\n*** integration test watchdog: test case exceeded its time limit: ";
  (void)!::write(2, a, sizeof a - 1);
  (void)!::write(2, g_current_test, std::strlen(g_current_test));
  (void)!::write(2, "\n", 1);
  ::_exit(124);
}

unsigned watchdog_seconds() {
  if (const char* v = std::getenv("PGMUX_IT_TEST_TIMEOUT"); v && *v) return static_cast<unsigned>(std::atoi(v));
  return 150;
}

void arm_watchdog(const doctest::TestCaseData& tc) {
  std::snprintf(g_current_test, sizeof g_current_test, "%s", tc.m_name);
  struct sigaction sa {};
  sa.sa_handler = on_watchdog;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGALRM, &sa, nullptr);
  ::alarm(watchdog_seconds());
}

struct failure_listener : doctest::IReporter {
  explicit failure_listener(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData& tc) override {
    ++g_test_cases_started;
    g_test_failed = false;
    arm_watchdog(tc);
  }
  void test_case_reenter(const doctest::TestCaseData& tc) override {
    g_test_failed = false;
    arm_watchdog(tc);
  }
  void test_case_end(const doctest::CurrentTestCaseStats&) override { ::alarm(0); }
  void test_case_exception(const doctest::TestCaseException&) override { g_test_failed = true; }
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData& ad) override {
    if (ad.m_failed) g_test_failed = true;
  }
  void log_message(const doctest::MessageData& md) override {
    if (md.m_severity & (doctest::assertType::is_check | doctest::assertType::is_require)) g_test_failed = true;
  }
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

REGISTER_LISTENER("pgmux_integration", 1, failure_listener);

std::mt19937_64& rng() {
  thread_local std::mt19937_64 r{std::random_device{}() ^ (static_cast<std::uint64_t>(::getpid()) << 32)};
  return r;
}

std::string random_hex(std::size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s.push_back(digits[rng()() % 16]);
  return s;
}

bool keep_files() {
  const char* v = std::getenv("PGMUX_IT_KEEP");
  return v && *v && std::string(v) != "0";
}

bool running_as_root() { return ::geteuid() == 0; }

// Runs a PostgreSQL program as `postgres` when we are root (initdb and postgres refuse root).
std::string as_postgres(const std::string& cmd) {
  if (running_as_root()) return "cd / && runuser -u postgres -- " + cmd;
  return cmd;
}

// A directory for temp dirs: $TMPDIR when short (Unix socket paths are limited to 107 bytes) and, when
// root, traversable by postgres; else /tmp.
std::string temp_base() {
  const char* t = std::getenv("TMPDIR");
  if (t && *t && std::strlen(t) < 60) {
    struct stat st {};
    if (::stat(t, &st) == 0 && S_ISDIR(st.st_mode) && (!running_as_root() || (st.st_mode & S_IXOTH)))
      return t;
  }
  return "/tmp";
}

std::string make_temp_dir(const std::string& prefix) {
  std::string templ = temp_base() + "/" + prefix + ".XXXXXX";
  if (!::mkdtemp(templ.data())) throw std::runtime_error("mkdtemp " + templ + ": " + std::strerror(errno));
  return templ;
}

void write_file(const std::string& path, const std::string& text, bool append = false) {
  std::ofstream out(path, append ? std::ios::app : std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

bool process_exists(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

// Removes clusters and proxy directories left by runs whose test process died and whose guardian did
// not clean up (for example when both were killed). Those of live processes are left alone.
void sweep_stale_dirs() {
  const std::string base = temp_base();
  DIR* d = ::opendir(base.c_str());
  if (!d) return;
  std::vector<std::string> stale;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.rfind("pgmux-it.", 0) != 0 && name.rfind("pgmux-proxy.", 0) != 0) continue;
    const std::string dir = base + "/" + name;
    std::ifstream in(dir + "/owner.pid");
    long pid = 0;
    if (!(in >> pid)) {
      struct stat st {};
      if (::stat(dir.c_str(), &st) == 0 && ::time(nullptr) - st.st_mtime > 3600) stale.push_back(dir);
      continue;
    }
    if (!process_exists(static_cast<pid_t>(pid))) stale.push_back(dir);
  }
  ::closedir(d);
  for (const auto& dir : stale) {
    struct stat st {};
    if (::stat((dir + "/data/postmaster.pid").c_str(), &st) == 0)
      run(as_postgres(pg_bindir() + "/pg_ctl -D " + shell_quote(dir + "/data") + " -m immediate -w -t 20 stop"), 30);
    run("rm -rf " + shell_quote(dir), 30);
  }
}

// The TCP sockets in LISTEN state on `port` that process `pid` holds (one per worker).
std::size_t listening_sockets(pid_t pid, int port) {
  std::set<std::string> listening;  // "socket:[inode]"
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >> inode;
      const auto colon = local.rfind(':');
      if (state != "0A" || colon == std::string::npos) continue;
      if (std::stoi(local.substr(colon + 1), nullptr, 16) == port) listening.insert("socket:[" + inode + "]");
    }
  }
  std::size_t held = 0;
  const std::string fd_dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* dir = ::opendir(fd_dir.c_str());
  if (!dir) return 0;
  while (const dirent* entry = ::readdir(dir)) {
    char target[64];
    const auto n = ::readlink((fd_dir + "/" + entry->d_name).c_str(), target, sizeof target - 1);
    if (n > 0 && listening.count(std::string(target, static_cast<std::size_t>(n)))) ++held;
  }
  ::closedir(dir);
  return held;
}

// Whether process `pid` has handlers of its own for SIGTERM and SIGHUP (SigCgt in its status):
// pgmux installs them last in its start-up, after its listeners, the metrics endpoint and the
// config watch, so from then on it is ready and a reload or stop signal reaches pgmux, not the
// default action.
bool catches_stop_and_reload(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("SigCgt:")) continue;
    const auto caught = std::stoull(line.substr(7), nullptr, 16);
    const auto bit = [](int signal) { return 1ull << (signal - 1); };
    return (caught & bit(SIGTERM)) && (caught & bit(SIGHUP));
  }
  return false;
}

// Numbers, true, false and objects ("{...}") as they are; anything else as a string.
std::string json_value(const std::string& v) {
  const bool digits = !v.empty() && v.find_first_not_of("0123456789") == std::string::npos;
  const bool raw = digits || v == "true" || v == "false" || (!v.empty() && v.front() == '{');
  return raw ? v : json_string(v);
}

std::string json_members(const std::map<std::string, std::string>& m) {
  std::string out;
  for (const auto& [k, v] : m) {
    if (!out.empty()) out += ", ";
    out += json_string(k) + ": " + json_value(v);
  }
  return out;
}

}  // namespace

std::string pg_bindir() {
  if (const char* v = std::getenv("PGMUX_PG_BINDIR"); v && *v) return v;
  return "/usr/lib/postgresql/15/bin";
}

unsigned default_workers() {
  static const unsigned workers = [] {
    const char* v = std::getenv("PGMUX_IT_WORKERS");
    const int n = v && *v ? std::atoi(v) : 1;
    return n >= 1 && n <= 64 ? static_cast<unsigned>(n) : 1u;
  }();
  return workers;
}

bool current_test_failed() { return g_test_failed; }
int test_cases_started() { return g_test_cases_started; }

std::string describe_status(int st) {
  if (WIFEXITED(st)) return "exit code " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return std::string("killed by signal ") + ::strsignal(WTERMSIG(st));
  return "status " + std::to_string(st);
}


// ---------------------------------------------------------------------------------------------------
// Utilities

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

std::string shell_quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out.push_back(c);
  }
  return out + "'";
}

run_result run(const std::string& cmd, int timeout_seconds) {
  const std::string full =
      "timeout -k 5 " + std::to_string(timeout_seconds) + " sh -c " + shell_quote(cmd) + " </dev/null 2>&1";
  run_result r;
  FILE* p = ::popen(full.c_str(), "r");
  if (!p) {
    r.output = std::string("popen failed: ") + std::strerror(errno);
    return r;
  }
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int st = ::pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  return r;
}

int free_port() {
  for (int attempt = 0; attempt < 500; ++attempt) {
    const int port = 20000 + static_cast<int>(rng()() % 12000);
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (ok) return port;
  }
  throw std::runtime_error("no free port found in [20000, 32000)");
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout, std::chrono::milliseconds step) {
  const auto deadline = clock::now() + timeout;
  while (true) {
    if (pred()) return true;
    if (clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(step);
  }
}

double seconds_since(clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); }

std::string tail_lines(const std::string& text, std::size_t lines) {
  std::size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  for (std::size_t i = 0; i < lines; ++i) {
    const auto nl = text.rfind('\n', pos == 0 ? 0 : pos - 1);
    if (nl == std::string::npos || pos == 0) return text;
    pos = nl;
  }
  return text.substr(pos + 1);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// ---------------------------------------------------------------------------------------------------
// pg_instance

namespace {

// A directory for a cluster, owned by this process (sweep_stale_dirs removes it once the
// process is gone) and by the user PostgreSQL runs as.
std::string make_cluster_dir() {
  const std::string dir = make_temp_dir("pgmux-it");
  write_file(dir + "/owner.pid", std::to_string(::getpid()) + "\n");
  if (running_as_root()) {
    const passwd* pw = ::getpwnam("postgres");
    if (!pw) throw std::runtime_error("running as root but there is no `postgres` user to run PostgreSQL as");
    if (::chown(dir.c_str(), pw->pw_uid, pw->pw_gid) != 0)
      throw std::runtime_error("chown " + dir + ": " + std::strerror(errno));
  }
  ::chmod(dir.c_str(), 0755);
  return dir;
}

// The output of initdb, made once per PostgreSQL build and shared by every test process: each
// cluster is a copy of it. A copy takes about a tenth of initdb's second, and the suite starts a
// cluster per test case, twice per run. Built beside the clusters and renamed into place, so a
// process sees either no template or a complete one; a build cut short is swept like a cluster.
std::string cluster_template() {
  const std::string bin = pg_bindir();
  struct stat postgres_binary {};
  if (::stat((bin + "/postgres").c_str(), &postgres_binary) != 0)
    throw std::runtime_error("no PostgreSQL server at " + bin + "/postgres");
  // A new PostgreSQL build (or another bindir) gets a template of its own.
  const std::string name = "pgmux-it-template-v1-" + std::to_string(std::hash<std::string>{}(bin)) + "-" +
                           std::to_string(static_cast<long long>(postgres_binary.st_mtime));
  const std::string path = temp_base() + "/" + name;
  struct stat st {};
  if (::stat((path + "/PG_VERSION").c_str(), &st) == 0) return path;

  const std::string build = make_cluster_dir();
  const auto r = run(as_postgres(bin + "/initdb -D " + shell_quote(build + "/data") +
                                 " -U postgres -A trust -E UTF8 --locale=C --no-sync --no-instructions"),
                     120);
  if (r.code != 0) {
    run("rm -rf " + shell_quote(build), 30);
    throw std::runtime_error("initdb failed (" + std::to_string(r.code) + "):\n" + r.output);
  }
  // Another process may have won the race: then its template stays and ours goes.
  ::rename((build + "/data").c_str(), path.c_str());
  run("rm -rf " + shell_quote(build), 30);
  if (::stat((path + "/PG_VERSION").c_str(), &st) != 0) throw std::runtime_error("cluster template missing: " + path);
  return path;
}

}  // namespace

pg_instance& pg_instance::get() {
  static pg_instance instance;
  return instance;
}

pg_instance::pg_instance() : owner_(::getpid()) {
  try {
    start();
  } catch (...) {
    stop();
    throw;
  }
}

pg_instance::~pg_instance() { stop(); }

void pg_instance::start() {
  sweep_stale_dirs();
  dir_ = make_cluster_dir();
  // From here on the guardian removes the directory and stops the cluster whatever happens to us.
  start_guardian();
  if (keep_files()) std::fprintf(stderr, "PGMUX_IT_KEEP: cluster kept in %s\n", dir_.c_str());

  const std::string data = dir_ + "/data";
  const std::string bin = pg_bindir();
  auto r = run(as_postgres("cp -a " + shell_quote(cluster_template()) + " " + shell_quote(data)), 120);
  if (r.code != 0) throw std::runtime_error("copying the cluster template failed (" + std::to_string(r.code) + "):\n" + r.output);

  write_file(data + "/postgresql.conf",
             "\n# pgmux integration tests\n"
             "listen_addresses = '127.0.0.1'\n"
             "unix_socket_directories = '" + dir_ + "'\n"
             "max_connections = 200\n"
             "fsync = off\n"
             "synchronous_commit = off\n"
             "full_page_writes = off\n"
             "shared_buffers = 32MB\n"
             "password_encryption = 'scram-sha-256'\n"
             "log_min_messages = warning\n"
             "wal_level = logical\n"  // logical replication through pgmux
             "log_line_prefix = '%m [%p] %u@%d '\n",
             /*append=*/true);
  // Trust over the Unix socket for admin checks; SCRAM on TCP, which is how pgmux reaches the server.
  write_file(data + "/pg_hba.conf",
             "local all all trust\n"
             "host all all 127.0.0.1/32 scram-sha-256\n");

  bool started = false;
  std::string last_output;
  for (int attempt = 0; attempt < 5 && !started; ++attempt) {
    port_ = free_port();
    r = run(as_postgres(bin + "/pg_ctl -D " + shell_quote(data) + " -l " + shell_quote(dir_ + "/postgres.log") +
                        " -w -t 30 -o " + shell_quote("-p " + std::to_string(port_)) + " start"),
            60);
    started = r.code == 0;
    last_output = r.output;
    if (!started && log_tail(20).find("could not bind") == std::string::npos &&
        log_tail(20).find("could not create") == std::string::npos)
      break;  // not a port race: do not retry
  }
  if (!started) throw std::runtime_error("pg_ctl start failed:\n" + last_output + "\nserver log:\n" + log_tail(30));

  password_ = "it-" + random_hex(24);
  pg_conn admin(admin_conninfo());
  if (!admin.ok()) throw std::runtime_error("cannot connect as postgres: " + admin.error());
  for (const std::string& sql : {"CREATE ROLE pgmux_test LOGIN PASSWORD '" + password_ + "'",
                                std::string("CREATE DATABASE pgmux_test OWNER pgmux_test")}) {
    auto res = admin.exec(sql);
    if (!res.ok()) throw std::runtime_error(sql + ": " + res.error());
  }
}

// The guardian is a detached process (double fork, own session, so a ctest timeout that kills our
// process tree does not reach it) that waits for EOF on a pipe whose only write end we hold, then stops
// the cluster and removes its directory. EOF comes when we close the pipe or die in any way.
void pg_instance::start_guardian() {
  int life[2], done[2];
  if (::pipe2(life, O_CLOEXEC) != 0 || ::pipe2(done, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
  std::string script = as_postgres(pg_bindir() + "/pg_ctl -D " + shell_quote(dir_ + "/data") +
                                   " -m immediate -w -t 20 stop") + " >/dev/null 2>&1";
  if (!keep_files()) script += "; rm -rf " + shell_quote(dir_);
  const char* argv[] = {"sh", "-c", script.c_str(), nullptr};

  const pid_t child = ::fork();
  if (child < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (child == 0) {
    // Only async-signal-safe calls from here to exec.
    ::setsid();
    if (::fork() != 0) ::_exit(0);
    ::signal(SIGINT, SIG_IGN);
    ::signal(SIGTERM, SIG_IGN);
    ::signal(SIGHUP, SIG_IGN);
    ::signal(SIGPIPE, SIG_DFL);
    ::signal(SIGALRM, SIG_DFL);
    const int life_r = ::fcntl(life[0], F_DUPFD, 100);
    const int done_w = ::fcntl(done[1], F_DUPFD, 101);
    const int null_fd = ::open("/dev/null", O_RDWR);
    ::dup2(null_fd, 0);
    ::dup2(null_fd, 1);
    ::dup2(null_fd, 2);
    ::dup2(life_r, 3);
    ::dup2(done_w, 4);  // inherited by the script: EOF for the owner once the cleanup has finished
    ::close_range(5, ~0U, 0);
    char b;
    while (true) {
      const ssize_t n = ::read(3, &b, 1);
      if (n == 0 || (n < 0 && errno != EINTR)) break;
    }
    ::close(3);
    ::execv("/bin/sh", const_cast<char* const*>(argv));
    ::_exit(127);
  }
  ::close(life[0]);
  ::close(done[1]);
  int st = 0;
  while (::waitpid(child, &st, 0) < 0 && errno == EINTR) {
  }
  life_fd_ = life[1];
  done_fd_ = done[0];
}

void pg_instance::stop() {
  if (::getpid() != owner_) return;  // a forked child must not stop its parent's cluster
  if (life_fd_ >= 0) {
    ::close(life_fd_);
    life_fd_ = -1;
  }
  if (done_fd_ >= 0) {
    const auto deadline = clock::now() + 40s;
    char buf[64];
    while (clock::now() < deadline) {
      pollfd p{done_fd_, POLLIN, 0};
      const int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count());
      if (::poll(&p, 1, std::max(ms, 1)) <= 0) continue;
      const ssize_t n = ::read(done_fd_, buf, sizeof buf);
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) break;
    }
    ::close(done_fd_);
    done_fd_ = -1;
  }
}

std::string pg_instance::pg_ctl_command(const std::string& args) const {
  return as_postgres(pg_bindir() + "/pg_ctl -D " + shell_quote(dir_ + "/data") + " " + args);
}

std::string pg_instance::admin_conninfo() const {
  return "host=" + dir_ + " port=" + std::to_string(port_) + " user=postgres dbname=postgres connect_timeout=10";
}

std::string pg_instance::direct_conninfo() const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=pgmux_test password=" + password_ +
         " dbname=pgmux_test connect_timeout=10";
}

std::string pg_instance::server_dsn(std::string_view dbname) const {
  std::string s = "host=127.0.0.1 port=" + std::to_string(port_) + " user=pgmux_test password=" + password_;
  if (!dbname.empty()) s += " dbname=" + std::string(dbname);
  return s;
}

std::string pg_instance::log_tail(std::size_t lines) const { return tail_lines(read_file(dir_ + "/postgres.log"), lines); }

namespace {

// `sql` through a fresh superuser connection over the Unix socket.
void admin_exec(const pg_instance& pg, const std::string& sql) {
  pg_conn admin(pg.admin_conninfo());
  if (!admin.ok()) throw std::runtime_error("admin connection: " + admin.error());
  auto r = admin.exec(sql);
  if (!r.ok()) throw std::runtime_error(sql + ": " + r.error());
}

// Whether a new backend reports ssl = on.
bool ssl_on(const pg_instance& pg) {
  pg_conn admin(pg.admin_conninfo());
  return admin.ok() && admin.exec("show ssl").value() == "on";
}

}  // namespace

void pg_instance::enable_ssl(const std::string& cert_file, const std::string& key_file, const std::string& ca_file) {
  const std::string data = dir_ + "/data";
  // PostgreSQL wants its key private to the server's user.
  std::string copy = "cp " + shell_quote(cert_file) + " " + shell_quote(data + "/it-server.crt") + " && cp " +
                     shell_quote(key_file) + " " + shell_quote(data + "/it-server.key");
  if (!ca_file.empty()) copy += " && cp " + shell_quote(ca_file) + " " + shell_quote(data + "/it-ca.crt");
  copy += " && chmod 600 " + shell_quote(data + "/it-server.key");
  if (running_as_root()) copy += " && chown postgres " + shell_quote(data) + "/it-*";
  const auto r = run(copy, 30);
  if (r.code != 0) throw std::runtime_error("copying the server certificate: " + r.output);
  admin_exec(*this, "alter system set ssl_cert_file = 'it-server.crt'");
  admin_exec(*this, "alter system set ssl_key_file = 'it-server.key'");
  admin_exec(*this, "alter system set ssl_ca_file = '" + std::string(ca_file.empty() ? "" : "it-ca.crt") + "'");
  admin_exec(*this, "alter system set ssl = on");
  admin_exec(*this, "select pg_reload_conf()");
  if (!wait_until([&] { return ssl_on(*this); }, 10s))
    throw std::runtime_error("ssl did not turn on; server log:\n" + log_tail(20));
}

void pg_instance::disable_ssl() {
  try {
    for (const char* setting : {"ssl", "ssl_cert_file", "ssl_key_file", "ssl_ca_file"})
      admin_exec(*this, std::string("alter system reset ") + setting);
    admin_exec(*this, "select pg_reload_conf()");
    wait_until([&] { return !ssl_on(*this); }, 10s);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "disable_ssl: %s\n", e.what());
  }
}

// ---------------------------------------------------------------------------------------------------
// libpq helpers

std::string pg_result::sqlstate() const {
  if (!r_) return "";
  const char* s = PQresultErrorField(r_.get(), PG_DIAG_SQLSTATE);
  return s ? s : "";
}

std::string pg_result::error() const {
  if (!r_) return "no result";
  return PQresultErrorMessage(r_.get());
}

std::string pg_result::value(int row, int col) const {
  if (!r_ || row >= PQntuples(r_.get()) || col >= PQnfields(r_.get())) return "";
  return PQgetvalue(r_.get(), row, col);
}

namespace {
void store_notice(void* arg, const PGresult* r) {
  auto* out = static_cast<std::vector<std::string>*>(arg);
  auto field = [&](int code) {
    const char* v = PQresultErrorField(r, code);
    return std::string(v ? v : "");
  };
  out->push_back(field(PG_DIAG_SEVERITY_NONLOCALIZED) + "|" + field(PG_DIAG_SQLSTATE) + "|" +
                 field(PG_DIAG_MESSAGE_PRIMARY));
}
}  // namespace

pg_conn::pg_conn(const std::string& conninfo) : c_(PQconnectdb(conninfo.c_str()), &PQfinish) {
  // Notices are kept for the test to inspect, not printed on stderr.
  if (c_) PQsetNoticeReceiver(c_.get(), &store_notice, notices_.get());
}

pg_result pg_conn::exec_params(const std::string& sql, const std::vector<std::string>& params) const {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  return pg_result(PQexecParams(c_.get(), sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                                nullptr, nullptr, 0));
}

void pg_conn::abort_socket() {
  if (!c_) return;
  const int fd = PQsocket(c_.get());
  if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
  c_.reset();
}

void pg_conn::collect_notices() { notices_->clear(); }

pg_conn connect(const std::string& conninfo) {
  pg_conn c(conninfo);
  REQUIRE_MESSAGE(c.ok(), "connect " << conninfo << ": " << c.error());
  return c;
}

pg_conn setup_connection() {
  auto c = connect("host=" + pg().socket_dir() + " port=" + std::to_string(pg().port()) +
                   " user=postgres dbname=pgmux_test connect_timeout=10");
  exec_ok(c, "set role pgmux_test");
  return c;
}

std::string scalar(const pg_conn& c, const std::string& sql) {
  auto r = c.exec(sql);
  if (r.status() != PGRES_TUPLES_OK || r.rows() == 0)
    throw std::runtime_error("`" + sql + "` failed: " + (r.status() == PGRES_TUPLES_OK ? "no rows" : r.error()) +
                             (c.ok() ? "" : " (connection: " + c.error() + ")"));
  return r.value();
}

void exec_ok(const pg_conn& c, const std::string& sql) {
  auto r = c.exec(sql);
  CHECK_MESSAGE(r.ok(), "`" << sql << "`: " << r.error());
}

int server_connections(const pg_conn& admin, const std::string& db, const std::string& user) {
  auto r = admin.exec_params(
      "select count(*) from pg_stat_activity where datname = $1 and usename = $2"
      " and backend_type = 'client backend' and pid <> pg_backend_pid()",
      {db, user});
  if (r.status() != PGRES_TUPLES_OK) throw std::runtime_error("pg_stat_activity: " + r.error());
  return std::stoi(r.value());
}

int server_connections(const std::string& db, const std::string& user) {
  pg_conn admin(pg().admin_conninfo());
  if (!admin.ok()) throw std::runtime_error("admin connection: " + admin.error());
  return server_connections(admin, db, user);
}

pg_result get_result(const pg_conn& c, std::chrono::milliseconds timeout, bool* timed_out) {
  if (timed_out) *timed_out = false;
  const auto deadline = clock::now() + timeout;
  while (true) {
    // Read from the socket only when libpq needs more: PQconsumeInput compacts its whole input
    // buffer on every call, which is quadratic when rows are taken one at a time.
    if (!PQisBusy(c.get())) return pg_result(PQgetResult(c.get()));
    if (!PQconsumeInput(c.get())) return pg_result(PQgetResult(c.get()));
    if (!PQisBusy(c.get())) return pg_result(PQgetResult(c.get()));
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0) {
      if (timed_out) *timed_out = true;
      return pg_result();
    }
    pollfd p{PQsocket(c.get()), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left));
  }
}

struct connection_sampler::state {
  std::atomic<bool> stop{false};
  std::atomic<int> max{0};
  std::atomic<int> samples{0};
  std::thread thread;
};

connection_sampler::connection_sampler(std::string db, std::string user) : s_(std::make_unique<state>()) {
  auto admin = std::make_shared<pg_conn>(pg().admin_conninfo());
  REQUIRE_MESSAGE(admin->ok(), admin->error());
  s_->thread = std::thread([s = s_.get(), admin, db, user] {
    while (!s->stop) {
      try {
        const int n = server_connections(*admin, db, user);
        int cur = s->max.load();
        while (n > cur && !s->max.compare_exchange_weak(cur, n)) {
        }
        ++s->samples;
      } catch (...) {
        return;
      }
      std::this_thread::sleep_for(20ms);
    }
  });
}

connection_sampler::~connection_sampler() { stop(); }

void connection_sampler::stop() {
  if (!s_->thread.joinable()) return;
  s_->stop = true;
  s_->thread.join();
}

int connection_sampler::max_seen() const { return s_->max; }
int connection_sampler::samples() const { return s_->samples; }

// ---------------------------------------------------------------------------------------------------
// proxy_instance

std::string sanitizer_report(const std::string& log) {
  static const char* const markers[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error: ",
                                        "WARNING: AddressSanitizer"};
  std::size_t first = std::string::npos;
  for (const char* marker : markers) first = std::min(first, log.find(marker));
  if (first == std::string::npos) return {};
  const std::size_t line_start = log.rfind('\n', first);
  return log.substr(line_start == std::string::npos ? 0 : line_start + 1, 8000);
}

proxy_instance::proxy_instance(proxy_options opts) : opts_(std::move(opts)) {
  pg();  // the cluster first: the config names its port
  dir_ = make_temp_dir("pgmux-proxy");
  write_file(dir_ + "/owner.pid", std::to_string(::getpid()) + "\n");
  config_path_ = dir_ + "/pgmux.json";
  log_path_ = dir_ + "/pgmux.log";
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = opts_.shared_port ? opts_.shared_port : free_port();
    std::map<std::string, std::string> pool = {{"mode", "transaction"},     {"min_size", "0"},
                                               {"max_size", "10"},          {"query_wait_timeout", "10s"},
                                               {"command_timeout", "30s"},  {"connect_timeout", "5s"}};
    for (const auto& [k, v] : opts_.pool_overrides) pool[k] = v;
    std::string listen = "{\"host\": \"127.0.0.1\", \"port\": " + std::to_string(port_);
    if (opts_.unix_socket_listen)
      listen += ", \"unix_socket_dir\": " + json_string(opts_.unix_socket_dir.empty() ? dir_ : opts_.unix_socket_dir);
    if (opts_.reuse_port) listen += ", \"reuse_port\": true";
    listen += "}";
    std::string dbs = "    \"pgmux_test\": {\"dsn\": " + json_string(pg().server_dsn("pgmux_test"));
    if (!opts_.db_pool_overrides.empty()) dbs += ", \"pool\": {" + json_members(opts_.db_pool_overrides) + "}";
    dbs += "},\n    \"*\": {\"dsn\": " + json_string(pg().server_dsn()) + "}";
    if (!opts_.extra_databases.empty()) dbs += ",\n    " + opts_.extra_databases;
    config_ = "// written by the pgmux integration tests\n{\n"
              "  \"listen\": " + listen + ",\n"
              "  \"workers\": " + std::to_string(opts_.n_workers) + ",\n"
              "  \"pool_defaults\": {" + json_members(pool) + "},\n"
              "  \"databases\": {\n" + dbs + "\n  }" +
              (opts_.extra_top_level.empty() ? "" : ",\n  " + opts_.extra_top_level) + "\n}\n";
    write_file(config_path_, config_);
    if (launch()) return;
  }
  FAIL("pgmux could not listen on a free port after 5 attempts; log:\n" << log_tail());
}

bool proxy_instance::launch() {
  // PGMUX_IT_BINARY runs the suite against another build (sanitizers, an installed binary).
  const char* env_bin = std::getenv("PGMUX_IT_BINARY");
  const std::string bin = env_bin && *env_bin ? env_bin : PGMUX_BINARY;
  const char* argv[] = {"pgmux", "--config", config_path_.c_str(), nullptr};
  const int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  REQUIRE_MESSAGE(log_fd >= 0, "open " << log_path_ << ": " << std::strerror(errno));
  const pid_t parent = ::getpid();
  reaped_ = false;
  stopped_by_us_ = false;
  pid_ = ::fork();
  if (pid_ < 0) {
    ::close(log_fd);
    FAIL("fork: " << std::strerror(errno));
  }
  if (pid_ == 0) {
    // Only async-signal-safe calls from here to exec. Dies with the test process.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    ::signal(SIGPIPE, SIG_DFL);
    ::signal(SIGALRM, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(bin.c_str(), const_cast<char* const*>(argv));
    const char msg[] = "integration test: execv of PGMUX_BINARY failed\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  ::close(log_fd);

  const std::string socket_path =
      (opts_.unix_socket_dir.empty() ? dir_ : opts_.unix_socket_dir) + "/.s.PGSQL." + std::to_string(port_);
  const bool ready = wait_until(
      [&] {
        if (!alive()) return true;
        // Ready once its start-up is through (the signal handlers come last) and it listens on
        // the port, whatever it logs. Not a probe connection: pgmux would count the probe as a
        // client (logging in, then leaving) while the test's first clients arrive, and another
        // instance may answer on a shared port.
        if (!catches_stop_and_reload(pid_) || listening_sockets(pid_, port_) == 0) return false;
        struct stat st {};
        return !opts_.unix_socket_listen || ::stat(socket_path.c_str(), &st) == 0;
      },
      10s, 20ms);
  if (!alive()) {
    const std::string log = read_file(log_path_);
    if (log.find("in use") != std::string::npos) return false;  // lost a race for the port: try another
    FAIL("pgmux exited at start-up (" << describe_status(exit_status_) << ")\nconfig:\n"
                                      << config_ << "log:\n" << tail_lines(log, 40));
  }
  if (!ready) {
    kill_now();
    FAIL("pgmux did not accept connections on 127.0.0.1:" << port_ << " within 10 s\nlog:\n" << log_tail());
  }
  return true;
}

proxy_instance::~proxy_instance() {
  const bool was_alive = alive();
  if (!was_alive && !stopped_by_us_ && pid_ > 0 && std::uncaught_exceptions() == 0) {
    FAIL_CHECK("pgmux exited during the test (" << describe_status(exit_status_) << "); log tail:\n"
                                                    << log_tail());
  }
  if (was_alive && !terminate(5s)) {
    std::fprintf(stderr, "pgmux (pid %d) still running 5 s after SIGTERM: killing it\n", static_cast<int>(pid_));
    kill_now();
  }
  // A sanitized pgmux prints its reports (leaks at exit included) to its log and may go on
  // running: any report fails the test that drove it.
  if (const std::string report = sanitizer_report(log()); !report.empty()) {
    FAIL_CHECK("pgmux printed a sanitizer report:\n" << report);
  }
  if (current_test_failed() || std::uncaught_exceptions() > 0) {
    std::fprintf(stderr, "\n----- pgmux log tail (%s) -----\n%s\n----- config -----\n%s-----\n", log_path_.c_str(),
                 log_tail(60).c_str(), config_.c_str());
  }
  if (!keep_files() && !dir_.empty()) run("rm -rf " + shell_quote(dir_), 30);
}

std::string proxy_instance::conninfo(const std::string& db, const std::string& user) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + db + " user=" + user + " connect_timeout=10";
}

bool proxy_instance::alive() {
  if (pid_ <= 0 || reaped_) return false;
  int st = 0;
  const pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    exit_status_ = st;
    return false;
  }
  return true;
}

void proxy_instance::send_signal(int sig) {
  stopped_by_us_ = true;
  if (alive()) ::kill(pid_, sig);
}

bool proxy_instance::wait_exit(std::chrono::milliseconds timeout, int* status) {
  wait_until([&] { return !alive(); }, timeout, 10ms);
  if (status) *status = exit_status_;
  return !alive();
}

bool proxy_instance::terminate(std::chrono::milliseconds grace, int* status) {
  stopped_by_us_ = true;
  if (alive()) {
    ::kill(pid_, SIGTERM);
    wait_until([&] { return !alive(); }, grace, 10ms);
  }
  if (status) *status = exit_status_;
  return !alive();
}

void proxy_instance::kill_now() {
  if (!alive()) return;
  stopped_by_us_ = true;
  ::kill(pid_, SIGKILL);
  int st = 0;
  while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  exit_status_ = st;
}

std::string proxy_instance::log() const { return read_file(log_path_); }

std::string metrics_member(int port) { return "\"metrics\": {\"listen\": \"127.0.0.1:" + std::to_string(port) + "\"}"; }

std::string replace_first(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, "not in the text: " << from << "\n" << text);
  return text.replace(at, from.size(), to);
}

void proxy_instance::edit_config(const std::string& from, const std::string& to) {
  rewrite_config(replace_first(config_, from, to));
}

void proxy_instance::edit_and_reload(const std::string& from, const std::string& to) {
  edit_config(from, to);
  send_signal(SIGHUP);
}

void proxy_instance::rewrite_config(const std::string& text) {
  // Written aside and renamed, so pgmux never reads a half-written file.
  const std::string tmp = config_path_ + ".new";
  write_file(tmp, text);
  REQUIRE(std::rename(tmp.c_str(), config_path_.c_str()) == 0);
  config_ = text;
}
std::string proxy_instance::log_tail(std::size_t lines) const { return tail_lines(log(), lines); }

bool proxy_instance::logged(const std::string& text, std::chrono::milliseconds within) const {
  return wait_until([&] { return log().find(text) != std::string::npos; }, within);
}

std::string proxy_instance::settled_log(const std::string& conninfo) const {
  auto marker = connect(conninfo);
  sockaddr_storage local{};
  socklen_t length = sizeof local;
  REQUIRE(::getsockname(PQsocket(marker.get()), reinterpret_cast<sockaddr*>(&local), &length) == 0);
  REQUIRE(local.ss_family == AF_INET);
  const auto port = ntohs(reinterpret_cast<const sockaddr_in&>(local).sin_port);
  marker.reset();  // Terminate: pgmux logs the disconnect
  const std::string label = ":" + std::to_string(port) + " ";
  std::string text;
  const bool seen = wait_until([&] {
    text = log();
    for (auto at = text.find(label); at != std::string::npos; at = text.find(label, at + 1)) {
      const auto end = text.find('\n', at);
      if (text.substr(at, end == std::string::npos ? std::string::npos : end - at).find(" disconnected") != std::string::npos)
        return true;
    }
    return false;
  }, 10s);
  REQUIRE_MESSAGE(seen, "pgmux did not log the marker connection's disconnect");
  return text;
}

bool proxy_instance::sanitized() const {
  return read_file("/proc/" + std::to_string(pid_) + "/maps").find("libasan") != std::string::npos;
}

long proxy_instance::peak_rss_kb() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

double proxy_instance::cpu_seconds() const {
  const std::string stat = read_file("/proc/" + std::to_string(pid_) + "/stat");
  const auto close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) return -1;
  std::istringstream in(stat.substr(close_paren + 2));
  std::string field;
  unsigned long utime = 0, stime = 0;
  // Fields after the command: state(3) ... utime(14) stime(15).
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoul(field);
    if (i == 15) stime = std::stoul(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// ---------------------------------------------------------------------------------------------------
// wire and raw_socket

namespace wire {
std::string be32(std::uint32_t v) {
  std::string s(4, '\0');
  s[0] = static_cast<char>(v >> 24);
  s[1] = static_cast<char>(v >> 16);
  s[2] = static_cast<char>(v >> 8);
  s[3] = static_cast<char>(v);
  return s;
}
std::string cstr(std::string_view s) { return std::string(s) + '\0'; }
std::map<char, std::string> error_fields(std::string_view body) {
  std::map<char, std::string> out;
  while (!body.empty() && body[0] != '\0') {
    const char code = body[0];
    const auto end = body.find('\0', 1);
    if (end == std::string_view::npos) break;
    out[code] = std::string(body.substr(1, end - 1));
    body.remove_prefix(end + 1);
  }
  return out;
}
std::string msg(char type, std::string_view body) {
  return std::string(1, type) + be32(static_cast<std::uint32_t>(body.size() + 4)) + std::string(body);
}
std::string startup_packet(std::uint32_t code, std::string_view body) {
  return be32(static_cast<std::uint32_t>(body.size() + 8)) + be32(code) + std::string(body);
}
std::string startup_message(const std::string& user, const std::string& db) {
  return startup_packet(196608, cstr("user") + cstr(user) + cstr("database") + cstr(db) + std::string(1, '\0'));
}
}  // namespace wire

raw_socket::raw_socket(int port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd_ >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE_MESSAGE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0,
                  "connect 127.0.0.1:" << port << ": " << std::strerror(errno));
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

raw_socket::~raw_socket() {
  if (fd_ >= 0) ::close(fd_);
}

bool raw_socket::send(std::string_view bytes) {
  const auto deadline = clock::now() + 5s;
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      if (clock::now() >= deadline) return false;
      pollfd p{fd_, POLLOUT, 0};
      ::poll(&p, 1, 50);
      continue;
    }
    return false;
  }
  return true;
}

void raw_socket::shutdown_write() { ::shutdown(fd_, SHUT_WR); }

raw_socket::read_outcome raw_socket::read_until_closed(std::chrono::milliseconds timeout) {
  read_outcome out;
  const auto deadline = clock::now() + timeout;
  char buf[8192];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0) return out;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      out.data.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      out.closed = true;
      return out;
    }
  }
}

bool raw_socket::read_exact(std::string& out, std::size_t n, clock::time_point deadline) {
  out.clear();
  char buf[8192];
  while (out.size() < n) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    const ssize_t r = ::recv(fd_, buf, std::min(sizeof buf, n - out.size()), MSG_DONTWAIT);
    if (r > 0) out.append(buf, static_cast<std::size_t>(r));
    else if (r == 0 || (errno != EAGAIN && errno != EINTR)) return false;
  }
  return true;
}

std::optional<std::pair<char, std::string>> raw_socket::read_message(std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  std::string header, body;
  if (!read_exact(header, 5, deadline)) return std::nullopt;
  const auto* h = reinterpret_cast<const unsigned char*>(header.data());
  const std::uint32_t len = (std::uint32_t{h[1]} << 24) | (std::uint32_t{h[2]} << 16) | (std::uint32_t{h[3]} << 8) | h[4];
  if (len < 4 || len > (1u << 28)) return std::nullopt;
  if (!read_exact(body, len - 4, deadline)) return std::nullopt;
  return std::make_pair(header[0], body);
}

bool raw_socket::startup(const std::string& user, const std::string& db) {
  if (!send(wire::startup_message(user, db))) return false;
  const auto deadline = clock::now() + 10s;
  while (clock::now() < deadline) {
    auto m = read_message(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()));
    if (!m) return false;
    if (m->first == 'E') return false;
    if (m->first == 'R' && m->second.size() >= 4 && m->second.substr(0, 4) != wire::be32(0)) return false;
    if (m->first == 'K' && m->second.size() == 8) backend_key_ = m->second;
    if (m->first == 'Z') return true;
  }
  return false;
}

// GET /metrics with a plain socket; returns the body ("" on failure).
http_answer http_get(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size())) {
      char buf[8192];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) response.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  http_answer a;
  if (response.rfind("HTTP/1.", 0) != 0 || response.size() < 12) return a;
  a.status = std::atoi(response.substr(9, 3).c_str());
  const auto body = response.find("\r\n\r\n");
  if (body != std::string::npos) a.body = response.substr(body + 4);
  return a;
}

std::string scrape_metrics(int port) {
  const auto a = http_get(port, "/metrics");
  REQUIRE_MESSAGE(a.status != 0, "no HTTP response from 127.0.0.1:" << port);
  return a.body;
}

// The value of the sample `name{labels}` (labels as written by the exposer), or -1.
double metric_value(const std::string& body, const std::string& sample) {
  std::size_t at = 0;
  while ((at = body.find(sample, at)) != std::string::npos) {
    const bool line_start = at == 0 || body[at - 1] == '\n';
    const auto after = at + sample.size();
    if (line_start && after < body.size() && body[after] == ' ') return std::stod(body.substr(after + 1));
    at = after;
  }
  return -1;
}


}  // namespace it
