#include "pgmux/io/drain_read.hpp"

#include <boost/asio/detail/socket_ops.hpp>

template <>
boost::asio::detail::reactor_op::status
boost::asio::detail::reactive_socket_recv_op_base<pgmux::net::drain_buffer>::do_perform(reactor_op* base) {
  auto* o = static_cast<reactive_socket_recv_op_base*>(base);
  const bool stream_oriented = (o->state_ & socket_ops::stream_oriented) != 0;
  if (!socket_ops::non_blocking_recv1(o->socket_, o->buffers_.data(), o->buffers_.size(), o->flags_, stream_oriented,
                                      o->ec_, o->bytes_transferred_))
    return not_done;  // EAGAIN: wait for epoll
  // A short read (end of file included, as in Asio's own reads) left nothing queued: the next
  // read on this socket waits for epoll's next edge instead of trying first. After an error the
  // next read tries at once, as Asio's do: no further edge may come for it.
  if (!stream_oriented) return done;
  if (o->ec_ == boost::asio::error::eof) return done_and_exhausted;
  if (!o->ec_ && o->bytes_transferred_ < o->buffers_.size()) return done_and_exhausted;
  return done;
}
