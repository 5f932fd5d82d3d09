// Certificate and key checks, and the tls-server-end-point data of SCRAM-SHA-256-PLUS.
// Cases:
//   the end-point hash is SHA-256 for MD5, SHA-1 and SHA-256 signatures, else the signature's own
//   the end-point data is the certificate hashed with that hash
//   a certificate whose signature names no hash has no end-point data
//   certificate files: at least one certificate, nothing unreadable
//   key files: unencrypted, and matching the certificate
//   CRL files need at least one CRL
#include <doctest/doctest.h>

#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include "pgmux/auth/certificates.hpp"
#include "support/test_certs.hpp"

using namespace pgmux::auth;

namespace {

std::string digest(const std::string& data, const EVP_MD* md) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, md, nullptr);
  return std::string(reinterpret_cast<const char*>(out), len);
}

}  // namespace

TEST_SUITE("certificates") {

TEST_CASE("the end-point hash is SHA-256 for MD5, SHA-1 and SHA-256 signatures, else the signature's own") {
  CHECK(end_point_hash_nid(NID_md5) == NID_sha256);
  CHECK(end_point_hash_nid(NID_sha1) == NID_sha256);
  CHECK(end_point_hash_nid(NID_sha256) == NID_sha256);
  CHECK(end_point_hash_nid(NID_sha224) == NID_sha224);
  CHECK(end_point_hash_nid(NID_sha384) == NID_sha384);
  CHECK(end_point_hash_nid(NID_sha512) == NID_sha512);
  CHECK(end_point_hash_nid(NID_undef) == NID_undef);
}

TEST_CASE("the end-point data is the certificate hashed with that hash") {
  struct variant {
    const char* name;
    const EVP_MD* sign_with;
    const EVP_MD* expected;
  };
  for (const auto& v : {variant{"sha1", EVP_sha1(), EVP_sha256()}, variant{"sha256", EVP_sha256(), EVP_sha256()},
                        variant{"sha384", EVP_sha384(), EVP_sha384()}, variant{"sha512", EVP_sha512(), EVP_sha512()}}) {
    CAPTURE(v.name);
    const auto pair = test_certs::self_signed("pgmux", v.sign_with);
    std::string error;
    const auto from_pem = tls_server_end_point_pem(pair.cert, error);
    CHECK(error.empty());
    CHECK(from_pem == digest(pair.der, v.expected));
    CHECK(tls_server_end_point_der(pair.der, error) == from_pem);
  }
  // MD5 with RSA too, for old certificates.
  const auto md5 = test_certs::self_signed("old", EVP_md5(), /*rsa=*/true);
  std::string error;
  CHECK(tls_server_end_point_der(md5.der, error) == digest(md5.der, EVP_sha256()));
}

TEST_CASE("a certificate whose signature names no hash has no end-point data") {
  const auto ed25519 = test_certs::self_signed("pgmux", nullptr);
  std::string error;
  CHECK(tls_server_end_point_pem(ed25519.cert, error).empty());
  CHECK_FALSE(error.empty());
  error.clear();
  CHECK(tls_server_end_point_pem("not a certificate", error).empty());
  CHECK_FALSE(error.empty());
}

TEST_CASE("certificate files: at least one certificate, nothing unreadable") {
  const auto a = test_certs::self_signed("a");
  const auto b = test_certs::self_signed("b");
  CHECK(check_certificates_pem(a.cert).empty());
  CHECK(check_certificates_pem(a.cert + b.cert).empty());  // a chain, or several CAs
  CHECK(check_certificates_pem("# comment\n" + a.cert).empty());
  CHECK(check_certificates_pem("").find("no certificate") != std::string::npos);
  CHECK(check_certificates_pem("cert\n").find("no certificate") != std::string::npos);
  CHECK_FALSE(check_certificates_pem(a.key).empty());
  // A damaged body is an error, not the end of the file.
  auto damaged = a.cert;
  damaged[damaged.size() / 2] = '!';
  CHECK_FALSE(check_certificates_pem(damaged).empty());
}

TEST_CASE("key files: unencrypted, and matching the certificate") {
  const auto a = test_certs::self_signed("a");
  const auto b = test_certs::self_signed("b");
  CHECK(check_key_pair_pem(a.cert, a.key).empty());
  CHECK(check_key_pair_pem(a.cert, b.key).find("does not match") != std::string::npos);
  CHECK(check_key_pair_pem(a.cert, test_certs::encrypted_key(a.key)).find("encrypted") != std::string::npos);
  CHECK(check_key_pair_pem(a.cert, "key\n").find("not a valid PEM private key") != std::string::npos);
  CHECK(check_key_pair_pem("cert", a.key).find("certificate") != std::string::npos);
}

TEST_CASE("CRL files need at least one CRL") {
  const auto a = test_certs::self_signed("a");
  CHECK(check_crls_pem(a.cert).find("no certificate revocation list") != std::string::npos);
  CHECK(check_crls_pem("").find("no certificate revocation list") != std::string::npos);
}

}  // TEST_SUITE
