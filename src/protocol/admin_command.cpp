// Reading admin console commands.
#include "pgmux/protocol/admin_command.hpp"

#include <cctype>

namespace pgmux::protocol {
namespace {

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// The database a PAUSE or RESUME names, as written ("" when none): `PAUSE app`, `PAUSE "App";`.
std::string command_argument(std::string_view sql) {
  std::size_t pos = 0;
  while (pos < sql.size() && is_space(sql[pos])) ++pos;
  while (pos < sql.size() && !is_space(sql[pos]) && sql[pos] != ';') ++pos;  // the command word
  std::string_view rest = sql.substr(pos);
  if (auto semi = rest.find(';'); semi != std::string_view::npos) rest = rest.substr(0, semi);
  while (!rest.empty() && is_space(rest.front())) rest.remove_prefix(1);
  while (!rest.empty() && is_space(rest.back())) rest.remove_suffix(1);
  if (rest.size() >= 2 && rest.front() == '"' && rest.back() == '"') rest = rest.substr(1, rest.size() - 2);
  return std::string(rest);
}

}  // namespace

std::string normalize_admin_command(std::string_view sql) {
  std::string out;
  bool space = false;
  for (char c : sql) {
    if (c == ';') break;
    if (is_space(c)) {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  return out;
}

admin_command parse_admin_command(std::string_view sql) {
  const auto cmd = normalize_admin_command(sql);
  struct named {
    std::string_view text;
    admin_verb verb;
  };
  static constexpr named exact[] = {
      {"", admin_verb::empty},
      {"SHOW POOLS", admin_verb::show_pools},
      {"SHOW STATS", admin_verb::show_stats},
      {"SHOW CLIENTS", admin_verb::show_clients},
      {"SHOW SERVERS", admin_verb::show_servers},
      {"SHOW DATABASES", admin_verb::show_databases},
      {"SHOW CONFIG", admin_verb::show_config},
      {"SHOW VERSION", admin_verb::show_version},
      {"SHOW ADVICE", admin_verb::show_advice},
      {"SHOW QUERIES", admin_verb::show_queries},
      {"RELOAD", admin_verb::reload},
      {"SHUTDOWN", admin_verb::shutdown},
  };
  for (const auto& e : exact)
    if (cmd == e.text) return {e.verb, {}};
  const bool pause = cmd == "PAUSE" || cmd.starts_with("PAUSE ");
  if (pause || cmd == "RESUME" || cmd.starts_with("RESUME "))
    return {pause ? admin_verb::pause : admin_verb::resume, command_argument(sql)};
  return {admin_verb::unknown, {}};
}

const char* admin_command_tag(admin_verb verb) noexcept {
  switch (verb) {
    case admin_verb::reload: return "RELOAD";
    case admin_verb::shutdown: return "SHUTDOWN";
    case admin_verb::pause: return "PAUSE";
    case admin_verb::resume: return "RESUME";
    default: return "SHOW";
  }
}

}  // namespace pgmux::protocol
