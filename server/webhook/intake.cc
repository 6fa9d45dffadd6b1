#include "server/webhook/intake.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/base/status.h"
#include "common/crypto/crypto.h"
#include "server/webhook/forge.h"

namespace assay::webhook {
namespace {

namespace json = boost::json;

std::string HeaderIn(const Intake::Headers& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (absl::EqualsIgnoreCase(k, absl::string_view(name.data(), name.size()))) return v;
  }
  return "";
}

// Printable ASCII only: these values are logged and stored as text.
bool IsPrintable(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

// Valid UTF-8 without control characters: what may go into the stored headers (jsonb).
bool IsStorableHeaderValue(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x20 || b == 0x7f) return false;
    size_t len = b < 0x80                   ? 1
                 : (b >= 0xC2 && b <= 0xDF) ? 2
                 : (b >= 0xE0 && b <= 0xEF) ? 3
                 : (b >= 0xF0 && b <= 0xF4) ? 4
                                            : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

struct DeliveryHeaders {
  std::string event, delivery;
};

DeliveryHeaders ReadDeliveryHeaders(const std::string& provider, const Intake::Headers& headers) {
  const HookHeaders& h = *HeadersFor(provider);
  DeliveryHeaders out{HeaderIn(headers, h.event), HeaderIn(headers, h.delivery)};
  if (provider == "gitea") {  // Forgejo sends its own header names
    if (out.event.empty()) out.event = HeaderIn(headers, "X-Forgejo-Event");
    if (out.delivery.empty()) out.delivery = HeaderIn(headers, "X-Forgejo-Delivery");
  }
  return out;
}

}  // namespace

IntakeResult Intake::NotAuthenticated(const std::string& provider, const std::string& result,
                                      std::string_view why) const {
  LogWarn("webhook", provider, " delivery refused (", result,
          "): ", absl::CEscape(absl::string_view(why.data(), why.size())));
  deps_.metrics->WebhookReceived(provider, result);
  IntakeResult r;
  r.http_status = 401;
  r.result = result;
  r.error_code = "unauthenticated";
  r.message = kNotAuthenticated;
  return r;
}

absl::StatusOr<Intake::Admission> Intake::Admit(const std::string& provider,
                                                const std::optional<std::string>& repo_ref,
                                                const Headers& req_headers) const {
  const Deps& d = deps_;
  Admission out;
  const HookHeaders* h = HeadersFor(provider);
  if (h == nullptr) return absl::InvalidArgumentError("unknown webhook provider");
  auto refuse = [&](int status, std::string result, std::string code, std::string message) {
    d.metrics->WebhookReceived(provider, result);
    IntakeResult r;
    r.http_status = status;
    r.result = std::move(result);
    r.error_code = std::move(code);
    r.message = std::move(message);
    out.refusal = std::move(r);
    return std::move(out);
  };
  const DeliveryHeaders dh = ReadDeliveryHeaders(provider, req_headers);
  if (dh.event.empty() || dh.delivery.empty()) {
    return refuse(400, "bad_request", "invalid_argument",
                  absl::StrCat("headers ", h->event, " and ", h->delivery, " are required"));
  }
  if (dh.delivery.size() > 200 || !IsPrintable(dh.delivery)) {
    return refuse(
        400, "bad_request", "invalid_argument",
        absl::StrCat("header ", h->delivery, " must be at most 200 printable ASCII characters"));
  }
  if (dh.event.size() > 100 || !IsPrintable(dh.event)) {
    return refuse(
        400, "bad_request", "invalid_argument",
        absl::StrCat("header ", h->event, " must be at most 100 printable ASCII characters"));
  }
  auto header = [&req_headers](std::string_view name) { return HeaderIn(req_headers, name); };
  auto auth = ReadHookAuth(provider, header);
  if (!auth.ok()) {
    out.refusal = NotAuthenticated(provider, "bad_signature", std::string(auth.status().message()));
    return out;
  }

  std::vector<store::Repo> candidates;
  if (repo_ref) {
    int64_t id = 0;
    if (!absl::SimpleAtoi(*repo_ref, &id) || id <= 0) {
      out.refusal = NotAuthenticated(provider, "unknown_repo",
                                     absl::StrCat("no repository with id '", *repo_ref, "'"));
      return out;
    }
    auto repo = d.repos->Get(id);
    if (!repo.ok()) {
      if (repo.status().code() != absl::StatusCode::kNotFound) return repo.status();
      out.refusal =
          NotAuthenticated(provider, "unknown_repo", absl::StrCat("no repository with id ", id));
      return out;
    }
    if (repo->provider != provider) {
      out.refusal = NotAuthenticated(provider, "unknown_repo",
                                     absl::StrCat("repository ", repo->name, " is registered for ",
                                                  repo->provider, ", not ", provider));
      return out;
    }
    candidates.push_back(*std::move(repo));
  } else {
    auto all = d.repos->List();
    if (!all.ok()) return all.status();
    for (store::Repo& r : *all) {
      if (r.provider == provider && !r.webhook_secret_sealed.empty()) {
        candidates.push_back(std::move(r));
      }
    }
    if (candidates.size() > kMaxSharedUrlRepos) {
      out.refusal = NotAuthenticated(
          provider, "bad_signature",
          absl::StrCat(candidates.size(), " repositories are registered for ", provider,
                       ", more than the shared URL /hooks/", provider, " checks (",
                       kMaxSharedUrlRepos, "); use the per-repository URL /hooks/", provider,
                       "/<repository id>"));
      return out;
    }
  }
  auto verifier = std::make_unique<DeliveryVerifier>(*std::move(auth));
  for (const store::Repo& r : candidates) {
    if (r.webhook_secret_sealed.empty()) continue;
    auto secret =
        d.secret_key.Open(r.webhook_secret_sealed, RowAad("repos", r.id, "webhook_secret"));
    if (!secret.ok()) {
      return MarkInternalDetail(
          absl::InternalError(absl::StrCat("cannot open the webhook secret of repository ", r.name,
                                           ": ", secret.status().message())));
    }
    verifier->AddCandidate(r.id, *secret);
  }
  if (verifier->candidates() == 0) {
    std::string why = "X-Gitlab-Token matches no candidate repository's secret";
    if (repo_ref && candidates[0].webhook_secret_sealed.empty()) {
      why = absl::StrCat("repository ", candidates[0].name, " has no webhook secret");
    } else if (candidates.empty()) {
      why = absl::StrCat("no repository registered for ", provider, " has a webhook secret");
    }
    out.refusal = NotAuthenticated(provider, "bad_signature", why);
    return out;
  }
  out.verifier = std::move(verifier);
  return out;
}

absl::StatusOr<IntakeResult> Intake::Complete(const std::string& provider,
                                              const Headers& req_headers, const std::string& body,
                                              DeliveryVerifier& verifier) const {
  const Deps& d = deps_;
  auto fail = [&](int status, std::string result, std::string code, std::string message) {
    d.metrics->WebhookReceived(provider, result);
    IntakeResult r;
    r.http_status = status;
    r.result = std::move(result);
    r.error_code = std::move(code);
    r.message = std::move(message);
    return r;
  };
  auto done = [&](int status, std::string result, int64_t delivery, std::string what) {
    d.metrics->WebhookReceived(provider, result);
    IntakeResult r;
    r.http_status = status;
    r.result = std::move(result);
    r.delivery = delivery;
    r.status = std::move(what);
    return r;
  };
  const std::vector<int64_t>& verified = verifier.Finish();
  if (verified.empty()) {
    return NotAuthenticated(provider, "bad_signature",
                            "the signature matches no candidate repository's secret");
  }
  // Authenticated: only now is the body parsed.
  const DeliveryHeaders dh = ReadDeliveryHeaders(provider, req_headers);
  auto parsed = ParseDelivery(provider, dh.event, dh.delivery, body);
  if (!parsed.ok() || parsed->repo_candidates.empty()) {
    return fail(
        400, "bad_request", "invalid_payload",
        parsed.ok() ? "payload names no repository" : std::string(parsed.status().message()));
  }
  auto repo = d.repos->FindByAny(parsed->repo_candidates);
  if (!repo.ok() && repo.status().code() != absl::StatusCode::kNotFound) return repo.status();
  if (!repo.ok() || std::find(verified.begin(), verified.end(), repo->id) == verified.end()) {
    return NotAuthenticated(provider, "unknown_repo",
                            absl::StrCat("signed delivery names ", parsed->repo_candidates[0],
                                         ", which is not a repository whose secret verified it"));
  }
  store::NewDelivery nd;
  nd.provider = provider;
  nd.delivery_id = dh.delivery;
  nd.event = dh.event;
  nd.repo_id = repo->id;
  nd.body_sha256 = Sha256(body);
  nd.dedupe_window = d.dedupe_window;
  json::object headers;
  for (const auto& [k, v] : req_headers) {
    std::string lower = k;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    // Why not all headers: the GitLab token is a secret and must not be stored.
    if (lower == "x-gitlab-token") continue;
    if (!IsStorableHeaderValue(v) || !IsStorableHeaderValue(k)) continue;
    if (lower.rfind("x-", 0) == 0 || lower == "user-agent" || lower == "content-type") {
      headers[k] = v;
    }
  }
  nd.headers_json = json::serialize(headers);
  nd.body = body;
  const std::string& kind = parsed->kind;
  const bool plan = (kind == "push" || kind == "tag" || kind == "pull_request") && !parsed->deleted;
  if (!plan) {
    nd.initial_state = "ignored";
    nd.message = kind == "ping"    ? "ping"
                 : parsed->deleted ? "ref deleted"
                 : !parsed->ignore_reason.empty()
                     ? parsed->ignore_reason
                     : absl::StrCat("event '", dh.event, "' is not built");
  }
  auto ins = d.deliveries->Insert(nd);
  if (!ins.ok()) return ins.status();
  if (!ins->inserted) {
    if (ins->same_body) {
      LogInfo("webhook", provider, " delivery ", dh.delivery, " repeats the body of delivery row ",
              ins->id, ": duplicate");
    }
    return done(202, "duplicate", ins->id, "duplicate");
  }
  if (kind == "ping") return done(200, "accepted", ins->id, "pong");
  if (!plan) return done(202, "ignored", ins->id, "ignored");
  IntakeResult r = done(202, "accepted", ins->id, "queued");
  d.enqueue(ins->id);
  return r;
}

absl::StatusOr<IntakeResult> Intake::Receive(const std::string& provider, const Headers& headers,
                                             const std::string& body,
                                             const std::optional<std::string>& repo) const {
  auto admitted = Admit(provider, repo, headers);
  if (!admitted.ok()) return admitted.status();
  if (admitted->refusal) return *admitted->refusal;
  admitted->verifier->Update(body);
  return Complete(provider, headers, body, *admitted->verifier);
}

}  // namespace assay::webhook
