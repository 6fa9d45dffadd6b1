#include "server/store/status_outbox.h"

#include "absl/strings/str_cat.h"

namespace assay::store {
namespace {

// Why from the outbox: it holds only what is still to send, while commit_status_commits keeps a
// row for every commit ever reported.
const Query kClaimCommits{
    "status_claim_commits",
    "SELECT c.repo_id, c.commit_sha FROM commit_status_commits c "
    "WHERE (c.repo_id, c.commit_sha) IN (SELECT repo_id, commit_sha FROM commit_status_outbox) "
    "AND (c.leased_until IS NULL OR c.leased_until < now()) "
    "LIMIT $1 FOR NO KEY UPDATE OF c SKIP LOCKED"};
// Everything but the newest queued state, and what is not newer than the delivered one.
const Query kSupersede{
    "status_supersede",
    "DELETE FROM commit_status_outbox o WHERE o.repo_id = $1 AND o.commit_sha = $2 AND ("
    "  o.id <= (SELECT delivered_id FROM commit_status_commits "
    "           WHERE repo_id = $1 AND commit_sha = $2) "
    "  OR o.id < (SELECT max(id) FROM commit_status_outbox "
    "             WHERE repo_id = $1 AND commit_sha = $2))"};
const Query kLease{
    "status_lease",
    "UPDATE commit_status_commits c SET lease_token = nextval('commit_status_lease_tokens'), "
    "  leased_until = now() + $3::float8 * interval '1 millisecond', lease_id = o.id "
    "FROM (SELECT id, pipeline_id, state FROM commit_status_outbox "
    "      WHERE repo_id = $1 AND commit_sha = $2 ORDER BY id DESC LIMIT 1) o "
    "WHERE c.repo_id = $1 AND c.commit_sha = $2 "
    "RETURNING c.lease_token, o.id, o.pipeline_id, o.state"};
const Query kRepoOf{
    "status_repo_of",
    "SELECT name, provider, coalesce(status_api_url, ''), status_token_enc, "
    "coalesce(status_repository, ''), coalesce(status_context, '') FROM repos WHERE id = $1"};
const Query kRenew{
    "status_renew",
    "UPDATE commit_status_commits c "
    "SET leased_until = now() + $4::float8 * interval '1 millisecond' "
    "WHERE repo_id = $1 AND commit_sha = $2 AND lease_token = $3 "
    "RETURNING EXISTS (SELECT 1 FROM commit_status_outbox o "
    "                  WHERE o.repo_id = $1 AND o.commit_sha = $2 AND o.id > c.lease_id)"};
const Query kComplete{
    "status_complete",
    "UPDATE commit_status_commits SET delivered_id = greatest(delivered_id, lease_id), "
    "  lease_token = NULL, leased_until = NULL, lease_id = NULL "
    "WHERE repo_id = $1 AND commit_sha = $2 AND lease_token = $3 RETURNING delivered_id"};
const Query kDeleteDelivered{
    "status_delete_delivered",
    "DELETE FROM commit_status_outbox WHERE repo_id = $1 AND commit_sha = $2 AND id <= $3"};
const Query kRelease{
    "status_release",
    "UPDATE commit_status_commits SET lease_token = NULL, leased_until = NULL, lease_id = NULL "
    "WHERE repo_id = $1 AND commit_sha = $2 AND lease_token = $3"};

}  // namespace

absl::StatusOr<std::vector<DueStatus>> StatusOutbox::Claim(int limit) {
  std::vector<DueStatus> out;
  const std::string lease_ms = absl::StrCat(absl::ToDoubleMilliseconds(lease_));
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    for (const auto& key : Exec(tx, c, kClaimCommits, {limit})) {
      const int64_t repo_id = key[0].as<int64_t>();
      const std::string sha = key[1].as<std::string>();
      Exec(tx, c, kSupersede, {repo_id, sha});
      // Why the newest again: a state queued by a transaction that committed since the
      // previous statement is newer still (it is the one to send; Complete deletes the rest).
      auto leased = Exec(tx, c, kLease, {repo_id, sha, lease_ms});
      if (leased.empty()) continue;
      DueStatus d;
      d.lease_token = leased[0][0].as<int64_t>();
      d.outbox_id = leased[0][1].as<int64_t>();
      d.pipeline_id = leased[0][2].as<int64_t>();
      d.state = leased[0][3].as<std::string>();
      d.repo_id = repo_id;
      d.commit_sha = sha;
      auto repo = Exec(tx, c, kRepoOf, {repo_id});
      if (repo.empty()) continue;
      d.repo_name = repo[0][0].as<std::string>();
      d.provider = repo[0][1].as<std::string>();
      d.api_url = repo[0][2].as<std::string>();
      if (!repo[0][3].is_null()) d.token_sealed = BytesOf(repo[0][3]);
      d.repository = repo[0][4].as<std::string>();
      d.context = repo[0][5].as<std::string>();
      out.push_back(std::move(d));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<LeaseCheck> StatusOutbox::Renew(const DueStatus& due) {
  LeaseCheck out = LeaseCheck::kLost;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto r = Exec(tx, c, kRenew,
                  {due.repo_id, due.commit_sha, due.lease_token,
                   absl::StrCat(absl::ToDoubleMilliseconds(lease_))});
    if (r.empty()) {
      out = LeaseCheck::kLost;
    } else {
      out = r[0][0].as<bool>() ? LeaseCheck::kSuperseded : LeaseCheck::kHeld;
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<bool> StatusOutbox::Complete(const DueStatus& due) {
  bool held = false;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto r = Exec(tx, c, kComplete, {due.repo_id, due.commit_sha, due.lease_token});
    held = !r.empty();
    if (held) Exec(tx, c, kDeleteDelivered, {due.repo_id, due.commit_sha, r[0][0].as<int64_t>()});
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return held;
}

absl::Status StatusOutbox::Release(const DueStatus& due) {
  return InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    Exec(tx, c, kRelease, {due.repo_id, due.commit_sha, due.lease_token});
    return absl::OkStatus();
  });
}

}  // namespace assay::store
