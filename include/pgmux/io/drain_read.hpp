// Reads that remember when they emptied the socket, so that the next read waits for epoll
// instead of trying a recv that is bound to fail.
//
// Asio tries every read at once ("speculatively") unless an earlier read on the descriptor
// reported it exhausted, which its own reads do only at end of file. After a request/response
// turn, the peer has sent nothing yet: the try costs a recv that returns EAGAIN, and a wait
// without the try (async_wait) costs an epoll_ctl instead. A read into a `drain_buffer` reports
// the socket exhausted when it returned less than it asked for: the kernel hands a stream
// socket's recv everything queued up to the buffer's size, so a short read found the queue
// empty. Asio then queues the next read on the descriptor without trying it, and the
// edge-triggered epoll registration every socket has wakes it when new bytes arrive.
//
// Only reads whose buffer is a drain_buffer behave so; under TLS, OpenSSL's reads of the socket
// are ordinary ones. Included by I/O code only.
#pragma once
#include <boost/asio/buffer.hpp>
#include <boost/asio/detail/reactive_socket_recv_op.hpp>

namespace pgmux::net {

struct drain_buffer : boost::asio::mutable_buffer {
  drain_buffer(void* data, std::size_t size) noexcept : boost::asio::mutable_buffer(data, size) {}
};

}  // namespace pgmux::net

// Declared here, with the type, so that no translation unit instantiates Asio's own version.
template <>
boost::asio::detail::reactor_op::status
boost::asio::detail::reactive_socket_recv_op_base<pgmux::net::drain_buffer>::do_perform(reactor_op* base);
