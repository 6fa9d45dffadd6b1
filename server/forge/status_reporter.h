#pragma once
// Reports pipeline states to the forge as commit statuses: claims due pipelines from the outbox
// (server/store/status_outbox.h) and posts them to a CommitStatusNotifier, which sends and retries
// them off this thread. Never blocks or fails a pipeline: every error is logged and counted.
//
// Wakes on Kick(), on a PostgreSQL notification (channel assay_pipeline_state, raised by
// migration 0006's trigger on every pipeline insert and state change, from any replica, and
// received through the server's store::Listener), after the listener reconnects, and every
// poll_interval in case a notification was missed.
//
// What is reported (state → commit status, description):
//   running   → pending   "Assay: pipeline N is running"
//   succeeded → success   "Assay: pipeline N succeeded"
//   failed    → failure   "Assay: pipeline N failed"
//   canceled  → canceled  "Assay: pipeline N was canceled"   (GitHub, Gitea: error)
//   error     → error     "Assay: pipeline N could not run"
// with target_url {public_url}/api/v1/pipelines/N (none when public_url is empty) and context
// the repository's status_context or "assay". A state that is superseded before it was sent (a
// newer state of the same commit is queued) is not sent: the newest is.
//
// Guarantee (store/status_outbox.h): at least once and in order per (repository, commit). A
// status is done only when the forge accepted it (2xx) or refused it for good (4xx other than
// 429, or a status that cannot be built); the claim is a lease renewed before every attempt, so
// statuses a stopped or crashed server still held are sent by whichever reporter claims them
// after the lease (or at once, when the stopping server released them).

#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/crypto/sealed.h"
#include "server/forge/commit_status.h"
#include "server/store/db.h"
#include "server/store/listener.h"
#include "server/store/status_outbox.h"

namespace assay::forge {

struct StatusReporterOptions {
  std::string public_url;  // "https://ci.example.com" (a trailing '/' is ignored); "" = none
  absl::Duration poll_interval = absl::Seconds(5);
  int batch = 100;  // commits claimed per transaction
  // A claim's lease, renewed before every attempt; must exceed the notifier's request_timeout.
  absl::Duration lease = absl::Seconds(60);
};

class StatusReporter {
 public:
  // Everything passed in must outlive the reporter, and the notifier must be stopped before the
  // reporter is destroyed (its callbacks use the reporter). `secret_key` opens the sealed tokens.
  StatusReporter(store::Db* db, CommitStatusNotifier* notifier, KeyRing secret_key,
                 StatusReporterOptions options);
  ~StatusReporter();  // Stop()
  StatusReporter(const StatusReporter&) = delete;
  StatusReporter& operator=(const StatusReporter&) = delete;

  // Wakes on *listener's notifications and reconnections; call before listener->Start().
  // Without it the reporter only polls. *listener must be stopped before the reporter goes.
  void Listen(store::Listener* listener);
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
  // The notifier's callbacks for one claimed status (on its worker thread).
  bool BeforeAttempt(const store::DueStatus& due);
  void Done(const store::DueStatus& due, CommitStatusNotifier::Outcome outcome);
  // Records `due` as done (sent or given up for good), then looks for what queued behind it.
  void Complete(const store::DueStatus& due);
  bool stopping();

  store::StatusOutbox outbox_;
  CommitStatusNotifier* notifier_;
  KeyRing secret_key_;
  StatusReporterOptions options_;
  absl::Mutex mu_;
  bool kicked_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace assay::forge
