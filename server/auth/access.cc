#include "server/auth/access.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"

namespace assay::auth {
namespace {

constexpr std::string_view kTokenPrefix = "assay_pat_";

bool IsLowerHex(std::string_view s, size_t n) {
  return s.size() == n && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

int Rank(std::string_view scope) {
  if (scope == "read") return 0;
  if (scope == "write") return 1;
  if (scope == "admin") return 2;
  return -1;
}

}  // namespace

std::string Principal::KindName() const {
  switch (kind) {
    case PrincipalKind::kAnonymous: return "anonymous";
    case PrincipalKind::kAdminToken: return "admin-token";
    case PrincipalKind::kSession: return "session";
    case PrincipalKind::kToken: return "token";
  }
  return "anonymous";
}

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kRead: return "read";
    case Level::kUser: return "user";
    case Level::kRepoWrite: return "repo-write";
    case Level::kMaintainer: return "maintainer";
    case Level::kAdmin: return "admin";
  }
  return "admin";
}

bool SafeMethod(std::string_view method) { return method == "GET" || method == "HEAD"; }

absl::Status Authorize(const Principal& p, const Need& need, std::string_view method,
                       std::optional<int64_t> repo_id) {
  if (p.kind == PrincipalKind::kAnonymous) {
    if (need.level == Level::kRead && SafeMethod(method)) return absl::OkStatus();
    return absl::UnauthenticatedError("sign in first: this needs a session or an API token");
  }
  // A token's scope narrows its user's rights, whatever the role.
  const int scope = Rank(p.scope);
  if (scope < 0) return absl::PermissionDeniedError("unknown token scope");
  if (scope == 0 && !SafeMethod(method)) {
    return absl::PermissionDeniedError(
        "this token's scope is 'read': it may only GET; create a token with scope 'write'");
  }
  if (scope < 2 && need.level == Level::kAdmin) {
    return absl::PermissionDeniedError(absl::StrCat(
        "this token's scope is '", p.scope, "': administration needs a token with scope 'admin'"));
  }
  if (p.role == "admin") return absl::OkStatus();
  const std::string who = absl::StrCat(p.role, " '", p.name, "'");
  switch (need.level) {
    case Level::kRead:
    case Level::kUser: return absl::OkStatus();
    case Level::kAdmin:
      return absl::PermissionDeniedError(absl::StrCat(who, " may not do this: it needs admin"));
    case Level::kMaintainer:
      if (p.role == "maintainer") return absl::OkStatus();
      return absl::PermissionDeniedError(
          absl::StrCat(who, " may not do this: it needs maintainer or admin"));
    case Level::kRepoWrite:
      if (p.role == "maintainer") return absl::OkStatus();
      if (repo_id &&
          std::find(p.maintains.begin(), p.maintains.end(), *repo_id) != p.maintains.end()) {
        return absl::OkStatus();
      }
      return absl::PermissionDeniedError(absl::StrCat(
          who, " may not do this: it needs maintainer",
          repo_id ? absl::StrCat(" of repository ", *repo_id) : std::string(), " or admin"));
  }
  return absl::PermissionDeniedError("unknown access level");
}

std::optional<std::string> CookieValue(std::string_view header, std::string_view name) {
  const auto trim = [](std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
  };
  while (!header.empty()) {
    size_t semi = header.find(';');
    std::string_view part = trim(header.substr(0, semi));
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    size_t eq = part.find('=');
    if (eq == std::string_view::npos || trim(part.substr(0, eq)) != name) continue;
    std::string_view v = trim(part.substr(eq + 1));
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    return std::string(v);
  }
  return std::nullopt;
}

std::string NewSessionId() { return RandomHexToken(32); }
std::string NewCsrfToken() { return RandomHexToken(32); }
std::string NewApiToken() { return std::string(kTokenPrefix) + RandomHexToken(32); }
bool LooksLikeSessionId(std::string_view s) { return IsLowerHex(s, 64); }
bool LooksLikeApiToken(std::string_view s) {
  return s.starts_with(kTokenPrefix) && IsLowerHex(s.substr(kTokenPrefix.size()), 64);
}

}  // namespace assay::auth
