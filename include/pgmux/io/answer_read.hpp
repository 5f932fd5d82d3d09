// A plaintext read of the answer to a request just sent: it waits for epoll before its first recv.
//
// Asio tries every read at once (speculatively) and queues it for epoll only when the recv fails
// with EAGAIN. Right after a request has gone out, the server cannot have answered it yet: that
// first recv is a system call spent on nothing, once per request.
//
// A read into an `answer_read_buffer`, started by stream::async_read_answer, skips that try and
// is queued at once. This is safe only when nothing can have been reported by epoll for the
// socket between the request's send and this read (the caller does not suspend in between):
// every answer, and the reset that a closed peer sends back to a request, arrives after the
// send and so is a new edge of Asio's edge-triggered registration. Bytes that came before the
// request and whose edge was already reported are read together with the answer. Later tries
// are real recvs, exactly as for Asio's own reads.
//
// Plaintext sockets only: under TLS, OpenSSL reads the socket itself. Included by I/O code only.
#pragma once
#include <boost/asio/buffer.hpp>
#include <boost/asio/detail/reactive_socket_recv_op.hpp>
#include <boost/asio/version.hpp>

// The read replaces a detail of Asio's epoll (reactive) backend: checked against this version only.
static_assert(BOOST_ASIO_VERSION == 102600, "answer_read: check do_perform against this Asio's reactive_socket_recv_op");

namespace pgmux::net {

struct answer_read_buffer : boost::asio::mutable_buffer {
  explicit answer_read_buffer(const boost::asio::mutable_buffer& b) noexcept : boost::asio::mutable_buffer(b) {}
};

// Set around the start of a read into an answer_read_buffer: Asio's speculative try, which runs
// within that start, finds it set and returns without a recv; any later try finds it clear.
class skip_first_recv {
 public:
  skip_first_recv() noexcept { active = true; }
  ~skip_first_recv() { active = false; }
  skip_first_recv(const skip_first_recv&) = delete;
  skip_first_recv& operator=(const skip_first_recv&) = delete;

  // True once, for the try made while the guard is alive.
  static bool take() noexcept {
    const bool was = active;
    active = false;
    return was;
  }

 private:
  static thread_local bool active;
};

}  // namespace pgmux::net

// Declared here, with the type, so that no translation unit instantiates Asio's own version.
template <>
boost::asio::detail::reactor_op::status
boost::asio::detail::reactive_socket_recv_op_base<pgmux::net::answer_read_buffer>::do_perform(reactor_op* base);
