// Logger: a timestamp, the level and the message, as text or as one JSON object per line.
//
// Lines are written by a thread of the logger's own, not by the thread that logs: a worker
// only formats its line and appends it to a bounded buffer. The writer gathers what arrived
// within batch_delay into one write(2) (a login and a disconnect line per client cost no
// system call of the worker's), and a stalled stderr (a full pipe to a slow log collector)
// fills the buffer, whose excess is dropped and counted, instead of stopping the relay.
// Warnings and errors are written without the batching delay.
#include "pgmux/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "pgmux/config/config.hpp"

namespace pgmux::log {
namespace {

std::atomic<level> min_level{level::info};
std::atomic<bool> debug_forced{false};
std::atomic<bool> json_lines{false};
std::atomic<bool> log_connections{true};
std::atomic<std::int64_t> slow_query{0};

const char* name(level l, bool lower) {
  switch (l) {
    case level::debug: return lower ? "debug" : "DEBUG";
    case level::info: return lower ? "info" : "INFO";
    case level::warn: return lower ? "warn" : "WARN";
    case level::error: return lower ? "error" : "ERROR";
  }
  return "?";
}

// A JSON string body: quotes, backslashes and control characters escaped.
void append_json_escaped(std::string& out, std::string_view text) {
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
}

// "2026-12-07T05:27:51.161Z" for now. The part up to the second is formatted once a second
// per thread; lines within it only write their milliseconds.
std::string_view timestamp() {
  thread_local std::time_t formatted_second = -1;
  thread_local char stamp[96] = {};  // room for any int the format could print (-Wformat-truncation)
  thread_local std::size_t second_length = 0;
  const auto now = std::chrono::system_clock::now();
  const auto t = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  if (t != formatted_second) {
    std::tm tm{};
    gmtime_r(&t, &tm);
    const int n = std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900, tm.tm_mon + 1,
                                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    second_length = n > 0 ? static_cast<std::size_t>(n) : 0;
    formatted_second = t;
  }
  char* p = stamp + second_length;
  p[0] = static_cast<char>('0' + ms / 100);
  p[1] = static_cast<char>('0' + ms / 10 % 10);
  p[2] = static_cast<char>('0' + ms % 10);
  p[3] = 'Z';
  return {stamp, second_length + 4};
}

void append_line(std::string& out, level l, std::string_view message) {
  const auto stamp = timestamp();
  if (json_lines.load(std::memory_order_relaxed)) {
    out.append("{\"time\":\"").append(stamp).append("\",\"level\":\"").append(name(l, true));
    out.append("\",\"message\":\"");
    append_json_escaped(out, message);
    out.append("\"}\n");
  } else {
    out.append(stamp).append(" ").append(name(l, false)).append(" ").append(message).append("\n");
  }
}

// All of `bytes` to `fd`, across partial writes and signals; gives up on any other error
// (nobody is left to tell).
void write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const auto n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

// The buffer between the threads that log and the writer thread.
class line_writer {
 public:
  // What waits unwritten is bounded: past this, lines are dropped and counted.
  static constexpr std::size_t max_pending = 1 << 20;
  // Info and debug lines wait this long for company, unless this much is pending already.
  static constexpr auto batch_delay = std::chrono::milliseconds(10);
  static constexpr std::size_t batch_bytes = 64 * 1024;

  void submit(level l, std::string_view line) {
    std::unique_lock lock(mu_);
    if (phase_ == phase::stopped) {  // at exit: written by the caller
      lock.unlock();
      write_all(fd_, line);
      return;
    }
    if (phase_ == phase::unstarted) start();
    if (pending_.size() + line.size() > max_pending) {
      ++dropped_;
      return;
    }
    const bool was_empty = pending_.empty();
    if (was_empty) first_pending_ = std::chrono::steady_clock::now();
    pending_.append(line);
    ++submitted_;
    bool notify = was_empty;
    if (l >= level::warn && !urgent_) urgent_ = notify = true;
    if (pending_.size() >= batch_bytes) notify = true;
    lock.unlock();
    if (notify) work_.notify_one();
  }

  // Waits until the lines submitted before the call are written (lines that keep coming after
  // do not hold it up), at most `limit`: the output may be stalled. False when that passed.
  bool flush(std::chrono::milliseconds limit) {
    std::unique_lock lock(mu_);
    const auto ticket = submitted_;
    if (phase_ == phase::unstarted || phase_ == phase::stopped || written_upto_ >= ticket) return true;
    urgent_ = true;
    work_.notify_one();
    return written_.wait_for(lock, limit, [&] { return written_upto_ >= ticket; });
  }

  void set_fd(int fd) {
    flush(std::chrono::seconds(5));
    std::lock_guard lock(mu_);
    fd_ = fd;
  }

  // At exit: what is pending is written, and later lines are written by their callers.
  void stop() {
    std::unique_lock lock(mu_);
    if (phase_ != phase::running) {
      phase_ = phase::stopped;
      return;
    }
    phase_ = phase::stopping;
    work_.notify_one();
    lock.unlock();
    thread_.join();
    lock.lock();
    phase_ = phase::stopped;
    // Lines that came between the writer's last look and now.
    write_all(fd_, pending_);
    pending_.clear();
    written_upto_ = submitted_;
    written_.notify_all();
  }

 private:
  // With mu_ held, at the first line.
  void start() {
    phase_ = phase::running;
    thread_ = std::thread([this] { run(); });
    // Before the buffer's own destruction (it was constructed before this registration).
    std::atexit([] { instance().stop(); });
  }

  void run() {
    std::string batch;
    std::unique_lock lock(mu_);
    for (;;) {
      const auto stopping = [&] { return phase_ == phase::stopping; };
      work_.wait(lock, [&] { return !pending_.empty() || dropped_ > 0 || stopping(); });
      if (!urgent_ && !stopping() && pending_.size() < batch_bytes)
        work_.wait_until(lock, first_pending_ + batch_delay,
                         [&] { return urgent_ || stopping() || pending_.size() >= batch_bytes; });
      batch.swap(pending_);
      const auto upto = submitted_;
      const auto dropped = std::exchange(dropped_, 0);
      urgent_ = false;
      const int fd = fd_;
      lock.unlock();
      if (dropped > 0)
        append_line(batch, level::warn,
                    "log: " + std::to_string(dropped) + " lines dropped: the log output did not keep up");
      write_all(fd, batch);
      if (batch.capacity() > batch_bytes) std::string().swap(batch);  // a burst's buffer is not kept
      batch.clear();
      lock.lock();
      written_upto_ = upto;
      written_.notify_all();
      if (stopping() && pending_.empty() && dropped_ == 0) return;
    }
  }

 public:
  static line_writer& instance() {
    static line_writer writer;
    return writer;
  }

 private:
  std::mutex mu_;
  std::condition_variable work_;     // the writer waits for lines
  std::condition_variable written_;  // flush() waits for the writer
  std::string pending_;
  std::size_t dropped_ = 0;
  // Lines taken into pending_ so far, and how many of them have been written: flush() waits
  // for the count at its call.
  std::uint64_t submitted_ = 0;
  std::uint64_t written_upto_ = 0;
  std::chrono::steady_clock::time_point first_pending_{};
  bool urgent_ = false;  // a warning or error is pending, or a flush: no batching delay
  // unstarted until the first line; stopping while stop() waits for the writer; stopped at exit,
  // when callers write their own lines.
  enum class phase { unstarted, running, stopping, stopped };
  phase phase_ = phase::unstarted;
  int fd_ = STDERR_FILENO;
  std::thread thread_;
};

}  // namespace

void apply(const config::log_config& settings) noexcept {
  const auto configured = static_cast<level>(settings.level);
  min_level.store(debug_forced.load(std::memory_order_relaxed) ? level::debug : configured, std::memory_order_relaxed);
  json_lines.store(settings.format == config::log_format::json, std::memory_order_relaxed);
  log_connections.store(settings.connections, std::memory_order_relaxed);
  slow_query.store(std::chrono::duration_cast<std::chrono::nanoseconds>(settings.slow_query).count(),
                   std::memory_order_relaxed);
}

void set_level(level l) noexcept { min_level.store(l, std::memory_order_relaxed); }
void force_debug() noexcept {
  debug_forced.store(true, std::memory_order_relaxed);
  set_level(level::debug);
}
bool enabled(level l) noexcept { return l >= min_level.load(std::memory_order_relaxed); }
bool connections() noexcept { return log_connections.load(std::memory_order_relaxed); }
std::int64_t slow_query_ns() noexcept { return slow_query.load(std::memory_order_relaxed); }

void write(level l, std::string_view message) {
  if (!enabled(l)) return;
  std::string line;
  line.reserve(message.size() + 64);
  append_line(line, l, message);
  line_writer::instance().submit(l, line);
}

bool flush(std::chrono::milliseconds limit) { return line_writer::instance().flush(limit); }

void set_output(int fd) { line_writer::instance().set_fd(fd); }

}  // namespace pgmux::log
