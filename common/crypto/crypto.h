#pragma once
// Cryptographic helpers on OpenSSL: HMAC signatures, constant-time comparison,
// random tokens, SHA-256, and AES-256-GCM for secrets at rest.

#include <openssl/types.h>

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace assay {

// Raw (binary) HMAC-SHA256 / HMAC-SHA1 of `data` under `key`.
std::string HmacSha256(std::string_view key, std::string_view data);
std::string HmacSha1(std::string_view key, std::string_view data);
std::string Sha256(std::string_view data);
// Lowercase hex SHA-256 of `data`, and whether `s` is one (64 lowercase hex digits).
std::string HexSha256(std::string_view data);
bool IsHexSha256(std::string_view s);

// Incremental SHA-256 (OpenSSL EVP): Update as often as needed, then Hex() once, which ends it.
class Sha256Stream {
 public:
  Sha256Stream();
  ~Sha256Stream();
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;
  void Update(std::string_view data);
  std::string Hex();

 private:
  EVP_MD_CTX* ctx_;
};

std::string HexEncode(std::string_view bytes);  // lowercase
// kInvalidArgument on odd length or a non-hex character.
absl::StatusOr<std::string> HexDecode(std::string_view hex);

// Compares in time that depends only on the lengths, never on where the bytes differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// Checks a GitHub/Gitea-style signature header value ("sha256=<64 hex>" for GitHub,
// bare "<64 hex>" when `prefix` is empty) against HMAC-SHA256(secret, body).
// OK when it matches; kUnauthenticated naming what is wrong otherwise (missing header,
// wrong prefix, wrong length, not hex, mismatch). The comparison is constant-time.
absl::Status VerifyHmacSha256Signature(std::string_view header_value, std::string_view prefix,
                                       std::string_view secret, std::string_view body);

// `n` bytes from the OS CSPRNG (RAND_bytes), hex-encoded (2n characters).
std::string RandomHexToken(size_t n = 16);
std::string RandomBytes(size_t n);

// AES-256-GCM with a random 12-byte nonce; output is nonce || ciphertext || 16-byte tag.
// `key` must be 32 bytes (kInvalidArgument otherwise). Open fails with kDataLoss when the
// ciphertext was tampered with or the key is wrong.
// The format of values sealed before key ids (issue 8): no key id, no associated data. New
// code seals with assay::Seal (common/crypto/sealed.h); Open still reads this format.
absl::StatusOr<std::string> SealSecret(std::string_view key, std::string_view plaintext);
absl::StatusOr<std::string> OpenSecret(std::string_view key, std::string_view sealed);
// The same with `aad` authenticated as associated data (empty: none, as above).
absl::StatusOr<std::string> SealWithAad(std::string_view key, std::string_view plaintext,
                                        std::string_view aad);
absl::StatusOr<std::string> OpenWithAad(std::string_view key, std::string_view sealed,
                                        std::string_view aad);

}  // namespace assay
