#include "server/forge/status_reporter.h"

#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/crypto/crypto.h"

namespace assay::forge {
namespace {

constexpr char kChannel[] = "assay_pipeline_state";

struct StateText {
  const char* state;
  const char* status;
  const char* words;
};
constexpr StateText kStates[] = {{"running", "pending", "is running"},
                                 {"succeeded", "success", "succeeded"},
                                 {"failed", "failure", "failed"},
                                 {"canceled", "canceled", "was canceled"},
                                 {"error", "error", "could not run"}};

}  // namespace

StatusReporter::StatusReporter(store::Db* db, CommitStatusNotifier* notifier, KeyRing secret_key,
                               StatusReporterOptions options)
    : outbox_(db, options.lease),
      notifier_(notifier),
      secret_key_(std::move(secret_key)),
      options_(std::move(options)) {
  while (!options_.public_url.empty() && options_.public_url.back() == '/') {
    options_.public_url.pop_back();
  }
  if (options_.batch < 1) options_.batch = 1;
}

StatusReporter::~StatusReporter() { Stop(); }

void StatusReporter::Listen(store::Listener* listener) {
  // The reporter only needs to wake, not the payload.
  listener->Listen(kChannel, [this](const std::string&) { Kick(); });
  listener->OnReconnect([this] { Kick(); });
}

void StatusReporter::Start() {
  if (thread_.joinable()) return;
  {
    absl::MutexLock l(&mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] { Run(); });
}

void StatusReporter::Kick() {
  absl::MutexLock l(&mu_);
  kicked_ = true;
}

void StatusReporter::Stop() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool StatusReporter::stopping() {
  absl::MutexLock l(&mu_);
  return stopping_;
}

absl::StatusOr<CommitStatus> StatusReporter::StatusFor(const store::DueStatus& due) const {
  const StateText* text = nullptr;
  for (const auto& s : kStates) {
    if (due.state == s.state) text = &s;
  }
  const std::string what =
      absl::StrCat("pipeline ", due.pipeline_id, " of repository ", due.repo_name);
  if (text == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": no commit status for state '", due.state, "'"));
  }
  auto token = secret_key_.Open(due.token_sealed, RowAad("repos", due.repo_id, "status_token"));
  if (!token.ok()) {
    return absl::DataLossError(
        absl::StrCat(what, ": cannot open the commit status token (was the secret key replaced?)"));
  }
  CommitStatus s;
  s.provider = due.provider;
  s.api_base_url = due.api_url;
  s.api_token = std::move(*token);
  s.repo_full_name = due.repository.empty() ? due.repo_name : due.repository;
  s.sha = due.commit_sha;
  s.state = text->status;
  if (!options_.public_url.empty()) {
    s.target_url = absl::StrCat(options_.public_url, "/api/v1/pipelines/", due.pipeline_id);
  }
  s.description = absl::StrCat("Assay: pipeline ", due.pipeline_id, " ", text->words);
  if (!due.context.empty()) s.context = due.context;
  return s;
}

bool StatusReporter::Drain() {
  while (!stopping()) {
    auto due = outbox_.Claim(options_.batch);
    if (!due.ok()) {
      LogWarn("forge", "commit status reporter: ", due.status().message());
      return false;
    }
    for (const auto& d : *due) {
      if (d.api_url.empty()) {  // reporting was turned off since this was queued
        Complete(d);
        continue;
      }
      auto status = StatusFor(d);
      if (!status.ok()) {
        LogError("forge", "commit status not sent: ", status.status().message());
        Complete(d);  // it would fail the same way every time
        continue;
      }
      CommitStatusNotifier::Hooks hooks;
      hooks.before_attempt = [this, d] { return BeforeAttempt(d); };
      hooks.done = [this, d](CommitStatusNotifier::Outcome o) { Done(d, o); };
      notifier_->Post(std::move(*status), std::move(hooks));
    }
    if (static_cast<int>(due->size()) < options_.batch) return true;
  }
  return true;
}

bool StatusReporter::BeforeAttempt(const store::DueStatus& due) {
  auto held = outbox_.Renew(due);
  if (!held.ok()) {
    // Why not send: without a renewed lease another reporter may take the commit meanwhile
    // and send a newer state before this one lands. The lease runs out; it is sent later.
    LogWarn("forge", "commit status for pipeline ", due.pipeline_id,
            " not sent now (cannot renew its claim): ", held.status().message());
    return false;
  }
  if (*held == store::LeaseCheck::kSuperseded) {
    Complete(due);  // the newer state is sent instead
    return false;
  }
  return *held == store::LeaseCheck::kHeld;
}

void StatusReporter::Done(const store::DueStatus& due, CommitStatusNotifier::Outcome outcome) {
  using Outcome = CommitStatusNotifier::Outcome;
  switch (outcome) {
    case Outcome::kDelivered:
    case Outcome::kRefused: Complete(due); return;
    case Outcome::kDropped:   // stopping: another replica (or the next start) sends it
    case Outcome::kGaveUp: {  // the forge keeps failing: tried again at the next poll
      // Hand it to whoever claims next, without waiting for the lease to run out.
      absl::Status s = outbox_.Release(due);
      if (!s.ok()) {
        LogWarn("forge", "commit status for pipeline ", due.pipeline_id,
                " left to its lease: ", s.message());
      }
      return;
    }
    case Outcome::kSkipped:  // BeforeAttempt dealt with it
      return;
  }
}

void StatusReporter::Complete(const store::DueStatus& due) {
  auto held = outbox_.Complete(due);
  if (!held.ok()) {
    // Its lease runs out and it is sent again: at least once.
    LogWarn("forge", "commit status for pipeline ", due.pipeline_id,
            " sent but not recorded: ", held.status().message());
    return;
  }
  Kick();  // a newer state of the commit may be waiting for this one
}

void StatusReporter::Run() {
  while (!stopping()) {
    Drain();
    absl::MutexLock l(&mu_);
    auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return kicked_ || stopping_; };
    mu_.AwaitWithTimeout(absl::Condition(&woken), options_.poll_interval);
    kicked_ = false;
  }
}

}  // namespace assay::forge
