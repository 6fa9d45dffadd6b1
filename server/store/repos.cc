#include "server/store/repos.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace assay::store {
namespace {

#define REPO_COLUMNS \
  "id, name, provider, clone_url, coalesce(html_url, ''), webhook_secret_enc, "      \
  ASSAY_EPOCH_US("created_at") ", coalesce(status_api_url, ''), status_token_enc, " \
  "coalesce(status_repository, ''), coalesce(status_context, ''), default_branch, "  \
  "cancel_superseded, clone_credential_enc"

const Query kInsertRepo{"repo_insert",
                        "INSERT INTO repos (name, provider, clone_url, html_url, "
                        "webhook_secret_enc, clone_credential_enc) "
                        "VALUES ($1, $2, $3, nullif($4, ''), $5, $6) "
                        "RETURNING " REPO_COLUMNS};
const Query kUpdateRepo{"repo_update",
                        "UPDATE repos SET default_branch = coalesce($2, default_branch), "
                        "cancel_superseded = coalesce($3::boolean, cancel_superseded) "
                        "WHERE id = $1 RETURNING " REPO_COLUMNS};
const Query kListRepos{"repo_list", "SELECT " REPO_COLUMNS " FROM repos ORDER BY id"};
const Query kGetRepo{"repo_get", "SELECT " REPO_COLUMNS " FROM repos WHERE id = $1"};
const Query kFindRepo{
    "repo_find",
    "SELECT " REPO_COLUMNS
    " FROM repos WHERE "
    "rtrim(regexp_replace(rtrim(clone_url, '/'), '\\.git$', ''), '/') = ANY($1::text[]) "
    "OR rtrim(regexp_replace(rtrim(coalesce(html_url, ''), '/'), '\\.git$', ''), '/') = "
    "ANY($1::text[]) OR name = ANY($1::text[]) ORDER BY id LIMIT 1"};
const Query kSetCommitStatus{
    "repo_set_commit_status",
    "UPDATE repos SET status_api_url = nullif($2, ''), status_token_enc = $3, "
    "status_repository = nullif($4, ''), status_context = nullif($5, '') WHERE id = $1 "
    "RETURNING " REPO_COLUMNS};

Repo FromRow(const pqxx::row& r) {
  Repo repo;
  repo.id = r[0].as<int64_t>();
  repo.name = r[1].as<std::string>();
  repo.provider = r[2].as<std::string>();
  repo.clone_url = r[3].as<std::string>();
  repo.html_url = r[4].as<std::string>();
  if (!r[5].is_null()) repo.webhook_secret_sealed = BytesOf(r[5]);
  repo.created_at = ToTime(r[6]);
  repo.status_api_url = r[7].as<std::string>();
  if (!r[8].is_null()) repo.status_token_sealed = BytesOf(r[8]);
  repo.status_repository = r[9].as<std::string>();
  repo.status_context = r[10].as<std::string>();
  repo.default_branch = r[11].as<std::string>();
  repo.cancel_superseded = r[12].as<bool>();
  if (!r[13].is_null()) repo.clone_credential_sealed = BytesOf(r[13]);
  return repo;
}

}  // namespace

std::string NormalizeRepoUrl(std::string_view url_in) {
  absl::string_view url(url_in.data(), url_in.size());
  while (absl::ConsumeSuffix(&url, "/")) {
  }
  absl::ConsumeSuffix(&url, ".git");
  while (absl::ConsumeSuffix(&url, "/")) {
  }
  return std::string(url);
}

absl::StatusOr<Repo> RepoStore::Create(const NewRepo& n) {
  Repo out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto res = Exec(
        tx, c, kInsertRepo,
        {n.name, n.provider, n.clone_url, n.html_url,
         n.webhook_secret_sealed.empty() ? Param::Null() : Param::Bytes(n.webhook_secret_sealed),
         n.clone_credential_sealed.empty() ? Param::Null()
                                           : Param::Bytes(n.clone_credential_sealed)});
    out = FromRow(res[0]);
    return absl::OkStatus();
  });
  if (s.code() == absl::StatusCode::kFailedPrecondition &&
      absl::StrContains(s.message(), "duplicate key")) {
    return absl::AlreadyExistsError(absl::StrContains(s.message(), "clone_url")
                                        ? "a repository with this clone_url is already registered"
                                        : "a repository with this name is already registered");
  }
  if (s.code() == absl::StatusCode::kFailedPrecondition &&
      absl::StrContains(s.message(), "repos_name_check")) {
    return absl::InvalidArgumentError(
        "field 'name': must start with a letter or digit and contain only letters, digits, "
        "'_', '.', '-' and '/' (at most 200 characters)");
  }
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<Repo>> RepoStore::List() {
  std::vector<Repo> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    for (const auto& r : Exec(tx, c, kListRepos)) out.push_back(FromRow(r));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<Repo> RepoStore::Get(int64_t id) {
  std::optional<Repo> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto res = Exec(tx, c, kGetRepo, {id});
    if (!res.empty()) out = FromRow(res[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (!out) return absl::NotFoundError(absl::StrCat("repository ", id, " does not exist"));
  return *out;
}

absl::StatusOr<Repo> RepoStore::FindByAny(const std::vector<std::string>& candidates) {
  std::vector<std::string> norm;
  for (const auto& c : candidates) {
    if (!c.empty()) norm.push_back(NormalizeRepoUrl(c));
  }
  std::optional<Repo> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto res = Exec(tx, c, kFindRepo, {ToPgTextArray(norm)});
    if (!res.empty()) out = FromRow(res[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (!out) return absl::NotFoundError("no registered repository matches this payload");
  return *out;
}

absl::StatusOr<Repo> RepoStore::SetCommitStatus(int64_t id,
                                                const std::optional<CommitStatusSettings>& cs) {
  std::optional<Repo> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto res = Exec(tx, c, kSetCommitStatus,
                    {id, cs ? cs->api_url : "", cs ? Param::Bytes(cs->token_sealed) : Param::Null(),
                     cs ? cs->repository : "", cs ? cs->context : ""});
    if (!res.empty()) out = FromRow(res[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (!out) return absl::NotFoundError(absl::StrCat("repository ", id, " does not exist"));
  return *out;
}

}  // namespace assay::store

namespace assay::store {

absl::StatusOr<Repo> RepoStore::Update(int64_t id, const RepoSettings& settings) {
  std::optional<Repo> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto res =
        Exec(tx, c, kUpdateRepo,
             {id, Param::Opt(settings.default_branch), Param::Opt(settings.cancel_superseded)});
    if (!res.empty()) out = FromRow(res[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (!out) return absl::NotFoundError(absl::StrCat("repository ", id, " does not exist"));
  return *out;
}

}  // namespace assay::store
