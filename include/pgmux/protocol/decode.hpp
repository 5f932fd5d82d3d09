// Decoders for the few message bodies pgmux must understand. Bodies come from frame::body.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgmux/protocol/messages.hpp"

namespace pgmux::protocol {

// An untagged packet's body (after the length). On failure returns nullopt and sets error.
std::optional<startup_packet> decode_startup_packet(std::string_view body, std::string& error);

std::optional<error_fields> decode_error_response(std::string_view body);
std::optional<authentication_request> decode_authentication(std::string_view body);
std::optional<std::pair<std::string, std::string>> decode_parameter_status(std::string_view body);
std::optional<cancel_key> decode_backend_key_data(std::string_view body);
std::optional<char> decode_ready_for_query(std::string_view body);
// NotificationResponse: the sending backend's pid, the channel and the payload, viewing `body`.
struct notification {
  std::int32_t pid = 0;
  std::string_view channel;
  std::string_view payload;
};
std::optional<notification> decode_notification(std::string_view body);
// The SQL text of a Query message.
std::optional<std::string_view> decode_query(std::string_view body);
// The mechanism names of an AuthenticationSASL request.
std::vector<std::string> decode_sasl_mechanisms(std::string_view data);
// DataRow: its columns, viewing `body`.
std::optional<data_row> decode_data_row(std::string_view body);

// Towards pgmux as a server: the client's answers during authentication, all 'p' messages
// told apart by the authentication request they answer.
// PasswordMessage: the password (cleartext method) or the md5 response, NUL-terminated.
std::optional<std::string_view> decode_password_message(std::string_view body);
std::optional<sasl_initial_response> decode_sasl_initial_response(std::string_view body);
// SASLResponse: the body is the mechanism's data, as is.
std::string_view decode_sasl_response(std::string_view body) noexcept;

}  // namespace pgmux::protocol
