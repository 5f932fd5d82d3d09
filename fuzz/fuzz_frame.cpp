// Message framing and the decoders of tagged message bodies, both directions: every message
// pgmux decodes from a client or a server. A body that decodes and has an encoder must encode
// back to the very bytes it came from (the decoders accept nothing else).
// Input: an option byte choosing max_message_size, then tagged messages back to back.
#include <string>

#include "fuzz_support.hpp"
#include "pgmux/protocol/decode.hpp"
#include "pgmux/protocol/encode.hpp"
#include "pgmux/protocol/extended.hpp"
#include "pgmux/protocol/frame.hpp"

using namespace pgmux::protocol;

namespace {

void check_body(char tag, std::string_view message, std::string_view body) {
  std::string out;
  auto round_trips = [&] { return out == message; };
  switch (tag) {
    case 'E': case 'N': {
      if (const auto f = decode_error_response(body)) FUZZ_CHECK(f->code.size() <= body.size());
      break;
    }
    case 'R': {
      const auto a = decode_authentication(body);
      FUZZ_CHECK(a.has_value() == (body.size() >= 4));
      if (a && a->code == 10) {
        for (const auto& m : decode_sasl_mechanisms(a->data)) FUZZ_CHECK(m.find('\0') == std::string::npos);
      }
      break;
    }
    case 'S': {
      if (const auto p = decode_parameter_status(body)) {
        encode_parameter_status(out, p->first, p->second);
        FUZZ_CHECK(round_trips());
      }
      // Sync has an empty body and no decoder: only the framing counts.
      break;
    }
    case 'K': {
      if (const auto k = decode_backend_key_data(body)) {
        encode_backend_key_data(out, *k);
        FUZZ_CHECK(round_trips());
      }
      break;
    }
    case 'Z': {
      if (const auto z = decode_ready_for_query(body)) {
        encode_ready_for_query(out, *z);
        FUZZ_CHECK(round_trips());
      }
      break;
    }
    case 'A': {
      if (const auto n = decode_notification(body))
        FUZZ_CHECK(n->channel.size() + n->payload.size() + 6 == body.size());
      break;
    }
    case 'Q': {
      if (const auto q = decode_query(body)) {
        encode_query(out, *q);
        FUZZ_CHECK(round_trips());
      }
      break;
    }
    case 'D': {
      // DataRow (backend) and Describe (frontend) share the tag.
      if (const auto row = decode_data_row(body)) {
        std::vector<std::string> values;
        bool nulls = false;
        for (const auto& v : *row) {
          if (v) {
            FUZZ_CHECK(v->data() >= body.data() && v->data() + v->size() <= body.data() + body.size());
            values.emplace_back(*v);
          } else {
            nulls = true;
          }
        }
        if (!nulls) {
          encode_data_row(out, values);
          FUZZ_CHECK(round_trips());
          out.clear();
        }
      }
      if (const auto d = decode_describe(body)) {
        encode_describe(out, d->kind, d->name);
        FUZZ_CHECK(round_trips());
      }
      break;
    }
    case 'C': {
      // Close (frontend); CommandComplete (backend) has no decoder.
      if (const auto c = decode_close(body)) {
        encode_close(out, c->kind, c->name);
        FUZZ_CHECK(round_trips());
      }
      break;
    }
    case 'P': {
      if (const auto p = decode_parse(body)) {
        FUZZ_CHECK(p->param_types.size() == 4u * p->param_count);
        encode_parse(out, p->name, p->query, p->param_types);
        FUZZ_CHECK(round_trips());
      }
      break;
    }
    case 'B': {
      // Also with only a prefix of the body, as the relay sees large Binds.
      for (std::size_t cut : {body.size(), body.size() / 2, std::size_t{3}}) {
        const auto names = decode_bind_names(body.substr(0, cut), body.size());
        if (names.status != parse_status::complete) continue;
        FUZZ_CHECK(names.names_size <= body.size() && names.names_size <= cut);
        FUZZ_CHECK(names.names_size == names.portal.size() + names.statement.size() + 2);
        encode_bind_header(out, body.size(), names.names_size, names.portal, names.statement);
        out.append(body.substr(names.names_size));
        FUZZ_CHECK(round_trips());
        out.clear();
      }
      break;
    }
    case 'p': {
      // PasswordMessage, SASLInitialResponse and SASLResponse share the tag.
      if (const auto pw = decode_password_message(body)) {
        encode_password_message(out, *pw);
        FUZZ_CHECK(round_trips());
        out.clear();
      }
      if (const auto sasl = decode_sasl_initial_response(body); sasl && sasl->data) {
        encode_sasl_initial_response(out, sasl->mechanism, *sasl->data);
        FUZZ_CHECK(round_trips());
        out.clear();
      }
      encode_sasl_response(out, decode_sasl_response(body));
      FUZZ_CHECK(round_trips());
      break;
    }
    default:
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pgmux::fuzz::input in(data, size);
  const std::size_t max_len = in.byte() & 1 ? 64 : 1 << 20;
  std::string_view rest = in.rest();
  while (!rest.empty()) {
    const auto h = parse_header(rest, max_len);
    const auto f = parse_frame(rest, max_len);
    FUZZ_CHECK(f.status == h.status || (h.status == parse_status::complete && f.status == parse_status::need_more));
    if (f.status == parse_status::invalid) {
      FUZZ_CHECK(f.error != nullptr);
      break;
    }
    if (f.status == parse_status::need_more) {
      FUZZ_CHECK(h.status == parse_status::need_more || rest.size() < h.hdr.total());
      break;
    }
    FUZZ_CHECK(f.consumed == h.hdr.total() && f.consumed <= rest.size() && f.consumed <= max_len);
    FUZZ_CHECK(f.msg.body.data() == rest.data() + header_size && f.msg.body.size() + header_size == f.consumed);
    check_body(f.msg.tag, rest.substr(0, f.consumed), f.msg.body);
    rest.remove_prefix(f.consumed);
  }
  return 0;
}
