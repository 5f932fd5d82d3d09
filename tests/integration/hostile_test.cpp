// Hostile clients next to a bystander: concurrent clients send mutated protocol streams (random
// types and lengths, truncation, Bind with wrong counts, COPY data outside COPY, failed COPYs,
// Sync storms, Terminate or a vanished socket at any point) while one libpq client runs queries
// and transactions in a loop over the same small pool. The bystander must never see an error,
// and afterwards no server connection may stay lent, busy or inside a transaction.
// PGMUX_IT_HOSTILE_SEED picks the random seed (the one used is printed).
#include <doctest/doctest.h>

#include <algorithm>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <random>
#include <sstream>
#include <thread>

#include "integration/fixtures.hpp"

namespace it {
namespace {

std::string be16(std::uint16_t v) {
  std::string s(2, '\0');
  s[0] = static_cast<char>(v >> 8);
  s[1] = static_cast<char>(v & 0xff);
  return s;
}

// One step of a hostile session: bytes that are sometimes right, often not.
class mutator {
 public:
  explicit mutator(std::uint32_t seed) : rng_(seed) {}

  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  bool chance(int percent) { return pick(100) < percent; }

  std::string random_bytes(std::size_t max) {
    std::string s(static_cast<std::size_t>(pick(static_cast<int>(max) + 1)), '\0');
    for (auto& c : s) c = static_cast<char>(pick(256));
    return s;
  }

  std::string query() {
    static const char* const sql[] = {"select 1",
                                      "begin",
                                      "commit",
                                      "rollback",
                                      "insert into it_hostile values (1)",
                                      "select pg_sleep(0.05)",
                                      "select repeat('x', 100000)",
                                      "selec broken",
                                      "begin; insert into it_hostile values (2)",
                                      "set application_name = 'hostile'",
                                      "select * from generate_series(1, 2000)"};
    return wire::msg('Q', wire::cstr(sql[pick(std::size(sql))]));
  }

  std::string copy_sequence() {
    std::string out = wire::msg('Q', wire::cstr("copy it_hostile from stdin"));
    const int rows = pick(4);
    for (int i = 0; i < rows; ++i) out += wire::msg('d', chance(70) ? "7\n" : "not a number\n");
    switch (pick(4)) {
      case 0: out += wire::msg('c', ""); break;
      case 1: out += wire::msg('f', wire::cstr("client gave up")); break;
      case 2: out += wire::msg('S', ""); break;  // ignored during COPY
      default: break;                            // leave the COPY open
    }
    return out;
  }

  std::string extended_batch() {
    std::string out;
    const std::string name = chance(50) ? "" : "s" + std::to_string(pick(3));
    if (chance(80))
      out += wire::msg('P', wire::cstr(name) + wire::cstr(chance(80) ? "select $1::int" : "select nonsense") +
                                be16(static_cast<std::uint16_t>(pick(3))) + std::string(4 * static_cast<std::size_t>(pick(2)), '\0'));
    // Bind with counts that may not match the statement or the body.
    std::string bind = wire::cstr("") + wire::cstr(name) + be16(0);
    const auto params = static_cast<std::uint16_t>(pick(3));
    bind += be16(params);
    for (int i = 0; i < params; ++i) bind += chance(80) ? wire::be32(1) + "5" : wire::be32(0x7fffff00);
    bind += be16(0);
    if (chance(20)) bind.resize(static_cast<std::size_t>(pick(static_cast<int>(bind.size()) + 1)));
    out += wire::msg('B', bind);
    if (chance(50)) out += wire::msg('D', "P" + wire::cstr(""));
    out += wire::msg('E', wire::cstr("") + wire::be32(static_cast<std::uint32_t>(pick(3))));
    if (chance(85)) out += wire::msg('S', "");
    return out;
  }

  std::string stray() {
    switch (pick(6)) {
      case 0: return wire::msg('d', random_bytes(50));
      case 1: return wire::msg('c', "");
      case 2: return wire::msg('f', wire::cstr("x"));
      case 3: {
        std::string storm;
        const int n = 10 + pick(60);
        for (int i = 0; i < n; ++i) storm += wire::msg('S', "");
        return storm;
      }
      case 4: return wire::msg('H', "");
      default: return wire::msg('C', std::string("S") + wire::cstr("nope"));
    }
  }

  std::string random_message() {
    static const char types[] = {'B', 'C', 'd', 'c', 'f', 'D', 'E', 'H', 'F', 'P', 'Q', 'S'};
    const char type = chance(90) ? types[pick(sizeof types)] : static_cast<char>(pick(256));
    return wire::msg(type, random_bytes(120));
  }

  // A header that promises more than follows; what the client sends next becomes its body.
  std::string truncated() {
    const auto full = chance(50) ? query() : extended_batch();
    return full.substr(0, static_cast<std::size_t>(1 + pick(static_cast<int>(full.size()) - 1)));
  }

  std::string step() {
    switch (pick(10)) {
      case 0: case 1: case 2: return query();
      case 3: return copy_sequence();
      case 4: case 5: return extended_batch();
      case 6: return stray();
      case 7: return random_message();
      case 8: return truncated();
      default: return wire::msg('Q', wire::cstr("select 1")) + extended_batch();
    }
  }

 private:
  std::mt19937 rng_;
};

// Reads whatever has arrived without waiting; false once the peer closed.
bool drain_available(raw_socket& s) {
  char buf[65536];
  for (;;) {
    const auto n = ::recv(s.fd(), buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) continue;
    if (n == 0) return false;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  }
}

void hostile_session(int port, mutator& m, std::atomic<long>& bytes_sent) {
  raw_socket s(port);
  if (!s.startup()) return;
  const int steps = 1 + m.pick(12);
  for (int i = 0; i < steps; ++i) {
    const auto bytes = m.step();
    if (!s.send(bytes)) return;
    bytes_sent += static_cast<long>(bytes.size());
    if (m.chance(80) && !drain_available(s)) return;
    if (m.chance(10)) std::this_thread::sleep_for(std::chrono::milliseconds(m.pick(300)));  // a stall
  }
  switch (m.pick(4)) {
    case 0: s.send(wire::msg('X', "")); break;
    case 1: s.shutdown_write(); break;
    case 2: drain_available(s); break;
    default: break;  // vanish: the socket closes with whatever is pending
  }
}

std::string pools_cell(const pg_conn& admin, const std::string& column) {
  auto r = admin.exec("SHOW POOLS");
  const int col = PQfnumber(r.get(), column.c_str());
  for (int row = 0; row < r.rows(); ++row)
    if (r.value(row, 0) == "pgmux_test") return r.value(row, col);
  return "?";
}

}  // namespace

TEST_SUITE("hostile") {

namespace {

// "127.0.0.1:port" of a connection's own end, as pgmux names the client in its log.
std::string local_address(const pg_conn& c) {
  sockaddr_in a{};
  socklen_t size = sizeof a;
  if (PQsocket(c.get()) < 0 || ::getsockname(PQsocket(c.get()), reinterpret_cast<sockaddr*>(&a), &size) != 0) return "?";
  return "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
}

}  // namespace

TEST_CASE("fuzzed protocol sessions never reach a bystander nor wedge a server connection") {
  {
    auto setup = setup_connection();
    exec_ok(setup, "drop table if exists it_hostile; create table it_hostile (x int)");
  }
  std::uint32_t seed = std::random_device{}();
  if (const char* env = std::getenv("PGMUX_IT_HOSTILE_SEED")) seed = static_cast<std::uint32_t>(std::strtoul(env, nullptr, 10));
  MESSAGE("PGMUX_IT_HOSTILE_SEED=" << seed);

  proxy_instance proxy(proxy_options()
                           .top_level(R"("admin": {"users": ["pgmux_test"]})")
                           .pool("max_size", "4")
                           .pool("query_wait_timeout", "20s")
                           .pool("idle_transaction_timeout", "1s")
                           .pool("command_timeout", "3s"));
  auto admin = connect(proxy.conninfo("pgmux", "pgmux_test"));
  auto pg_admin = connect(pg().admin_conninfo());

  std::atomic<bool> stop{false};
  std::atomic<int> bystander_queries{0};
  std::vector<std::string> bystander_errors;
  std::vector<std::string> bystander_addresses;  // "127.0.0.1:port" of the connection that failed, as pgmux logs it
  std::thread bystander([&] {
    auto c = connect(proxy.conninfo());
    auto address = local_address(c);
    int i = 0;
    while (!stop) {
      const bool tx = ++i % 3 == 0;
      std::vector<std::string> sql = tx ? std::vector<std::string>{"begin", "select " + std::to_string(i), "commit"}
                                        : std::vector<std::string>{"select " + std::to_string(i)};
      for (const auto& q : sql) {
        auto r = c.exec(q);
        if (!r.ok()) {
          // No result at all: libpq's own account of the connection says why.
          bystander_errors.push_back(q + ": " + (r ? r.error() : "no result; libpq says: " + c.error()) + " (client " +
                                     address + ")");
          bystander_addresses.push_back(address);
          c = pg_conn(proxy.conninfo());  // go on with a fresh connection, to count further harm
          address = local_address(c);
          break;
        }
        if (q.rfind("select", 0) == 0 && r.value() != std::to_string(i)) {
          bystander_errors.push_back(q + ": wrong answer " + r.value() + " (client " + address + ")");
          if (std::find(bystander_addresses.begin(), bystander_addresses.end(), address) == bystander_addresses.end())
            bystander_addresses.push_back(address);
        }
      }
      ++bystander_queries;
    }
  });

  constexpr int hostile_threads = 12;
  const auto run_for = 20s;
  std::atomic<long> sessions{0}, bytes_sent{0};
  std::vector<std::thread> hostile;
  for (int t = 0; t < hostile_threads; ++t) {
    hostile.emplace_back([&, t] {
      mutator m(seed + static_cast<std::uint32_t>(t) * 7919u);
      const auto end = clock::now() + run_for;
      while (clock::now() < end) {
        hostile_session(proxy.port(), m, bytes_sent);
        ++sessions;
      }
    });
  }
  for (auto& t : hostile) t.join();
  stop = true;
  bystander.join();
  MESSAGE(sessions.load() << " hostile sessions, " << bytes_sent.load() << " bytes sent; bystander ran "
                          << bystander_queries.load() << " requests");
  for (const auto& e : bystander_errors) FAIL_CHECK("bystander: " << e);
  // What pgmux logged of the failed bystander connections: why it closed them.
  for (const auto& address : bystander_addresses) {
    std::string lines;
    std::istringstream log(proxy.log());
    for (std::string line; std::getline(log, line);)
      if (line.find(address + " ") != std::string::npos || line.find(address + ":") != std::string::npos) lines += line + "\n";
    MESSAGE("pgmux on bystander " << address << ":\n" << lines);
  }
  CHECK(bystander_queries.load() >= 5);  // it queues behind the hostile clients (FIFO), but it is served

  // Every hostile client is gone: nothing may stay lent, waiting, busy or in a transaction.
  const bool settled = wait_until(
      [&] {
        return pools_cell(admin, "sv_active") == "0" && pools_cell(admin, "cl_waiting") == "0" &&
               pools_cell(admin, "cl_active") == "0" &&
               scalar(pg_admin, "select count(*) from pg_stat_activity where usename = 'pgmux_test' and state <> 'idle'") ==
                   "0";
      },
      20s, 100ms);
  CHECK_MESSAGE(settled, "sv_active " << pools_cell(admin, "sv_active") << ", cl_active " << pools_cell(admin, "cl_active")
                                      << ", cl_waiting " << pools_cell(admin, "cl_waiting") << "; backends: "
                                      << scalar(pg_admin, "select string_agg(state || ' ' || coalesce(wait_event, ''), ', ') "
                                                          "from pg_stat_activity where usename = 'pgmux_test'"));
  CHECK(proxy.alive());
  auto fresh = connect(proxy.conninfo());
  CHECK(scalar(fresh, "select 'after'") == "after");
}

}  // TEST_SUITE

}  // namespace it
