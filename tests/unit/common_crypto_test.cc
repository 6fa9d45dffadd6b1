// Crypto helpers: known vectors, exact signature errors, AES-GCM sealing and tampering.

#include <catch2/catch.hpp>
#include <cctype>
#include <string>

#include "common/crypto/crypto.h"

namespace assay {
namespace {

TEST_CASE("crypto: HMAC and SHA-256 known vectors", "[unit][crypto]") {
  // RFC 4231, test case 2.
  CHECK(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")) ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // RFC 2202, test case 2 (HMAC-SHA1).
  CHECK(HexEncode(HmacSha1("Jefe", "what do ya want for nothing?")) ==
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
  // FIPS 180-2, "abc".
  CHECK(HexEncode(Sha256("abc")) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(HexEncode(Sha256("")) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("crypto: VerifyHmacSha256Signature", "[unit][crypto]") {
  const std::string secret = "It's a Secret to Everybody";
  const std::string body = "Hello, World!";
  // GitHub's documented example for this secret and body.
  const std::string hex = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
  CHECK(HexEncode(HmacSha256(secret, body)) == hex);

  CHECK(VerifyHmacSha256Signature("sha256=" + hex, "sha256=", secret, body).ok());
  CHECK(VerifyHmacSha256Signature(hex, "", secret, body).ok());
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  CHECK(VerifyHmacSha256Signature("sha256=" + upper, "sha256=", secret, body).ok());

  auto expect = [&](const std::string& header, const std::string& message,
                    const std::string& prefix = "sha256=") {
    absl::Status s = VerifyHmacSha256Signature(header, prefix, secret, body);
    INFO("header: " << header);
    CHECK(s.code() == absl::StatusCode::kUnauthenticated);
    CHECK(s.message() == message);
  };
  expect("", "signature header is missing");
  expect("sha1=" + std::string(40, 'a'), "signature must start with \"sha256=\"");
  expect("SHA256=" + hex, "signature must start with \"sha256=\"");
  expect("sha256", "signature must start with \"sha256=\"");
  expect("sha256=" + hex.substr(0, 63),
         "signature must be 64 hex characters after the prefix, got 63");
  expect("sha256=" + hex + "00", "signature must be 64 hex characters after the prefix, got 66");
  expect("sha256=", "signature must be 64 hex characters after the prefix, got 0");
  expect("sha256=" + hex, "signature must be 64 hex characters after the prefix, got 71", "");
  expect("sha256=" + hex.substr(0, 63) + "g", "signature is not hexadecimal");
  expect("sha256=" + std::string(64, ' '), "signature is not hexadecimal");
  std::string flipped = hex;
  flipped[0] = flipped[0] == '7' ? '8' : '7';
  expect("sha256=" + flipped, "signature does not match the body");
  // The right signature for another body or secret does not match.
  absl::Status other = VerifyHmacSha256Signature("sha256=" + hex, "sha256=", secret, body + " ");
  CHECK(other.message() == "signature does not match the body");
  other = VerifyHmacSha256Signature("sha256=" + hex, "sha256=", "another secret", body);
  CHECK(other.message() == "signature does not match the body");
}

TEST_CASE("crypto: hex encoding and decoding", "[unit][crypto]") {
  const std::string bytes("\x00\x01\x7f\x80\xfe\xff", 6);
  CHECK(HexEncode(bytes) == "00017f80feff");
  auto back = HexDecode("00017f80feff");
  REQUIRE(back.ok());
  CHECK(*back == bytes);
  auto upper = HexDecode("00017F80FEFF");
  REQUIRE(upper.ok());
  CHECK(*upper == bytes);
  auto empty = HexDecode("");
  REQUIRE(empty.ok());
  CHECK(empty->empty());

  auto odd = HexDecode("abc");
  CHECK(odd.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(odd.status().message() == "hex string has odd length");
  auto bad = HexDecode("zz00");
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(bad.status().message() == "non-hex character at offset 0");
  bad = HexDecode("0g");
  CHECK(bad.status().message() == "non-hex character at offset 1");
  bad = HexDecode("00ab0x");
  CHECK(bad.status().message() == "non-hex character at offset 5");
  bad = HexDecode("00 1");
  CHECK(bad.status().message() == "non-hex character at offset 2");

  CHECK(ConstantTimeEquals("abc", "abc"));
  CHECK_FALSE(ConstantTimeEquals("abc", "abd"));
  CHECK_FALSE(ConstantTimeEquals("abc", "abcd"));
  CHECK(ConstantTimeEquals("", ""));

  const std::string token = RandomHexToken(16);
  CHECK(token.size() == 32);
  CHECK(token.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(RandomHexToken(16) != token);
  CHECK(RandomHexToken(4).size() == 8);
  CHECK(RandomBytes(0).empty());
}

TEST_CASE("crypto: SealSecret / OpenSecret", "[unit][crypto]") {
  const std::string key(32, '\x11');
  const std::string plain("webhook secret \x00\xff", 17);
  auto sealed = SealSecret(key, plain);
  REQUIRE(sealed.ok());
  CHECK(sealed->size() == 12 + plain.size() + 16);
  auto opened = OpenSecret(key, *sealed);
  REQUIRE(opened.ok());
  CHECK(*opened == plain);

  auto sealed2 = SealSecret(key, plain);
  REQUIRE(sealed2.ok());
  CHECK(*sealed2 != *sealed);  // a fresh nonce every time
  CHECK(sealed2->substr(0, 12) != sealed->substr(0, 12));

  auto empty = SealSecret(key, "");
  REQUIRE(empty.ok());
  CHECK(empty->size() == 28);
  auto empty_open = OpenSecret(key, *empty);
  REQUIRE(empty_open.ok());
  CHECK(empty_open->empty());

  const std::string tampered_msg = "sealed secret failed authentication (wrong key or tampered)";
  // Flip one bit in the nonce, the ciphertext and the tag: each is detected.
  for (size_t pos : {size_t{0}, size_t{11}, size_t{12}, size_t{12 + 16}, sealed->size() - 1}) {
    std::string t = *sealed;
    t[pos] = static_cast<char>(t[pos] ^ 0x01);
    auto r = OpenSecret(key, t);
    INFO("flipped byte " << pos);
    CHECK(r.status().code() == absl::StatusCode::kDataLoss);
    CHECK(r.status().message() == tampered_msg);
  }
  auto wrong_key = OpenSecret(std::string(32, '\x12'), *sealed);
  CHECK(wrong_key.status().code() == absl::StatusCode::kDataLoss);
  CHECK(wrong_key.status().message() == tampered_msg);
  auto longer = OpenSecret(key, *sealed + "x");
  CHECK(longer.status().code() == absl::StatusCode::kDataLoss);
  auto truncated = OpenSecret(key, sealed->substr(0, 27));
  CHECK(truncated.status().code() == absl::StatusCode::kDataLoss);
  CHECK(truncated.status().message() == "sealed secret is truncated");

  for (size_t n : {size_t{0}, size_t{16}, size_t{31}, size_t{33}}) {
    INFO("key size " << n);
    auto s = SealSecret(std::string(n, 'k'), plain);
    CHECK(s.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(s.status().message() == "secret key must be 32 bytes");
    auto o = OpenSecret(std::string(n, 'k'), *sealed);
    CHECK(o.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(o.status().message() == "secret key must be 32 bytes");
  }
}

}  // namespace
}  // namespace assay
