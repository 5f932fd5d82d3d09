#include <doctest/doctest.h>

#include <random>
#include <vector>

#include "pgmux/balance.hpp"

namespace {
unsigned place(unsigned own, const std::vector<long>& clients) {
  return pgmux::balanced_worker(own, static_cast<unsigned>(clients.size()), [&](unsigned w) { return clients[w]; });
}
}  // namespace

TEST_CASE("a client stays on the worker that accepted it unless that worker holds clearly more") {
  CHECK(place(0, {0, 0}) == 0);
  CHECK(place(1, {0, 0}) == 1);
  CHECK(place(0, {1, 1}) == 0);  // one more than the others is within the slack
  CHECK(place(0, {1, 0}) == 1);  // two more is not, with few clients: as even as dealt in turn
  CHECK(place(1, {3, 5}) == 0);
  CHECK(place(2, {4, 1, 4}) == 1);  // to the least loaded
  CHECK(place(0, {55, 50}) == 0);  // many clients: the slack is an eighth of the average
  CHECK(place(0, {60, 50}) == 1);
  CHECK(place(0, {5}) == 0);  // one worker
}

TEST_CASE("clients accepted on random workers stay within the slack of each other") {
  std::mt19937 random(7);
  for (const unsigned workers : {2u, 3u, 8u}) {
    for (const int count : {8, 100, 2000}) {
      std::vector<long> clients(workers, 0);
      int moved = 0;
      for (int i = 0; i < count; ++i) {
        const unsigned own = random() % workers;
        const unsigned to = place(own, clients);
        moved += to != own;
        ++clients[to];
      }
      const auto [least, most] = std::minmax_element(clients.begin(), clients.end());
      const long slack = std::max(1L, count / static_cast<long>(workers) / 8);
      INFO(workers << " workers, " << count << " clients, " << moved << " moved");
      CHECK(*most - *least <= slack);
      if (count >= 100) CHECK(moved < count / 2);  // most clients stay where they were accepted
      if (count == 8 && workers == 2) CHECK(*most == *least);  // a few: as even as dealt in turn
    }
  }
}
