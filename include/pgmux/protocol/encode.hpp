// Builders for the messages pgmux itself sends. Each appends one message to `out`.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgmux/protocol/messages.hpp"

namespace pgmux::protocol {

// Towards clients (backend side).
void encode_authentication_ok(std::string& out);
void encode_authentication_cleartext_password(std::string& out);
// `salt` is the 4 random bytes the client mixes into its answer.
void encode_authentication_md5_password(std::string& out, std::string_view salt);
// AuthenticationSASL with the mechanisms offered, preferred first.
void encode_authentication_sasl(std::string& out, const std::vector<std::string_view>& mechanisms);
void encode_authentication_sasl_continue(std::string& out, std::string_view data);
void encode_authentication_sasl_final(std::string& out, std::string_view data);
void encode_parameter_status(std::string& out, std::string_view name, std::string_view value);
void encode_backend_key_data(std::string& out, cancel_key key);
void encode_ready_for_query(std::string& out, char status);
// severity is "ERROR" or "FATAL"; code a SQLSTATE.
void encode_error_response(std::string& out, std::string_view severity, std::string_view code,
                           std::string_view message, std::string_view detail = {});
void encode_notice_response(std::string& out, std::string_view code, std::string_view message);
// Result sets pgmux builds itself (the admin console), in text format. `type_oids` gives each
// column's type (text_oid, int8_oid); missing ones are text.
inline constexpr std::int32_t text_oid = 25;
inline constexpr std::int32_t int8_oid = 20;
void encode_row_description(std::string& out, const std::vector<std::string>& columns,
                            const std::vector<std::int32_t>& type_oids = {});
// An empty value in a column that is not text is sent as NULL.
void encode_data_row(std::string& out, const std::vector<std::string>& values,
                     const std::vector<std::int32_t>& type_oids = {});
void encode_command_complete(std::string& out, std::string_view tag);
void encode_empty_query_response(std::string& out);
// A single byte answer to SSLRequest / GSSENCRequest ('S' or 'N').
void encode_negotiation_answer(std::string& out, char answer);

// Towards servers (frontend side).
void encode_startup_message(std::string& out, const parameter_list& parameters);
void encode_ssl_request(std::string& out);
void encode_cancel_request(std::string& out, cancel_key key);
void encode_password_message(std::string& out, std::string_view password);
void encode_sasl_initial_response(std::string& out, std::string_view mechanism, std::string_view data);
void encode_sasl_response(std::string& out, std::string_view data);
void encode_query(std::string& out, std::string_view sql);
// One statement with parameters over the extended protocol, as PQexecParams sends it: Parse of
// the unnamed statement (parameter types left to the server), Bind of the unnamed portal with
// the parameters in text (nullopt: SQL NULL) and text results, Execute of all rows, Sync.
// Values never enter the SQL text.
void encode_parameterized_query(std::string& out, std::string_view sql,
                                const std::vector<std::optional<std::string_view>>& parameters);
void encode_sync(std::string& out);
void encode_flush(std::string& out);
void encode_copy_fail(std::string& out, std::string_view reason);
void encode_terminate(std::string& out);

}  // namespace pgmux::protocol
