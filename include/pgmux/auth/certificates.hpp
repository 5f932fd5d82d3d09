// Certificates and keys in PEM, checked with OpenSSL's libcrypto before anything uses them
// (the config loader refuses files that would fail later), and the tls-server-end-point
// channel binding data of SCRAM-SHA-256-PLUS (RFC 5929 section 4.1). No sockets, no TLS sessions.
#pragma once
#include <string>
#include <string_view>

namespace pgmux::auth {

// Empty when `pem` holds at least one certificate and nothing unreadable; else what is wrong.
std::string check_certificates_pem(std::string_view pem);

// Empty when `key_pem` holds one unencrypted private key that belongs to the first certificate
// of `cert_pem` (the leaf of a chain); else what is wrong.
std::string check_key_pair_pem(std::string_view cert_pem, std::string_view key_pem);

// Empty when `pem` holds at least one certificate revocation list and nothing unreadable.
std::string check_crls_pem(std::string_view pem);

// The hash of tls-server-end-point for a certificate whose signature uses the hash
// `signature_hash_nid` (an OpenSSL NID): SHA-256 when that is MD5 or SHA-1, else the same hash
// (RFC 5929 section 4.1). 0 (NID_undef) when the signature names no hash (Ed25519, Ed448):
// such a certificate has no tls-server-end-point data, as PostgreSQL also decides.
int end_point_hash_nid(int signature_hash_nid) noexcept;

// The tls-server-end-point data of a DER certificate, raw bytes. Empty, with `error` set,
// when the certificate cannot be read or has no such data.
std::string tls_server_end_point_der(std::string_view der, std::string& error);

// The same for the first certificate of a PEM chain (pgmux's own server certificate).
std::string tls_server_end_point_pem(std::string_view pem, std::string& error);

}  // namespace pgmux::auth
