#include "server/webhook/verify.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <stdexcept>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"

namespace assay::webhook {
namespace {

bool IsHex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex) return false;
  }
  return true;
}

absl::StatusOr<HookAuth> HexSignature(const std::string& name, const std::string& value,
                                      const std::string& prefix) {
  if (value.empty()) return absl::UnauthenticatedError(absl::StrCat(name, " is missing"));
  if (!absl::StartsWith(value, prefix) || !IsHex64(std::string_view(value).substr(prefix.size()))) {
    return absl::UnauthenticatedError(
        absl::StrCat(name, " must be ", prefix.empty() ? "" : absl::StrCat("'", prefix, "' and "),
                     "64 hex digits"));
  }
  auto digest = HexDecode(std::string_view(value).substr(prefix.size()));
  if (!digest.ok()) return absl::UnauthenticatedError(absl::StrCat(name, " is not hexadecimal"));
  return HookAuth{HookAuth::Kind::kHmacSha256, *std::move(digest)};
}

}  // namespace

absl::StatusOr<HookAuth> ReadHookAuth(std::string_view provider,
                                      const std::function<std::string(std::string_view)>& header) {
  if (provider == "github") {
    return HexSignature("X-Hub-Signature-256", header("X-Hub-Signature-256"), "sha256=");
  }
  if (provider == "gitea") {
    std::string forgejo = header("X-Forgejo-Signature");
    if (!forgejo.empty()) return HexSignature("X-Forgejo-Signature", forgejo, "");
    return HexSignature("X-Gitea-Signature", header("X-Gitea-Signature"), "");
  }
  if (provider == "gitlab") {
    std::string token = header("X-Gitlab-Token");
    if (token.empty()) return absl::UnauthenticatedError("X-Gitlab-Token is missing");
    if (token.size() > 1024) {
      return absl::UnauthenticatedError("X-Gitlab-Token is longer than 1024 bytes");
    }
    return HookAuth{HookAuth::Kind::kToken, std::move(token)};
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown provider '", std::string(provider), "'"));
}

struct HmacSha256Stream::Ctx {
  EVP_MAC* mac = nullptr;
  EVP_MAC_CTX* ctx = nullptr;
  ~Ctx() {
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
  }
};

HmacSha256Stream::HmacSha256Stream(std::string_view key) : ctx_(std::make_unique<Ctx>()) {
  ctx_->mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (ctx_->mac != nullptr) ctx_->ctx = EVP_MAC_CTX_new(ctx_->mac);
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  // An empty key is legal HMAC; OpenSSL wants a non-null pointer for it.
  static const unsigned char kEmpty = 0;
  const auto* k = key.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(key.data());
  if (ctx_->ctx == nullptr || EVP_MAC_init(ctx_->ctx, k, key.size(), params) != 1) {
    // Only when OpenSSL is broken or out of memory: a broken invariant, not bad input.
    throw std::runtime_error("OpenSSL HMAC-SHA256 is unavailable");
  }
}

HmacSha256Stream::~HmacSha256Stream() = default;

void HmacSha256Stream::Update(std::string_view data) {
  if (!data.empty()) {
    EVP_MAC_update(ctx_->ctx, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  }
}

std::string HmacSha256Stream::Finish() {
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t len = 0;
  if (EVP_MAC_final(ctx_->ctx, out, &len, sizeof out) != 1) return std::string();
  return std::string(reinterpret_cast<const char*>(out), len);
}

DeliveryVerifier::DeliveryVerifier(HookAuth auth) : auth_(std::move(auth)) {}
DeliveryVerifier::~DeliveryVerifier() = default;

void DeliveryVerifier::AddCandidate(int64_t repo_id, std::string_view secret) {
  if (finished_ || secret.empty()) return;
  if (auth_.kind == HookAuth::Kind::kToken) {
    // Why hash both: ConstantTimeEquals leaks the lengths; equal-length digests do not.
    if (ConstantTimeEquals(Sha256(auth_.value), Sha256(secret))) {
      candidates_.push_back(Candidate{repo_id, nullptr});
    }
    return;
  }
  candidates_.push_back(Candidate{repo_id, std::make_unique<HmacSha256Stream>(secret)});
}

void DeliveryVerifier::Update(std::string_view bytes) {
  if (finished_) return;
  for (Candidate& c : candidates_) {
    if (c.mac) c.mac->Update(bytes);
  }
}

const std::vector<int64_t>& DeliveryVerifier::Finish() {
  if (finished_) return verified_;
  finished_ = true;
  for (Candidate& c : candidates_) {
    if (!c.mac || ConstantTimeEquals(c.mac->Finish(), auth_.value)) {
      verified_.push_back(c.repo_id);
    }
  }
  candidates_.clear();
  return verified_;
}

}  // namespace assay::webhook
