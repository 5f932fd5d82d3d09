// Framing of tagged messages and untagged startup packets.
// Cases:
//   reads big-endian integers, sign included
//   needs more until the header is complete
//   needs more until the body is complete
//   body is a view into the buffer
//   accepts an empty body (length 4)
//   reads two messages from one buffer
//   rejects a length field below 4
//   rejects a message longer than max_len, before its body arrives
//   startup frame: needs more, bounds of its length, consumed
//   thousands of random buffers never crash nor over-consume
#include <doctest/doctest.h>

#include <random>
#include <string>

#include "pgmux/protocol/frame.hpp"
#include "support/wire.hpp"

using namespace pgmux::protocol;

namespace {
constexpr std::size_t big = 1 << 20;

// Everything a complete frame promises about the buffer it came from.
void check_complete_frame(std::string_view in, const frame_result& r) {
  REQUIRE(r.status == parse_status::complete);
  CHECK(r.consumed >= header_size);
  CHECK(r.consumed <= in.size());
  CHECK(r.msg.tag == in[0]);
  CHECK(r.msg.body.size() == r.consumed - header_size);
  CHECK(r.msg.body.data() == in.data() + header_size);
}
}  // namespace

TEST_SUITE("frame") {

TEST_CASE("reads big-endian integers, sign included") {
  const auto b = wire::bin("\x01\x02\x03\x04\xff\xff\xff\xfe");
  CHECK(read_int32(b.data()) == 0x01020304);
  CHECK(read_int32(b.data() + 4) == -2);
  CHECK(read_int16(b.data()) == 0x0102);
  CHECK(read_int16(b.data() + 6) == -2);
  const auto top = wire::bin("\x80\x00\x00\x00");
  CHECK(read_int32(top.data()) == INT32_MIN);
}

TEST_CASE("needs more until the header is complete") {
  const std::string q = wire::msg('Q').cstr("select 1").str();
  for (std::size_t n = 0; n < header_size; ++n) {
    CAPTURE(n);
    const auto r = parse_frame(std::string_view(q).substr(0, n), big);
    CHECK(r.status == parse_status::need_more);
    CHECK(r.consumed == 0);
    CHECK(parse_header(std::string_view(q).substr(0, n), big).status == parse_status::need_more);
  }
}

TEST_CASE("needs more until the body is complete") {
  const std::string q = wire::msg('Q').cstr("select 1").str();
  REQUIRE(q.size() == 14);
  for (std::size_t n = header_size; n < q.size(); ++n) {
    CAPTURE(n);
    const auto r = parse_frame(std::string_view(q).substr(0, n), big);
    CHECK(r.status == parse_status::need_more);
    CHECK(r.consumed == 0);
    // The header alone is already known.
    const auto h = parse_header(std::string_view(q).substr(0, n), big);
    CHECK(h.status == parse_status::complete);
    CHECK(h.hdr.tag == 'Q');
    CHECK(h.hdr.length == 13);
    CHECK(h.hdr.total() == 14);
    CHECK(h.hdr.body_size() == 9);
  }
  const auto r = parse_frame(q, big);
  check_complete_frame(q, r);
  CHECK(r.consumed == 14);
  CHECK(r.msg.body == wire::bin("select 1\0"));
}

TEST_CASE("body is a view into the buffer") {
  const std::string d = wire::msg('d').bytes("abc").str();
  const auto r = parse_frame(d, big);
  REQUIRE(r.status == parse_status::complete);
  CHECK(r.msg.body.data() == d.data() + 5);
  CHECK(r.msg.body == "abc");
}

TEST_CASE("accepts an empty body (length 4)") {
  const std::string s = wire::msg('S').str();
  REQUIRE(s.size() == 5);
  const auto r = parse_frame(s, big);
  check_complete_frame(s, r);
  CHECK(r.msg.tag == 'S');
  CHECK(r.msg.body.empty());
  CHECK(r.consumed == 5);
}

TEST_CASE("reads two messages from one buffer") {
  const std::string first = wire::msg('P').cstr("").cstr("select $1").i16(0).str();
  const std::string second = wire::msg('S').str();
  SUBCASE("both complete") {
    const std::string buf = first + second;
    const auto r1 = parse_frame(buf, big);
    check_complete_frame(buf, r1);
    CHECK(r1.msg.tag == 'P');
    CHECK(r1.consumed == first.size());
    const std::string_view rest = std::string_view(buf).substr(r1.consumed);
    const auto r2 = parse_frame(rest, big);
    check_complete_frame(rest, r2);
    CHECK(r2.msg.tag == 'S');
    CHECK(r2.consumed == rest.size());
  }
  SUBCASE("second one partial") {
    const std::string buf = first + second.substr(0, 3);
    const auto r1 = parse_frame(buf, big);
    REQUIRE(r1.status == parse_status::complete);
    CHECK(r1.consumed == first.size());
    CHECK(parse_frame(std::string_view(buf).substr(r1.consumed), big).status == parse_status::need_more);
  }
}

TEST_CASE("rejects a length field below 4") {
  for (std::int32_t length : {0, 1, 2, 3, -1, INT32_MIN}) {
    CAPTURE(length);
    const std::string m = wire::msg('Q').cstr("x").with_length(length);
    const auto r = parse_frame(m, big);
    CHECK(r.status == parse_status::invalid);
    CHECK(r.error != nullptr);
    CHECK(r.consumed == 0);
  }
}

TEST_CASE("rejects a message longer than max_len, before its body arrives") {
  const std::string body(95, 'x');
  const std::string m = wire::msg('d').bytes(body).str();  // 100 bytes in all
  REQUIRE(m.size() == 100);
  SUBCASE("exactly max_len is fine") {
    const auto r = parse_frame(m, 100);
    CHECK(r.status == parse_status::complete);
    CHECK(r.consumed == 100);
  }
  SUBCASE("one byte over is invalid") {
    const auto r = parse_frame(m, 99);
    CHECK(r.status == parse_status::invalid);
    CHECK(r.error != nullptr);
  }
  SUBCASE("the header alone is enough to refuse") {
    const auto r = parse_frame(std::string_view(m).substr(0, header_size), 99);
    CHECK(r.status == parse_status::invalid);
    CHECK(parse_header(std::string_view(m).substr(0, header_size), 99).status == parse_status::invalid);
  }
  SUBCASE("a huge length field is refused, not awaited") {
    const std::string huge = wire::msg('d').with_length(0x7fffffff);
    CHECK(parse_frame(huge, big).status == parse_status::invalid);
  }
}

TEST_CASE("startup frame: needs more, bounds of its length, consumed") {
  const std::string ssl = wire::untagged().i32(wire::ssl_code).str();
  REQUIRE(ssl.size() == 8);
  SUBCASE("needs more below the length field and below the length") {
    for (std::size_t n = 0; n < ssl.size(); ++n) {
      CAPTURE(n);
      const auto r = parse_startup_frame(std::string_view(ssl).substr(0, n));
      CHECK(r.status == parse_status::need_more);
      CHECK(r.consumed == 0);
    }
  }
  SUBCASE("complete: body after the length, untagged") {
    const std::string buf = ssl + "trailing";
    const auto r = parse_startup_frame(buf);
    REQUIRE(r.status == parse_status::complete);
    CHECK(r.consumed == 8);
    CHECK(r.msg.tag == 0);
    CHECK(r.msg.body == wire::bin("\x04\xd2\x16\x2f"));
    CHECK(r.msg.body.data() == buf.data() + 4);
  }
  SUBCASE("lengths below 8 are invalid") {
    for (std::int32_t length : {0, 4, 7, -1, INT32_MIN}) {
      CAPTURE(length);
      const auto r = parse_startup_frame(wire::untagged().i32(wire::ssl_code).with_length(length));
      CHECK(r.status == parse_status::invalid);
      CHECK(r.error != nullptr);
    }
  }
  SUBCASE("10000 bytes is the most, and is awaited") {
    const std::string head = wire::untagged().i32(wire::protocol_3_0).with_length(10000);
    CHECK(parse_startup_frame(head).status == parse_status::need_more);
    const std::string full = head + std::string(10000 - head.size(), '\0');
    const auto r = parse_startup_frame(full);
    CHECK(r.status == parse_status::complete);
    CHECK(r.consumed == 10000);
  }
  SUBCASE("10001 bytes is refused from the length field alone") {
    const auto r = parse_startup_frame(wire::untagged().i32(wire::protocol_3_0).with_length(10001));
    CHECK(r.status == parse_status::invalid);
  }
}

TEST_CASE("thousands of random buffers never crash nor over-consume") {
  std::mt19937 rng(20240607);  // fixed seed: failures reproduce
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> len(0, 48);
  std::uniform_int_distribution<int> small_length(0, 40);
  std::uniform_int_distribution<int> coin(0, 3);
  std::size_t completes = 0, invalids = 0, need_mores = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string buf(static_cast<std::size_t>(len(rng)), '\0');
    for (auto& c : buf) c = static_cast<char>(byte(rng));
    // Most fully random lengths are huge; plant small ones often so complete frames occur.
    if (buf.size() >= 5 && coin(rng) != 0) {
      const auto l = static_cast<std::uint32_t>(small_length(rng));
      buf[1] = buf[2] = 0;
      buf[3] = static_cast<char>(l >> 8);
      buf[4] = static_cast<char>(l);
      buf[0] = 0;  // also a startup length of l * 256 + ..., mostly within bounds
    }
    const std::size_t max_len = round % 2 ? 32 : big;
    // Walk the buffer as a session would.
    std::string_view rest = buf;
    for (;;) {
      const auto r = parse_frame(rest, max_len);
      if (r.status == parse_status::complete) {
        ++completes;
        REQUIRE(r.consumed >= header_size);
        REQUIRE(r.consumed <= rest.size());
        REQUIRE(r.consumed <= max_len);
        REQUIRE(r.msg.body.size() == r.consumed - header_size);
        REQUIRE(r.msg.body.data() == rest.data() + header_size);
        rest.remove_prefix(r.consumed);
        continue;
      }
      REQUIRE(r.consumed == 0);
      if (r.status == parse_status::invalid) {
        ++invalids;
        REQUIRE(r.error != nullptr);
      } else {
        ++need_mores;
      }
      break;
    }
    const auto s = parse_startup_frame(buf);
    if (s.status == parse_status::complete) {
      REQUIRE(s.consumed >= 8);
      REQUIRE(s.consumed <= buf.size());
      REQUIRE(s.consumed <= max_startup_packet);
      REQUIRE(s.msg.body.size() == s.consumed - 4);
    } else {
      REQUIRE(s.consumed == 0);
    }
  }
  // The generator must exercise all three outcomes, or the test proves little.
  CHECK(completes > 1000);
  CHECK(invalids > 1000);
  CHECK(need_mores > 1000);
}

}  // TEST_SUITE
