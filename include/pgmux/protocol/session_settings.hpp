// The session settings a client expects and those a server connection has, so that a server
// connection handed to a client can be made to match it first.
// - Tracked parameters (session_params.hpp: client_encoding, DateStyle, TimeZone, ...) are
//   reported by the server in ParameterStatus, so the server side is always known; the client
//   side follows the client's startup values and every ParameterStatus the server sends it
//   (its own SETs, and their revert at the end of a transaction for SET LOCAL).
// - Other startup parameters (extra_float_digits, search_path, `options`' -c settings) are not
//   reported: pgmux knows only what it set itself on a server connection.
#pragma once
#include <array>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pgmux/protocol/messages.hpp"
#include "pgmux/protocol/session_params.hpp"

namespace pgmux::protocol {

struct session_settings {
  // Client: the values it set (startup, its own SETs); nullopt where it set none, which means
  // the server connection's own default. Server: the values it has; nullopt: not reported.
  std::array<std::optional<std::string>, tracked_parameters.size()> tracked;
  parameter_list extra;  // other settings: wanted (client) or applied by pgmux (server), in order
  // Server only: the session user as the server last reported it (ParameterStatus), so that a
  // connection whose identity changed in ways pgmux did not see in the SQL is never reused.
  std::optional<std::string> session_authorization;
  // Server only: settable parameters beyond the tracked ones whose value the server reported
  // since login (default_transaction_read_only set by a function, where pgmux could not read the
  // SET): reset before the connection serves another client, unless pgmux set them itself (see
  // changed_behind_our_back). At most max_changed names; past that the connection is closed.
  std::vector<std::string> changed_untracked;
  static constexpr std::size_t max_changed = 16;
  friend bool operator==(const session_settings&, const session_settings&) = default;
};

// The tracked values among a server's ParameterStatus messages (at its login), and its
// session_authorization.
session_settings settings_from_status(const parameter_list& reported);

// What a server reported at its login (its ParameterStatus messages), read once per pool and
// shared by every login: the list as reported, its tracked values (settings_from_status), and
// for each reported name its index into tracked_parameters or -1, so that a login reports the
// client's own values with no name lookup.
struct server_report {
  parameter_list parameters;
  session_settings settings;
  std::vector<signed char> tracked_index;  // parallel to parameters
  std::string encoded;                     // the ParameterStatus messages, one after another
  std::vector<std::size_t> encoded_end;    // where each parameter's message ends in `encoded`
};
server_report make_server_report(parameter_list reported);

// The ParameterStatus messages a server would send `client` at login: the report's, with the
// client's own value of each tracked parameter it set. Copied from the report's encoded messages
// but for those.
void encode_reported_parameters(std::string& out, const server_report& report, const session_settings& client);

// What a client asks for at startup: tracked parameters it sent, and the others (with
// `options`' settings, applied first as PostgreSQL does) as extras. user, database, options and
// replication themselves are not settings. nullopt with `error` set for an `options` value
// PostgreSQL would refuse or a parameter name that is not one.
std::optional<session_settings> settings_from_startup(const parameter_list& startup, std::string& error);

// The startup parameter `replication`, read as PostgreSQL reads it: "database" asks for a
// logical replication connection, a true boolean (true, on, yes, 1 and their prefixes) for a
// physical one, a false one or none for an ordinary connection. nullopt with `error` set for
// any other value.
enum class replication_mode { none, logical, physical };

// Names that mean the startup packet itself rather than a setting (user, database, options,
// replication, and the protocol's _pq_. extensions), in any case: never passed on as settings.
bool is_startup_packet_name(std::string_view name) noexcept;
std::optional<replication_mode> replication_from_startup(const parameter_list& startup, std::string& error);

// Changes that make `server` match `client`: each tracked value that differs from the client's,
// or where the client set none from the connection's own `server_defaults` (what it reported
// at login), extras that differ or are missing, and a reset for each extra the server has that
// the client has not.
std::vector<parameter_change> settings_changes(const session_settings& client, const session_settings& server,
                                               const session_settings& server_defaults);

// A client's SET of an untracked parameter, read back from the server at the end of its
// transaction (`value`, or nullopt when the parameter does not exist there): from now on the
// client wants it, and `server` has it. One list entry per parameter.
void note_carried_setting(session_settings& client, session_settings& server, std::string_view name,
                          const std::optional<std::string>& value);

// SELECT pg_catalog.current_setting(name, true), ... for `names`: their values now, NULL for
// a custom parameter that does not exist.
std::string build_read_settings_sql(std::span<const std::string> names);

// A ParameterStatus from the server while relaying: the server now has this value and, for a
// tracked parameter, so does the client from now on (a copy is made before `client` changes,
// as clients that set nothing share one empty value). session_authorization is noted on the
// server side only; other settable names go to changed_untracked.
void note_parameter_status(std::shared_ptr<const session_settings>* client, session_settings& server,
                           std::string_view name, std::string_view value);

// The backstop: of server.changed_untracked, the parameters pgmux did not set itself (not among
// its extras), as changes that reset them; empty when there are none. `overflow`: more changed
// than recorded, so the connection cannot be vouched for.
std::vector<parameter_change> changed_behind_our_back(const session_settings& server, bool& overflow);

}  // namespace pgmux::protocol
