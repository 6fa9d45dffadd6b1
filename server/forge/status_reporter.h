#pragma once
// Reports pipeline states to the forge as commit statuses: claims due pipelines from the outbox
// (server/store/status_outbox.h) and posts them to a CommitStatusNotifier, which sends and retries
// them off this thread. Never blocks or fails a pipeline: every error is logged and counted.
//
// Wakes on Kick(), on a PostgreSQL notification (LISTEN assay_pipeline_state, raised by
// migration 0004's trigger on every pipeline insert and state change, from any replica), and
// every poll_interval in case a notification was missed.
//
// What is reported (state → commit status, description):
//   running   → pending   "Assay: pipeline N is running"
//   succeeded → success   "Assay: pipeline N succeeded"
//   failed    → failure   "Assay: pipeline N failed"
//   canceled  → canceled  "Assay: pipeline N was canceled"   (GitHub, Gitea: error)
//   error     → error     "Assay: pipeline N could not run"
// with target_url {public_url}/api/v1/pipelines/N (none when public_url is empty) and context
// the repository's status_context or "assay". A pipeline that finishes before its running state
// was claimed is reported once, with its final state only.
//
// Limits: a status is marked reported when claimed, before it is sent; statuses still queued in
// the notifier when the server stops are dropped (logged), not sent by another replica.

#include <atomic>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "server/forge/commit_status.h"
#include "server/store/db.h"
#include "server/store/status_outbox.h"

namespace assay::forge {

struct StatusReporterOptions {
  std::string public_url;  // "https://ci.example.com" (a trailing '/' is ignored); "" = none
  absl::Duration poll_interval = absl::Seconds(5);
  int batch = 100;  // pipelines claimed per transaction
};

class StatusReporter {
 public:
  // Everything passed in must outlive the reporter. `secret_key` opens the sealed tokens.
  StatusReporter(store::Db* db, CommitStatusNotifier* notifier, std::string secret_key,
                 StatusReporterOptions options);
  ~StatusReporter();  // Stop()
  StatusReporter(const StatusReporter&) = delete;
  StatusReporter& operator=(const StatusReporter&) = delete;

  void Start();
  // Wakes the reporter to look for due pipelines now. Thread-safe, never blocks.
  void Kick();
  // Joins the thread. Does not stop the notifier.
  void Stop();

  // The commit status for one due pipeline; kInvalidArgument / kDataLoss when it cannot be made
  // (the message names the pipeline and repository, never the token).
  absl::StatusOr<CommitStatus> StatusFor(const store::DueStatus& due) const;

 private:
  void Run();
  // Claims and posts until nothing is due; false when the database could not be reached.
  bool Drain();

  store::Db* db_;
  store::StatusOutbox outbox_;
  CommitStatusNotifier* notifier_;
  std::string secret_key_;
  StatusReporterOptions options_;
  int wake_fds_[2] = {-1, -1};  // a self-pipe: Kick and Stop write, Run polls
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace assay::forge
