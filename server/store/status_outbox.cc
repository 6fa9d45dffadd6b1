#include "server/store/status_outbox.h"

#include "absl/strings/str_cat.h"

namespace assay::store {
namespace {

constexpr Query kClaimDue{
    "status_claim_due",
    "SELECT p.id, p.state, p.commit_sha, r.name, r.provider, coalesce(r.status_api_url, ''), "
    "r.status_token_enc, coalesce(r.status_repository, ''), coalesce(r.status_context, '') "
    "FROM pipelines p JOIN repos r ON r.id = p.repo_id "
    "WHERE p.status_reported IS DISTINCT FROM p.state ORDER BY p.id LIMIT $1 "
    "FOR UPDATE OF p SKIP LOCKED"};
constexpr Query kMarkReported{
    "status_mark_reported",
    "UPDATE pipelines SET status_reported = state WHERE id = ANY($1::bigint[])"};

}  // namespace

absl::StatusOr<std::vector<DueStatus>> StatusOutbox::Claim(int limit) {
  std::vector<DueStatus> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    std::string ids = "{";
    for (const auto& r : Exec(tx, c, kClaimDue, {limit})) {
      DueStatus d;
      d.pipeline_id = r[0].as<int64_t>();
      d.state = r[1].as<std::string>();
      d.commit_sha = r[2].as<std::string>();
      d.repo_name = r[3].as<std::string>();
      d.provider = r[4].as<std::string>();
      d.api_url = r[5].as<std::string>();
      if (!r[6].is_null()) d.token_sealed = BytesOf(r[6]);
      d.repository = r[7].as<std::string>();
      d.context = r[8].as<std::string>();
      absl::StrAppend(&ids, out.empty() ? "" : ",", d.pipeline_id);
      out.push_back(std::move(d));
    }
    ids += "}";
    if (!out.empty()) Exec(tx, c, kMarkReported, {ids});
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace assay::store
