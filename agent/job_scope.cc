#include "agent/job_scope.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/log.h"
#include "common/proc/spawn.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace assay {
namespace {

// The whole of a small file (procfs, cgroupfs), or "" when it cannot be read.
std::string Slurp(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return "";
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// The directory of this process's cgroup v2 (e.g. /sys/fs/cgroup/system.slice/assay.service),
// or "" when there is no cgroup v2 hierarchy mounted with this process's cgroup visible.
std::string OwnCgroupDir() {
  std::string path;
  for (absl::string_view line : absl::StrSplit(Slurp("/proc/self/cgroup"), '\n')) {
    if (absl::ConsumePrefix(&line, "0::")) path = std::string(line);
  }
  if (path.empty()) return "";
  // mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPEROPTS
  for (absl::string_view line : absl::StrSplit(Slurp("/proc/self/mountinfo"), '\n')) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    size_t dash = 0;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (dash + 1 >= f.size() || f[dash + 1] != "cgroup2" || f.size() < 5) continue;
    // Only a mount of the hierarchy's root maps "0::PATH" to MOUNTPOINT + PATH.
    if (f[3] != "/") continue;
    return absl::StrCat(f[4], path == "/" ? "" : path);
  }
  return "";
}

// Lines of cgroup.procs as pids.
std::vector<pid_t> CgroupPids(const std::string& dir) {
  std::vector<pid_t> out;
  for (absl::string_view line :
       absl::StrSplit(Slurp(dir + "/cgroup.procs"), '\n', absl::SkipEmpty())) {
    pid_t pid = 0;
    if (absl::SimpleAtoi(line, &pid) && pid > 0) out.push_back(pid);
  }
  return out;
}

// Parent pid and state of `pid` from /proc/PID/stat; false when it is gone.
bool StatOf(pid_t pid, pid_t* ppid, char* state) {
  const std::string stat = Slurp(absl::StrCat("/proc/", pid, "/stat"));
  // "PID (COMM) S PPID ..." where COMM may hold spaces and ')'.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 4 >= stat.size()) return false;
  *state = stat[close + 2];
  std::vector<absl::string_view> rest =
      absl::StrSplit(absl::string_view(stat).substr(close + 4), ' ');
  return !rest.empty() && absl::SimpleAtoi(rest[0], ppid);
}

bool EnvironHas(pid_t pid, const std::string& entry) {
  const std::string env = Slurp(absl::StrCat("/proc/", pid, "/environ"));
  size_t at = 0;
  while (at < env.size()) {
    size_t end = env.find('\0', at);
    if (end == std::string::npos) end = env.size();
    if (std::string_view(env).substr(at, end - at) == entry) return true;
    at = end + 1;
  }
  return false;
}

// Processes still alive (not zombies) whose environment holds `entry`, and all their
// descendants.
std::set<pid_t> MarkedProcesses(const std::string& entry) {
  std::map<pid_t, pid_t> parent;
  std::set<pid_t> found;
  const pid_t self = getpid();
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return found;
  while (dirent* e = readdir(proc)) {
    pid_t pid = 0;
    if (!absl::SimpleAtoi(e->d_name, &pid) || pid <= 1 || pid == self) continue;
    pid_t ppid = 0;
    char state = 0;
    if (!StatOf(pid, &ppid, &state) || state == 'Z') continue;
    parent[pid] = ppid;
    if (EnvironHas(pid, entry)) found.insert(pid);
  }
  closedir(proc);
  // Descendants: repeat until no process is added (depth is bounded by the process count).
  for (bool grew = true; grew;) {
    grew = false;
    for (const auto& [pid, ppid] : parent) {
      if (found.count(ppid) != 0 && found.insert(pid).second) grew = true;
    }
  }
  return found;
}

std::string NewId() {
  static std::atomic<uint64_t> counter{0};
  std::random_device rd;
  return absl::StrCat(getpid(), "-", counter.fetch_add(1) + 1, "-", rd() & 0xffffff);
}

// Processes found alive, each held by a pidfd until it has exited (and was reaped, if it was
// a child of this process).
class Victims {
 public:
  ~Victims() {
    for (auto& [pid, fd] : fds_) close(fd);
  }
  // Starts holding `pid` (if not yet) and SIGKILLs it through its pidfd.
  void Kill(pid_t pid) {
    auto it = fds_.find(pid);
    if (it == fds_.end()) {
      int fd = OpenPidfd(pid);
      if (fd < 0) return;  // gone already
      ++found_;
      it = fds_.emplace(pid, fd).first;
    }
    syscall(SYS_pidfd_send_signal, it->second, SIGKILL, nullptr, 0);
  }
  // Drops the processes that have exited, reaping those that are our children.
  void Reap() {
    for (auto it = fds_.begin(); it != fds_.end();) {
      pollfd p = {it->second, POLLIN, 0};
      if (poll(&p, 1, 0) == 1) {
        siginfo_t info;
        memset(&info, 0, sizeof(info));
        waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(it->second), &info,
               WEXITED | WNOHANG);  // ECHILD: someone else's child; it has exited anyway
        close(it->second);
        it = fds_.erase(it);
      } else {
        ++it;
      }
    }
  }
  bool empty() const { return fds_.empty(); }
  int found() const { return found_; }

 private:
  std::map<pid_t, int> fds_;
  int found_ = 0;
};

}  // namespace

std::unique_ptr<JobScope> JobScope::Create(bool allow_cgroup) {
  std::unique_ptr<JobScope> scope(new JobScope());
  scope->id_ = NewId();
  const std::string own = allow_cgroup ? OwnCgroupDir() : std::string();
  if (own.empty()) return scope;
  const std::string dir = absl::StrCat(own, "/assay-job-", scope->id_);
  if (mkdir(dir.c_str(), 0755) != 0) return scope;  // not ours to create: track instead
  int fd = open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    rmdir(dir.c_str());
    return scope;
  }
  scope->cgroup_dir_ = dir;
  scope->procs_fd_ = fd;
  return scope;
}

int JobScope::CleanStale() {
  const std::string own = OwnCgroupDir();
  if (own.empty()) return 0;
  DIR* dir = opendir(own.c_str());
  if (dir == nullptr) return 0;
  std::vector<std::string> stale;
  while (dirent* e = readdir(dir)) {
    absl::string_view name = e->d_name;
    if (!absl::ConsumePrefix(&name, "assay-job-")) continue;
    pid_t owner = 0;
    if (!absl::SimpleAtoi(name.substr(0, name.find('-')), &owner) || owner <= 0) continue;
    // Alive (or a recycled pid: then the cgroup waits for a later start).
    if (owner == getpid() || kill(owner, 0) == 0 || errno == EPERM) continue;
    stale.push_back(absl::StrCat(own, "/", e->d_name));
  }
  closedir(dir);
  int removed = 0;
  for (const std::string& path : stale) {
    JobScope scope;  // adopts the cgroup; its destructor kills what is in it and removes it
    scope.id_ = path.substr(path.rfind('/') + 1);
    scope.cgroup_dir_ = path;
    scope.procs_fd_ = open((path + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    if (scope.procs_fd_ < 0) continue;
    if (int killed = scope.KillRemaining(); killed > 0) {
      LogWarn("agent", "killed ", killed, " process(es) left in ", path, " by an agent that died");
    }
    close(scope.procs_fd_);
    scope.procs_fd_ = -1;
    const absl::Time deadline = absl::Now() + absl::Seconds(2);
    while (rmdir(path.c_str()) != 0 && errno == EBUSY && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    scope.cgroup_dir_.clear();
    scope.id_.clear();
    if (access(path.c_str(), F_OK) != 0) ++removed;
  }
  return removed;
}

JobScope::~JobScope() {
  if (!id_.empty()) KillRemaining();  // empty: a stale cgroup CleanStale already dealt with
  if (procs_fd_ >= 0) close(procs_fd_);
  if (!cgroup_dir_.empty()) {
    // Emptied above; a member that is still exiting keeps the directory busy for a moment.
    const absl::Time deadline = absl::Now() + absl::Seconds(2);
    while (rmdir(cgroup_dir_.c_str()) != 0 && errno == EBUSY && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
  }
}

int JobScope::KillRemaining(absl::Duration bound) {
  const absl::Time deadline = absl::Now() + bound;
  return uses_cgroup() ? KillCgroup(deadline) : KillTracked(deadline);
}

bool JobScope::WaitForExit(absl::Duration bound) {
  const absl::Time deadline = absl::Now() + bound;
  const std::string entry = absl::StrCat(kMarkerName, "=", id_);
  for (;;) {
    std::vector<pid_t> pids;
    if (uses_cgroup()) {
      pids = CgroupPids(cgroup_dir_);
    } else {
      std::set<pid_t> marked = MarkedProcesses(entry);
      pids.assign(marked.begin(), marked.end());
    }
    size_t alive = 0;
    for (pid_t pid : pids) {
      int status = 0;
      // Every step has ended, so no step runner waits for these: an orphan that exited is
      // reaped here (a zombie still counts as a member of a cgroup).
      if (waitpid(pid, &status, WNOHANG) == pid) continue;
      ++alive;
    }
    if (alive == 0) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

int JobScope::KillCgroup(absl::Time deadline) {
  Victims victims;
  const std::string kill_file = cgroup_dir_ + "/cgroup.kill";
  const bool has_kill = access(kill_file.c_str(), W_OK) == 0;
  for (;;) {
    std::vector<pid_t> pids = CgroupPids(cgroup_dir_);
    for (pid_t pid : pids) victims.Kill(pid);  // holds it; SIGKILL is harmless twice
    if (has_kill && !pids.empty()) {
      // Why also cgroup.kill: it reaches a process forked after we read cgroup.procs.
      UniqueFd fd(open(kill_file.c_str(), O_WRONLY | O_CLOEXEC));
      if (fd.valid() && write(fd.get(), "1", 1) != 1) {
        LogWarn("agent", "writing ", kill_file, " failed: ", strerror(errno));
      }
    }
    victims.Reap();
    if ((pids.empty() && victims.empty()) || absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  if (!CgroupPids(cgroup_dir_).empty()) {
    LogWarn("agent", "processes of job scope ", id_, " survived SIGKILL in ", cgroup_dir_);
  }
  return victims.found();
}

int JobScope::KillTracked(absl::Time deadline) {
  Victims victims;
  const std::string entry = absl::StrCat(kMarkerName, "=", id_);
  for (;;) {
    std::set<pid_t> pids = MarkedProcesses(entry);
    for (pid_t pid : pids) victims.Kill(pid);
    victims.Reap();
    if ((pids.empty() && victims.empty()) || absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return victims.found();
}

}  // namespace assay
