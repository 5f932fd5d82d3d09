// Choosing a client authentication method from the rules and the connection.
#include "pgmux/auth/client_auth.hpp"

namespace pgmux::auth {
namespace {

std::string who_text(const client_identity& who) {
  return "host \"" + describe_peer(who.peer) + "\", user \"" + std::string(who.user) + "\", database \"" +
         std::string(who.database) + "\"";
}

method_choice refuse(std::optional<std::size_t> rule, std::string reason, std::string detail) {
  method_choice c;
  c.method = auth_method::reject;
  c.rule = rule;
  c.reason = std::move(reason);
  c.detail = std::move(detail);
  return c;
}

}  // namespace

std::string describe_peer(const client_peer& peer) { return peer.unix_socket ? "[local]" : peer.address.to_string(); }

bool needs_secret(auth_method m) noexcept {
  return m == auth_method::scram_sha_256 || m == auth_method::md5 || m == auth_method::password;
}

std::string password_failed_message(std::string_view user) {
  return "password authentication failed for user \"" + std::string(user) + "\"";
}

method_choice choose_client_method(const client_auth_policy& policy, const client_identity& who) {
  const auto index = match_rule(policy.rules, who.database, who.user, who.peer);
  // As pg_hba.conf: a reject rule and no rule at all read the same to the client. The texts are
  // made only for a refusal: this runs at every login.
  const auto not_allowed = [&] { return "no pgmux auth rule allows connection for " + who_text(who); };
  if (!index) return refuse(std::nullopt, not_allowed(), "no auth rule matches");
  const auto rule_name = [&] { return "auth rule " + std::to_string(*index); };
  switch (policy.rules[*index].method) {
    case auth_method::reject:
      return refuse(index, not_allowed(), rule_name() + " rejects");
    case auth_method::cert:
      // The certificate itself is checked by the exchange (it came with the TLS handshake).
      if (!who.tls)
        return refuse(index, "connection requires a valid client certificate: " + rule_name() +
                      " asks for certificate authentication, which needs TLS, and this connection does not use it",
                      rule_name() + " asks for cert, and the client did not use TLS");
      break;
    case auth_method::password:
      if (!who.peer.unix_socket && !who.tls && !policy.allow_cleartext_without_tls)
        return refuse(index, rule_name() + " asks for the password method, which would send the password in clear "
                      "text over TCP without TLS; pgmux refuses that unless auth.allow_cleartext_without_tls is set",
                      rule_name() + " asks for a cleartext password over TCP without TLS");
      break;
    case auth_method::scram_sha_256:
    case auth_method::md5:
    case auth_method::trust:
      break;
  }
  method_choice c;
  c.method = policy.rules[*index].method;
  c.rule = index;
  return c;
}

}  // namespace pgmux::auth
