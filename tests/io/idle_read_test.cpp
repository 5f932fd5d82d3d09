// Reads into an idle_read_target: the relay buffer is taken only while bytes are there, and
// nothing that arrives (bytes, end of file) is ever left waiting for a wake-up that does not
// come, whatever order reads, arrivals and epoll's reaping come in.
#include <doctest/doctest.h>

#include <cstring>
#include <optional>
#include <string>

#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>

#include "pgmux/io/idle_read.hpp"
#include "read_loop.hpp"

namespace {

namespace asio = boost::asio;
using local_socket = asio::local::stream_protocol::socket;
using pgmux::net::io_buffer;
using pgmux::net::idle_read_target;

struct socket_pair : pgmux::test::read_loop {
  local_socket reader{loop};
  local_socket writer{loop};
  io_buffer buffer;
  socket_pair() { asio::local::connect_pair(reader, writer); }

  void send(const std::string& bytes) { asio::write(writer, asio::buffer(bytes)); }

  void start_read() {
    got.reset();
    reader.async_read_some(idle_read_target(buffer), [this](boost::system::error_code ec, std::size_t n) {
      if (ec) {
        got = "error: " + ec.message();
        return;
      }
      // The bytes are in the buffer already, and n says how many came with this read.
      got = std::string(buffer.view().substr(buffer.size() - n));
    });
  }

  std::optional<std::string> read() {
    start_read();
    return finish_read();
  }

  // Starts a read and turns the loop once: with nothing sent, the read tries, finds nothing and waits.
  void start_waiting_read() {
    start_read();
    turn_once();
    CHECK_FALSE(got);
  }
};

bool is_error(const std::optional<std::string>& got) { return got && got->starts_with("error: "); }

}  // namespace

TEST_CASE("an idle read holds no buffer while nothing has come, and takes one for the bytes that come") {
  socket_pair p;
  p.start_waiting_read();
  CHECK_FALSE(p.buffer.allocated());  // waiting holds no block
  p.send("hello");
  CHECK(p.finish_read() == "hello");
  CHECK(p.buffer.allocated());
  CHECK(p.buffer.view() == "hello");
}

TEST_CASE("an idle read appends to what the buffer holds") {
  socket_pair p;
  p.buffer.ensure();
  std::memcpy(p.buffer.free_begin(), "ab", 2);
  p.buffer.commit(2);
  p.send("cd");
  CHECK(p.read() == "cd");
  CHECK(p.buffer.view() == "abcd");
}

TEST_CASE("an idle read into a full buffer completes with nothing read, and the bytes stay for the next read") {
  socket_pair p;
  p.buffer.ensure();
  p.buffer.commit(io_buffer::block_size);
  p.send("more");
  CHECK(p.read() == "");  // not end of file
  p.buffer.clear();
  CHECK(p.read() == "more");
}

TEST_CASE("bytes whose epoll edge was spent before the idle read started are read") {
  socket_pair p;
  p.send("early");
  p.reap_edges();  // epoll reports the bytes while no read is waiting
  CHECK(p.read() == "early");

  p.buffer.clear();
  p.start_waiting_read();
  p.send("late");
  CHECK(p.finish_read() == "late");
}

TEST_CASE("end of file reaches an idle read, whether it came before the read or while it waited") {
  SUBCASE("before, its edge already spent") {
    socket_pair p;
    p.writer.shutdown(asio::socket_base::shutdown_send);
    p.reap_edges();
    CHECK(is_error(p.read()));
    CHECK_FALSE(p.buffer.allocated());
  }
  SUBCASE("with bytes before it: the bytes first, then end of file") {
    socket_pair p;
    p.send("last words");
    p.writer.shutdown(asio::socket_base::shutdown_send);
    p.reap_edges();
    CHECK(p.read() == "last words");
    CHECK(is_error(p.read()));
  }
  SUBCASE("while it waits") {
    socket_pair p;
    p.start_waiting_read();
    p.writer.close();
    CHECK(is_error(p.finish_read()));
    CHECK_FALSE(p.buffer.allocated());
  }
}

TEST_CASE("a cancelled idle read completes with operation_aborted and holds no buffer") {
  socket_pair p;
  p.start_waiting_read();
  p.reader.cancel();
  const auto got = p.finish_read();
  REQUIRE(got);
  CHECK(*got == "error: " + boost::system::error_code(asio::error::operation_aborted).message());
  CHECK_FALSE(p.buffer.allocated());
}
