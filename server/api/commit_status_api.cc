#include "server/api/commit_status_api.h"

#include <boost/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"
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
