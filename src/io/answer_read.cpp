#include "pgmux/io/answer_read.hpp"

#include <boost/asio/detail/socket_ops.hpp>

thread_local bool pgmux::net::skip_first_recv::active = false;

template <>
boost::asio::detail::reactor_op::status
boost::asio::detail::reactive_socket_recv_op_base<pgmux::net::answer_read_buffer>::do_perform(reactor_op* base) {
  if (pgmux::net::skip_first_recv::take()) return not_done;  // queued for epoll without a recv
  auto* o = static_cast<reactive_socket_recv_op_base*>(base);
  const auto& buffer = static_cast<const boost::asio::mutable_buffer&>(o->buffers_);
  const bool stream_oriented = (o->state_ & socket_ops::stream_oriented) != 0;
  if (!socket_ops::non_blocking_recv1(o->socket_, buffer.data(), buffer.size(), o->flags_, stream_oriented, o->ec_,
                                      o->bytes_transferred_))
    return not_done;
  // As Asio's own reads: end of file leaves the socket exhausted for later reads.
  return stream_oriented && o->bytes_transferred_ == 0 ? done_and_exhausted : done;
}
