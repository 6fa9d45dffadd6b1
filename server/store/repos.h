#pragma once
// Registered repositories. *db must outlive the store.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/store/db.h"

namespace assay::store {

struct Repo {
  int64_t id = 0;
  std::string name;
  std::string provider;
  std::string clone_url;
  std::string html_url;
  std::string webhook_secret_sealed;  // AES-GCM sealed; empty when none
  // "username\npassword" for an https clone_url, AES-GCM sealed; empty when none (0009).
  std::string clone_credential_sealed;
  absl::Time created_at;
  std::string default_branch = "main";  // whose .assay.yml holds the schedules
  bool cancel_superseded = false;       // a new push pipeline cancels older ones of its branch
  // Commit statuses (migration 0004): on when status_api_url is non-empty.
  std::string status_api_url;
  std::string status_token_sealed;  // AES-GCM sealed; empty when off
  std::string status_repository;    // the forge's name for the repo; empty: `name`
  std::string status_context;       // empty: "assay"
};

// A change of a repository's settings; unset fields are left as they are.
struct RepoSettings {
  std::optional<std::string> default_branch;
  std::optional<bool> cancel_superseded;
  // Issue 11: a new webhook secret, already sealed for the row (RowAad "webhook_secret").
  std::optional<std::string> webhook_secret_sealed;
};

// Where and how to report commit statuses for one repository.
struct CommitStatusSettings {
  std::string api_url;       // non-empty
  std::string token_sealed;  // non-empty, AES-GCM sealed
  std::string repository;    // empty: the repo's name
  std::string context;       // empty: "assay"
};

struct NewRepo {
  std::string name, provider, clone_url, html_url;
  std::string webhook_secret_sealed;
  // When set, Create calls them inside its transaction with the new repository's id and stores
  // what they return as the sealed webhook secret / clone credential (instead of the fields
  // above). Why: a value sealed for its row (RowAad) needs the id before the row exists. An
  // error aborts the creation and is returned.
  std::function<absl::StatusOr<std::string>(int64_t id)> seal_webhook_secret;
  std::function<absl::StatusOr<std::string>(int64_t id)> seal_clone_credential;
  std::string clone_credential_sealed;  // empty: none
};

// One sealed value at rest, as RepoStore::Reseal hands it over.
struct SealedCell {
  std::string table, column;  // "repos", "webhook_secret", "status_token" or "clone_credential"
  int64_t id = 0;             // the row
  std::string sealed;
};

class RepoStore {
 public:
  explicit RepoStore(Db* db) : db_(db) {}
  // kAlreadyExists when the name or clone URL is taken.
  absl::StatusOr<Repo> Create(const NewRepo& r);
  absl::StatusOr<std::vector<Repo>> List();
  absl::StatusOr<Repo> Get(int64_t id);
  // The repo whose clone_url, html_url or name equals one of `candidates` (compared after
  // dropping a trailing ".git" and "/"). kNotFound when none does.
  absl::StatusOr<Repo> FindByAny(const std::vector<std::string>& candidates);
  // Applies `settings` and returns the repository as it is now. kNotFound for an unknown id.
  absl::StatusOr<Repo> Update(int64_t id, const RepoSettings& settings);
  // Turns commit statuses on (or replaces their settings); nullopt turns them off.
  // kNotFound when the repository does not exist. Returns the updated repo.
  absl::StatusOr<Repo> SetCommitStatus(int64_t id, const std::optional<CommitStatusSettings>& s);
  // Replaces every sealed value (webhook secrets, commit status tokens) with what `reseal`
  // returns for it, in one transaction with the rows locked: when `reseal` fails for one, or
  // the database does, nothing changes and the error is returned. Returns how many values
  // were resealed.
  absl::StatusOr<int> Reseal(
      const std::function<absl::StatusOr<std::string>(const SealedCell&)>& reseal);

 private:
  Db* db_;
};

// "https://github.com/a/b.git/" -> "https://github.com/a/b"
std::string NormalizeRepoUrl(std::string_view url);

}  // namespace assay::store
