#include "common/crypto/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <memory>

#include "absl/strings/str_cat.h"

namespace assay {
namespace {

std::string Hmac(const EVP_MD* md, std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
constexpr size_t kNonce = 12, kTag = 16;

}  // namespace

std::string HmacSha256(std::string_view key, std::string_view data) {
  return Hmac(EVP_sha256(), key, data);
}
std::string HmacSha1(std::string_view key, std::string_view data) {
  return Hmac(EVP_sha1(), key, data);
}
std::string Sha256(std::string_view data) {
  unsigned char out[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out);
  return std::string(reinterpret_cast<char*>(out), sizeof(out));
}

std::string HexSha256(std::string_view data) { return HexEncode(Sha256(data)); }

bool IsHexSha256(std::string_view s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

Sha256Stream::Sha256Stream() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr);
}
Sha256Stream::~Sha256Stream() { EVP_MD_CTX_free(ctx_); }
void Sha256Stream::Update(std::string_view data) {
  EVP_DigestUpdate(ctx_, data.data(), data.size());
}
std::string Sha256Stream::Hex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx_, md, &n);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(md), n));
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    auto b = static_cast<unsigned char>(bytes[i]);
    out[2 * i] = kDigits[b >> 4];
    out[2 * i + 1] = kDigits[b & 15];
  }
  return out;
}

absl::StatusOr<std::string> HexDecode(std::string_view hex) {
  if (hex.size() % 2 != 0) return absl::InvalidArgumentError("hex string has odd length");
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      // Why name the character, not the pair: "0g" is wrong at offset 1.
      return absl::InvalidArgumentError(
          absl::StrCat("non-hex character at offset ", hi < 0 ? 2 * i : 2 * i + 1));
    }
    out[i] = static_cast<char>(hi * 16 + lo);
  }
  return out;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

absl::Status VerifyHmacSha256Signature(std::string_view header_value, std::string_view prefix,
                                       std::string_view secret, std::string_view body) {
  if (header_value.empty()) return absl::UnauthenticatedError("signature header is missing");
  if (header_value.substr(0, prefix.size()) != prefix) {
    return absl::UnauthenticatedError(
        absl::StrCat("signature must start with \"", std::string(prefix), "\""));
  }
  std::string_view hex = header_value.substr(prefix.size());
  if (hex.size() != 64) {
    return absl::UnauthenticatedError(
        absl::StrCat("signature must be 64 hex characters after the prefix, got ", hex.size()));
  }
  auto given = HexDecode(hex);
  if (!given.ok()) return absl::UnauthenticatedError("signature is not hexadecimal");
  if (!ConstantTimeEquals(*given, HmacSha256(secret, body))) {
    return absl::UnauthenticatedError("signature does not match the body");
  }
  return absl::OkStatus();
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    // Why abort: continuing with predictable tokens would be a silent security hole.
    std::abort();
  }
  return out;
}

std::string RandomHexToken(size_t n) { return HexEncode(RandomBytes(n)); }

absl::StatusOr<std::string> SealWithAad(std::string_view key, std::string_view plaintext,
                                        std::string_view aad) {
  if (key.size() != 32) return absl::InvalidArgumentError("secret key must be 32 bytes");
  std::unique_ptr<EVP_CIPHER_CTX, CtxFree> ctx(EVP_CIPHER_CTX_new());
  std::string nonce = RandomBytes(kNonce);
  std::string out = nonce;
  out.resize(kNonce + plaintext.size() + kTag);
  auto* k = reinterpret_cast<const unsigned char*>(key.data());
  auto* iv = reinterpret_cast<const unsigned char*>(nonce.data());
  auto* dst = reinterpret_cast<unsigned char*>(out.data()) + kNonce;
  int len = 0, fin = 0, aad_len = 0;
  if (EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, k, iv) != 1 ||
      (!aad.empty() && EVP_EncryptUpdate(ctx.get(), nullptr, &aad_len,
                                         reinterpret_cast<const unsigned char*>(aad.data()),
                                         static_cast<int>(aad.size())) != 1) ||
      EVP_EncryptUpdate(ctx.get(), dst, &len,
                        reinterpret_cast<const unsigned char*>(plaintext.data()),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), dst + len, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTag, dst + len + fin) != 1) {
    return absl::InternalError("AES-GCM encryption failed");
  }
  return out;
}

absl::StatusOr<std::string> OpenWithAad(std::string_view key, std::string_view sealed,
                                        std::string_view aad) {
  if (key.size() != 32) return absl::InvalidArgumentError("secret key must be 32 bytes");
  if (sealed.size() < kNonce + kTag) return absl::DataLossError("sealed secret is truncated");
  std::unique_ptr<EVP_CIPHER_CTX, CtxFree> ctx(EVP_CIPHER_CTX_new());
  size_t n = sealed.size() - kNonce - kTag;
  std::string out(n, '\0');
  auto* src = reinterpret_cast<const unsigned char*>(sealed.data());
  auto* dst = reinterpret_cast<unsigned char*>(out.data());
  std::string tag(sealed.substr(kNonce + n));
  int len = 0, fin = 0, aad_len = 0;
  if (EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                         reinterpret_cast<const unsigned char*>(key.data()), src) != 1 ||
      (!aad.empty() && EVP_DecryptUpdate(ctx.get(), nullptr, &aad_len,
                                         reinterpret_cast<const unsigned char*>(aad.data()),
                                         static_cast<int>(aad.size())) != 1) ||
      EVP_DecryptUpdate(ctx.get(), dst, &len, src + kNonce, static_cast<int>(n)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTag, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), dst + len, &fin) != 1) {
    return absl::DataLossError("sealed secret failed authentication (wrong key or tampered)");
  }
  return out;
}

absl::StatusOr<std::string> SealSecret(std::string_view key, std::string_view plaintext) {
  return SealWithAad(key, plaintext, "");
}

absl::StatusOr<std::string> OpenSecret(std::string_view key, std::string_view sealed) {
  return OpenWithAad(key, sealed, "");
}

}  // namespace assay
