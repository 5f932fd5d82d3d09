// A read for a connection that may stay quiet for long: it takes its relay buffer only when
// bytes are there, so a client that waits between requests holds no buffer at all.
//
// Asio tries a read at once and, when the socket has nothing (EAGAIN), queues it until epoll
// reports the socket readable, then tries again. A read into an `idle_read_target` does the
// same, but each try first takes a block for the io_buffer it names (from the worker's free
// list) and, when the try finds nothing, gives the block back before waiting. Every try is a
// real recv until one succeeds or fails, exactly as for Asio's own reads: end of file and
// errors are reported, and no epoll edge is relied on that a try might have spent. The bytes
// read are already committed to the io_buffer when the handler runs; the handler's count says
// how many.
//
// A readiness wait (async_wait) would hold no buffer either, but Asio re-arms epoll
// (epoll_ctl) for each one, and the read after it is a further system call. Plaintext only:
// under TLS, OpenSSL reads the socket itself. Included by I/O code only.
#pragma once
#include <boost/asio/buffer.hpp>
#include <boost/asio/detail/reactive_socket_recv_op.hpp>
#include <boost/asio/version.hpp>

#include "pgmux/io/io_buffer.hpp"

// The read replaces a detail of Asio's epoll (reactive) backend: checked against this version
// only, and unused by the io_uring backend, which would read into the placeholder instead.
static_assert(BOOST_ASIO_VERSION == 102600, "idle_read: check do_perform against this Asio's reactive_socket_recv_op");
#if defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
#error "idle_read needs Asio's reactive (epoll) socket backend"
#endif

namespace pgmux::net {

// The io_buffer must have free space (an idle session's is empty).
struct idle_read_target : boost::asio::mutable_buffer {
  // The base describes a non-empty buffer so that Asio does not complete the read at once as an
  // empty one; the read itself goes to `target`'s free space.
  explicit idle_read_target(io_buffer& target) noexcept
      : boost::asio::mutable_buffer(&placeholder, 1), buffer(&target) {}
  io_buffer* buffer;

 private:
  static inline char placeholder = 0;
};

}  // namespace pgmux::net

// Declared here, with the type, so that no translation unit instantiates Asio's own version.
template <>
boost::asio::detail::reactor_op::status
boost::asio::detail::reactive_socket_recv_op_base<pgmux::net::idle_read_target>::do_perform(reactor_op* base);
