// Restoring a client's startup values after its RESETs.
#include "pgmux/protocol/reset_restore.hpp"

#include <algorithm>

#include "pgmux/protocol/encode.hpp"

namespace pgmux::protocol {
namespace {

// The inserted statements' ordinals are bits of a 64-bit mask (tx_tracker::hidden_statements).
constexpr std::size_t max_statements = 64;

bool restores(const reset_statement& reset, const parameter_change& value) noexcept {
  return reset.name.empty() || parameter_name_equal(reset.name, value.name);
}

bool restores_some(const reset_statement& reset, std::span<const parameter_change> restorable) noexcept {
  return std::any_of(restorable.begin(), restorable.end(), [&](const auto& v) { return restores(reset, v); });
}

}  // namespace

std::vector<parameter_change> restorable_values(const session_settings& client_startup,
                                                const session_settings& server_login) {
  std::vector<parameter_change> out;
  for (std::size_t i = 0; i < client_startup.tracked.size(); ++i) {
    const auto& own = client_startup.tracked[i];
    if (own && own != server_login.tracked[i]) out.push_back({std::string(tracked_parameters[i]), own});
  }
  for (const auto& [name, value] : client_startup.extra) out.push_back({name, value});
  return out;
}

std::optional<restored_query> restore_after_resets(std::string_view sql, std::span<const reset_statement> resets,
                                                   std::span<const parameter_change> restorable) {
  restored_query out;
  std::size_t copied = 0;    // bytes of `sql` already in out.sql
  std::size_t inserted = 0;  // statements inserted so far
  for (const auto& reset : resets) {
    std::vector<parameter_change> values;
    for (const auto& value : restorable)
      if (restores(reset, value)) values.push_back(value);
    if (values.empty()) continue;
    const std::size_t ordinal = reset.ordinal + inserted + 1;
    if (ordinal >= max_statements) return std::nullopt;
    out.sql.append(sql.substr(copied, reset.end - copied));
    copied = reset.end;
    // The last statement may end without ';', in a -- comment even: a new line ends that.
    if (reset.end == 0 || sql[reset.end - 1] != ';') out.sql += "\n;";
    out.sql += build_set_sql(values);
    out.sql += ';';
    out.hidden |= std::uint64_t{1} << ordinal;
    ++inserted;
  }
  if (inserted == 0) return std::nullopt;
  out.sql.append(sql.substr(copied));
  return out;
}

bool restores_any(std::span<const reset_statement> resets, std::span<const parameter_change> restorable) noexcept {
  std::size_t inserted = 0;
  for (const auto& reset : resets) {
    if (!restores_some(reset, restorable)) continue;
    if (reset.ordinal + inserted + 1 >= max_statements) return false;
    ++inserted;
  }
  return inserted > 0;
}

std::uint64_t append_restored_query(std::string& out, std::string_view query, std::string_view sql,
                                    std::span<const reset_statement> resets,
                                    const std::vector<parameter_change>* restorable) {
  if (auto restored = restorable ? restore_after_resets(sql, resets, *restorable) : std::nullopt) {
    encode_query(out, restored->sql);
    return restored->hidden;
  }
  out.append(query);
  return 0;
}

bool may_reset(std::string_view sql) noexcept {
  // One pass looking for either word.
  auto fold = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  for (std::size_t i = 0; i < sql.size(); ++i) {
    const char c = fold(sql[i]);
    if (c == 'r' && sql.size() - i >= 5 && fold(sql[i + 1]) == 'e' && fold(sql[i + 2]) == 's' &&
        fold(sql[i + 3]) == 'e' && fold(sql[i + 4]) == 't')
      return true;
    if (c == 'd' && sql.size() - i >= 7 && fold(sql[i + 1]) == 'e' && fold(sql[i + 2]) == 'f' &&
        fold(sql[i + 3]) == 'a' && fold(sql[i + 4]) == 'u' && fold(sql[i + 5]) == 'l' && fold(sql[i + 6]) == 't')
      return true;
  }
  return false;
}

}  // namespace pgmux::protocol
