// RepoLanes: one lane's tasks run one at a time in submission order; other lanes run meanwhile;
// Stop drops what is queued. Every wait is bounded.

#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "server/pipeline/repo_lanes.h"

namespace assay {
namespace {

constexpr absl::Duration kBound = absl::Seconds(30);

// What ran, per lane, and the most tasks of one lane ever running at once.
struct Record {
  absl::Mutex mu;
  std::map<int64_t, std::vector<std::string>> ran;
  std::map<int64_t, int> active;
  int max_active_in_a_lane = 0;
  int finished = 0;

  void Begin(int64_t lane, const std::string& what) {
    absl::MutexLock l(&mu);
    ran[lane].push_back(what);
    max_active_in_a_lane = std::max(max_active_in_a_lane, ++active[lane]);
  }
  void End(int64_t lane) {
    absl::MutexLock l(&mu);
    --active[lane];
    ++finished;
  }
  // Until `lane`'s first task has begun (a worker may pick it up after another lane's ran).
  bool WaitBegun(int64_t lane) {
    absl::MutexLock l(&mu);
    auto begun = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return !ran[lane].empty(); };
    return mu.AwaitWithTimeout(absl::Condition(&begun), kBound);
  }
  bool WaitFinished(int n) {
    absl::MutexLock l(&mu);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return finished >= n; };
    return mu.AwaitWithTimeout(absl::Condition(&done), kBound);
  }
  std::vector<std::string> Ran(int64_t lane) {
    absl::MutexLock l(&mu);
    return ran[lane];
  }
};

TEST_CASE("repo lanes: a blocked lane holds up only itself, its tasks run in order", "[lanes]") {
  Record rec;
  absl::Notification gate, other_done;
  RepoLanes lanes(4);
  lanes.Start();
  auto task = [&rec](int64_t lane, std::string what, absl::Notification* wait_for,
                     absl::Notification* notify) {
    return RepoLanes::Task{[&rec, lane, what, wait_for, notify] {
                             rec.Begin(lane, what);
                             if (wait_for != nullptr) {
                               wait_for->WaitForNotificationWithTimeout(kBound);
                             }
                             rec.End(lane);
                             if (notify != nullptr) notify->Notify();
                           },
                           nullptr};
  };
  REQUIRE(lanes.Submit(1, task(1, "1a", &gate, nullptr)));
  REQUIRE(lanes.Submit(1, task(1, "1b", nullptr, nullptr)));
  REQUIRE(lanes.Submit(1, task(1, "1c", nullptr, nullptr)));
  REQUIRE(lanes.Submit(2, task(2, "2a", nullptr, &other_done)));
  // Lane 2 runs while lane 1's first task is still blocked; lane 1's next tasks wait for it
  // although three workers are free.
  CHECK(other_done.WaitForNotificationWithTimeout(kBound));
  CHECK(rec.WaitBegun(1));
  CHECK(rec.Ran(1) == std::vector<std::string>{"1a"});
  gate.Notify();
  CHECK(rec.WaitFinished(4));
  CHECK(rec.Ran(1) == std::vector<std::string>{"1a", "1b", "1c"});
  CHECK(rec.Ran(2) == std::vector<std::string>{"2a"});
  CHECK(rec.max_active_in_a_lane == 1);
}

TEST_CASE("repo lanes: many lanes on few workers keep each lane's order", "[lanes]") {
  Record rec;
  RepoLanes lanes(3);
  lanes.Start();
  constexpr int kLanes = 5, kPerLane = 40;
  for (int i = 0; i < kPerLane; ++i) {
    for (int64_t lane = 1; lane <= kLanes; ++lane) {
      REQUIRE(lanes.Submit(lane, {[&rec, lane, i] {
                                    rec.Begin(lane, std::to_string(i));
                                    rec.End(lane);
                                  },
                                  nullptr}));
    }
  }
  CHECK(rec.WaitFinished(kLanes * kPerLane));
  std::vector<std::string> want;
  for (int i = 0; i < kPerLane; ++i) want.push_back(std::to_string(i));
  for (int64_t lane = 1; lane <= kLanes; ++lane) CHECK(rec.Ran(lane) == want);
  CHECK(rec.max_active_in_a_lane == 1);
}

TEST_CASE(
    "repo lanes: Stop wakes a waiting task and drops queued ones, no work before Start "
    "or after Stop",
    "[lanes]") {
  RepoLanes lanes(1);
  std::vector<std::string> dropped;  // written by Submit's and Stop's caller only
  CHECK_FALSE(lanes.Submit(7, {[] {}, [&dropped] { dropped.push_back("before start"); }}));
  lanes.Start();
  absl::Notification started;
  std::atomic<int> woke{-1};
  REQUIRE(lanes.Submit(7, {[&] {
                             started.Notify();
                             woke = lanes.WaitForStop(absl::Seconds(60)) ? 1 : 0;
                           },
                           nullptr}));
  REQUIRE(lanes.Submit(7, {[] {}, [&dropped] { dropped.push_back("queued"); }}));
  REQUIRE(lanes.Submit(8, {[] {}, [&dropped] { dropped.push_back("other lane"); }}));
  REQUIRE(started.WaitForNotificationWithTimeout(kBound));
  lanes.Stop();
  CHECK(woke == 1);
  CHECK_FALSE(lanes.Submit(7, {[] {}, [&dropped] { dropped.push_back("after stop"); }}));
  // The one worker was busy with lane 7, so lane 8's task never started either.
  std::sort(dropped.begin(), dropped.end());
  CHECK(dropped == std::vector<std::string>{"after stop", "before start", "other lane", "queued"});
}

}  // namespace
}  // namespace assay
