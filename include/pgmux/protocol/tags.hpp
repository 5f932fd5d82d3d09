// Message type bytes of the PostgreSQL v3 protocol, named as in the PostgreSQL docs.
#pragma once
#include <cstdint>

namespace pgmux::protocol {

// Sent by the frontend (client -> server).
enum class frontend_tag : char {
  bind = 'B',
  close = 'C',
  copy_data = 'd',
  copy_done = 'c',
  copy_fail = 'f',
  describe = 'D',
  execute = 'E',
  flush = 'H',
  function_call = 'F',
  parse = 'P',
  password_message = 'p',  // also SASLInitialResponse, SASLResponse, GSSResponse
  query = 'Q',
  sync = 'S',
  terminate = 'X',
};

// Sent by the backend (server -> client).
enum class backend_tag : char {
  authentication = 'R',
  backend_key_data = 'K',
  bind_complete = '2',
  close_complete = '3',
  command_complete = 'C',
  copy_data = 'd',
  copy_done = 'c',
  copy_in_response = 'G',
  copy_out_response = 'H',
  copy_both_response = 'W',
  data_row = 'D',
  empty_query_response = 'I',
  error_response = 'E',
  function_call_response = 'V',
  negotiate_protocol_version = 'v',
  no_data = 'n',
  notice_response = 'N',
  notification_response = 'A',
  parameter_description = 't',
  parameter_status = 'S',
  parse_complete = '1',
  portal_suspended = 's',
  ready_for_query = 'Z',
  row_description = 'T',
};

// Codes in the first four body bytes of an untagged startup-family packet.
inline constexpr std::int32_t protocol_version_3 = 196608;       // 3.0
inline constexpr std::int32_t cancel_request_code = 80877102;    // 1234.5678
inline constexpr std::int32_t ssl_request_code = 80877103;       // 1234.5679
inline constexpr std::int32_t gssenc_request_code = 80877104;    // 1234.5680

// Authentication request codes carried by backend_tag::authentication.
enum class auth_code : std::int32_t {
  ok = 0,
  cleartext_password = 3,
  md5_password = 5,
  sasl = 10,
  sasl_continue = 11,
  sasl_final = 12,
};

// Transaction status byte of ReadyForQuery.
enum class tx_status : char { idle = 'I', in_transaction = 'T', failed = 'E' };

}  // namespace pgmux::protocol
