// Value types of the messages pgmux decodes or builds.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgmux::protocol {

using parameter_list = std::vector<std::pair<std::string, std::string>>;

// The key a client quotes in a CancelRequest (pid and secret of BackendKeyData).
struct cancel_key {
  std::int32_t pid = 0;
  std::int32_t secret = 0;
  friend bool operator==(const cancel_key&, const cancel_key&) = default;
};

struct startup_message {
  std::int32_t protocol = 0;
  parameter_list parameters;  // in the order sent, user and database included
  const std::string* find(std::string_view name) const noexcept;
  std::string user() const;
  std::string database() const;  // defaults to user, as in PostgreSQL
};

// Who a client logged in as: the user and database of its startup message. Clients with the
// same ones share one record (server_pool::shared_names).
struct login_names {
  std::string user;
  std::string database;
  friend bool operator==(const login_names&, const login_names&) = default;
};

enum class startup_kind { startup, ssl_request, gssenc_request, cancel_request };

struct startup_packet {
  startup_kind kind = startup_kind::startup;
  startup_message startup;  // when kind == startup
  cancel_key cancel;        // when kind == cancel_request
};

// Fields of ErrorResponse / NoticeResponse, by their one-letter codes.
struct error_fields {
  std::string severity;  // 'S' (localized) / 'V'
  std::string code;      // 'C' SQLSTATE
  std::string message;   // 'M'
  std::string detail;    // 'D'
  std::string hint;      // 'H'
};

// SASLInitialResponse (a 'p' message during SASL authentication): the mechanism the client
// picked and its initial response, which the client may leave out (length -1).
struct sasl_initial_response {
  std::string_view mechanism;
  std::optional<std::string_view> data;
};

// One column of a DataRow: nullopt for SQL NULL.
using data_row = std::vector<std::optional<std::string_view>>;

struct authentication_request {
  std::int32_t code = 0;
  std::string_view data;  // salt (md5), mechanism list (sasl), server data (sasl continue/final)
};

}  // namespace pgmux::protocol
