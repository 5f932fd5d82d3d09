// OpenSSL wrappers: digests, MAC, key derivation, base64.
// Cases:
//   sha256, hmac_sha256, pbkdf2_sha256 and md5_hex match published vectors
//   base64 encodes the RFC 4648 vectors, every padding case
//   base64 round trips arbitrary bytes of every length
//   base64 decode rejects garbage
//   xor_bytes and random_bytes
//   constant_time_equal compares contents and lengths
#include <doctest/doctest.h>

#include <set>

#include <random>
#include <string>

#include "pgmux/auth/crypto.hpp"

using namespace pgmux::auth;

namespace {
std::string hex(std::string_view raw) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}
}  // namespace

TEST_SUITE("crypto") {

TEST_CASE("sha256, hmac_sha256, pbkdf2_sha256 and md5_hex match published vectors") {
  // FIPS 180-2 "abc"; RFC 4231 test case 2; RFC 7914 section 11 / common PBKDF2-SHA256 vectors; RFC 1321.
  CHECK(hex(sha256("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(hex(sha256("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(hex(hmac_sha256("Jefe", "what do ya want for nothing?")) ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  CHECK(hex(pbkdf2_sha256("password", "salt", 1)) == "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b");
  CHECK(hex(pbkdf2_sha256("password", "salt", 4096)) ==
        "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a");
  CHECK(md5_hex("") == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(md5_hex("abc") == "900150983cd24fb0d6963f7d28e17f72");
}

TEST_CASE("base64 encodes the RFC 4648 vectors, every padding case") {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [raw, text] : vectors) {
    CAPTURE(raw);
    CHECK(base64_encode(raw) == text);
    const auto back = base64_decode(text);
    REQUIRE(back);
    CHECK(*back == raw);
  }
}

TEST_CASE("base64 round trips arbitrary bytes of every length") {
  std::mt19937 rng(4648);
  std::uniform_int_distribution<int> byte(0, 255);
  for (std::size_t n = 0; n < 70; ++n) {
    std::string raw(n, '\0');
    for (auto& c : raw) c = static_cast<char>(byte(rng));
    const auto text = base64_encode(raw);
    CHECK(text.size() == 4 * ((n + 2) / 3));
    const auto back = base64_decode(text);
    REQUIRE(back);
    CHECK(*back == raw);
  }
  // Trailing zero bytes must survive (they look like padding to a careless decoder).
  const std::string zeros("\0\0\0\0\0", 5);
  const auto back = base64_decode(base64_encode(zeros));
  REQUIRE(back);
  CHECK(*back == zeros);
}

TEST_CASE("base64 decode rejects garbage") {
  for (const char* bad : {"Zg=", "Zg", "Z", "Zm9v!", "Zm9v*A==", "Zm 9", "Zm9v\n", "Zg==Zg==", "=Zg=", "Z=g=",
                          "Zm=v", "====", "Z===", "\xc3\xa9\xc3\xa9"}) {
    const std::string text = bad;
    CAPTURE(text);
    CHECK_FALSE(base64_decode(text));
  }
}

TEST_CASE("xor_bytes and random_bytes") {
  CHECK(xor_bytes(std::string("\x0f\xf0\xff", 3), std::string("\xff\xff\x0f", 3)) == std::string("\xf0\x0f\xf0", 3));
  const auto a = random_bytes(32), b = random_bytes(32);
  CHECK(a.size() == 32);
  CHECK(b.size() == 32);
  CHECK(a != b);
  CHECK(random_bytes(0).empty());
  // Small draws come from a per-thread block refilled 4 KiB at a time: across refills they stay
  // distinct, and large draws bypass the block.
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) seen.insert(random_bytes(8));
  CHECK(seen.size() == 2000);
  CHECK(random_bytes(5000).size() == 5000);
}

TEST_CASE("constant_time_equal compares contents and lengths") {
  CHECK(constant_time_equal("", ""));
  CHECK(constant_time_equal("abc", "abc"));
  CHECK(constant_time_equal(std::string("a\0b", 3), std::string("a\0b", 3)));
  CHECK_FALSE(constant_time_equal(std::string("a\0b", 3), std::string("a\0c", 3)));
  CHECK_FALSE(constant_time_equal("abc", "abd"));
  CHECK_FALSE(constant_time_equal("abc", "ab"));
  CHECK_FALSE(constant_time_equal("", "a"));
}

}  // TEST_SUITE
