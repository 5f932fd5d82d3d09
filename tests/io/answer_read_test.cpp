// stream::async_read_answer: the read of an answer to a request just sent waits for epoll before
// its first recv, loses nothing that came before, and leaves every other read as Asio's own.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <utility>

#include <boost/asio/generic/stream_protocol.hpp>

#include "pgmux/io/stream.hpp"
#include "read_loop.hpp"

namespace {

namespace asio = boost::asio;

// A stream over one end of a Unix socket pair; the test writes the other end directly.
struct answered_stream : pgmux::test::read_loop {
  pgmux::net::stream reader{loop.get_executor()};
  int peer = -1;
  char buffer[64] = {};

  answered_stream() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    reader.lowest_layer().assign(asio::generic::stream_protocol(AF_UNIX, 0), fds[0]);
    peer = fds[1];
  }
  ~answered_stream() {
    if (peer >= 0) ::close(peer);
  }

  void send(const std::string& bytes) { REQUIRE(::send(peer, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size())); }

  void on_read(boost::system::error_code ec, std::size_t n) { got = ec ? "error: " + ec.message() : std::string(buffer, n); }

  void start_answer_read() {
    got.reset();
    reader.async_read_answer(asio::buffer(buffer), [this](boost::system::error_code ec, std::size_t n) { on_read(ec, n); });
    turn_once();
  }

  void start_plain_read() {
    got.reset();
    reader.async_read_some(asio::buffer(buffer), [this](boost::system::error_code ec, std::size_t n) { on_read(ec, n); });
    turn_once();
  }
};

}  // namespace

TEST_CASE("an answer read waits for epoll before its first recv, and reads the answer with what came before") {
  answered_stream s;
  s.send("notice;");
  s.reap_edges();  // bytes whose edge is spent: only a recv would find them
  s.start_answer_read();
  CHECK_FALSE(s.got);  // no recv was tried
  s.send("answer");
  CHECK(s.finish_read() == "notice;answer");
}

TEST_CASE("an answer read of a peer that closes ends with an error") {
  answered_stream s;
  s.start_answer_read();
  CHECK_FALSE(s.got);
  ::close(std::exchange(s.peer, -1));
  const auto got = s.finish_read();
  REQUIRE(got);
  CHECK(got->starts_with("error: "));
}

TEST_CASE("only the answer read skips its first recv: the reads after it try at once") {
  answered_stream s;
  s.start_answer_read();
  s.send("one");
  CHECK(s.finish_read() == "one");

  s.send("two");
  s.reap_edges();
  s.start_plain_read();
  CHECK(s.got == "two");  // read by the first try, with no edge left to wait for

  // An answer already there whose edge epoll has not reported yet: the wait ends at once.
  s.send("three");
  s.start_answer_read();
  CHECK(s.finish_read() == "three");
}
