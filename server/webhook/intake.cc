#include "server/webhook/intake.h"

#include <boost/json.hpp>

#include <cctype>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"
#include "server/webhook/forge.h"

namespace assay::webhook {
namespace {

namespace json = boost::json;

std::string HeaderIn(const std::vector<std::pair<std::string, std::string>>& headers,
                     std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (absl::EqualsIgnoreCase(k, absl::string_view(name.data(), name.size()))) return v;
  }
  return "";
}

}  // namespace

absl::StatusOr<IntakeResult> Intake::Receive(
    const std::string& provider,
    const std::vector<std::pair<std::string, std::string>>& req_headers,
    const std::string& body) const {
  const Deps& d = deps_;
  auto header = [&req_headers](std::string_view name) { return HeaderIn(req_headers, name); };
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
  const webhook::HookHeaders& h = *webhook::HeadersFor(provider);
  std::string event = header(h.event);
  std::string delivery = header(h.delivery);
  if (provider == "gitea") {  // Forgejo sends its own header names
    if (event.empty()) event = header("X-Forgejo-Event");
    if (delivery.empty()) delivery = header("X-Forgejo-Delivery");
  }
  if (event.empty() || delivery.empty()) {
    return fail(400, "bad_request", "invalid_argument",
                absl::StrCat("headers ", h.event, " and ", h.delivery, " are required"));
  }
  if (delivery.size() > 200) {
    return fail(400, "bad_request", "invalid_argument",
                absl::StrCat("header ", h.delivery, " is too long"));
  }
  auto parsed = webhook::ParseDelivery(provider, event, delivery, body);
  if (!parsed.ok() || parsed->repo_candidates.empty()) {
    return fail(
        400, "bad_request", "invalid_payload",
        parsed.ok() ? "payload names no repository" : std::string(parsed.status().message()));
  }
  auto repo = d.repos->FindByAny(parsed->repo_candidates);
  if (!repo.ok()) {
    if (repo.status().code() != absl::StatusCode::kNotFound) return repo.status();
    return fail(404, "unknown_repo", "unknown_repository",
                absl::StrCat("no registered repository matches ", parsed->repo_candidates[0]));
  }
  if (repo->provider != provider) {
    return fail(400, "bad_request", "wrong_provider",
                absl::StrCat("repository ", repo->name, " is registered for ", repo->provider,
                             ", not ", provider));
  }
  if (repo->webhook_secret_sealed.empty()) {
    return fail(401, "bad_signature", "unauthenticated",
                absl::StrCat("repository ", repo->name,
                             " has no webhook secret; deliveries cannot be verified"));
  }
  auto secret =
      d.secret_key.Open(repo->webhook_secret_sealed, RowAad("repos", repo->id, "webhook_secret"));
  if (!secret.ok()) return secret.status();
  absl::Status sig = webhook::VerifyDelivery(provider, header, *secret, body);
  if (!sig.ok()) {
    return fail(401, "bad_signature", "bad_signature", std::string(sig.message()));
  }
  store::NewDelivery nd;
  nd.provider = provider;
  nd.delivery_id = delivery;
  nd.event = event;
  nd.repo_id = repo->id;
  json::object headers;
  for (const auto& [k, v] : req_headers) {
    std::string lower = k;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    // Why not all headers: the GitLab token is a secret and must not be stored.
    if (lower == "x-gitlab-token") continue;
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
                     : absl::StrCat("event '", event, "' is not built");
  }
  auto ins = d.deliveries->Insert(nd);
  if (!ins.ok()) return ins.status();
  if (!ins->inserted) return done(202, "duplicate", ins->id, "duplicate");
  if (kind == "ping") return done(200, "accepted", ins->id, "pong");
  if (!plan) return done(202, "ignored", ins->id, "ignored");
  IntakeResult r = done(202, "accepted", ins->id, "queued");
  d.enqueue(ins->id);
  return r;
}

}  // namespace assay::webhook
