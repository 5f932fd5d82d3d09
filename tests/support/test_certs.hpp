// Throwaway certificates for unit tests, made in memory with libcrypto: a self-signed
// certificate for a name, signed with the hash a test asks for, and its key, in PEM.
#pragma once
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace test_certs {

struct pem_pair {
  std::string cert;
  std::string key;
  std::string der;  // the certificate in DER
};

inline std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

// An EC P-256 key (or RSA 2048 when `rsa`), PEM.
inline EVP_PKEY* new_key(bool rsa = false) {
  EVP_PKEY* key = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
  if (!key) throw std::runtime_error("key generation failed");
  return key;
}

// A self-signed certificate with CN `cn`, signed with `md` (nullptr: a key type whose
// signature names no hash, Ed25519).
inline pem_pair self_signed(const std::string& cn, const EVP_MD* md = EVP_sha256(), bool rsa = false) {
  EVP_PKEY* key = md ? new_key(rsa) : EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (!key) throw std::runtime_error("key generation failed");
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key_owner(key, &EVP_PKEY_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), &X509_free);
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  if (X509_sign(cert.get(), key, md) == 0) throw std::runtime_error("X509_sign failed");

  pem_pair out;
  std::unique_ptr<BIO, decltype(&BIO_free)> c(BIO_new(BIO_s_mem()), &BIO_free), k(BIO_new(BIO_s_mem()), &BIO_free);
  PEM_write_bio_X509(c.get(), cert.get());
  PEM_write_bio_PrivateKey(k.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  out.cert = bio_text(c.get());
  out.key = bio_text(k.get());
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert.get(), &der);
  out.der.assign(reinterpret_cast<const char*>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  return out;
}

// `key` encrypted with a passphrase, PEM.
inline std::string encrypted_key(const std::string& key_pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> in(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())), &BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(PEM_read_bio_PrivateKey(in.get(), nullptr, nullptr, nullptr),
                                                          &EVP_PKEY_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), &BIO_free);
  char pass[] = "secret";
  PEM_write_bio_PrivateKey(out.get(), key.get(), EVP_aes_128_cbc(), nullptr, 0, nullptr, pass);
  return bio_text(out.get());
}

}  // namespace test_certs
