// The commit-status reporter against a real PostgreSQL and a recording forge (a local HTTP
// server): statuses queued at shutdown are sent by the next reporter, and two reporters
// (replicas) never let a retried `pending` land after the final status of the same commit.

#include <catch2/catch.hpp>

#include <boost/json.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/crypto/crypto.h"
#include "server/forge/commit_status.h"
#include "server/forge/status_reporter.h"
#include "server/http/http_server.h"
#include "tests/db/db_fixture.h"

namespace assay::dbtest {
namespace {

const std::string kKey(32, 'k');

// What the forge saw: one entry per request, with the answer it gave.
struct Seen {
  std::string sha, state;
  int answer = 0;
};

// The forge stand-in: answers each request with `answer(sha, state)`.
class Forge {
 public:
  explicit Forge(std::function<int(const std::string&, const std::string&)> answer)
      : answer_(std::move(answer)),
        server_(http::ServerOptions{}, [this](http::Request& r) { return Handle(r); }) {
    REQUIRE(server_.Start().ok());
  }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(server_.port()); }
  std::vector<Seen> seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }
  void set_answer(std::function<int(const std::string&, const std::string&)> answer) {
    std::lock_guard<std::mutex> lock(mu_);
    answer_ = std::move(answer);
  }
  // The next `pending` request is answered only after Open() (bounded: 30 s).
  void HoldNextPending() {
    std::lock_guard<std::mutex> lock(mu_);
    hold_ = true;
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  // Waits (bounded) until `done(seen)`; false on timeout.
  bool WaitFor(const std::function<bool(const std::vector<Seen>&)>& done) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return done(seen_); });
  }

 private:
  http::Response Handle(http::Request& r) {
    // POST /repos/acme/app/statuses/{sha}
    const std::string sha = r.path.substr(r.path.rfind('/') + 1);
    std::string state;
    try {
      state = std::string(boost::json::parse(r.body).as_object().at("state").as_string());
    } catch (const std::exception&) {
    }
    std::unique_lock<std::mutex> lock(mu_);
    const int answer = answer_(sha, state);
    seen_.push_back({sha, state, answer});
    cv_.notify_all();
    if (hold_ && state == "pending") {
      hold_ = false;
      cv_.wait_for(lock, std::chrono::seconds(30), [this] { return open_; });
    }
    http::Response resp;
    resp.status = answer;
    resp.body = answer < 300 ? R"({"id":1})" : R"({"message":"try again"})";
    return resp;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::function<int(const std::string&, const std::string&)> answer_;
  std::vector<Seen> seen_;
  bool hold_ = false, open_ = false;
  http::Server server_;
};

forge::CommitStatusNotifier::Options NotifierOptions() {
  forge::CommitStatusNotifier::Options o;
  o.max_attempts = 1000;
  o.initial_backoff = absl::Milliseconds(300);
  o.max_backoff = absl::Milliseconds(300);
  o.request_timeout = absl::Seconds(5);
  return o;
}

void ReportTo(DbFixture& f, const std::string& api_url) {
  store::CommitStatusSettings s;
  s.api_url = api_url;
  s.token_sealed = SealSecret(kKey, "tok").value();
  REQUIRE(f.repos.SetCommitStatus(f.repo_id, s).ok());
}

// True once the notifier has finished with everything posted to it.
bool Idle(const forge::CommitStatusNotifier& n) {
  auto s = n.stats();
  return s.posted > 0 && s.delivered + s.failed + s.dropped + s.skipped >= s.posted;
}

TEST_CASE("status reporter: statuses queued when a server stops are sent by the next one",
          "[db][forge]") {
  DbFixture f;
  Forge forge([](const std::string&, const std::string&) { return 503; });  // down
  ReportTo(f, forge.base());
  std::set<std::string> shas;
  for (int i = 1; i <= 3; ++i) {
    shas.insert(ShaOf(i));
    f.PipelineOn(ShaOf(i));
  }
  {
    forge::CommitStatusNotifier notifier(NotifierOptions());
    forge::StatusReporter reporter(&f.db, &notifier, kKey, {});
    reporter.Start();
    // Every status is claimed and in the notifier's hands; the first is being retried.
    for (int i = 0; i < 3000 && notifier.stats().posted < 3; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(notifier.stats().posted == 3);
    REQUIRE(forge.WaitFor([](const std::vector<Seen>& seen) { return !seen.empty(); }));
    reporter.Stop();
    notifier.Stop(absl::ZeroDuration());  // the server stops: what is left is not sent
  }
  forge.set_answer([](const std::string&, const std::string&) { return 201; });  // back
  forge::CommitStatusNotifier notifier(NotifierOptions());
  forge::StatusReporter reporter(&f.db, &notifier, kKey, {});
  reporter.Start();
  const bool all = forge.WaitFor([&](const std::vector<Seen>& seen) {
    std::set<std::string> delivered;
    for (const auto& s : seen) {
      if (s.answer == 201 && s.state == "pending") delivered.insert(s.sha);
    }
    return delivered == shas;
  });
  reporter.Stop();
  notifier.Stop();
  CHECK(all);
  CHECK(f.Count("SELECT count(*) FROM commit_status_outbox") == 0);
}

TEST_CASE("status reporter: two replicas never send pending after success for one commit",
          "[db][forge]") {
  DbFixture f;
  // The first `pending` fails, so that replica A retries it after a backoff.
  bool failed_once = false;
  Forge forge([&](const std::string&, const std::string& state) {
    if (state == "pending" && !failed_once) {
      failed_once = true;
      return 503;
    }
    return 201;
  });
  ReportTo(f, forge.base());
  forge.HoldNextPending();
  const int64_t pid = f.PipelineOn(kSha);

  forge::CommitStatusNotifier notifier_a(NotifierOptions());
  forge::StatusReporter a(&f.db, &notifier_a, kKey, {});
  a.Start();
  REQUIRE(forge.WaitFor([](const std::vector<Seen>& seen) { return !seen.empty(); }));

  // The pipeline succeeds while A's `pending` is in flight (it will fail and be retried);
  // replica B (its own pool) is looking too.
  f.Exec("UPDATE pipelines SET state = 'succeeded', finished_at = now() WHERE id = " +
         std::to_string(pid));
  store::Db db_b(f.tdb.dsn(), 2);
  forge::CommitStatusNotifier notifier_b(NotifierOptions());
  forge::StatusReporter b(&db_b, &notifier_b, kKey, {});
  b.Start();
  a.Kick();
  b.Kick();
  forge.Open();
  REQUIRE(forge.WaitFor([](const std::vector<Seen>& seen) {
    for (const auto& s : seen) {
      if (s.state == "success" && s.answer == 201) return true;
    }
    return false;
  }));
  // Until both notifiers are done with what they took (A's retry included).
  for (int i = 0;
       i < 3000 && !(Idle(notifier_a) && (notifier_b.stats().posted == 0 || Idle(notifier_b)));
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  a.Stop();
  b.Stop();
  notifier_a.Stop();
  notifier_b.Stop();
  std::vector<std::string> accepted;
  for (const auto& s : forge.seen()) {
    if (s.answer == 201) accepted.push_back(s.state);
  }
  CHECK(accepted == std::vector<std::string>{"success"});
}

}  // namespace
}  // namespace assay::dbtest
