#include "server/store/jobs.h"

#include <functional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/crypto/crypto.h"
#include "server/store/pipelines.h"
#include "server/store/train.h"

namespace assay::store {
namespace {

const Query kQueue{
    "job_queue",
    "SELECT j.id, j.repo_id, j.priority, " ASSAY_EPOCH_US("j.queued_at") ", j.labels, "
    "j.requirements::text, coalesce(j.concurrency_key, ''), coalesce(j.parallel_key, ''), "
    "coalesce(j.max_parallel, 0), coalesce(j.last_agent_id, 0) "
    "FROM repos r CROSS JOIN LATERAL ("
    "  SELECT * FROM jobs q WHERE q.repo_id = r.id AND q.state = 'queued' "
    "  AND coalesce((q.requirements->>'gpus')::int, 0) <= $2 "
    "  AND coalesce((q.requirements->>'cpus')::int, 1) <= $3 AND q.labels <@ $4::text[] "
    "  AND ($5 OR NOT coalesce((q.requirements->>'untrusted')::boolean, false)) "
    "  AND CASE WHEN q.requirements->>'executor' = 'container' "
    "    THEN CASE WHEN coalesce((q.requirements->>'untrusted')::boolean, false) THEN $7::boolean "
    "      ELSE $6::boolean END "
    "    WHEN coalesce((q.requirements->>'untrusted')::boolean, false) THEN $9::boolean "
    "    ELSE $8::boolean END "
    "  ORDER BY q.priority DESC, q.queued_at, q.id LIMIT $1) j"};
// Why: the planner estimates a handful of queued rows per repository and reads (and sorts)
// every queued job of each one instead of walking jobs_queued_repo in order; with 10,000
// queued jobs that is 25 ms against 0.5 ms. Transaction-local.
const Query kQueuePlan{"job_queue_plan", "SELECT set_config('enable_sort', 'off', true)"};
const Query kRunningPerRepo{
    "job_running_per_repo",
    "SELECT repo_id, count(*) FROM jobs WHERE state IN ('assigned', 'running') GROUP BY repo_id"};
const Query kGroupsInUse{
    "job_groups_in_use",
    "SELECT coalesce(concurrency_key, ''), coalesce(parallel_key, ''), count(*) FROM jobs "
    "WHERE state IN ('assigned', 'running') AND (concurrency_key IS NOT NULL OR "
    "parallel_key IS NOT NULL) GROUP BY 1, 2"};
// $1 job ids, $2 agent ids, $3 tokens, $4 GPU indices as "0,2" ('' for none). A job of an
// untrusted pipeline ("untrusted" in its requirements) is claimed only for an agent that
// accepts untrusted jobs, whatever the caller chose; no job for an agent that is draining or
// said it takes no job (issue 9, lifecycle: agents.accepting, agents.drained_at); and only for
// an agent offering its executor (issue 9): "executor": "container" needs container, an
// untrusted job without it the sandbox (never host), any other job sandbox or host.
const Query kClaimBatch{
    "job_claim_batch",
    "WITH req AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[]) "
    "  AS r(job_id, agent_id, token, gpus)), "
    "pick AS (SELECT j.id FROM jobs j JOIN req ON req.job_id = j.id "
    "  JOIN agents a ON a.id = req.agent_id WHERE j.state = 'queued' "
    "  AND (a.accept_untrusted OR NOT coalesce((j.requirements->>'untrusted')::boolean, false)) "
    "  AND a.accepting AND a.drained_at IS NULL "
    "  AND CASE WHEN j.requirements->>'executor' = 'container' THEN 'container' = ANY(a.executors) "
    "    WHEN coalesce((j.requirements->>'untrusted')::boolean, false) "
    "      THEN 'sandbox' = ANY(a.executors) "
    "    ELSE a.executors && '{sandbox,host}'::text[] END "
    "  FOR UPDATE OF j SKIP LOCKED), "
    "claimed AS ("
    "  UPDATE jobs j SET state = 'assigned', attempt = j.attempt + 1, attempt_token = req.token, "
    "  agent_id = req.agent_id, gpu_indices = CASE WHEN req.gpus = '' THEN NULL "
    "    ELSE string_to_array(req.gpus, ',')::int[] END, "
    "  lease_expires_at = $5::timestamptz + $6::float8 * interval '1 millisecond' "
    "  FROM pick, req WHERE j.id = pick.id AND req.job_id = j.id RETURNING j.*), "
    "attempt AS ("
    "  INSERT INTO job_attempts (job_id, attempt, attempt_token, agent_id, state, assigned_at, "
    "  gpu_indices) SELECT id, attempt, attempt_token, agent_id, 'assigned', $5, gpu_indices "
    "  FROM claimed RETURNING 1) "
    "SELECT c.id, c.pipeline_id, c.attempt, c.attempt_token, c.name, c.spec::text, r.clone_url, "
    "  p.commit_sha, p.ref, " ASSAY_EPOCH_US("c.queued_at") ", (SELECT count(*) FROM attempt), "
    "  c.agent_id, coalesce(array_to_string(c.gpu_indices, ','), ''), r.clone_credential_enc, "
    "  r.id, coalesce((c.requirements->>'untrusted')::boolean, false) FROM claimed c JOIN pipelines p ON p.id = c.pipeline_id JOIN repos r ON r.id = p.repo_id"};
const Query kGroupOf{"job_group_of",
                     "SELECT coalesce(concurrency_key, ''), coalesce(parallel_key, ''), "
                     "coalesce(max_parallel, 0) FROM jobs WHERE id = $1 AND state = 'queued'"};
// Why two-key advisory locks: 1 = concurrency groups, 2 = matrix max_parallel; taken in
// that order by every claimer, so they cannot deadlock.
const Query kLockConcurrency{"job_lock_concurrency",
                             "SELECT pg_advisory_xact_lock(1, hashtext($1))"};
const Query kLockParallel{"job_lock_parallel", "SELECT pg_advisory_xact_lock(2, hashtext($1))"};
const Query kConcurrencyLive{
    "job_concurrency_live",
    "SELECT count(*) FROM jobs WHERE concurrency_key = $1 AND state IN ('assigned', 'running')"};
const Query kParallelLive{
    "job_parallel_live",
    "SELECT count(*) FROM jobs WHERE parallel_key = $1 AND state IN ('assigned', 'running')"};
const Query kLiveOf{"job_live_of",
                    "SELECT id, attempt_token, labels, requirements::text, "
                    "coalesce(array_to_string(gpu_indices, ','), '') FROM jobs "
                    "WHERE agent_id = $1 AND state IN ('assigned', 'running') ORDER BY id"};
const Query kLiveAll{
    "job_live_all",
    "SELECT id, pipeline_id, agent_id, labels, requirements::text, "
    "coalesce(array_to_string(gpu_indices, ','), ''), coalesce(concurrency_key, ''), "
    "coalesce(parallel_key, '') FROM jobs WHERE state IN ('assigned', 'running') ORDER BY id"};
// $1 agent id, $2 the session's generation. FOR SHARE: a Hello's upsert of the agent row
// waits for this statement (and then renews the leases), or this one waits for the Hello and
// re-reads the row as it locks it, finds a newer generation and changes nothing.
const Query kShortenLeases{
    "job_shorten_leases",
    "WITH cur AS (SELECT id FROM agents WHERE id = $1 AND generation = $2 FOR SHARE) "
    "UPDATE jobs j SET lease_expires_at = least(j.lease_expires_at, "
    "$3::timestamptz + $4::float8 * interval '1 millisecond') "
    "FROM cur WHERE j.agent_id = cur.id AND j.state IN ('assigned', 'running') RETURNING 1"};
const Query kRetryAfterFinish{
    "job_retry_after_finish",
    "UPDATE jobs SET state = 'queued', queued_at = $3, attempt_token = NULL, "
    "last_agent_id = agent_id, agent_id = NULL, gpu_indices = NULL, lease_expires_at = NULL, "
    "started_at = NULL, finished_at = NULL, exit_code = NULL, message = NULL "
    "WHERE id = $1 AND state = $2 AND attempt < max_attempts AND "
    "(($2 = 'failed' AND 'failure' = ANY(retry_on)) OR "
    " ($2 = 'timed_out' AND 'timeout' = ANY(retry_on))) RETURNING 1"};
const Query kMarkRunning{
    "job_mark_running",
    "WITH j AS (UPDATE jobs SET state = 'running', started_at = $3 WHERE id = $1 AND "
    "attempt_token = $2 AND state = 'assigned' RETURNING id, attempt) "
    "UPDATE job_attempts a SET state = 'running', started_at = $3 FROM j "
    "WHERE a.job_id = j.id AND a.attempt = j.attempt RETURNING 1"};
const Query kTokenState{"job_token_state",
                        "SELECT state FROM jobs WHERE id = $1 AND attempt_token = $2"};
const Query kReject{
    "job_reject",
    "WITH j AS (UPDATE jobs SET state = 'queued', attempt_token = NULL, agent_id = NULL, "
    "gpu_indices = NULL, lease_expires_at = NULL, queued_at = $4, started_at = NULL, "
    "max_attempts = max_attempts + 1 WHERE id = $1 AND attempt_token = $2 AND "
    "state IN ('assigned', 'running') RETURNING id, attempt) "
    "UPDATE job_attempts a SET state = 'rejected', finished_at = $4, message = $3 FROM j "
    "WHERE a.job_id = j.id AND a.attempt = j.attempt RETURNING 1"};
// The attempt a log chunk belongs to, locked: its chunks are counted against the quota one
// at a time. A merged row (seq..end_seq) covers the chunks it replaced: the row with the
// greatest seq up to $3 holds chunk $3 when its end_seq reaches it.
const Query kLogAttempt{
    "job_log_attempt",
    "SELECT a.attempt, a.log_bytes, a.log_truncated, "
    "coalesce((SELECT c.end_seq >= $3 FROM log_chunks c WHERE c.job_id = $1 AND "
    "c.attempt = a.attempt AND c.seq <= $3 ORDER BY c.seq DESC LIMIT 1), false) "
    "FROM jobs j JOIN job_attempts a ON a.job_id = j.id AND a.attempt = j.attempt "
    "WHERE j.id = $1 AND j.attempt_token = $2 FOR UPDATE OF a"};
// The same, once per attempt and transaction of AppendLogs, with where the contiguous log
// ends (end_seq and end offset of its last placed row; 0, 0 for none) and whether rows wait
// for an earlier chunk (start_offset NULL).
const Query kLogAttemptState{
    "job_log_attempt_state",
    "SELECT a.attempt, a.log_bytes, a.log_truncated, coalesce(t.end_seq, 0), "
    "coalesce(t.end_offset, 0), EXISTS (SELECT 1 FROM log_chunks p WHERE p.job_id = $1 AND "
    "p.attempt = a.attempt AND p.start_offset IS NULL) "
    "FROM jobs j JOIN job_attempts a ON a.job_id = j.id AND a.attempt = j.attempt "
    "LEFT JOIN LATERAL (SELECT c.end_seq, c.start_offset + octet_length(c.data) AS end_offset "
    "  FROM log_chunks c WHERE c.job_id = $1 AND c.attempt = a.attempt AND "
    "  c.start_offset IS NOT NULL ORDER BY c.start_offset DESC LIMIT 1) t ON true "
    "WHERE j.id = $1 AND j.attempt_token = $2 FOR UPDATE OF a"};
const Query kLogAnyPending{"job_log_any_pending",
                           "SELECT 1 FROM log_chunks WHERE job_id = $1 AND attempt = $2 AND "
                           "start_offset IS NULL LIMIT 1"};
// $5: the chunk's byte offset in the attempt's log, NULL while a chunk before it is missing;
// $6 its read-time mark.
const Query kInsertLogChunk{
    "job_insert_log_chunk",
    "INSERT INTO log_chunks (job_id, attempt, seq, end_seq, data, start_offset, marks) "
    "VALUES ($1, $2, $3, $3, $4, $5::bigint, $6)"};
// The end of the contiguous log: the last placed row's end_seq and end offset.
const Query kLogTail{
    "job_log_tail",
    "SELECT end_seq, start_offset + octet_length(data) FROM log_chunks WHERE job_id = $1 AND "
    "attempt = $2 AND start_offset IS NOT NULL ORDER BY start_offset DESC LIMIT 1"};
// Chunks stored out of order, waiting for their offset.
const Query kLogPending{
    "job_log_pending",
    "SELECT seq, end_seq, octet_length(data) FROM log_chunks WHERE job_id = $1 AND "
    "attempt = $2 AND start_offset IS NULL ORDER BY seq"};
const Query kLogPlace{"job_log_place",
                      "UPDATE log_chunks SET start_offset = $4 WHERE job_id = $1 AND "
                      "attempt = $2 AND seq = $3"};
// Wakes followers of the job's log (GET /log?follow=1) on every server.
const Query kNotifyLog{"job_notify_log", "SELECT pg_notify('assay_logs', $1::text)"};
// The attempt ended: followers stop, the log compactor merges its rows.
const Query kNotifyLogEnded{"job_notify_log_ended",
                            "SELECT pg_notify('assay_log_ended', $1::text)"};
const Query kCountLogBytes{"job_count_log_bytes",
                           "UPDATE job_attempts SET log_bytes = log_bytes + $3, log_truncated = $4 "
                           "WHERE job_id = $1 AND attempt = $2"};
// Finds and locks the pipeline of the attempt in one round trip (kFinish re-checks the token
// under the lock).
const Query kLockPipelineOfToken{"job_lock_pipeline_of_token",
                                 "SELECT p.id FROM jobs j JOIN pipelines p ON p.id = j.pipeline_id "
                                 "WHERE j.id = $1 AND j.attempt_token = $2 FOR UPDATE OF p"};
const Query kFinish{
    "job_finish",
    "WITH j AS (UPDATE jobs SET state = $3, exit_code = $4, message = nullif($5, ''), "
    "started_at = coalesce(started_at, $6), finished_at = $7, lease_expires_at = NULL "
    "WHERE id = $1 AND attempt_token = $2 AND state IN ('assigned', 'running') "
    "RETURNING id, attempt) "
    "UPDATE job_attempts a SET state = $3, exit_code = $4, message = nullif($5, ''), "
    "started_at = coalesce(a.started_at, $6), finished_at = $7, "
    "steps = nullif($8, '')::jsonb FROM j "
    "WHERE a.job_id = j.id AND a.attempt = j.attempt RETURNING 1"};
// Issue 11: the step marks of the attempt whose log GET /log shows (the newest with chunks).
const Query kStepsOf{"job_steps_of",
                     "SELECT coalesce(steps::text, '') FROM job_attempts WHERE job_id = $1 AND "
                     "attempt = (SELECT max(attempt) FROM log_chunks WHERE job_id = $1)"};
// Issue 10: a job whose train step's model could not be registered fails after all.
const Query kFailAfterFinish{
    "job_fail_after_finish",
    "WITH j AS (UPDATE jobs SET state = 'failed', exit_code = coalesce(exit_code, 1), "
    "message = $3 WHERE id = $1 AND attempt_token = $2 RETURNING id, attempt) "
    "UPDATE job_attempts a SET state = 'failed', exit_code = coalesce(a.exit_code, 1), "
    "message = $3 FROM j WHERE a.job_id = j.id AND a.attempt = j.attempt RETURNING 1"};
const Query kHeartbeat{
    "job_heartbeat",
    "UPDATE jobs SET lease_expires_at = $3::timestamptz + $4::float8 * interval '1 millisecond' "
    "WHERE id = $1 AND attempt_token = $2 AND state IN ('assigned', 'running') RETURNING 1"};
// Why no FOR UPDATE here: every writer of a job locks its pipeline row first (Finish,
// Cancel); locking job rows before the pipeline would deadlock with them. RequeueLost locks
// each pipeline (in pipeline id order) and kLoseAttempt re-checks the job under that lock.
const Query kExpiredJobs{
    "job_expired",
    "SELECT id, pipeline_id, attempt_token FROM jobs WHERE state IN ('assigned', 'running') "
    "AND lease_expires_at < $1 ORDER BY pipeline_id, id"};
const Query kLiveOfAgent{
    "job_live_of_agent",
    "SELECT id, pipeline_id, attempt_token FROM jobs WHERE state IN ('assigned', 'running') "
    "AND agent_id = $1 ORDER BY pipeline_id, id"};
#define ASSAY_RETRY_LOST "(attempt < max_attempts AND 'agent_lost' = ANY(retry_on))"
const Query kLoseAttempt{
    "job_lose_attempt",
    "WITH j AS (UPDATE jobs SET "
    "  state = CASE WHEN " ASSAY_RETRY_LOST
    " THEN 'queued' ELSE 'failed' END, "
    "  queued_at = CASE WHEN " ASSAY_RETRY_LOST
    " THEN $3 ELSE queued_at END, "
    "  finished_at = CASE WHEN " ASSAY_RETRY_LOST
    " THEN NULL ELSE $3 END, "
    "  started_at = CASE WHEN " ASSAY_RETRY_LOST
    " THEN NULL ELSE started_at END, "
    "  message = CASE WHEN " ASSAY_RETRY_LOST
    " THEN NULL ELSE $4 END, "
    "  attempt_token = NULL, last_agent_id = agent_id, "
    "  agent_id = CASE WHEN " ASSAY_RETRY_LOST
    " THEN NULL ELSE agent_id END, "
    "  gpu_indices = CASE WHEN " ASSAY_RETRY_LOST
    " THEN NULL ELSE gpu_indices END, "
    "  lease_expires_at = NULL "
    "  WHERE id = $1 AND attempt_token = $2 AND state IN ('assigned', 'running') "
    "  AND ($5::timestamptz IS NULL OR lease_expires_at < $5) "
    "  RETURNING id, attempt, state) "
    "UPDATE job_attempts a SET state = 'lost', finished_at = $3, message = $4 FROM j "
    "WHERE a.job_id = j.id AND a.attempt = j.attempt RETURNING j.state"};
const Query kReadLog{
    "job_read_log",
    "SELECT data FROM log_chunks WHERE job_id = $1 AND attempt = (SELECT max(attempt) FROM "
    "log_chunks WHERE job_id = $1) ORDER BY seq"};
const Query kNotifyQueued{"job_notify_queued", "SELECT pg_notify('assay_jobs', '')"};
const Query kJobExists{"job_exists", "SELECT 1 FROM jobs WHERE id = $1"};
const Query kCountByState{"job_count_by_state",
                          "SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state"};
const Query kActiveWork{
    "active_work",
    "SELECT (SELECT count(*) FROM webhook_deliveries WHERE state = 'received') + "
    "(SELECT count(*) FROM jobs WHERE state IN ('pending', 'queued', 'assigned', 'running'))"};

}  // namespace

static std::vector<uint32_t> ParseIndexList(const std::string& text) {
  std::vector<uint32_t> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    uint32_t v = 0;
    if (absl::SimpleAtoi(part, &v)) out.push_back(v);
  }
  return out;
}

static std::string IndexList(const std::vector<uint32_t>& v) { return absl::StrJoin(v, ","); }

absl::StatusOr<QueueSnapshot> JobStore::Queue(const QueueFilter& f) {
  QueueSnapshot out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    Exec(tx, c, kQueuePlan);
    for (const auto& r :
         Exec(tx, c, kQueue,
              {f.per_repo, f.max_gpus, f.max_cpus, ToPgTextArray(f.any_labels), f.untrusted,
               f.container, f.untrusted_container, f.process, f.untrusted_sandbox})) {
      QueuedJobRow j;
      j.job_id = r[0].as<int64_t>();
      j.repo_id = r[1].as<int64_t>();
      j.priority = r[2].as<int>();
      j.queued_at = ToTime(r[3]);
      j.labels = FromPgTextArray(r[4]);
      j.requirements_json = r[5].as<std::string>();
      j.concurrency_key = r[6].as<std::string>();
      j.parallel_key = r[7].as<std::string>();
      j.max_parallel = r[8].as<int>();
      j.last_agent_id = r[9].as<int64_t>();
      out.jobs.push_back(std::move(j));
    }
    // Both reads below scan every live job: skip them when this snapshot cannot use them
    // (fair share needs two repositories; groups need a job that has one).
    std::set<int64_t> repos;
    bool any_group = false;
    for (const auto& j : out.jobs) {
      repos.insert(j.repo_id);
      any_group |= !j.concurrency_key.empty() || !j.parallel_key.empty();
    }
    if (repos.size() > 1) {
      for (const auto& r : Exec(tx, c, kRunningPerRepo)) {
        out.running_per_repo[r[0].as<int64_t>()] = r[1].as<int>();
      }
    }
    if (!any_group) return absl::OkStatus();
    for (const auto& r : Exec(tx, c, kGroupsInUse)) {
      std::string group = r[0].as<std::string>(), parallel = r[1].as<std::string>();
      if (!group.empty()) out.held_groups.insert(group);
      if (!parallel.empty()) out.running_per_parallel_key[parallel] += r[2].as<int>();
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

namespace {

ClaimedJob ClaimedFromRow(const pqxx::row& r) {
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
  j.agent_id = r[11].as<int64_t>();
  j.gpu_indices = ParseIndexList(r[12].as<std::string>());
  if (!r[13].is_null()) j.clone_credential_sealed = BytesOf(r[13]);
  j.repo_id = r[14].as<int64_t>();
  j.untrusted = r[15].as<bool>();
  return j;
}

}  // namespace

ClaimBatchResult JobStore::ClaimBatch(const std::vector<ClaimRequest>& batch,
                                      absl::Duration lease) {
  ClaimBatchResult out;
  if (batch.empty()) return out;
  const absl::Time now = clock_->Now();
  const int64_t lease_ms = absl::ToInt64Milliseconds(lease);
  // Claims `reqs` in one statement; `got` receives what was still queued (set, not appended,
  // so that a retried transaction starts afresh).
  auto claim = [&](pqxx::work& tx, Connection& c, const std::vector<const ClaimRequest*>& reqs,
                   std::vector<ClaimedJob>& got) {
    std::vector<int64_t> jobs, agents;
    std::vector<std::string> tokens, gpus;
    for (const ClaimRequest* r : reqs) {
      jobs.push_back(r->job_id);
      agents.push_back(r->agent_id);
      tokens.push_back(RandomHexToken(16));
      gpus.push_back(IndexList(r->gpu_indices));
    }
    got.clear();
    for (const auto& r : Exec(tx, c, kClaimBatch,
                              {ToPgArray(jobs), ToPgArray(agents), ToPgTextArray(tokens),
                               ToPgTextArray(gpus), now, lease_ms})) {
      got.push_back(ClaimedFromRow(r));
    }
  };
  // Each transaction fills its own `got`, appended to the result once it committed.
  auto commit = [&](const std::function<absl::Status(pqxx::work&, Connection&,
                                                     std::vector<ClaimedJob>&)>& fn) {
    std::vector<ClaimedJob> got;
    absl::Status s =
        InTransaction(*db_, [&](pqxx::work& tx, Connection& c) { return fn(tx, c, got); });
    if (!s.ok()) return s;
    for (auto& j : got) out.claimed.push_back(std::move(j));
    return absl::OkStatus();
  };
  std::vector<const ClaimRequest*> plain, grouped;
  for (const ClaimRequest& r : batch) (r.grouped ? grouped : plain).push_back(&r);
  if (!plain.empty()) {
    out.status = commit([&](pqxx::work& tx, Connection& c, std::vector<ClaimedJob>& got) {
      claim(tx, c, plain, got);
      return absl::OkStatus();
    });
  }
  for (size_t i = 0; i < grouped.size() && out.status.ok(); ++i) {
    const ClaimRequest* r = grouped[i];
    out.status = commit([&](pqxx::work& tx, Connection& c, std::vector<ClaimedJob>& got) {
      got.clear();
      auto g = Exec(tx, c, kGroupOf, {r->job_id});
      if (g.empty()) return absl::OkStatus();  // not queued any more
      const std::string group = g[0][0].as<std::string>(), parallel = g[0][1].as<std::string>();
      const int max_parallel = g[0][2].as<int>();
      if (!group.empty()) {
        Exec(tx, c, kLockConcurrency, {group});
        if (Exec(tx, c, kConcurrencyLive, {group})[0][0].as<int64_t>() > 0) {
          return absl::OkStatus();
        }
      }
      if (!parallel.empty() && max_parallel > 0) {
        Exec(tx, c, kLockParallel, {parallel});
        if (Exec(tx, c, kParallelLive, {parallel})[0][0].as<int64_t>() >= max_parallel) {
          return absl::OkStatus();
        }
      }
      claim(tx, c, {r}, got);
      return absl::OkStatus();
    });
  }
  return out;
}

absl::StatusOr<std::vector<LiveJob>> JobStore::LiveJobsOf(int64_t agent_id) {
  std::vector<LiveJob> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    for (const auto& r : Exec(tx, c, kLiveOf, {agent_id})) {
      out.push_back({r[0].as<int64_t>(), r[1].as<std::string>(), FromPgTextArray(r[2]),
                     r[3].as<std::string>(), ParseIndexList(r[4].as<std::string>())});
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<LiveUsage>> JobStore::LiveUsageAll() {
  std::vector<LiveUsage> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    for (const auto& r : Exec(tx, c, kLiveAll)) {
      LiveUsage u;
      u.job_id = r[0].as<int64_t>();
      u.pipeline_id = r[1].as<int64_t>();
      u.agent_id = r[2].as<int64_t>();
      u.labels = FromPgTextArray(r[3]);
      u.requirements_json = r[4].as<std::string>();
      u.gpu_indices = ParseIndexList(r[5].as<std::string>());
      u.concurrency_key = r[6].as<std::string>();
      u.parallel_key = r[7].as<std::string>();
      out.push_back(std::move(u));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<int> JobStore::ShortenLeases(const AgentSession& session, absl::Duration grace) {
  int shortened = 0;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    shortened = static_cast<int>(Exec(tx, c, kShortenLeases,
                                      {session.id, session.generation, clock_->Now(),
                                       static_cast<int64_t>(absl::ToInt64Milliseconds(grace))})
                                     .size());
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return shortened;
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
  return CloseUnrun(job_id, token, absl::StrCat("rejected by agent: ", std::string(reason)));
}

absl::StatusOr<Fence> JobStore::Unassign(int64_t job_id, std::string_view token,
                                         std::string_view why) {
  return CloseUnrun(job_id, token, std::string(why));
}

absl::StatusOr<Fence> JobStore::CloseUnrun(int64_t job_id, std::string_view token,
                                           const std::string& message) {
  Fence f = Fence::kOk;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto res = Exec(tx, c, kReject, {job_id, token, message, clock_->Now()});
    if (res.empty()) {
      f = Fence::kStale;
    } else {
      Exec(tx, c, kNotifyQueued);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return f;
}

std::string LogTruncationMarker(int64_t quota_bytes) {
  std::string quota = quota_bytes % (int64_t{1} << 20) == 0
                          ? absl::StrCat(quota_bytes >> 20, " MiB")
                          : absl::StrCat(quota_bytes, " bytes");
  return absl::StrCat("\n[assay] log truncated: job exceeded its ", quota,
                      " log quota; later output was dropped\n");
}

std::string LogMark(uint32_t offset, int64_t unix_us) {
  std::string out(12, '\0');
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((offset >> (8 * i)) & 0xff);
  const uint64_t us = static_cast<uint64_t>(unix_us);
  for (int i = 0; i < 8; ++i) out[4 + i] = static_cast<char>((us >> (8 * i)) & 0xff);
  return out;
}

absl::StatusOr<Fence> JobStore::AppendLog(int64_t job_id, std::string_view token, int64_t seq,
                                          std::string_view data, int64_t quota_bytes,
                                          int64_t read_unix_us) {
  auto f = AppendLogs({LogAppend{job_id, token, seq, data, read_unix_us}}, quota_bytes);
  if (!f.ok()) return f.status();
  return f->front();
}

namespace {

// What one AppendLogs transaction knows of an attempt it wrote to (its row locked).
struct AttemptLog {
  int attempt = 0;
  int64_t stored = 0;      // job_attempts.log_bytes, counting `uncounted`
  bool truncated = false;  // job_attempts.log_truncated, as of now
  int64_t uncounted = 0;   // bytes added but not yet written to log_bytes
  bool known = false;      // tail_seq, tail_end and pending are current
  int64_t tail_seq = 0;    // the contiguous log holds chunks 1..tail_seq
  int64_t tail_end = 0;    // and bytes [0, tail_end)
  bool pending = false;    // rows wait for an earlier chunk (the careful path then)
};

}  // namespace

absl::StatusOr<std::vector<Fence>> JobStore::AppendLogs(const std::vector<LogAppend>& chunks,
                                                        int64_t quota_bytes) {
  for (const auto& ch : chunks) {
    if (ch.seq < 1) return absl::InvalidArgumentError("log chunk seq must be >= 1");
  }
  if (quota_bytes < 0) return absl::InvalidArgumentError("log quota must not be negative");
  std::vector<Fence> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.assign(chunks.size(), Fence::kOk);
    // Keyed by (job, token): a stale token is remembered as such (attempt 0).
    std::map<std::pair<int64_t, std::string_view>, AttemptLog> attempts;
    std::set<int64_t> notified;
    auto count = [&](int64_t job_id, AttemptLog& st) {
      if (st.uncounted == 0) return;
      Exec(tx, c, kCountLogBytes, {job_id, st.attempt, st.uncounted, st.truncated});
      st.uncounted = 0;
    };
    for (const auto& ch : chunks) attempts.try_emplace({ch.job_id, ch.token});
    // Why lock every attempt row first, in (job, token) order: two transactions that lock the
    // rows of the same attempts in different orders (two streams of one agent across a
    // reconnect, the lease sweep) would deadlock.
    for (auto& [key, st] : attempts) {
      auto a = Exec(tx, c, kLogAttemptState, {key.first, key.second});
      if (a.empty()) continue;  // stale: attempt stays 0
      st.attempt = a[0][0].as<int>();
      st.stored = a[0][1].as<int64_t>();
      st.truncated = a[0][2].as<bool>();
      st.tail_seq = a[0][3].as<int64_t>();
      st.tail_end = a[0][4].as<int64_t>();
      st.pending = a[0][5].as<bool>();
      st.known = true;
    }
    for (size_t i = 0; i < chunks.size(); ++i) {
      const LogAppend& ch = chunks[i];
      AttemptLog& st = attempts.at({ch.job_id, ch.token});
      if (st.attempt == 0) {
        out[i] = Fence::kStale;
        continue;
      }
      if (!st.known) {  // the careful path ran: read where the log stands again
        auto t = Exec(tx, c, kLogTail, {ch.job_id, st.attempt});
        st.tail_seq = t.empty() ? 0 : t[0][0].as<int64_t>();
        st.tail_end = t.empty() ? 0 : t[0][1].as<int64_t>();
        st.pending = !Exec(tx, c, kLogAnyPending, {ch.job_id, st.attempt}).empty();
        st.known = true;
      }
      // Why a chunk inside the contiguous log is a duplicate: rows get an offset only once
      // every chunk before them is stored.
      if (ch.seq <= st.tail_seq) {
        out[i] = Fence::kDuplicate;
        continue;
      }
      const bool in_order = ch.seq == st.tail_seq + 1;
      if (!in_order || st.pending) {
        // Out of order, or rows wait: what AppendLog always did, chunk by chunk.
        count(ch.job_id, st);
        auto d = Exec(tx, c, kLogAttempt, {ch.job_id, ch.token, ch.seq});
        if (!d.empty() && d[0][3].as<bool>()) {
          out[i] = Fence::kDuplicate;
          continue;
        }
        st.known = false;
      }
      if (st.truncated) {
        out[i] = Fence::kDropped;
        continue;
      }
      if (notified.insert(ch.job_id).second) {
        Exec(tx, c, kNotifyLog, {absl::StrCat(ch.job_id)});
      }
      const int64_t size = static_cast<int64_t>(ch.data.size());
      // Why the server's clock when the agent gives none: a stamp close to the read beats none.
      const Param mark = Param::Bytes(
          LogMark(0, ch.read_unix_us > 0 ? ch.read_unix_us : absl::ToUnixMicros(clock_->Now())));
      // Where the chunk goes: right after the contiguous log when it is the next one; else it
      // waits (NULL offset) for the chunks before it.
      const Param offset = in_order ? Param(st.tail_end) : Param::Null();
      std::string kept;
      int64_t counted = size;
      if (st.stored + size <= quota_bytes) {
        kept = std::string(ch.data);
      } else {
        // Why cut the crossing chunk rather than drop it whole: the stored log is then exactly
        // the first quota_bytes bytes the job wrote, then the marker.
        counted = std::max<int64_t>(0, quota_bytes - st.stored);
        kept = std::string(ch.data.substr(0, static_cast<size_t>(counted)));
        kept += LogTruncationMarker(quota_bytes);
        st.truncated = true;
        out[i] = Fence::kDropped;
      }
      const int64_t kept_size = static_cast<int64_t>(kept.size());
      Exec(tx, c, kInsertLogChunk,
           {ch.job_id, st.attempt, ch.seq, Param::Bytes(std::move(kept)), offset, mark});
      st.stored += counted;
      st.uncounted += counted;
      if (st.truncated) {  // the flag is written even when no byte more fit
        Exec(tx, c, kCountLogBytes, {ch.job_id, st.attempt, st.uncounted, true});
        st.uncounted = 0;
      }
      if (!in_order) continue;  // st.known is false: re-read next time
      st.tail_seq = ch.seq;
      st.tail_end += kept_size;
      if (!st.pending) continue;
      // Places the chunks that waited for this one, in seq order while they follow on.
      int64_t pos = st.tail_end, expect = ch.seq + 1;
      for (const auto& w : Exec(tx, c, kLogPending, {ch.job_id, st.attempt})) {
        if (w[0].as<int64_t>() != expect) break;
        Exec(tx, c, kLogPlace, {ch.job_id, st.attempt, w[0].as<int64_t>(), pos});
        pos += w[2].as<int64_t>();
        expect = w[1].as<int64_t>() + 1;
      }
      st.known = false;
    }
    for (auto& [key, st] : attempts) {
      if (st.attempt != 0) count(key.first, st);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<FinishOutcome> JobStore::Finish(const ResultReport& r) {
  FinishOutcome out;
  absl::Time now = clock_->Now();
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    // Why lock first: two jobs of one pipeline finishing at once must see each other's
    // state when deciding which dependents are ready.
    auto p = Exec(tx, c, kLockPipelineOfToken, {r.job_id, r.attempt_token});
    if (p.empty()) {
      out.fence = Fence::kStale;
      return absl::OkStatus();
    }
    int64_t pipeline_id = p[0][0].as<int64_t>();
    absl::Time started = r.started_at == absl::InfinitePast() ? now : r.started_at;
    absl::Time finished = r.finished_at == absl::InfinitePast() ? now : r.finished_at;
    if (r.state == kAgentStopped) {
      // Why like a lost agent: the operator stopped the agent, not the user the job.
      auto lost =
          Exec(tx, c, kLoseAttempt, {r.job_id, r.attempt_token, now, r.message, Param::Null()});
      if (lost.empty()) {
        out.fence = Fence::kDuplicate;
        return absl::OkStatus();
      }
      out.duration = finished - started;
      Exec(tx, c, kNotifyLogEnded, {absl::StrCat(r.job_id)});
      if (lost[0][0].as<std::string>() == "queued") {
        out.retried = true;
        Exec(tx, c, kNotifyQueued);
      } else {
        out.queued = AdvancePipeline(tx, c, pipeline_id, now, /*may_block=*/true);
      }
      return absl::OkStatus();
    }
    auto res = Exec(tx, c, kFinish,
                    {r.job_id, r.attempt_token, r.state, Param::Opt(r.exit_code), r.message,
                     started, finished, r.steps_json});
    if (res.empty()) {
      out.fence = Fence::kDuplicate;  // already finished (or canceled) under this token
      return absl::OkStatus();
    }
    out.duration = finished - started;
    InsertJobImages(tx, c, r.job_id, r.attempt_token, r.images);  // issue 9, build_image
    Exec(tx, c, kNotifyLogEnded, {absl::StrCat(r.job_id)});
    bool succeeded = r.state == "succeeded";
    std::string state = r.state;
    if (succeeded) {
      // Issue 10: a train step's model is registered as the job succeeds; when it cannot be,
      // the job fails with the reason (it did not deliver what it promised).
      if (absl::Status reg = RegisterTrainedModels(tx, c, r.job_id, now); !reg.ok()) {
        Exec(tx, c, kFailAfterFinish, {r.job_id, r.attempt_token, std::string(reg.message())});
        succeeded = false;
        state = "failed";
      }
    }
    if (!succeeded && !Exec(tx, c, kRetryAfterFinish, {r.job_id, state, now}).empty()) {
      out.retried = true;
      Exec(tx, c, kNotifyQueued);
      return absl::OkStatus();
    }
    out.queued = AdvancePipeline(tx, c, pipeline_id, now, /*may_block=*/!succeeded);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::string> JobStore::StepsOf(int64_t job_id) {
  std::string out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto r = Exec(tx, c, kStepsOf, {job_id});
    out = r.empty() ? "" : r[0][0].as<std::string>();
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
                                          const std::vector<HeldAttempt>* keep, int64_t agent_id) {
  int handled = 0;
  absl::Time now = clock_->Now();
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto rows =
        keep == nullptr ? Exec(tx, c, kExpiredJobs, {now}) : Exec(tx, c, kLiveOfAgent, {agent_id});
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
      if (res[0][0].as<std::string>() == "failed") {
        AdvancePipeline(tx, c, pipeline_id, now);
      } else {
        Exec(tx, c, kNotifyQueued);
      }
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
