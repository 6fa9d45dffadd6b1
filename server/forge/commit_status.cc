#include "server/forge/commit_status.h"

#include <boost/json.hpp>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/git/git.h"

namespace assay::forge {
namespace {

constexpr size_t kMaxDescription = 140;  // GitHub rejects longer descriptions

bool IsUnreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// Percent-encodes everything but RFC 3986 unreserved characters ('/' becomes %2F).
std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (IsUnreserved(static_cast<char>(c))) {
      out.push_back(static_cast<char>(c));
    } else {
      out += {'%', kHex[c >> 4], kHex[c & 15]};
    }
  }
  return out;
}

// Cuts to at most `n` bytes without splitting a UTF-8 character.
std::string Truncate(const std::string& s, size_t n) {
  if (s.size() <= n) return s;
  size_t end = n;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end);
}

// "owner/name" → {"owner", "name"}; empty parts or more slashes are rejected.
absl::StatusOr<std::pair<std::string, std::string>> OwnerRepo(const std::string& full) {
  size_t slash = full.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == full.size() ||
      full.find('/', slash + 1) != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("commit status: repository '", full, "' must be owner/name"));
  }
  return std::make_pair(full.substr(0, slash), full.substr(slash + 1));
}

// The provider's word for our state, or "" when the state is unknown.
std::string MapState(const std::string& provider, const std::string& state) {
  const bool gitlab = provider == "gitlab";
  if (state == "pending" || state == "success") return state;
  if (state == "running") return gitlab ? "running" : "pending";
  if (state == "failure") return gitlab ? "failed" : "failure";
  if (state == "error") return gitlab ? "failed" : "error";
  if (state == "canceled") return gitlab ? "canceled" : "error";
  return "";
}

}  // namespace

absl::StatusOr<StatusRequest> BuildStatusRequest(const CommitStatus& s) {
  if (s.provider != "github" && s.provider != "gitlab" && s.provider != "gitea") {
    return absl::InvalidArgumentError(
        absl::StrCat("commit status: unknown provider '", s.provider, "'"));
  }
  const std::string state = MapState(s.provider, s.state);
  if (state.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("commit status: unknown state '", s.state, "'"));
  }
  std::string base = s.api_base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (base.empty()) return absl::InvalidArgumentError("commit status: api_base_url is required");
  if (s.api_token.empty())
    return absl::InvalidArgumentError("commit status: api_token is required");
  if (!IsHexSha(s.sha)) {
    return absl::InvalidArgumentError("commit status: sha must be a 40-character hex commit id");
  }
  const std::string description = Truncate(s.description, kMaxDescription);

  StatusRequest r;
  r.method = "POST";
  boost::json::object body;
  body["state"] = state;
  if (s.provider == "gitlab") {
    if (s.repo_full_name.empty()) {
      return absl::InvalidArgumentError("commit status: repository is required");
    }
    r.url =
        absl::StrCat(base, "/api/v4/projects/", UrlEncode(s.repo_full_name), "/statuses/", s.sha);
    body["name"] = s.context;
    if (!s.target_url.empty()) body["target_url"] = s.target_url;
    if (!description.empty()) body["description"] = description;
    r.headers = {{"PRIVATE-TOKEN", s.api_token}, {"Content-Type", "application/json"}};
  } else {
    auto owner_repo = OwnerRepo(s.repo_full_name);
    if (!owner_repo.ok()) return owner_repo.status();
    r.url = absl::StrCat(base, s.provider == "gitea" ? "/api/v1" : "", "/repos/",
                         UrlEncode(owner_repo->first), "/", UrlEncode(owner_repo->second),
                         "/statuses/", s.sha);
    if (!s.target_url.empty()) body["target_url"] = s.target_url;
    if (!description.empty()) body["description"] = description;
    body["context"] = s.context;
    if (s.provider == "github") {
      r.headers = {{"Accept", "application/vnd.github+json"},
                   {"Authorization", absl::StrCat("Bearer ", s.api_token)},
                   {"Content-Type", "application/json"},
                   {"X-GitHub-Api-Version", "2022-11-28"}};
    } else {
      r.headers = {{"Accept", "application/json"},
                   {"Authorization", absl::StrCat("token ", s.api_token)},
                   {"Content-Type", "application/json"}};
    }
  }
  r.body = boost::json::serialize(body);
  return r;
}

CommitStatusNotifier::CommitStatusNotifier(Options options) : options_(std::move(options)) {
  if (options_.max_attempts < 1) options_.max_attempts = 1;
  if (!options_.transport) {
    options_.transport = [](const StatusRequest& r, absl::Duration timeout) {
      return HttpFetch(r.method, r.url, r.headers, r.body, timeout);
    };
  }
  worker_ = std::thread([this] { Run(); });
}

CommitStatusNotifier::~CommitStatusNotifier() { Stop(absl::Seconds(5)); }

void CommitStatusNotifier::Post(CommitStatus status, Hooks hooks) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_ && queue_.size() < options_.max_queue) {
      ++stats_.posted;
      queue_.push_back(Item{std::move(status), std::move(hooks)});
      cv_.notify_all();
      return;
    }
    CountLocked(&Stats::dropped, "dropped");
    LogWarn("forge", "commit status for ", status.repo_full_name, "@", status.sha,
            " dropped: ", stopping_ ? "notifier is stopping" : "queue is full");
  }
  if (hooks.done) hooks.done(Outcome::kDropped);
}

void CommitStatusNotifier::Stop(absl::Duration deadline) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      stopping_ = true;
      drain_deadline_ = absl::Now() + deadline;
    }
    cv_.notify_all();
  }
  if (worker_.joinable()) worker_.join();
}

CommitStatusNotifier::Stats CommitStatusNotifier::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CommitStatusNotifier::Run() {
  for (;;) {
    Item next;
    std::deque<Item> left;
    bool took = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() || (stopping_ && absl::Now() >= drain_deadline_)) {
        if (!queue_.empty()) {
          CountLocked(&Stats::dropped, "dropped", static_cast<int64_t>(queue_.size()));
        }
        left.swap(queue_);
      } else {
        next = std::move(queue_.front());
        queue_.pop_front();
        took = true;
      }
    }
    if (!took) {  // stopping: the queue is empty or Stop's deadline passed
      for (auto& item : left) {
        if (item.hooks.done) item.hooks.done(Outcome::kDropped);
      }
      return;
    }
    const Outcome outcome = Deliver(next);
    if (outcome == Outcome::kDropped) {
      std::lock_guard<std::mutex> lock(mu_);
      CountLocked(&Stats::dropped, "dropped");
    }
    if (next.hooks.done) next.hooks.done(outcome);
  }
}

CommitStatusNotifier::Outcome CommitStatusNotifier::Deliver(const Item& item) {
  const CommitStatus& status = item.status;
  // What the logs may say about this status: never the token or the headers.
  const std::string what =
      absl::StrCat(status.provider, " ", status.repo_full_name, "@", status.sha, " ", status.state);
  auto request = BuildStatusRequest(status);
  if (!request.ok()) {
    LogError("forge", "commit status ", what, " not sent: ", request.status().message());
    std::lock_guard<std::mutex> lock(mu_);
    CountLocked(&Stats::failed, "failed");
    return Outcome::kRefused;
  }
  thread_local std::mt19937_64 rng{std::random_device{}()};
  for (int attempt = 1;; ++attempt) {
    if (item.hooks.before_attempt && !item.hooks.before_attempt()) {
      std::lock_guard<std::mutex> lock(mu_);
      CountLocked(&Stats::skipped, "skipped");
      return Outcome::kSkipped;
    }
    auto response = options_.transport(*request, options_.request_timeout);
    std::string outcome;
    bool retry = false;
    if (!response.ok()) {
      outcome = std::string(response.status().message());
      retry = true;
    } else if (response->status >= 200 && response->status < 300) {
      std::lock_guard<std::mutex> lock(mu_);
      CountLocked(&Stats::delivered, "delivered");
      return Outcome::kDelivered;
    } else {
      outcome = absl::StrCat("HTTP ", response->status);
      retry = response->status >= 500 || response->status == 429;
    }
    if (!retry || attempt >= options_.max_attempts) {
      LogError("forge", "commit status ", what, " failed after ", attempt,
               " attempt(s): ", outcome);
      std::lock_guard<std::mutex> lock(mu_);
      CountLocked(&Stats::failed, "failed");
      return retry ? Outcome::kGaveUp : Outcome::kRefused;
    }
    absl::Duration d = options_.initial_backoff;
    for (int i = 1; i < attempt && d < options_.max_backoff; ++i) d *= 2;
    d = std::min(d, options_.max_backoff);
    const int64_t full = absl::ToInt64Nanoseconds(d);
    std::uniform_int_distribution<int64_t> jitter(full / 2, full);
    d = absl::Nanoseconds(jitter(rng));
    LogWarn("forge", "commit status ", what, " attempt ", attempt, ": ", outcome, "; retrying in ",
            absl::FormatDuration(d));
    {
      std::lock_guard<std::mutex> lock(mu_);
      CountLocked(&Stats::retries, "retried");
    }
    if (!Backoff(d)) {
      LogWarn("forge", "commit status ", what, " dropped: stop deadline passed");
      return Outcome::kDropped;
    }
  }
}

void CommitStatusNotifier::CountLocked(int64_t Stats::*counter, const char* event, int64_t n) {
  stats_.*counter += n;
  if (options_.on_event) {
    for (int64_t i = 0; i < n; ++i) options_.on_event(event);
  }
}

bool CommitStatusNotifier::Backoff(absl::Duration d) {
  std::unique_lock<std::mutex> lock(mu_);
  const absl::Time until = absl::Now() + d;
  for (;;) {
    const absl::Time now = absl::Now();
    if (stopping_ && now >= drain_deadline_) return false;
    if (now >= until) return true;
    const absl::Time wake = stopping_ ? std::min(until, drain_deadline_) : until;
    cv_.wait_for(lock, absl::ToChronoNanoseconds(wake - now));
  }
}

}  // namespace assay::forge
