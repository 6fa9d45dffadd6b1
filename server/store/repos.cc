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

const Query kNextRepoId{"repo_next_id", "SELECT nextval(pg_get_serial_sequence('repos', 'id'))"};
const Query kInsertRepo{"repo_insert",
                        "INSERT INTO repos (id, name, provider, clone_url, html_url, "
                        "webhook_secret_enc, clone_credential_enc) "
                        "VALUES ($6, $1, $2, $3, nullif($4, ''), $5, $7) "
                        "RETURNING " REPO_COLUMNS};
const Query kSealedOfRepos{"repo_sealed_all",
                           "SELECT id, webhook_secret_enc, status_token_enc, "
                           "clone_credential_enc FROM repos WHERE webhook_secret_enc IS NOT NULL "
                           "OR status_token_enc IS NOT NULL OR clone_credential_enc IS NOT NULL "
                           "ORDER BY id FOR UPDATE"};
const Query kResealRepo{"repo_reseal",
                        "UPDATE repos SET webhook_secret_enc = $2, status_token_enc = $3, "
                        "clone_credential_enc = $4 WHERE id = $1"};
const Query kUpdateRepo{"repo_update",
                        "UPDATE repos SET default_branch = coalesce($2, default_branch), "
                        "cancel_superseded = coalesce($3::boolean, cancel_superseded), "
                        "webhook_secret_enc = coalesce($4, webhook_secret_enc) "
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
    const int64_t id = Exec(tx, c, kNextRepoId)[0][0].as<int64_t>();
    std::string sealed = n.webhook_secret_sealed;
    if (n.seal_webhook_secret) {
      auto v = n.seal_webhook_secret(id);
      if (!v.ok()) return v.status();
      sealed = std::move(*v);
    }
    std::string credential = n.clone_credential_sealed;
    if (n.seal_clone_credential) {
      auto v = n.seal_clone_credential(id);
      if (!v.ok()) return v.status();
      credential = std::move(*v);
    }
    auto res = Exec(tx, c, kInsertRepo,
                    {n.name, n.provider, n.clone_url, n.html_url,
                     sealed.empty() ? Param::Null() : Param::Bytes(sealed), id,
                     credential.empty() ? Param::Null() : Param::Bytes(credential)});
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

absl::StatusOr<int> RepoStore::Reseal(
    const std::function<absl::StatusOr<std::string>(const SealedCell&)>& reseal) {
  int n = 0;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    n = 0;
    for (const auto& r : Exec(tx, c, kSealedOfRepos)) {
      const int64_t id = r[0].as<int64_t>();
      std::optional<std::string> cells[3];
      const char* columns[3] = {"webhook_secret", "status_token", "clone_credential"};
      for (int i = 0; i < 3; ++i) {
        if (r[i + 1].is_null()) continue;
        auto v = reseal(SealedCell{"repos", columns[i], id, BytesOf(r[i + 1])});
        if (!v.ok()) return v.status();
        cells[i] = std::move(*v);
        ++n;
      }
      Exec(tx, c, kResealRepo,
           {id, cells[0] ? Param::Bytes(*cells[0]) : Param::Null(),
            cells[1] ? Param::Bytes(*cells[1]) : Param::Null(),
            cells[2] ? Param::Bytes(*cells[2]) : Param::Null()});
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return n;
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
             {id, Param::Opt(settings.default_branch), Param::Opt(settings.cancel_superseded),
              settings.webhook_secret_sealed ? Param::Bytes(*settings.webhook_secret_sealed)
                                             : Param::Null()});
    if (!res.empty()) out = FromRow(res[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (!out) return absl::NotFoundError(absl::StrCat("repository ", id, " does not exist"));
  return *out;
}

}  // namespace assay::store
