#include "server/forge/status_reporter.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <memory>
#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"
#include "common/base/log.h"

namespace assay::forge {
namespace {

constexpr char kChannel[] = "assay_pipeline_state";

// Takes the notification; the reporter only needs to wake, not the payload.
class Wakeup : public pqxx::notification_receiver {
 public:
  explicit Wakeup(pqxx::connection_base& c) : pqxx::notification_receiver(c, kChannel) {}
  void operator()(const std::string&, int) override {}
};

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

StatusReporter::StatusReporter(store::Db* db, CommitStatusNotifier* notifier,
                               std::string secret_key, StatusReporterOptions options)
    : db_(db),
      outbox_(db),
      notifier_(notifier),
      secret_key_(std::move(secret_key)),
      options_(std::move(options)) {
  while (!options_.public_url.empty() && options_.public_url.back() == '/') {
    options_.public_url.pop_back();
  }
  if (options_.batch < 1) options_.batch = 1;
  if (::pipe2(wake_fds_, O_NONBLOCK | O_CLOEXEC) != 0) {
    wake_fds_[0] = wake_fds_[1] = -1;
    LogError("forge", "commit status reporter: cannot create its wake-up pipe; polling only");
  }
}

StatusReporter::~StatusReporter() {
  Stop();
  for (int fd : wake_fds_) {
    if (fd >= 0) ::close(fd);
  }
}

void StatusReporter::Start() {
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { Run(); });
}

void StatusReporter::Kick() {
  if (wake_fds_[1] < 0) return;
  const char byte = 1;
  // A full pipe already holds a wake-up: nothing is lost when this write fails.
  [[maybe_unused]] ssize_t n = ::write(wake_fds_[1], &byte, 1);
}

void StatusReporter::Stop() {
  stopping_ = true;
  Kick();
  if (thread_.joinable()) thread_.join();
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
  auto token = OpenSecret(secret_key_, due.token_sealed);
  if (!token.ok()) {
    return absl::DataLossError(absl::StrCat(
        what, ": cannot open the commit status token (was the secret key replaced?)"));
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
  while (!stopping_) {
    auto due = outbox_.Claim(options_.batch);
    if (!due.ok()) {
      LogWarn("forge", "commit status reporter: ", due.status().message());
      return false;
    }
    for (const auto& d : *due) {
      if (d.api_url.empty()) continue;  // reporting is off for this repository
      auto status = StatusFor(d);
      if (!status.ok()) {
        LogError("forge", "commit status not sent: ", status.status().message());
        continue;
      }
      notifier_->Post(std::move(*status));
    }
    if (static_cast<int>(due->size()) < options_.batch) return true;
  }
  return true;
}

void StatusReporter::Run() {
  std::unique_ptr<pqxx::connection> listen;
  std::unique_ptr<Wakeup> wakeup;
  absl::Time next_listen_try = absl::InfinitePast();
  while (!stopping_) {
    // A dedicated connection, outside the pool: it holds LISTEN for the reporter's lifetime.
    if (listen == nullptr && absl::Now() >= next_listen_try) {
      try {
        listen = std::make_unique<pqxx::connection>(db_->dsn());
        wakeup = std::make_unique<Wakeup>(*listen);
      } catch (const std::exception& e) {
        wakeup.reset();
        listen.reset();
        next_listen_try = absl::Now() + options_.poll_interval;
        LogWarn("forge", "commit status reporter: cannot LISTEN (polling instead): ", e.what());
      }
    }
    Drain();
    if (stopping_) break;

    pollfd fds[2];
    int n = 0;
    if (wake_fds_[0] >= 0) fds[n++] = {wake_fds_[0], POLLIN, 0};
    if (listen != nullptr && listen->sock() >= 0) fds[n++] = {listen->sock(), POLLIN, 0};
    const int timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(options_.poll_interval));
    ::poll(fds, static_cast<nfds_t>(n), timeout_ms);
    if (wake_fds_[0] >= 0) {
      char buf[64];
      while (::read(wake_fds_[0], buf, sizeof buf) > 0) {
      }
    }
    if (listen != nullptr) {
      try {
        listen->get_notifs();
      } catch (const std::exception& e) {
        LogWarn("forge", "commit status reporter: lost its LISTEN connection: ", e.what());
        wakeup.reset();
        listen.reset();
      }
    }
  }
  // The receiver unregisters from its connection: destroy it first.
  wakeup.reset();
  listen.reset();
}

}  // namespace assay::forge
