#include "server/api/commit_status_api.h"

#include <boost/json.hpp>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"
#include "common/net/address_policy.h"
#include "server/http/json_util.h"

namespace assay {
namespace {

namespace json = boost::json;
using http::ErrorResponse;
using http::JsonResponse;
using http::Request;
using http::Response;

absl::StatusOr<int64_t> RepoId(const Request& req) {
  int64_t id = 0;
  auto it = req.path_params.find("id");
  if (it == req.path_params.end() || !absl::SimpleAtoi(it->second, &id) || id <= 0) {
    return absl::InvalidArgumentError("path parameter 'id' must be a positive integer");
  }
  return id;
}

bool HasControl(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7F) return true;
  }
  return false;
}

// owner/name: two non-empty parts.
bool IsOwnerName(const std::string& s) {
  const size_t slash = s.find('/');
  return slash != std::string::npos && slash > 0 && slash + 1 < s.size() &&
         s.find('/', slash + 1) == std::string::npos;
}

Response Invalid(std::string message) {
  return ErrorResponse(400, "invalid_argument", std::move(message));
}

// The host of an http(s) URL that passed the format check: the authority without a port, an
// IPv6 literal without its brackets; and the port (the scheme's default when none).
struct UrlHost {
  std::string host;
  uint16_t port = 443;
  bool has_userinfo = false;
};
std::optional<UrlHost> HostOf(const std::string& url, bool https) {
  UrlHost out;
  out.port = https ? 443 : 80;
  std::string authority = url.substr(https ? 8 : 7);
  authority = authority.substr(0, authority.find('/'));
  if (authority.find('@') != std::string::npos) {
    out.has_userinfo = true;
    return out;
  }
  std::string port;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos) return std::nullopt;
    out.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return std::nullopt;
      port = authority.substr(close + 2);
    }
  } else {
    const size_t colon = authority.find(':');
    out.host = authority.substr(0, colon);
    if (colon != std::string::npos) port = authority.substr(colon + 1);
  }
  if (out.host.empty()) return std::nullopt;
  if (!port.empty()) {
    int value = 0;
    if (!absl::SimpleAtoi(port, &value) || value < 1 || value > 65535) return std::nullopt;
    out.port = static_cast<uint16_t>(value);
  }
  return out;
}

// The address policy at registration (it is applied again, on the addresses then resolved, by
// every request the notifier sends): plain http only to a listed host; a host that resolves to
// a non-public address, unless allowed, is refused. A name that does not resolve now is
// accepted (the forge may be down for a while); the request will be checked when it is made.
std::optional<std::string> CheckApiHost(const AddressPolicy& policy, const std::string& url,
                                        bool https) {
  std::optional<UrlHost> host = HostOf(url, https);
  if (!host.has_value()) {
    return "field 'api_url' must have a valid host and port";
  }
  if (host->has_userinfo) {
    return "field 'api_url' must not contain credentials (use field 'token')";
  }
  if (!https) {
    if (absl::Status plain = policy.CheckPlainHttp(host->host); !plain.ok()) {
      return absl::StrCat("field 'api_url': ", plain.message());
    }
  }
  auto resolved = ResolveAllowed(host->host, host->port, policy);
  if (resolved.status().code() == absl::StatusCode::kPermissionDenied) {
    return absl::StrCat("field 'api_url': ", resolved.status().message());
  }
  return std::nullopt;
}

}  // namespace

json::value CommitStatusJson(const store::Repo& r) {
  if (r.status_api_url.empty()) return nullptr;
  return json::object{
      {"api_url", r.status_api_url},
      {"has_token", !r.status_token_sealed.empty()},
      {"repository", r.status_repository.empty() ? r.name : r.status_repository},
      {"context", r.status_context.empty() ? std::string("assay") : r.status_context}};
}

Response PutCommitStatus(const ApiDeps& d, Request& req, const RepoJsonFn& repo_json) {
  auto id = RepoId(req);
  if (!id.ok()) return http::StatusToResponse(id.status());
  Response err;
  auto body = http::ParseJsonBody(req, &err);
  if (!body) return err;
  if (absl::Status known = http::OnlyFields(*body, {"api_url", "token", "repository", "context"});
      !known.ok()) {
    return http::StatusToResponse(known);
  }
  auto api_url = http::RequiredString(*body, "api_url");
  if (!api_url.ok()) return http::StatusToResponse(api_url.status());
  auto token = http::RequiredString(*body, "token");
  if (!token.ok()) return http::StatusToResponse(token.status());
  auto repository = http::OptionalString(*body, "repository");
  if (!repository.ok()) return http::StatusToResponse(repository.status());
  auto context = http::OptionalString(*body, "context");
  if (!context.ok()) return http::StatusToResponse(context.status());

  std::string url = *api_url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  const bool http_scheme = absl::StartsWithIgnoreCase(url, "http://");
  const bool https_scheme = absl::StartsWithIgnoreCase(url, "https://");
  if ((!http_scheme && !https_scheme) || url.size() <= (https_scheme ? 8u : 7u) ||
      HasControl(url) || absl::StrContains(url, " ") || absl::StrContains(url, "?") ||
      absl::StrContains(url, "#")) {
    return Invalid(
        "field 'api_url' must be an http:// or https:// URL without query or fragment, e.g. "
        "https://api.github.com");
  }
  if (token->empty()) return Invalid("field 'token' must not be empty");
  if (HasControl(*token)) return Invalid("field 'token' must not contain control characters");
  if (token->size() > 4096) return Invalid("field 'token' must be at most 4096 bytes");
  if (repository->has_value() && (*repository)->empty()) {
    return Invalid("field 'repository' must not be empty");
  }
  if (context->has_value() &&
      ((*context)->empty() || (*context)->size() > 100 || HasControl(**context))) {
    return Invalid("field 'context' must be 1 to 100 characters without control characters");
  }

  auto repo = d.repos->Get(*id);
  if (!repo.ok()) return http::StatusToResponse(repo.status());
  const std::string effective = repository->value_or(repo->name);
  if (repo->provider == "gitlab") {
    if (HasControl(effective)) {
      return Invalid("field 'repository' must not contain control characters");
    }
  } else if (!IsOwnerName(effective)) {
    return Invalid(repository->has_value()
                       ? absl::StrCat("field 'repository' must be owner/name for ", repo->provider,
                                      ", got '", effective, "'")
                       : absl::StrCat("repository name '", repo->name,
                                      "' is not owner/name: set field 'repository' to the ",
                                      repo->provider, " repository's owner/name"));
  }

  const AddressPolicy no_private_hosts;
  if (std::optional<std::string> refused = CheckApiHost(
          d.address_policy != nullptr ? *d.address_policy : no_private_hosts, url, https_scheme)) {
    return Invalid(*refused);
  }

  auto sealed = d.secret_key.Seal(*token, RowAad("repos", *id, "status_token"));
  if (!sealed.ok()) return http::StatusToResponse(sealed.status());
  store::CommitStatusSettings s;
  s.api_url = url;
  s.token_sealed = *sealed;
  s.repository = repository->value_or("");
  s.context = context->value_or("");
  auto updated = d.repos->SetCommitStatus(*id, s);
  if (!updated.ok()) return http::StatusToResponse(updated.status());
  return JsonResponse(200, repo_json(*updated));
}

Response DeleteCommitStatus(const ApiDeps& d, Request& req, const RepoJsonFn& repo_json) {
  auto id = RepoId(req);
  if (!id.ok()) return http::StatusToResponse(id.status());
  auto updated = d.repos->SetCommitStatus(*id, std::nullopt);
  if (!updated.ok()) return http::StatusToResponse(updated.status());
  return JsonResponse(200, repo_json(*updated));
}

}  // namespace assay
