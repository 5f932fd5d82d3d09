// Builders for the messages pgmux sends. The length is written as a placeholder and patched.
#include "pgmux/protocol/encode.hpp"

#include <cstdint>

#include "pgmux/protocol/tags.hpp"
#include "bytes.hpp"

namespace pgmux::protocol {
namespace {

using detail::begin;
using detail::finish;
using detail::put_cstr;
using detail::put_int32;

void encode_error_like(std::string& out, char tag, std::string_view severity, std::string_view code,
                       std::string_view message, std::string_view detail) {
  const auto at = begin(out, tag);
  out.push_back('S');
  put_cstr(out, severity);
  out.push_back('V');
  put_cstr(out, severity);
  out.push_back('C');
  put_cstr(out, code);
  out.push_back('M');
  put_cstr(out, message);
  if (!detail.empty()) {
    out.push_back('D');
    put_cstr(out, detail);
  }
  out.push_back('\0');
  finish(out, at);
}

}  // namespace

void encode_authentication_ok(std::string& out) {
  const auto at = begin(out, static_cast<char>(backend_tag::authentication));
  put_int32(out, static_cast<std::int32_t>(auth_code::ok));
  finish(out, at);
}

void encode_authentication_cleartext_password(std::string& out) {
  const auto at = begin(out, static_cast<char>(backend_tag::authentication));
  put_int32(out, static_cast<std::int32_t>(auth_code::cleartext_password));
  finish(out, at);
}

void encode_authentication_md5_password(std::string& out, std::string_view salt) {
  const auto at = begin(out, static_cast<char>(backend_tag::authentication));
  put_int32(out, static_cast<std::int32_t>(auth_code::md5_password));
  out.append(salt);
  finish(out, at);
}

void encode_authentication_sasl(std::string& out, const std::vector<std::string_view>& mechanisms) {
  const auto at = begin(out, static_cast<char>(backend_tag::authentication));
  put_int32(out, static_cast<std::int32_t>(auth_code::sasl));
  for (const auto m : mechanisms) put_cstr(out, m);
  out.push_back('\0');
  finish(out, at);
}

void encode_authentication_sasl_continue(std::string& out, std::string_view data) {
  const auto at = begin(out, static_cast<char>(backend_tag::authentication));
  put_int32(out, static_cast<std::int32_t>(auth_code::sasl_continue));
  out.append(data);
  finish(out, at);
}

void encode_authentication_sasl_final(std::string& out, std::string_view data) {
  const auto at = begin(out, static_cast<char>(backend_tag::authentication));
  put_int32(out, static_cast<std::int32_t>(auth_code::sasl_final));
  out.append(data);
  finish(out, at);
}

void encode_parameter_status(std::string& out, std::string_view name, std::string_view value) {
  const auto at = begin(out, static_cast<char>(backend_tag::parameter_status));
  put_cstr(out, name);
  put_cstr(out, value);
  finish(out, at);
}

void encode_backend_key_data(std::string& out, cancel_key key) {
  const auto at = begin(out, static_cast<char>(backend_tag::backend_key_data));
  put_int32(out, key.pid);
  put_int32(out, key.secret);
  finish(out, at);
}

void encode_ready_for_query(std::string& out, char status) {
  const auto at = begin(out, static_cast<char>(backend_tag::ready_for_query));
  out.push_back(status);
  finish(out, at);
}

void encode_error_response(std::string& out, std::string_view severity, std::string_view code,
                           std::string_view message, std::string_view detail) {
  encode_error_like(out, static_cast<char>(backend_tag::error_response), severity, code, message, detail);
}

void encode_notice_response(std::string& out, std::string_view code, std::string_view message) {
  encode_error_like(out, static_cast<char>(backend_tag::notice_response), "NOTICE", code, message, {});
}

namespace {

std::int32_t type_of(const std::vector<std::int32_t>& type_oids, std::size_t column) {
  return column < type_oids.size() ? type_oids[column] : text_oid;
}

}  // namespace

void encode_row_description(std::string& out, const std::vector<std::string>& columns,
                            const std::vector<std::int32_t>& type_oids) {
  const auto at = begin(out, static_cast<char>(backend_tag::row_description));
  out.push_back(static_cast<char>(columns.size() >> 8));
  out.push_back(static_cast<char>(columns.size()));
  for (std::size_t i = 0; i < columns.size(); ++i) {
    const auto type = type_of(type_oids, i);
    put_cstr(out, columns[i]);
    put_int32(out, 0);                   // table oid
    out.append({'\0', '\0'});            // column number
    put_int32(out, type);
    if (type == int8_oid) out.append({'\0', '\x08'});  // type size
    else out.append({'\xff', '\xff'});                 // variable
    put_int32(out, -1);                  // type modifier
    out.append({'\0', '\0'});            // text format
  }
  finish(out, at);
}

void encode_data_row(std::string& out, const std::vector<std::string>& values,
                     const std::vector<std::int32_t>& type_oids) {
  const auto at = begin(out, static_cast<char>(backend_tag::data_row));
  out.push_back(static_cast<char>(values.size() >> 8));
  out.push_back(static_cast<char>(values.size()));
  for (std::size_t i = 0; i < values.size(); ++i) {
    const auto& v = values[i];
    if (v.empty() && type_of(type_oids, i) != text_oid) {
      put_int32(out, -1);  // NULL
      continue;
    }
    put_int32(out, static_cast<std::int32_t>(v.size()));
    out.append(v);
  }
  finish(out, at);
}

void encode_command_complete(std::string& out, std::string_view tag) {
  const auto at = begin(out, static_cast<char>(backend_tag::command_complete));
  put_cstr(out, tag);
  finish(out, at);
}

void encode_empty_query_response(std::string& out) {
  const auto at = begin(out, static_cast<char>(backend_tag::empty_query_response));
  finish(out, at);
}

void encode_negotiation_answer(std::string& out, char answer) { out.push_back(answer); }

void encode_startup_message(std::string& out, const parameter_list& parameters) {
  const auto at = begin(out, 0);
  put_int32(out, protocol_version_3);
  for (const auto& [name, value] : parameters) {
    put_cstr(out, name);
    put_cstr(out, value);
  }
  out.push_back('\0');
  finish(out, at);
}

void encode_ssl_request(std::string& out) {
  const auto at = begin(out, 0);
  put_int32(out, ssl_request_code);
  finish(out, at);
}

void encode_cancel_request(std::string& out, cancel_key key) {
  const auto at = begin(out, 0);
  put_int32(out, cancel_request_code);
  put_int32(out, key.pid);
  put_int32(out, key.secret);
  finish(out, at);
}

void encode_password_message(std::string& out, std::string_view password) {
  const auto at = begin(out, static_cast<char>(frontend_tag::password_message));
  put_cstr(out, password);
  finish(out, at);
}

void encode_sasl_initial_response(std::string& out, std::string_view mechanism, std::string_view data) {
  const auto at = begin(out, static_cast<char>(frontend_tag::password_message));
  put_cstr(out, mechanism);
  put_int32(out, static_cast<std::int32_t>(data.size()));
  out.append(data);
  finish(out, at);
}

void encode_sasl_response(std::string& out, std::string_view data) {
  const auto at = begin(out, static_cast<char>(frontend_tag::password_message));
  out.append(data);
  finish(out, at);
}

void encode_query(std::string& out, std::string_view sql) {
  const auto at = begin(out, static_cast<char>(frontend_tag::query));
  put_cstr(out, sql);
  finish(out, at);
}

void encode_parameterized_query(std::string& out, std::string_view sql,
                                const std::vector<std::optional<std::string_view>>& parameters) {
  auto at = begin(out, static_cast<char>(frontend_tag::parse));
  put_cstr(out, "");  // the unnamed statement
  put_cstr(out, sql);
  out.append({'\0', '\0'});  // no parameter types given
  finish(out, at);

  at = begin(out, static_cast<char>(frontend_tag::bind));
  put_cstr(out, "");  // the unnamed portal
  put_cstr(out, "");  // of the unnamed statement
  out.append({'\0', '\0'});  // no format codes: every parameter in text
  out.push_back(static_cast<char>(parameters.size() >> 8));
  out.push_back(static_cast<char>(parameters.size()));
  for (const auto& p : parameters) {
    if (!p) {
      put_int32(out, -1);
      continue;
    }
    put_int32(out, static_cast<std::int32_t>(p->size()));
    out.append(*p);
  }
  out.append({'\0', '\0'});  // no result format codes: every column in text
  finish(out, at);

  at = begin(out, static_cast<char>(frontend_tag::execute));
  put_cstr(out, "");
  put_int32(out, 0);  // all rows
  finish(out, at);

  encode_sync(out);
}

void encode_sync(std::string& out) {
  const auto at = begin(out, static_cast<char>(frontend_tag::sync));
  finish(out, at);
}

void encode_flush(std::string& out) {
  const auto at = begin(out, static_cast<char>(frontend_tag::flush));
  finish(out, at);
}

void encode_copy_fail(std::string& out, std::string_view reason) {
  const auto at = begin(out, static_cast<char>(frontend_tag::copy_fail));
  put_cstr(out, reason);
  finish(out, at);
}

void encode_terminate(std::string& out) {
  const auto at = begin(out, static_cast<char>(frontend_tag::terminate));
  finish(out, at);
}

}  // namespace pgmux::protocol
