// Matching a server connection's session settings to a client's.
#include "pgmux/protocol/session_settings.hpp"

#include "pgmux/protocol/encode.hpp"

#include <algorithm>

namespace pgmux::protocol {
namespace {

// Startup parameters that are not settings.
bool is_connection_parameter(std::string_view name) {
  return name == "user" || name == "database" || name == "options" || name == "replication";
}

// PostgreSQL's parse_bool: true, false, yes, no, on, off, 1, 0, any case, and unique prefixes.
std::optional<bool> parse_bool(std::string_view value) {
  std::string v;
  for (const char c : value) v.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  auto prefix_of = [&v](std::string_view word, std::size_t shortest) {
    return v.size() >= shortest && v.size() <= word.size() && word.substr(0, v.size()) == v;
  };
  if (prefix_of("true", 1) || prefix_of("yes", 1) || v == "on" || v == "1") return true;
  if (prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) || v == "0") return false;
  return std::nullopt;
}

// Sets `name` among the extras, replacing an earlier value of the same parameter.
void put_extra(parameter_list& extra, std::string_view name, std::string_view value) {
  for (auto& [n, v] : extra) {
    if (parameter_name_equal(n, name)) {
      v = value;
      return;
    }
  }
  extra.emplace_back(std::string(name), std::string(value));
}

const std::string* find_extra(const parameter_list& extra, std::string_view name) {
  for (const auto& [n, v] : extra)
    if (parameter_name_equal(n, name)) return &v;
  return nullptr;
}

}  // namespace

session_settings settings_from_status(const parameter_list& reported) {
  session_settings s;
  for (const auto& [name, value] : reported) {
    if (auto i = tracked_parameter_index(name)) s.tracked[*i] = value;
    else if (name == "session_authorization") s.session_authorization = value;
  }
  return s;
}

server_report make_server_report(parameter_list reported) {
  server_report r;
  r.settings = settings_from_status(reported);
  r.tracked_index.reserve(reported.size());
  for (const auto& [name, value] : reported) {
    const auto i = tracked_parameter_index(name);
    r.tracked_index.push_back(i ? static_cast<signed char>(*i) : static_cast<signed char>(-1));
    encode_parameter_status(r.encoded, name, value);
    r.encoded_end.push_back(r.encoded.size());
  }
  r.parameters = std::move(reported);
  return r;
}

void encode_reported_parameters(std::string& out, const server_report& report, const session_settings& client) {
  std::size_t copied = 0;  // the report's messages before this are in `out`
  for (std::size_t k = 0; k < report.parameters.size(); ++k) {
    const int i = report.tracked_index[k];
    if (i < 0) continue;
    const auto& own = client.tracked[static_cast<std::size_t>(i)];
    if (!own) continue;
    const std::size_t start = k == 0 ? 0 : report.encoded_end[k - 1];
    out.append(report.encoded, copied, start - copied);
    encode_parameter_status(out, report.parameters[k].first, *own);
    copied = report.encoded_end[k];
  }
  out.append(report.encoded, copied, std::string::npos);
}

std::optional<session_settings> settings_from_startup(const parameter_list& startup, std::string& error) {
  session_settings s;
  auto set = [&](std::string_view name, std::string_view value) -> bool {
    if (!valid_parameter_name(name)) {
      error = "invalid startup parameter name \"" + std::string(name) + "\"";
      return false;
    }
    if (auto i = tracked_parameter_index(name)) s.tracked[*i] = std::string(value);
    else put_extra(s.extra, name, value);
    return true;
  };
  // options first: explicit startup parameters override its settings, as in PostgreSQL.
  for (const auto& [name, value] : startup) {
    if (name != "options") continue;
    auto parsed = parse_startup_options(value, error);
    if (!parsed) return std::nullopt;
    for (const auto& [n, v] : *parsed)
      if (!set(n, v)) return std::nullopt;
  }
  for (const auto& [name, value] : startup) {
    if (is_connection_parameter(name)) continue;
    if (!set(name, value)) return std::nullopt;
  }
  return s;
}

bool is_startup_packet_name(std::string_view name) noexcept {
  return parameter_name_equal(name, "user") || parameter_name_equal(name, "database") ||
         parameter_name_equal(name, "options") || parameter_name_equal(name, "replication") ||
         (name.size() >= 5 && parameter_name_equal(name.substr(0, 5), "_pq_."));
}

std::optional<replication_mode> replication_from_startup(const parameter_list& startup, std::string& error) {
  auto mode = replication_mode::none;
  for (const auto& [name, value] : startup) {
    if (name != "replication") continue;
    if (value == "database") {
      mode = replication_mode::logical;
    } else if (const auto physical = parse_bool(value)) {
      mode = *physical ? replication_mode::physical : replication_mode::none;
    } else {
      error = "invalid value for parameter \"replication\": \"" + value + "\"";
      return std::nullopt;
    }
  }
  return mode;
}

std::vector<parameter_change> settings_changes(const session_settings& client, const session_settings& server,
                                               const session_settings& server_defaults) {
  std::vector<parameter_change> out;
  for (std::size_t i = 0; i < client.tracked.size(); ++i) {
    const auto& want = client.tracked[i] ? client.tracked[i] : server_defaults.tracked[i];
    if (want && want != server.tracked[i]) out.push_back({std::string(tracked_parameters[i]), want});
  }
  for (const auto& [name, value] : client.extra) {
    const auto* have = find_extra(server.extra, name);
    if (!have || *have != value) out.push_back({name, value});
  }
  for (const auto& [name, value] : server.extra)
    if (!find_extra(client.extra, name)) out.push_back({name, std::nullopt});
  return out;
}

void note_carried_setting(session_settings& client, session_settings& server, std::string_view name,
                          const std::optional<std::string>& value) {
  for (auto* list : {&client.extra, &server.extra}) {
    if (value) {
      put_extra(*list, name, *value);
    } else {
      std::erase_if(*list, [&](const auto& p) { return parameter_name_equal(p.first, name); });
    }
  }
}

std::string build_read_settings_sql(std::span<const std::string> names) {
  std::string sql;
  for (const auto& name : names) {
    sql += sql.empty() ? "SELECT " : ", ";
    sql += "pg_catalog.current_setting(" + quote_literal(name) + ", true)";
  }
  return sql;
}

std::vector<parameter_change> changed_behind_our_back(const session_settings& server, bool& overflow) {
  overflow = server.changed_untracked.size() > session_settings::max_changed;
  std::vector<parameter_change> out;
  for (const auto& name : server.changed_untracked)
    if (!find_extra(server.extra, name)) out.push_back({name, std::nullopt});
  return out;
}

void note_parameter_status(std::shared_ptr<const session_settings>* client, session_settings& server,
                           std::string_view name, std::string_view value) {
  const auto i = tracked_parameter_index(name);
  if (!i) {
    if (name == "session_authorization") {
      server.session_authorization = std::string(value);
      return;
    }
    // Reported but not settable (or following session_authorization): nothing to reset.
    if (name == "server_version" || name == "server_encoding" || name == "integer_datetimes" ||
        name == "in_hot_standby" || name == "is_superuser")
      return;
    auto& changed = server.changed_untracked;
    if (std::find(changed.begin(), changed.end(), name) != changed.end()) return;
    // One past the bound marks an overflow (changed_behind_our_back).
    if (changed.size() <= session_settings::max_changed) changed.emplace_back(name);
    return;
  }
  server.tracked[*i] = std::string(value);
  if (!client || !*client || (*client)->tracked[*i] == value) return;
  auto copy = std::make_shared<session_settings>(**client);
  copy->tracked[*i] = std::string(value);
  *client = std::move(copy);
}

}  // namespace pgmux::protocol
