// Reads into a drain_buffer: a short read marks the socket exhausted so that the next read
// waits for epoll without trying. What must hold is that no bytes are ever left waiting for a
// wake-up that does not come, whatever order reads, arrivals and epoll's reaping come in.
#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <optional>
#include <string>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>

#include "pgmux/io/drain_read.hpp"

namespace {

namespace asio = boost::asio;
using local_socket = asio::local::stream_protocol::socket;
using namespace std::chrono_literals;

struct socket_pair {
  asio::io_context loop;
  local_socket reader{loop};
  local_socket writer{loop};
  socket_pair() { asio::local::connect_pair(reader, writer); }

  void send(const std::string& bytes) { asio::write(writer, asio::buffer(bytes)); }

  // One turn of the reactor with no read waiting: epoll reports (and so spends) the edges of
  // what arrived so far. Without outstanding work, poll() would not look at epoll at all.
  void reap_edges() {
    auto work = asio::make_work_guard(loop);
    loop.restart();
    loop.poll();
  }

  // One drain read into a buffer of `size` bytes; the loop runs until it completes, for at most 5 s.
  std::optional<std::string> read(std::size_t size) {
    std::array<char, 64> buffer{};
    REQUIRE(size <= buffer.size());
    std::optional<std::string> got;
    reader.async_read_some(pgmux::net::drain_buffer(buffer.data(), size),
                           [&](boost::system::error_code ec, std::size_t n) {
                             got = ec ? std::string("error: ") + ec.message() : std::string(buffer.data(), n);
                           });
    loop.restart();
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!got && std::chrono::steady_clock::now() < deadline) loop.run_one_for(100ms);
    return got;
  }
};

}  // namespace

TEST_CASE("a drain read after a short read waits for the bytes sent next") {
  socket_pair p;
  p.send("abc");
  CHECK(p.read(16) == "abc");  // short: the socket is marked exhausted

  // The next read is queued without a try; the peer sends only afterwards.
  std::array<char, 16> buffer{};
  std::optional<std::string> got;
  p.reader.async_read_some(pgmux::net::drain_buffer(buffer.data(), buffer.size()),
                           [&](boost::system::error_code ec, std::size_t n) { got = std::string(buffer.data(), n); });
  p.loop.restart();
  p.loop.poll();
  CHECK_FALSE(got);  // nothing came yet
  p.send("de");
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!got && std::chrono::steady_clock::now() < deadline) p.loop.run_one_for(100ms);
  CHECK(got == "de");
}

TEST_CASE("bytes that arrive between a short read and the next read are read") {
  socket_pair p;
  p.send("abc");
  CHECK(p.read(16) == "abc");
  p.send("late");  // its epoll edge is pending when the next read starts
  CHECK(p.read(16) == "late");

  p.send("xyz");
  CHECK(p.read(16) == "xyz");
  p.send("reaped");
  p.reap_edges();  // epoll reports the bytes while no read is waiting
  CHECK(p.read(16) == "reaped");
}

TEST_CASE("a drain read that fills its buffer leaves the rest to be read at once") {
  socket_pair p;
  p.send(std::string(16, 'a') + std::string(10, 'b'));
  p.reap_edges();  // the edge for these bytes is spent before the reads: none will come for the rest
  CHECK(p.read(16) == std::string(16, 'a'));  // full: more may be queued, no edge will announce it
  CHECK(p.read(16) == std::string(10, 'b'));
}

TEST_CASE("end of file after a short read reaches the next drain read") {
  socket_pair p;
  p.send("bye");
  CHECK(p.read(16) == "bye");
  p.writer.shutdown(asio::socket_base::shutdown_send);
  const auto got = p.read(16);
  REQUIRE(got);
  CHECK(got->starts_with("error: "));
}
