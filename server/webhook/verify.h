#pragma once
// Authenticating a webhook delivery on its raw bytes, before anything parses them. Pure: no
// I/O, no database; the intake (intake.h) looks the candidate secrets up.
//
// The credential is read from the headers alone (ReadHookAuth), so an unsigned or malformed
// request is refused before its body is read. A signature is then checked incrementally,
// chunk by chunk as the body streams in (DeliveryVerifier), under the secret of every
// repository the delivery may be for; a token (GitLab) is compared when the candidates are
// added.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace assay::webhook {

// What a forge sent to authenticate a delivery.
struct HookAuth {
  enum class Kind { kHmacSha256, kToken };
  Kind kind = Kind::kHmacSha256;
  std::string value;  // kHmacSha256: the 32-byte digest (binary); kToken: the token
};

// The credential in a delivery's headers (`header` looks one up by case-insensitive name):
//   github  X-Hub-Signature-256: "sha256=" + 64 hex digits
//   gitea   X-Forgejo-Signature, else X-Gitea-Signature: 64 hex digits
//   gitlab  X-Gitlab-Token: 1 to 1024 bytes
// kUnauthenticated naming what is wrong ("X-Hub-Signature-256 is missing", "... must be
// 'sha256=' and 64 hex digits"); kInvalidArgument for an unknown provider.
absl::StatusOr<HookAuth> ReadHookAuth(std::string_view provider,
                                      const std::function<std::string(std::string_view)>& header);

// HMAC-SHA256 computed over data given in pieces (OpenSSL EVP_MAC).
class HmacSha256Stream {
 public:
  explicit HmacSha256Stream(std::string_view key);
  ~HmacSha256Stream();
  HmacSha256Stream(const HmacSha256Stream&) = delete;
  HmacSha256Stream& operator=(const HmacSha256Stream&) = delete;
  void Update(std::string_view data);
  // The 32-byte digest of everything given; the stream is spent afterwards.
  std::string Finish();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// One delivery checked against the secrets of the repositories it may be for. Not
// thread-safe (one connection feeds it, in order).
class DeliveryVerifier {
 public:
  explicit DeliveryVerifier(HookAuth auth);
  ~DeliveryVerifier();

  // A repository whose secret may authenticate this delivery. A token is compared here, in
  // constant time: a repository whose secret differs is dropped at once.
  void AddCandidate(int64_t repo_id, std::string_view secret);
  // Candidates still possible (for a signature: all added; for a token: those matching).
  size_t candidates() const { return candidates_.size(); }
  // The next body bytes, in order.
  void Update(std::string_view bytes);
  // After the last byte: the candidates whose secret authenticates the body, in the order
  // added. Idempotent: later calls return the same list and ignore later Updates.
  const std::vector<int64_t>& Finish();

 private:
  struct Candidate {
    int64_t repo_id = 0;
    std::unique_ptr<HmacSha256Stream> mac;  // null for a token
  };
  HookAuth auth_;
  std::vector<Candidate> candidates_;
  bool finished_ = false;
  std::vector<int64_t> verified_;
};

}  // namespace assay::webhook
