// PEM checks and tls-server-end-point hashes with libcrypto.
#include "pgmux/auth/certificates.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>

namespace pgmux::auth {
namespace {

struct bio_free {
  void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct x509_free {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
struct pkey_free {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
struct crl_free {
  void operator()(X509_CRL* c) const noexcept { X509_CRL_free(c); }
};
using bio_ptr = std::unique_ptr<BIO, bio_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using crl_ptr = std::unique_ptr<X509_CRL, crl_free>;

bio_ptr memory_bio(std::string_view data) {
  return bio_ptr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

// The text of OpenSSL's last queued error, and the queue emptied.
std::string openssl_error() {
  const unsigned long code = ERR_peek_last_error();
  char text[256] = "unknown error";
  if (code != 0) ERR_error_string_n(code, text, sizeof text);
  ERR_clear_error();
  return text;
}

// True when the last failed PEM read only ran out of objects (the normal end of a file).
bool at_end_of_pem() {
  const unsigned long code = ERR_peek_last_error();
  const bool end = code == 0 || (ERR_GET_LIB(code) == ERR_LIB_PEM && ERR_GET_REASON(code) == PEM_R_NO_START_LINE);
  if (end) ERR_clear_error();
  return end;
}

// Never asked: an encrypted key cannot be read, which is what the caller reports.
int no_passphrase(char*, int, int, void*) { return 0; }

// Reads every object of a PEM text with `read_one`; how many, or -1 (with `error`) when one is unreadable.
template <typename ReadOne>
int count_pem_objects(std::string_view pem, ReadOne read_one, std::string& error) {
  ERR_clear_error();
  auto bio = memory_bio(pem);
  if (!bio) {
    error = "out of memory";
    return -1;
  }
  int n = 0;
  while (read_one(bio.get())) ++n;
  if (!at_end_of_pem()) {
    error = openssl_error();
    return -1;
  }
  return n;
}

}  // namespace

std::string check_certificates_pem(std::string_view pem) {
  std::string error;
  const int n = count_pem_objects(pem, [](BIO* b) { return x509_ptr(PEM_read_bio_X509(b, nullptr, nullptr, nullptr)) != nullptr; },
                                  error);
  if (n < 0) return "not a valid PEM certificate file: " + error;
  if (n == 0) return "no certificate in the file (expected PEM \"-----BEGIN CERTIFICATE-----\")";
  return {};
}

std::string check_crls_pem(std::string_view pem) {
  std::string error;
  const int n = count_pem_objects(
      pem, [](BIO* b) { return crl_ptr(PEM_read_bio_X509_CRL(b, nullptr, nullptr, nullptr)) != nullptr; }, error);
  if (n < 0) return "not a valid PEM CRL file: " + error;
  if (n == 0) return "no certificate revocation list in the file (expected PEM \"-----BEGIN X509 CRL-----\")";
  return {};
}

std::string check_key_pair_pem(std::string_view cert_pem, std::string_view key_pem) {
  ERR_clear_error();
  auto cert_bio = memory_bio(cert_pem);
  x509_ptr cert(cert_bio ? PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) return "cannot read the certificate: " + openssl_error();
  auto key_bio = memory_bio(key_pem);
  pkey_ptr key(key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, &no_passphrase, nullptr) : nullptr);
  if (!key) {
    const bool encrypted = key_pem.find("ENCRYPTED") != std::string_view::npos;
    ERR_clear_error();
    return encrypted ? "the private key is encrypted; pgmux cannot ask for a passphrase: decrypt it "
                       "(openssl pkey -in KEY -out KEY.plain)"
                     : "not a valid PEM private key";
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return "the private key does not match the certificate";
  }
  return {};
}

int end_point_hash_nid(int signature_hash_nid) noexcept {
  switch (signature_hash_nid) {
    case NID_undef: return NID_undef;
    case NID_md5:
    case NID_sha1:
    case NID_sha256: return NID_sha256;
    default: return signature_hash_nid;
  }
}

namespace {

std::string end_point_of(X509* cert, std::string& error) {
  int hash_nid = NID_undef;
  if (!OBJ_find_sigid_algs(X509_get_signature_nid(cert), &hash_nid, nullptr)) {
    error = "the certificate's signature algorithm is unknown";
    return {};
  }
  const int nid = end_point_hash_nid(hash_nid);
  const EVP_MD* md = nid == NID_undef ? nullptr : EVP_get_digestbynid(nid);
  if (!md) {
    error = "the certificate's signature algorithm names no hash usable for tls-server-end-point";
    return {};
  }
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, md, out, &len) != 1) {
    error = "cannot hash the certificate: " + openssl_error();
    return {};
  }
  return std::string(reinterpret_cast<const char*>(out), len);
}

}  // namespace

std::string tls_server_end_point_der(std::string_view der, std::string& error) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  x509_ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!cert) {
    error = "cannot read the certificate: " + openssl_error();
    return {};
  }
  return end_point_of(cert.get(), error);
}

std::string tls_server_end_point_pem(std::string_view pem, std::string& error) {
  ERR_clear_error();
  auto bio = memory_bio(pem);
  x509_ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) {
    error = "cannot read the certificate: " + openssl_error();
    return {};
  }
  return end_point_of(cert.get(), error);
}

}  // namespace pgmux::auth
