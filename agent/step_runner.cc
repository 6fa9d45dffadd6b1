#include "agent/step_runner.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "agent/job_scope.h"
#include "common/base/status.h"
#include "common/proc/spawn.h"

extern char** environ;

namespace assay {

CancelFlag::CancelFlag() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

CancelFlag::~CancelFlag() {
  if (fd_ >= 0) close(fd_);
}

void CancelFlag::Cancel() {
  if (canceled_.exchange(true, std::memory_order_acq_rel)) return;
  if (fd_ >= 0) {
    uint64_t one = 1;
    // Never read back: the eventfd stays readable, so every poller sees the cancel.
    while (write(fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
  }
}

std::string FormatSeconds(absl::Duration d) {
  std::string text = absl::StrFormat("%.3f", absl::ToDoubleSeconds(d));
  while (!text.empty() && text.back() == '0') text.pop_back();
  if (!text.empty() && text.back() == '.') text.pop_back();
  return text;
}

namespace {

// The most one read of the step's output takes, and the pipe's size (F_SETPIPE_SZ, where
// allowed; 64 KiB otherwise). Why 256 KiB: under a burst a larger chunk cuts the per-chunk
// cost downstream (a gRPC message, a spool entry, an ack, a database row) by four; a read
// still returns at once with whatever the pipe holds, so nothing waits for a chunk to fill.
constexpr size_t kChunk = 256 * 1024;
using OutputFn = std::function<void(std::string_view)>;

enum class StopReason { kNone, kTimeout, kCancel, kDriverDone };

struct StepEnd {
  StopReason stopped = StopReason::kNone;
  ExitInfo exit;
  std::optional<absl::Status> driven;  // a driven step: its driver's status
};

// A StepDriver's drive() on a thread of its own; done_fd() becomes readable when it returned.
class DriverThread {
 public:
  DriverThread(std::shared_ptr<StepDriver> driver, CancelFlag& cancel)
      : done_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    thread_ = std::thread([this, driver = std::move(driver), &cancel] {
      absl::Status s = driver->drive(exited_, cancel);
      {
        absl::MutexLock l(&mu_);
        status_ = std::move(s);
      }
      const uint64_t one = 1;
      (void)!write(done_.get(), &one, sizeof one);
    });
  }
  ~DriverThread() { Finish().IgnoreError(); }

  int done_fd() const { return done_.get(); }
  bool done() {
    absl::MutexLock l(&mu_);
    return status_.has_value();
  }
  // Tells the driver the process is gone and waits for its status.
  absl::Status Finish() {
    exited_.store(true);
    if (thread_.joinable()) thread_.join();
    absl::MutexLock l(&mu_);
    return status_.value_or(absl::InternalError("the step's driver did not return"));
  }

 private:
  std::atomic<bool> exited_{false};
  UniqueFd done_;
  absl::Mutex mu_;
  std::optional<absl::Status> status_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

void EnsureSubreaper() {
  static std::once_flag once;
  std::call_once(once, [] { prctl(PR_SET_CHILD_SUBREAPER, 1); });
}

// Reads the step's output pipe and hands it to on_output.
class OutputPump {
 public:
  explicit OutputPump(const OutputFn& on_output) : on_output_(on_output), buf_(new char[kChunk]) {}

  // One read (drain = false), or reads until the pipe is empty or closed (drain = true).
  // Closes `fd` at EOF.
  void Pump(UniqueFd& fd, bool drain) {
    while (fd.valid()) {
      ssize_t n = read(fd.get(), buf_.get(), kChunk);
      if (n > 0) {
        on_output_(std::string_view(buf_.get(), static_cast<size_t>(n)));
        if (!drain) return;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      fd.Reset();
    }
  }

 private:
  const OutputFn& on_output_;
  std::unique_ptr<char[]> buf_;
};

// Reaps, on its own thread, every child of this process in one process group, and says (through
// fd(), an eventfd) when none is left. Why a thread: "the group is gone" has no descriptor to
// poll, and a blocking waitid(P_PGID) is exact where kill(-pgid, 0) would still count exiting
// processes and unreaped zombies. Members are peeked with WNOWAIT and reaped under mu_, so while
// KillIfAlive holds mu_ an unreaped member keeps the group id from being reused.
class GroupReaper {
 public:
  GroupReaper(pid_t pgid, pid_t leader)
      : pgid_(pgid), leader_(leader), event_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    try {
      thread_ = std::thread([this] { Run(); });
    } catch (const std::system_error&) {
      // No thread: the caller waits for the whole grace and then kills; Join reaps.
    }
  }
  ~GroupReaper() { Join(); }

  int fd() const { return event_.get(); }
  bool gone() {
    absl::MutexLock lock(&mu_);
    return gone_;
  }
  // SIGKILLs the group unless all of it has been reaped; true if the signal was sent.
  bool KillIfAlive() {
    absl::MutexLock lock(&mu_);
    if (gone_) return false;
    kill(-pgid_, SIGKILL);
    kill(leader_, SIGKILL);  // in case it left its group
    return true;
  }
  // Waits for the reaper thread (call KillIfAlive first, or it may wait for a long time).
  void Join() {
    if (thread_.joinable()) thread_.join();
    absl::MutexLock lock(&mu_);
    if (!gone_) {  // the thread could not be started
      gone_ = true;
      ExitInfo exit = KillAndReapGroup(pgid_, leader_);
      if (!leader_exit_.reaped) leader_exit_ = exit;
    }
  }
  ExitInfo leader_exit() {
    absl::MutexLock lock(&mu_);
    return leader_exit_;
  }

 private:
  void Run() {
    for (;;) {
      siginfo_t info;
      memset(&info, 0, sizeof(info));
      if (waitid(P_PGID, static_cast<id_t>(pgid_), &info, WEXITED | WNOWAIT) != 0) {
        if (errno == EINTR) continue;
        break;  // ECHILD: no child of ours is left in the group
      }
      absl::MutexLock lock(&mu_);
      siginfo_t reaped;
      memset(&reaped, 0, sizeof(reaped));
      while (waitid(P_PID, static_cast<id_t>(info.si_pid), &reaped, WEXITED) != 0 &&
             errno == EINTR) {
      }
      if (info.si_pid == leader_) leader_exit_ = ExitInfoFromSiginfo(reaped);
    }
    {
      absl::MutexLock lock(&mu_);
      if (!leader_exit_.reaped) {  // the leader had left the group
        kill(leader_, SIGKILL);
        leader_exit_ = WaitForExit(leader_);
      }
      gone_ = true;
    }
    uint64_t one = 1;
    if (event_.valid()) {
      while (write(event_.get(), &one, sizeof(one)) < 0 && errno == EINTR) {
      }
    }
  }

  const pid_t pgid_;
  const pid_t leader_;
  UniqueFd event_;
  absl::Mutex mu_;
  bool gone_ ABSL_GUARDED_BY(mu_) = false;
  ExitInfo leader_exit_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// SIGTERM to the group, then SIGKILL after the grace if anything of it is left; forwards output
// meanwhile. Returns how the step's shell ended.
ExitInfo StopGroup(pid_t pgid, StopReason reason, const JobRunRequest& req, UniqueFd& out,
                   OutputPump& pump, const OutputFn& on_output) {
  const std::string what =
      reason == StopReason::kTimeout
          ? absl::StrCat("job timed out after ", FormatSeconds(req.timeout), "s")
      : reason == StopReason::kDriverDone ? std::string("the step's driver is done")
                                          : std::string("job canceled");
  pump.Pump(out, /*drain=*/true);  // what the step wrote before the stop comes first in the log
  on_output(absl::StrCat("assay: ", what, "; sent SIGTERM to the process group\n"));
  GroupReaper reaper(pgid, pgid);
  kill(-pgid, SIGTERM);

  const absl::Time grace_deadline = absl::Now() + req.kill_grace;
  while (!reaper.gone() && absl::Now() < grace_deadline) {
    pollfd fds[2];
    nfds_t nfds = 0;
    int out_index = -1;
    if (out.valid()) {
      out_index = static_cast<int>(nfds);
      fds[nfds++] = {out.get(), POLLIN, 0};
    }
    if (reaper.fd() >= 0) fds[nfds++] = {reaper.fd(), POLLIN, 0};
    int ready = poll(fds, nfds, PollTimeoutMs(grace_deadline));
    if (ready < 0 && errno != EINTR) break;
    if (ready > 0 && out_index >= 0 && fds[out_index].revents != 0) pump.Pump(out, false);
  }
  pump.Pump(out, /*drain=*/true);
  if (reaper.KillIfAlive()) {
    on_output(absl::StrCat("assay: process group still alive after ", FormatSeconds(req.kill_grace),
                           "s; sent SIGKILL\n"));
  }
  reaper.Join();
  pump.Pump(out, /*drain=*/true);
  return reaper.leader_exit();
}

absl::StatusOr<StepEnd> RunStep(const StepSpecToRun& step, const std::vector<std::string>& env,
                                const JobRunRequest& req, const JobScope& scope,
                                absl::Time deadline, CancelFlag& cancel, const OutputFn& on_output,
                                std::vector<pid_t>* pgids) {
  HostExecutor host;
  Executor& executor = req.executor != nullptr ? *req.executor : host;
  StepSpecToRun driven;  // a driven step: `step` with the driver's shell text
  if (step.driver != nullptr) {
    ASSAY_ASSIGN_OR_RETURN(std::string run, step.driver->start());
    driven = step;
    driven.run = std::move(run);
  }
  ASSAY_ASSIGN_OR_RETURN(StepProcess process, step.command ? step.command()
                                              : step.driver != nullptr
                                                  ? executor.StepCommand(req, driven, env)
                                                  : executor.StepCommand(req, step, env));
  ASSAY_ASSIGN_OR_RETURN(Pipe pipe, MakePipe());
  // Best effort: an unprivileged process may be held to less (fs/pipe-max-size, quotas).
  (void)fcntl(pipe.read.get(), F_SETPIPE_SZ, static_cast<int>(kChunk));
  SpawnOptions options;
  options.path = std::move(process.path);
  options.argv = std::move(process.argv);
  options.env = std::move(process.env);
  options.cwd = std::move(process.cwd);
  options.stdout_fd = pipe.write.get();
  options.stderr_fd = pipe.write.get();
  options.new_process_group = true;
  options.parent_death_signal = SIGKILL;
  options.cgroup_procs_fd = scope.cgroup_procs_fd();
  if (req.user.has_value() && process.as_job_user) {
    options.set_identity = true;
    options.uid = req.user->uid;
    options.gid = req.user->gid;
    options.groups = req.user->groups;
  }
  ASSAY_ASSIGN_OR_RETURN(pid_t pid, SpawnProcess(options));
  if (pgids != nullptr) pgids->push_back(pid);
  pipe.write.Reset();  // ours must go, or EOF never comes
  UniqueFd out = std::move(pipe.read);
  int flags = fcntl(out.get(), F_GETFL);
  if (flags >= 0) fcntl(out.get(), F_SETFL, flags | O_NONBLOCK);
  // Why a pidfd: the shell's exit must end the step even while its background processes still
  // hold the pipe, and poll() must also wake for the cancel and the deadline.
  UniqueFd pidfd(OpenPidfd(pid));
  if (!pidfd.valid()) {
    int err = errno;
    KillAndReapGroup(pid, pid);
    return absl::InternalError(
        absl::StrCat("pidfd_open: ", strerror(err), " (Linux 5.3 or later is required)"));
  }

  OutputPump pump(on_output);
  StepEnd end;
  std::optional<DriverThread> driver;
  if (step.driver != nullptr) driver.emplace(step.driver, cancel);
  for (;;) {
    pollfd fds[4];
    nfds_t nfds = 0;
    int out_index = -1;
    int pid_index = -1;
    if (out.valid()) {
      out_index = static_cast<int>(nfds);
      fds[nfds++] = {out.get(), POLLIN, 0};
    }
    pid_index = static_cast<int>(nfds);
    fds[nfds++] = {pidfd.get(), POLLIN, 0};
    fds[nfds++] = {cancel.fd(), POLLIN, 0};
    if (driver.has_value()) fds[nfds++] = {driver->done_fd(), POLLIN, 0};
    int ready = poll(fds, nfds, PollTimeoutMs(deadline));
    if (ready < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      KillAndReapGroup(pid, pid);
      return absl::InternalError(absl::StrCat("poll: ", strerror(err)));
    }
    if (out_index >= 0 && fds[out_index].revents != 0) pump.Pump(out, false);
    if (fds[pid_index].revents != 0) break;  // the shell exited (not reaped yet)
    // Before the driver: a driver also watches the cancel flag and may return because of it,
    // and a canceled step must end canceled, never as a driver's success.
    if (cancel.canceled()) {
      end.stopped = StopReason::kCancel;
      break;
    }
    if (driver.has_value() && driver->done()) {
      // The driver is done: the process gets kill_grace to end by itself (none when it never
      // does).
      const absl::Time grace =
          absl::Now() + (step.driver->stop_when_done ? absl::ZeroDuration() : req.kill_grace);
      bool exited = false;
      while (!exited && absl::Now() < grace) {
        pollfd wait[2] = {{pidfd.get(), POLLIN, 0}, {out.get(), POLLIN, 0}};
        const int n = poll(wait, out.valid() ? 2 : 1, PollTimeoutMs(grace));
        if (n < 0 && errno != EINTR) break;
        if (n > 0 && out.valid() && wait[1].revents != 0) pump.Pump(out, false);
        exited = n > 0 && wait[0].revents != 0;
      }
      if (!exited) end.stopped = StopReason::kDriverDone;
      break;
    }
    if (deadline != absl::InfiniteFuture() && absl::Now() >= deadline) {
      end.stopped = StopReason::kTimeout;
      break;
    }
  }
  if (end.stopped == StopReason::kNone) {
    // Background processes of the step do not outlive it.
    end.exit = KillAndReapGroup(pid, pid);
    pump.Pump(out, /*drain=*/true);
  } else {
    end.exit = StopGroup(pid, end.stopped, req, out, pump, on_output);
  }
  if (driver.has_value()) end.driven = driver->Finish();
  return end;
}

std::string Quoted(const StepSpecToRun& step) {
  return absl::StrCat("\"", step.name.empty() ? step.run : step.name, "\"");
}

bool Inherited(std::string_view entry) {
  const size_t eq = entry.find('=');
  if (eq == std::string_view::npos) return false;
  const std::string_view name = entry.substr(0, eq);
  for (std::string_view allowed : kInheritedEnvironment) {
    if (allowed.back() == '*'
            ? name.substr(0, allowed.size() - 1) == allowed.substr(0, allowed.size() - 1)
            : name == allowed) {
      return true;
    }
  }
  return false;
}

void SetEntry(std::vector<std::string>& env, const std::string& name, const std::string& value) {
  std::string assignment = absl::StrCat(name, "=", value);
  for (std::string& existing : env) {
    if (existing.size() > name.size() && existing.compare(0, name.size(), name) == 0 &&
        existing[name.size()] == '=') {
      existing = std::move(assignment);
      return;
    }
  }
  env.push_back(std::move(assignment));
}

JobRunResult RunSteps(const JobRunRequest& req, const JobScope& scope, CancelFlag& cancel,
                      const OutputFn& on_output, std::vector<pid_t>* pgids);

}  // namespace

absl::StatusOr<std::vector<std::string>> StepEnvironment(
    const std::vector<std::pair<std::string, std::string>>& overrides, const JobIdentity* user,
    const std::string& workdir) {
  if (absl::Status s = CheckEnvironmentOverrides(overrides); !s.ok()) return s;
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    if (Inherited(*entry)) env.emplace_back(*entry);
  }
  if (!LookupEnv(env, "PATH").has_value()) SetEntry(env, "PATH", "/usr/local/bin:/usr/bin:/bin");
  if (user != nullptr) {
    SetEntry(env, "HOME", user->home.empty() ? workdir : user->home);
    SetEntry(env, "USER", user->name.empty() ? std::to_string(user->uid) : user->name);
    SetEntry(env, "LOGNAME", user->name.empty() ? std::to_string(user->uid) : user->name);
    SetEntry(env, "SHELL", "/bin/sh");
  }
  for (const auto& [name, value] : overrides) SetEntry(env, name, value);
  return env;
}

namespace {

JobRunResult RunSteps(const JobRunRequest& req, const JobScope& scope, CancelFlag& cancel,
                      const OutputFn& on_output, std::vector<pid_t>* pgids) {
  const bool limited =
      req.timeout > absl::ZeroDuration() && req.timeout != absl::InfiniteDuration();
  const absl::Time deadline = limited ? absl::Now() + req.timeout : absl::InfiniteFuture();
  const std::string timed_out =
      absl::StrCat("job timed out after ", FormatSeconds(req.timeout), "s");

  JobRunResult result;
  std::vector<std::pair<std::string, std::string>> overrides = req.env;
  overrides.emplace_back(JobScope::kMarkerName, scope.id());
  absl::StatusOr<std::vector<std::string>> env =
      StepEnvironment(overrides, req.user.has_value() ? &*req.user : nullptr, req.workdir);
  if (!env.ok()) {
    result = {JobRunOutcome::kError, -1,
              absl::StrCat("invalid job environment: ", env.status().message())};
    return result;
  }
  if (cancel.fd() < 0) return {JobRunOutcome::kError, -1, "cannot create the cancel eventfd"};
  if (req.executor != nullptr) {
    if (absl::Status prepared = req.executor->Prepare(req, deadline, cancel, on_output);
        !prepared.ok()) {
      return {JobRunOutcome::kError, -1,
              absl::StrCat("cannot prepare the ", std::string(req.executor->kind()),
                           " executor: ", prepared.message())};
    }
  }

  for (size_t step_index = 0; step_index < req.steps.size(); ++step_index) {
    const StepSpecToRun& step = req.steps[step_index];
    if (cancel.canceled()) {
      return {JobRunOutcome::kCanceled, 0, absl::StrCat("job canceled before step ", Quoted(step))};
    }
    if (absl::Now() >= deadline) {
      return {JobRunOutcome::kTimedOut, 0, absl::StrCat(timed_out, " before step ", Quoted(step))};
    }
    if (req.on_step_start) req.on_step_start(step_index);
    absl::StatusOr<StepEnd> end =
        RunStep(step, *env, req, scope, deadline, cancel, on_output, pgids);
    if (!end.ok()) {
      return {JobRunOutcome::kError, -1,
              absl::StrCat("cannot start step ", Quoted(step), ": ", end.status().message())};
    }
    const ExitInfo& exit = end->exit;
    if (req.executor != nullptr) {
      req.executor->StepEnded(step, end->stopped == StopReason::kNone && exit.term_signal == 0,
                              exit.exit_code);
    }
    switch (end->stopped) {
      case StopReason::kTimeout:
        return {JobRunOutcome::kTimedOut, exit.exit_code,
                absl::StrCat(timed_out, " in step ", Quoted(step))};
      case StopReason::kCancel:
        return {JobRunOutcome::kCanceled, exit.exit_code,
                absl::StrCat("job canceled in step ", Quoted(step))};
      case StopReason::kNone:
      case StopReason::kDriverDone: break;
    }
    const bool process_counts = step.driver != nullptr && step.driver->process_must_succeed;
    if (end->driven.has_value() && !process_counts) {  // the driver decides, whatever the
      if (end->driven->ok()) continue;                 // process's exit status
      return {JobRunOutcome::kFailed, 1,
              absl::StrCat("step ", Quoted(step), " failed: ", end->driven->message()),
              static_cast<int>(step_index)};
    }
    if (exit.term_signal != 0) {
      return {JobRunOutcome::kFailed, exit.exit_code,
              absl::StrCat("step ", Quoted(step), " was killed by signal ", exit.term_signal, " (",
                           SignalName(exit.term_signal), ")")};
    }
    if (exit.exit_code != 0) {
      return {JobRunOutcome::kFailed, exit.exit_code,
              absl::StrCat("step ", Quoted(step), " exited with code ", exit.exit_code),
              static_cast<int>(step_index)};
    }
    if (process_counts) {
      absl::Status s = end->driven.value_or(absl::OkStatus());
      if (s.ok() && step.driver->after_success) s = step.driver->after_success();
      if (!s.ok()) {
        return {JobRunOutcome::kFailed, 1,
                absl::StrCat("step ", Quoted(step), " failed: ", s.message()),
                static_cast<int>(step_index)};
      }
    }
  }
  return {JobRunOutcome::kSucceeded, 0, ""};
}

}  // namespace

absl::StatusOr<StepProcess> HostExecutor::StepCommand(const JobRunRequest& req,
                                                      const StepSpecToRun& step,
                                                      const std::vector<std::string>& env) {
  StepProcess process;
  process.path = "/bin/sh";
  process.argv = {"/bin/sh", "-e", "-c", step.run};
  process.env = env;
  process.cwd = req.workdir;
  return process;
}

JobRunResult RunJob(const JobRunRequest& req, CancelFlag& cancel, const OutputFn& on_output,
                    std::vector<pid_t>* pgids) {
  EnsureSubreaper();
  std::unique_ptr<JobScope> scope = JobScope::Create(req.allow_cgroup);
  JobRunResult result = RunSteps(req, *scope, cancel, on_output, pgids);
  if (req.executor != nullptr) {
    req.executor->Cleanup(req, on_output);
    // Removing a --rm container leaves podman's own cleanup processes (conmon, `podman
    // container cleanup`) in the job's scope for a moment, longer on a loaded machine: they
    // are let finish rather than killed and reported as the job's leftovers.
    if (req.executor->kind() == "container") scope->WaitForExit(absl::Seconds(10));
  }
  if (int killed = scope->KillRemaining(); killed > 0) {
    on_output(absl::StrCat("assay: killed ", killed, killed == 1 ? " process" : " processes",
                           " left running by the job\n"));
  }
  return result;
}

}  // namespace assay
