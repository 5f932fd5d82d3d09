#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <ctime>
#include <regex>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "pgmux/log.hpp"

namespace {

// The logger's output redirected into a pipe for one test; stderr again afterwards.
class captured_log {
 public:
  captured_log() {
    // A failed test closes the pipe while the writer may still be writing to it.
    std::signal(SIGPIPE, SIG_IGN);
    REQUIRE(::pipe(fds_) == 0);
    REQUIRE(::fcntl(fds_[0], F_SETFL, O_NONBLOCK) == 0);
    pgmux::log::set_level(pgmux::log::level::info);
    pgmux::log::set_output(fds_[1]);
  }
  ~captured_log() {
    pgmux::log::set_output(STDERR_FILENO);
    ::close(fds_[0]);
    ::close(fds_[1]);
  }

  // Reads what has been written until `done` holds for the lines so far, or `limit` passes.
  template <class Done>
  std::vector<std::string> read_until(Done done, std::chrono::seconds limit = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done(lines_) && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fds_[0], POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[65536];
      const auto n = ::read(fds_[0], buf, sizeof buf);
      if (n <= 0) continue;
      partial_.append(buf, static_cast<std::size_t>(n));
      for (std::size_t eol; (eol = partial_.find('\n')) != std::string::npos; partial_.erase(0, eol + 1))
        lines_.push_back(partial_.substr(0, eol));
    }
    return lines_;
  }

 private:
  int fds_[2]{};
  std::string partial_;
  std::vector<std::string> lines_;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

TEST_CASE("log lines from four threads all arrive without a flush, each thread's in its order") {
  captured_log log;
  constexpr int threads = 4, per_thread = 500;
  std::vector<std::thread> loggers;
  for (int t = 0; t < threads; ++t)
    loggers.emplace_back([t] {
      for (int i = 0; i < per_thread; ++i) pgmux::log::info("t" + std::to_string(t) + " n" + std::to_string(i));
    });
  for (auto& l : loggers) l.join();
  const auto lines = log.read_until([](const auto& got) { return got.size() >= threads * per_thread; });
  REQUIRE(lines.size() == threads * per_thread);
  std::vector<int> next(threads, 0);
  for (const auto& line : lines) {
    REQUIRE(line.find(" INFO t") != std::string::npos);
    const auto at = line.find(" INFO t") + 7;
    const int t = line[at] - '0';
    REQUIRE(t >= 0);
    REQUIRE(t < threads);
    CHECK(ends_with(line, " n" + std::to_string(next[t])));
    ++next[t];
  }
  for (int t = 0; t < threads; ++t) CHECK(next[t] == per_thread);
}

TEST_CASE("an error line is written after the info lines logged before it, without a flush") {
  captured_log log;
  pgmux::log::info("first");
  pgmux::log::warn("second");
  pgmux::log::error("third");
  const auto lines = log.read_until([](const auto& got) { return got.size() >= 3; });
  REQUIRE(lines.size() == 3);
  CHECK(ends_with(lines[0], " INFO first"));
  CHECK(ends_with(lines[1], " WARN second"));
  CHECK(ends_with(lines[2], " ERROR third"));
  // A UTC timestamp to the millisecond, close to the test's own clock.
  const std::regex stamp(R"(^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\.\d{3}Z [A-Z]+ \w+$)");
  std::smatch m;
  for (const auto& line : lines) CHECK(std::regex_match(line, m, stamp));
  REQUIRE(std::regex_match(lines[0], m, stamp));
  std::tm tm{};
  REQUIRE(::strptime(m[1].str().c_str(), "%Y-%m-%dT%H:%M:%S", &tm) != nullptr);
  CHECK(std::abs(static_cast<double>(::timegm(&tm) - std::time(nullptr))) < 60);
}

TEST_CASE("a stalled log output never blocks the thread that logs: lines past the bound are dropped and counted") {
  captured_log log;
  // Nobody reads the pipe while these are logged: it fills (64 KiB), the writer blocks on it,
  // and the pending lines reach the bound (1 MiB) long before 4 MB are logged.
  constexpr int total = 40000;
  const std::string padding(90, 'x');
  for (int i = 0; i < total; ++i) pgmux::log::info("line " + std::to_string(i) + " " + padding);
  std::size_t received = 0, dropped = 0;
  log.read_until([&](const auto& got) {
    received = dropped = 0;
    for (const auto& line : got) {
      if (const auto at = line.find("log: "); at != std::string::npos && line.find(" lines dropped") != std::string::npos)
        dropped += std::strtoul(line.c_str() + at + 5, nullptr, 10);
      else
        ++received;
    }
    return received + dropped >= total;
  });
  CHECK(dropped > 0);
  CHECK(received >= (1 << 20) / 140);  // at least the bound's worth (lines are about 130 bytes)
  CHECK(received + dropped == total);
}

TEST_CASE("flush returns once the lines logged before it are written, and gives up on a stalled output") {
  captured_log log;
  pgmux::log::info("before the flush");
  CHECK(pgmux::log::flush(std::chrono::seconds(10)));
  // Written, so there to read at once (the pipe holds it).
  const auto lines = log.read_until([](const auto& got) { return !got.empty(); }, std::chrono::seconds(1));
  REQUIRE(lines.size() == 1);
  CHECK(ends_with(lines[0], " INFO before the flush"));
  // Nobody reads: the pipe fills and the writer blocks in write().
  const std::string padding(200, 'y');
  for (int i = 0; i < 2000; ++i) pgmux::log::info(padding);
  CHECK_FALSE(pgmux::log::flush(std::chrono::milliseconds(200)));
  log.read_until([](const auto& got) { return got.size() >= 2001; });
  CHECK(pgmux::log::flush(std::chrono::seconds(10)));
}
