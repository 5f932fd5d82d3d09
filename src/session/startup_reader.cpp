#include "pgmux/session/startup_reader.hpp"

#include <algorithm>

#include "pgmux/io/stream.hpp"
#include "pgmux/protocol/decode.hpp"
#include "pgmux/protocol/frame.hpp"

namespace pgmux::net {

asio::awaitable<startup_read> read_startup_packet(stream& client) {
  std::string buf;
  for (;;) {
    const auto r = protocol::parse_startup_frame(buf);
    if (r.status == protocol::parse_status::invalid) co_return startup_read{{}, std::string("invalid startup packet: ") + r.error};
    if (r.status == protocol::parse_status::complete) {
      startup_read read;
      read.packet = protocol::decode_startup_packet(r.msg.body, read.error);
      if (!read.packet && read.error.empty()) read.error = "invalid startup packet";
      co_return read;
    }
    char chunk[512];
    std::size_t want = 8 - std::min<std::size_t>(buf.size(), 8);
    if (buf.size() >= 4)
      want = std::min(sizeof chunk, static_cast<std::size_t>(protocol::read_int32(buf.data())) - buf.size());
    // The rest of a packet whose start came is there already as a rule: read without a trip
    // through the event loop, which an asynchronous read completing at once would take.
    if (!buf.empty())
      if (const auto n = client.try_read(asio::buffer(chunk, want)); n > 0) {
        buf.append(chunk, n);
        continue;
      }
    auto [ec, n] = co_await client.async_read_some(asio::buffer(chunk, want), nothrow);
    if (ec) co_return startup_read{};
    buf.append(chunk, n);
  }
}

}  // namespace pgmux::net
