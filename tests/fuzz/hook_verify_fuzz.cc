// Fuzzes the webhook's pre-parse authentication: ReadHookAuth on any header value, and the
// incremental DeliveryVerifier against the one-shot HMAC, with the body split at arbitrary
// points. Contract: never a crash; the verdict is the same however the body is split, and a
// body verifies exactly when its HMAC equals the signature.
//
// Input: byte 0 picks the provider, byte 1 the secret's length, then the secret, then the
// header value up to the first '\n', then the body; each body byte's low bits also pick
// where the next split falls.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/crypto/crypto.h"
#include "server/webhook/verify.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using assay::webhook::DeliveryVerifier;
  using assay::webhook::HookAuth;
  if (size < 2) return 0;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const char* providers[] = {"github", "gitea", "gitlab", "other"};
  const std::string provider = providers[static_cast<uint8_t>(in[0]) % 4];
  const size_t secret_len = std::min<size_t>(static_cast<uint8_t>(in[1]) % 64, in.size() - 2);
  const std::string secret(in.substr(2, secret_len));
  in.remove_prefix(2 + secret_len);
  const size_t nl = in.find('\n');
  std::string value(in.substr(0, nl));
  const std::string body(nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1));

  // Half the time, make the header a correct signature of the body.
  if (!value.empty() && (value[0] & 1) != 0 && provider != "gitlab") {
    value =
        (provider == "github" ? "sha256=" : "") + assay::HexEncode(assay::HmacSha256(secret, body));
  }
  auto header = [&](std::string_view name) -> std::string {
    if (name == "X-Hub-Signature-256" || name == "X-Gitea-Signature" || name == "X-Gitlab-Token") {
      return value;
    }
    return "";
  };
  auto auth = assay::webhook::ReadHookAuth(provider, header);
  if (!auth.ok()) return 0;

  DeliveryVerifier whole(*auth), pieces(*auth);
  whole.AddCandidate(7, secret);
  pieces.AddCandidate(7, secret);
  whole.Update(body);
  for (size_t at = 0; at < body.size();) {
    const size_t n = 1 + static_cast<uint8_t>(body[at]) % 17;
    pieces.Update(std::string_view(body).substr(at, n));
    at += n;
  }
  const bool a = !whole.Finish().empty();
  const bool b = !pieces.Finish().empty();
  if (a != b) std::abort();
  if (!secret.empty() && auth->kind == HookAuth::Kind::kHmacSha256 &&
      a != (assay::HmacSha256(secret, body) == auth->value)) {
    std::abort();
  }
  return 0;
}
