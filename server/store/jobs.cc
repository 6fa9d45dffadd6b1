#include "server/store/jobs.h"

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "server/store/pipelines.h"

namespace assay::store {
namespace {

constexpr Query kClaim{
    "job_claim",
    "WITH pick AS ("
    "  SELECT id FROM jobs WHERE state = 'queued' AND labels <@ $2::text[] "
    "  ORDER BY priority DESC, queued_at, id LIMIT 1 FOR UPDATE SKIP LOCKED), "
    "claimed AS ("
    "  UPDATE jobs j SET state = 'assigned', attempt = j.attempt + 1, attempt_token = $3, "
    "  agent_id = $1, lease_expires_at = $4::timestamptz + $5::float8 * interval '1 millisecond' "
    "  FROM pick WHERE j.id = pick.id RETURNING j.*), "
    "attempt AS ("
    "  INSERT INTO job_attempts (job_id, attempt, attempt_token, agent_id, state, assigned_at) "
    "  SELECT id, attempt, attempt_token, agent_id, 'assigned', $4 FROM claimed RETURNING 1) "
    "SELECT c.id, c.pipeline_id, c.attempt, c.attempt_token, c.name, c.spec::text, r.clone_url, "
    "  p.commit_sha, p.ref, " ASSAY_EPOCH_US("c.queued_at") ", (SELECT count(*) FROM attempt) "
    "FROM claimed c JOIN pipelines p ON p.id = c.pipeline_id JOIN repos r ON r.id = p.repo_id"};
constexpr Query kMarkRunning{
    "job_mark_running",
    "WITH j AS (UPDATE jobs SET state = 'running', started_at = $3 WHERE id = $1 AND "
    "attempt_token = $2 AND state = 'assigned' RETURNING id, attempt) "
    "UPDATE job_attempts a SET state = 'running', started_at = $3 FROM j "
    "WHERE a.job_id = j.id AND a.attempt = j.attempt RETURNING 1"};
constexpr Query kTokenState{"job_token_state",
                            "SELECT state FROM jobs WHERE id = $1 AND attempt_token = $2"};
constexpr Query kReject{
    "job_reject",
    "WITH j AS (UPDATE jobs SET state = 'queued', attempt_token = NULL, agent_id = NULL, "
    "lease_expires_at = NULL, queued_at = $4 WHERE id = $1 AND attempt_token = $2 AND "
    "state IN ('assigned', 'running') RETURNING id, attempt) "
    "UPDATE job_attempts a SET state = 'rejected', finished_at = $4, message = $3 FROM j "
    "WHERE a.job_id = j.id AND a.attempt = j.attempt RETURNING 1"};
constexpr Query kAppendLog{
    "job_append_log",
    "WITH a AS (SELECT attempt FROM jobs WHERE id = $1 AND attempt_token = $2), "
    "ins AS (INSERT INTO log_chunks (job_id, attempt, seq, data) SELECT $1, a.attempt, $3, $4 "
    "FROM a ON CONFLICT DO NOTHING RETURNING 1) "
    "SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM ins)"};
constexpr Query kJobPipeline{"job_pipeline_of_token",
                             "SELECT pipeline_id FROM jobs WHERE id = $1 AND attempt_token = $2"};
constexpr Query kFinish{
    "job_finish",
    "WITH j AS (UPDATE jobs SET state = $3, exit_code = $4, message = nullif($5, ''), "
    "started_at = coalesce(started_at, $6), finished_at = $7, lease_expires_at = NULL "
    "WHERE id = $1 AND attempt_token = $2 AND state IN ('assigned', 'running') "
    "RETURNING id, attempt) "
    "UPDATE job_attempts a SET state = $3, exit_code = $4, message = nullif($5, ''), "
    "started_at = coalesce(a.started_at, $6), finished_at = $7 FROM j "
    "WHERE a.job_id = j.id AND a.attempt = j.attempt RETURNING 1"};
constexpr Query kHeartbeat{
    "job_heartbeat",
    "UPDATE jobs SET lease_expires_at = $3::timestamptz + $4::float8 * interval '1 millisecond' "
    "WHERE id = $1 AND attempt_token = $2 AND state IN ('assigned', 'running') RETURNING 1"};
// Why no FOR UPDATE here: every writer of a job locks its pipeline row first (Finish,
// Cancel); locking job rows before the pipeline would deadlock with them. RequeueLost locks
// each pipeline (in pipeline id order) and kLoseAttempt re-checks the job under that lock.
constexpr Query kExpiredJobs{
    "job_expired",
    "SELECT id, pipeline_id, attempt_token FROM jobs WHERE state IN ('assigned', 'running') "
    "AND lease_expires_at < $1 ORDER BY pipeline_id, id"};
constexpr Query kLiveOfAgent{
    "job_live_of_agent",
    "SELECT id, pipeline_id, attempt_token FROM jobs WHERE state IN ('assigned', 'running') "
    "AND agent_id = $1 ORDER BY pipeline_id, id"};
constexpr Query kLoseAttempt{
    "job_lose_attempt",
    "WITH j AS (UPDATE jobs SET "
    "  state = CASE WHEN attempt < max_attempts THEN 'queued' ELSE 'failed' END, "
    "  queued_at = CASE WHEN attempt < max_attempts THEN $3 ELSE queued_at END, "
    "  finished_at = CASE WHEN attempt < max_attempts THEN NULL ELSE $3 END, "
    "  message = CASE WHEN attempt < max_attempts THEN NULL ELSE $4 END, "
    "  attempt_token = NULL, "
    "  agent_id = CASE WHEN attempt < max_attempts THEN NULL ELSE agent_id END, "
    "  lease_expires_at = NULL "
    "  WHERE id = $1 AND attempt_token = $2 AND state IN ('assigned', 'running') "
    "  AND ($5::timestamptz IS NULL OR lease_expires_at < $5) "
    "  RETURNING id, attempt, state) "
    "UPDATE job_attempts a SET state = 'lost', finished_at = $3, message = $4 FROM j "
    "WHERE a.job_id = j.id AND a.attempt = j.attempt RETURNING j.state"};
constexpr Query kReadLog{
    "job_read_log",
    "SELECT data FROM log_chunks WHERE job_id = $1 AND attempt = (SELECT max(attempt) FROM "
    "log_chunks WHERE job_id = $1) ORDER BY seq"};
constexpr Query kJobExists{"job_exists", "SELECT 1 FROM jobs WHERE id = $1"};
constexpr Query kCountByState{"job_count_by_state",
                              "SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state"};
constexpr Query kActiveWork{
    "active_work",
    "SELECT (SELECT count(*) FROM webhook_deliveries WHERE state = 'received') + "
    "(SELECT count(*) FROM jobs WHERE state IN ('pending', 'queued', 'assigned', 'running'))"};

}  // namespace

absl::StatusOr<std::optional<ClaimedJob>> JobStore::Claim(int64_t agent_id,
                                                          const std::vector<std::string>& labels,
                                                          absl::Duration lease) {
  std::optional<ClaimedJob> out;
  std::string token = RandomHexToken(16);
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto res = Exec(tx, c, kClaim,
                    {agent_id, ToPgTextArray(labels), token, clock_->Now(),
                     static_cast<int64_t>(absl::ToInt64Milliseconds(lease))});
    if (res.empty()) return absl::OkStatus();
    const auto& r = res[0];
    ClaimedJob j;
    j.job_id = r[0].as<int64_t>();
    j.pipeline_id = r[1].as<int64_t>();
    j.attempt = r[2].as<int>();
    j.attempt_token = r[3].as<std::string>();
    j.job_name = r[4].as<std::string>();
    j.spec_json = r[5].as<std::string>();
    j.clone_url = r[6].as<std::string>();
    j.commit_sha = r[7].as<std::string>();
    j.ref = r[8].as<std::string>();
    j.queued_at = ToTime(r[9]);
    out = std::move(j);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<Fence> JobStore::MarkRunning(int64_t job_id, std::string_view token) {
  Fence f = Fence::kOk;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    if (!Exec(tx, c, kMarkRunning, {job_id, token, clock_->Now()}).empty()) {
      return absl::OkStatus();
    }
    f = Exec(tx, c, kTokenState, {job_id, token}).empty() ? Fence::kStale : Fence::kDuplicate;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return f;
}

absl::StatusOr<Fence> JobStore::Reject(int64_t job_id, std::string_view token,
                                       std::string_view reason) {
  Fence f = Fence::kOk;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto res = Exec(tx, c, kReject,
                    {job_id, token, absl::StrCat("rejected by agent: ", std::string(reason)), clock_->Now()});
    if (res.empty()) f = Fence::kStale;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return f;
}

absl::StatusOr<Fence> JobStore::AppendLog(int64_t job_id, std::string_view token, int64_t seq,
                                          std::string_view data) {
  if (seq < 1) return absl::InvalidArgumentError("log chunk seq must be >= 1");
  Fence f = Fence::kOk;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto res = Exec(tx, c, kAppendLog, {job_id, token, seq, Param::Bytes(std::string(data))});
    if (res[0][0].as<int64_t>() == 0) {
      f = Fence::kStale;
    } else if (res[0][1].as<int64_t>() == 0) {
      f = Fence::kDuplicate;
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return f;
}

absl::StatusOr<FinishOutcome> JobStore::Finish(const ResultReport& r) {
  FinishOutcome out;
  absl::Time now = clock_->Now();
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto p = Exec(tx, c, kJobPipeline, {r.job_id, r.attempt_token});
    if (p.empty()) {
      out.fence = Fence::kStale;
      return absl::OkStatus();
    }
    int64_t pipeline_id = p[0][0].as<int64_t>();
    // Why lock first: two jobs of one pipeline finishing at once must see each other's
    // state when deciding which dependents are ready.
    LockPipeline(tx, c, pipeline_id);
    absl::Time started = r.started_at == absl::InfinitePast() ? now : r.started_at;
    absl::Time finished = r.finished_at == absl::InfinitePast() ? now : r.finished_at;
    auto res = Exec(tx, c, kFinish,
                    {r.job_id, r.attempt_token, r.state, Param::Opt(r.exit_code), r.message,
                     started, finished});
    if (res.empty()) {
      out.fence = Fence::kDuplicate;  // already finished (or canceled) under this token
      return absl::OkStatus();
    }
    out.duration = finished - started;
    out.queued = AdvancePipeline(tx, c, pipeline_id, now);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<HeldAttempt>> JobStore::Heartbeat(const std::vector<HeldAttempt>& held,
                                                             absl::Duration lease) {
  std::vector<HeldAttempt> stale;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    for (const auto& h : held) {
      auto res = Exec(tx, c, kHeartbeat,
                      {h.job_id, h.attempt_token, clock_->Now(),
                       static_cast<int64_t>(absl::ToInt64Milliseconds(lease))});
      if (res.empty()) stale.push_back(h);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return stale;
}

absl::StatusOr<int> JobStore::RequeueLost(const std::string& why,
                                          const std::vector<HeldAttempt>* keep,
                                          int64_t agent_id) {
  int handled = 0;
  absl::Time now = clock_->Now();
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto rows = keep == nullptr ? Exec(tx, c, kExpiredJobs, {now})
                                : Exec(tx, c, kLiveOfAgent, {agent_id});
    for (const auto& r : rows) {
      int64_t job_id = r[0].as<int64_t>();
      std::string token = r[2].as<std::string>();
      if (keep != nullptr) {
        bool held = false;
        for (const auto& h : *keep) held |= (h.job_id == job_id && h.attempt_token == token);
        if (held) continue;
      }
      int64_t pipeline_id = r[1].as<int64_t>();
      LockPipeline(tx, c, pipeline_id);
      // The expiry sweep re-checks the lease: a heartbeat may have extended it meanwhile.
      auto res = Exec(tx, c, kLoseAttempt,
                      {job_id, token, now, why, keep == nullptr ? Param(now) : Param::Null()});
      if (res.empty()) continue;
      ++handled;
      if (res[0][0].as<std::string>() == "failed") AdvancePipeline(tx, c, pipeline_id, now);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return handled;
}

absl::StatusOr<int> JobStore::ExpireLeases() {
  return RequeueLost("agent lost: lease expired", nullptr, 0);
}

absl::StatusOr<int> JobStore::ReleaseUnheld(int64_t agent_id,
                                            const std::vector<HeldAttempt>& held) {
  return RequeueLost("agent reconnected without this job (assignment lost)", &held, agent_id);
}

absl::StatusOr<std::string> JobStore::ReadLog(int64_t job_id) {
  std::string out;
  bool exists = false;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    exists = !Exec(tx, c, kJobExists, {job_id}).empty();
    for (const auto& r : Exec(tx, c, kReadLog, {job_id})) out += BytesOf(r[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (!exists) return absl::NotFoundError(absl::StrCat("job ", job_id, " does not exist"));
  return out;
}

absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> JobStore::CountByState() {
  std::vector<std::pair<std::string, int64_t>> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    for (const auto& r : Exec(tx, c, kCountByState)) {
      out.emplace_back(r[0].as<std::string>(), r[1].as<int64_t>());
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<int64_t> JobStore::ActiveWork() {
  int64_t n = 0;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    n = Exec(tx, c, kActiveWork)[0][0].as<int64_t>();
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return n;
}

}  // namespace assay::store
