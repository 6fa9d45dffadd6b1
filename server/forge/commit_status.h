#pragma once
// Commit statuses back to the forge: the exact HTTP request per provider (pure), and a
// notifier that sends them from one background thread with retries.
//
// Ownership: the notifier owns its queue, its worker thread and copies of every CommitStatus
// (tokens included). Tokens travel only in request headers; they never reach a log line.
//
// Transport: by default common/http_client.h HttpFetch, which speaks plain http only; the
// server passes common/https_client.h FetchHttpOrHttps through Options::transport.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/net/http_client.h"

namespace assay::forge {

struct CommitStatus {
  std::string provider;      // "github", "gitlab", "gitea"
  std::string api_base_url;  // "https://api.github.com", "https://gitlab.com",
                             // "https://gitea.example.com" (a trailing '/' is ignored)
  std::string api_token;
  std::string repo_full_name;  // "owner/name"; GitLab: "group/sub/project" or a numeric id
  std::string sha;             // 40 hex
  std::string state;           // pending, running, success, failure, error, canceled
  std::string target_url;      // omitted from the body when empty
  std::string description;     // omitted when empty; cut to 140 bytes (whole UTF-8 characters)
  std::string context = "assay";
};

struct StatusRequest {
  std::string method;  // "POST"
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // compact JSON, keys in the order listed below
};

// The request each forge's API documents:
//   github  POST {base}/repos/{owner}/{repo}/statuses/{sha}
//           {"state","target_url","description","context"}; state pending|success|failure|
//           error (running → pending, canceled → error). Headers: Accept:
//           application/vnd.github+json, Authorization: Bearer T, Content-Type:
//           application/json, X-GitHub-Api-Version: 2022-11-28.
//   gitlab  POST {base}/api/v4/projects/{url-encoded path or id}/statuses/{sha}
//           {"state","name","target_url","description"}; state pending|running|success|
//           failed|canceled (failure and error → failed). Headers: PRIVATE-TOKEN: T,
//           Content-Type: application/json.
//   gitea   POST {base}/api/v1/repos/{owner}/{repo}/statuses/{sha}
//           {"state","target_url","description","context"}; state pending|success|error|
//           failure (running → pending, canceled → error). Headers: Accept: application/json,
//           Authorization: token T, Content-Type: application/json.
// Errors (kInvalidArgument), exactly:
//   "commit status: unknown provider 'X'"            "commit status: unknown state 'X'"
//   "commit status: api_base_url is required"        "commit status: api_token is required"
//   "commit status: sha must be a 40-character hex commit id"
//   "commit status: repository 'X' must be owner/name" (github, gitea)
//   "commit status: repository is required" (gitlab)
absl::StatusOr<StatusRequest> BuildStatusRequest(const CommitStatus& status);

// Sends statuses in the order posted, one at a time, from one worker thread.
// A response 2xx is delivered. 5xx, 429 and transport errors (any non-OK from the transport)
// are retried up to max_attempts in all, sleeping initial_backoff * 2^(n-1) capped at
// max_backoff, with "equal jitter" (a uniform draw in [d/2, d]). Other statuses (4xx) fail
// at once. A status BuildStatusRequest rejects fails without a request. All outcomes are
// logged (component "forge") without the token.
class CommitStatusNotifier {
 public:
  using Transport = std::function<absl::StatusOr<HttpClientResponse>(const StatusRequest&,
                                                                     absl::Duration timeout)>;
  struct Options {
    int max_attempts = 6;
    absl::Duration initial_backoff = absl::Seconds(1);
    absl::Duration max_backoff = absl::Seconds(60);
    absl::Duration request_timeout = absl::Seconds(10);
    size_t max_queue = 10000;  // Post beyond this drops the status (counted in `dropped`)
    Transport transport;       // empty: HttpFetch
    // Called once per event counted in Stats other than `posted`: "delivered", "failed",
    // "retried" (per retry), "dropped" or "skipped", on whichever thread counted it (for
    // metrics; must be quick and must not call back into the notifier).
    std::function<void(const char* event)> on_event;
  };
  struct Stats {
    int64_t posted = 0;     // accepted into the queue
    int64_t delivered = 0;  // got a 2xx
    int64_t failed = 0;     // gave up: 4xx, attempts exhausted, or invalid status
    int64_t retries = 0;    // attempts beyond the first, over all statuses
    int64_t dropped = 0;    // queue full, posted after Stop, or left when Stop's deadline passed
    int64_t skipped = 0;    // not sent because Hooks::before_attempt said so
  };

  // How one posted status ended, for its poster.
  enum class Outcome {
    kDelivered,  // the forge answered 2xx
    kRefused,    // for good: a 4xx other than 429, or a status BuildStatusRequest rejects
    kGaveUp,     // max_attempts transient failures (5xx, 429, transport): worth trying later
    kDropped,    // never finished: queue full, posted after Stop, or Stop's deadline passed
    kSkipped,    // before_attempt said not to send it
  };
  // Optional callbacks of one posted status, called on the worker thread (done: on the
  // posting thread when Post drops it). Quick; must not call back into the notifier.
  struct Hooks {
    // Before every attempt, retries included; false: do not send it (done(kSkipped)).
    std::function<bool()> before_attempt;
    std::function<void(Outcome)> done;  // exactly once
  };

  explicit CommitStatusNotifier(Options options);
  ~CommitStatusNotifier();  // Stop(absl::Seconds(5)) if not yet stopped
  CommitStatusNotifier(const CommitStatusNotifier&) = delete;
  CommitStatusNotifier& operator=(const CommitStatusNotifier&) = delete;

  // Never blocks on the network: enqueues and returns. Thread-safe.
  void Post(CommitStatus status, Hooks hooks = {});
  // Stops accepting, keeps sending (and retrying) until the queue is empty or `deadline`
  // has passed, then drops what is left and joins the worker. Backoff sleeps end early at
  // the deadline; a request in flight still runs to request_timeout. Idempotent; must not
  // run concurrently with itself.
  void Stop(absl::Duration deadline = absl::Seconds(5));
  Stats stats() const;

 private:
  void Run();
  struct Item {
    CommitStatus status;
    Hooks hooks;
  };
  // Sends one status with retries.
  Outcome Deliver(const Item& item);
  // Sleeps `d` or until the drain deadline passes; false when it passed.
  bool Backoff(absl::Duration d);
  // Adds n to one counter and tells on_event; mu_ must be held.
  void CountLocked(int64_t Stats::*counter, const char* event, int64_t n = 1);

  Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stopping_ = false;
  absl::Time drain_deadline_ = absl::InfiniteFuture();
  Stats stats_;
  std::thread worker_;
};

}  // namespace assay::forge
