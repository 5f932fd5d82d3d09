// OpenSSL wrappers used by SCRAM and MD5.
#include "pgmux/auth/crypto.hpp"

#include <array>
#include <cstring>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cctype>
#include <stdexcept>

namespace pgmux::auth {

std::string sha256(std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string pbkdf2_sha256(std::string_view password, std::string_view salt, int iterations) {
  std::string out(32, '\0');
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                    iterations, EVP_sha256(), static_cast<int>(out.size()),
                    reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

std::string md5_hex(std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, EVP_md5(), nullptr);
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    hex.push_back(digits[out[i] >> 4]);
    hex.push_back(digits[out[i] & 15]);
  }
  return hex;
}

std::string base64_encode(std::string_view raw) {
  std::string out(4 * ((raw.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(raw.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  for (char c : text)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=')) return std::nullopt;
  // Padding only at the very end, at most two: EVP_DecodeBlock would take "Zg==Zg==" or "====".
  if (const auto pad_at = text.find('='); pad_at != std::string_view::npos &&
      (pad_at + 2 < text.size() || text.find_first_not_of('=', pad_at) != std::string_view::npos))
    return std::nullopt;
  std::string out(3 * text.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock keeps the bytes that padding stands for; drop them.
  std::size_t pad = 0;
  if (!text.empty() && text.back() == '=') ++pad;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++pad;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

std::string random_bytes(std::size_t n) {
  // Every login takes a few bytes (its cancel key, a SCRAM nonce): they come from a block per
  // thread that RAND_bytes fills 4 KiB at a time, which spares each login OpenSSL's generator
  // and its locks. Bytes handed out are wiped from the block.
  constexpr std::size_t block_size = 4096;
  thread_local std::array<unsigned char, block_size> block;
  thread_local std::size_t used = block_size;
  std::string out(n, '\0');
  auto* dest = reinterpret_cast<unsigned char*>(out.data());
  if (n > block_size / 8) {
    if (RAND_bytes(dest, static_cast<int>(n)) != 1) throw std::runtime_error("RAND_bytes failed");
    return out;
  }
  if (block_size - used < n) {
    if (RAND_bytes(block.data(), static_cast<int>(block_size)) != 1) throw std::runtime_error("RAND_bytes failed");
    used = 0;
  }
  std::memcpy(dest, block.data() + used, n);
  OPENSSL_cleanse(block.data() + used, n);
  used += n;
  return out;
}

std::string xor_bytes(std::string_view a, std::string_view b) {
  std::string out(a);
  for (std::size_t i = 0; i < out.size() && i < b.size(); ++i) out[i] = static_cast<char>(out[i] ^ b[i]);
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace pgmux::auth
