#pragma once
// A small worker pool whose work comes in lanes (one per repository): the tasks of one lane run
// one at a time, in the order they were submitted; tasks of different lanes run in parallel on
// `workers` threads. A lane that has just run a task goes to the back of the line, so a
// repository with many deliveries does not starve the others.
//
// Why: fetching a repository may take minutes (git's own limit is 10); planning must neither
// hold up other repositories behind a slow one nor reorder the deliveries of one repository.

#include <deque>
#include <functional>
#include <map>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace assay {

class RepoLanes {
 public:
  struct Task {
    std::function<void()> run;
    // Called instead of `run` when the task will never run (submitted before Start or after
    // Stop, or still queued at Stop); may be empty. Runs on the thread that submits or stops.
    std::function<void()> drop;
  };

  explicit RepoLanes(int workers);
  ~RepoLanes();  // Stop()
  RepoLanes(const RepoLanes&) = delete;
  RepoLanes& operator=(const RepoLanes&) = delete;

  void Start();
  // Stops: tasks in hand finish (those waiting in WaitForStop return at once), queued ones are
  // dropped. Idempotent. Must not be called from a task.
  void Stop();

  // Appends `task` to lane `lane`. False (and `task.drop` has run) when the pool is not
  // running. Thread-safe; may be called from a task (e.g. to hand work to another lane).
  bool Submit(int64_t lane, Task task);

  // For a task that waits before retrying: sleeps up to `d`; true as soon as Stop() was called.
  bool WaitForStop(absl::Duration d);

 private:
  void Work();

  const int workers_;
  absl::Mutex mu_;
  // Lanes with queued or running work. A lane whose task is running stays here (maybe empty)
  // until that task returns, and is then put back in ready_ if it has more.
  std::map<int64_t, std::deque<Task>> lanes_ ABSL_GUARDED_BY(mu_);
  std::deque<int64_t> ready_ ABSL_GUARDED_BY(mu_);  // lanes with work that none is running
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace assay
