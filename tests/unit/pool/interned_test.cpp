// One shared record per distinct value (pool/interned.hpp).
// Cases:
//   equal values share one record, different ones do not
//   a record nobody holds is dropped once the limit is reached; past the limit, values get their own
#include <doctest/doctest.h>

#include <string>

#include "pgmux/pool/interned.hpp"

using pgmux::pool::interned;

TEST_SUITE("interned") {

TEST_CASE("equal values share one record, different ones do not") {
  interned<std::string> records(8);
  const auto a = records.share("DateStyle=ISO");
  const auto b = records.share("DateStyle=ISO");
  const auto c = records.share("DateStyle=SQL");
  CHECK(a == b);
  CHECK(a != c);
  CHECK(*c == "DateStyle=SQL");
  CHECK(records.tracked() == 2);
}

TEST_CASE("past the limit, records nobody holds make room, and a value beyond it gets its own") {
  interned<int> records(2);
  auto one = records.share(1);
  {
    auto two = records.share(2);
    CHECK(records.tracked() == 2);
  }
  // 2 is held by nobody now: it makes room for 3.
  auto three = records.share(3);
  CHECK(records.tracked() == 2);
  CHECK(records.share(3) == three);
  // Both tracked values are held: 4 is not tracked, and two asks get two records.
  auto four = records.share(4);
  CHECK(*four == 4);
  CHECK(records.share(4) != four);
  CHECK(records.tracked() == 2);
  CHECK(records.share(1) == one);
}

}
