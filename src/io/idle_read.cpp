#include "pgmux/io/idle_read.hpp"

#include <boost/asio/detail/socket_ops.hpp>

template <>
boost::asio::detail::reactor_op::status
boost::asio::detail::reactive_socket_recv_op_base<pgmux::net::idle_read_target>::do_perform(reactor_op* base) {
  auto* o = static_cast<reactive_socket_recv_op_base*>(base);
  pgmux::net::io_buffer& buffer = *o->buffers_.buffer;
  const bool stream_oriented = (o->state_ & socket_ops::stream_oriented) != 0;
  buffer.ensure();
  if (buffer.free_size() == 0) {  // a full buffer reads nothing, as an empty Asio buffer would
    o->ec_ = {};
    o->bytes_transferred_ = 0;
    return done;
  }
  if (!socket_ops::non_blocking_recv1(o->socket_, buffer.free_begin(), buffer.free_size(), o->flags_, stream_oriented,
                                      o->ec_, o->bytes_transferred_)) {
    buffer.release();  // nothing yet: wait for epoll holding no block
    return not_done;
  }
  if (!o->ec_) buffer.commit(o->bytes_transferred_);
  buffer.release();  // kept when bytes came (release gives back only an empty buffer)
  // As Asio's own reads: end of file leaves the socket exhausted for later reads.
  if (stream_oriented && o->bytes_transferred_ == 0) return done_and_exhausted;
  return done;
}
