#include "tests/faults/fault_driver.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/proc/subprocess.h"

namespace assay::faults {
namespace {

// "1.3s".
std::string Seconds(absl::Duration d) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1fs", absl::ToDoubleSeconds(d));
  return buf;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TmpfsDisk>> TmpfsDisk::Mount(int size_mb) {
  if (::geteuid() != 0) {
    return absl::PermissionDeniedError("mounting a tmpfs needs root");
  }
  const char* base = std::getenv("TMPDIR");
  std::string tmpl =
      absl::StrCat(base != nullptr && *base != '\0' ? base : "/tmp", "/assay-faults-disk-XXXXXX");
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp(", tmpl, "): ", strerror(errno)));
  }
  const std::string opts = absl::StrCat("size=", size_mb, "m,mode=0755");
  if (::mount("tmpfs", tmpl.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0) {
    int err = errno;
    ::rmdir(tmpl.c_str());
    return absl::InternalError(
        absl::StrCat("mount -t tmpfs -o ", opts, " ", tmpl, ": ", strerror(err)));
  }
  return std::unique_ptr<TmpfsDisk>(new TmpfsDisk(tmpl));
}

TmpfsDisk::~TmpfsDisk() {
  ::umount2(path_.c_str(), MNT_DETACH);
  ::rmdir(path_.c_str());
}

absl::StatusOr<int64_t> TmpfsDisk::Fill() {
  const std::string file = path_ + "/fill";
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("open ", file, ": ", strerror(errno)));
  std::string block(1 << 20, 'x');
  int64_t written = 0;
  // Big blocks first, then small ones, so that not even a page is left.
  for (size_t size : {block.size(), size_t{4096}}) {
    while (true) {
      ssize_t n = ::write(fd, block.data(), size);
      if (n > 0) {
        written += n;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno != ENOSPC) {
        int err = errno;
        ::close(fd);
        return absl::InternalError(absl::StrCat("write ", file, ": ", strerror(err)));
      }
      break;
    }
  }
  ::close(fd);
  return written;
}

absl::Status TmpfsDisk::Free() {
  if (::unlink((path_ + "/fill").c_str()) != 0 && errno != ENOENT) {
    return absl::InternalError(absl::StrCat("unlink ", path_, "/fill: ", strerror(errno)));
  }
  return absl::OkStatus();
}

std::vector<PlannedFault> PlanFaults(const Config& config, std::mt19937_64& rng) {
  std::vector<FaultKind> kinds;
  if (config.kinds.empty() || config.faults <= 0) return {};
  std::vector<FaultKind> allowed = config.kinds;
  if (config.faults >= static_cast<int>(allowed.size())) {
    kinds = allowed;
  } else {
    std::shuffle(allowed.begin(), allowed.end(), rng);
    kinds.assign(allowed.begin(), allowed.begin() + config.faults);
  }
  std::uniform_int_distribution<size_t> pick(0, config.kinds.size() - 1);
  while (static_cast<int>(kinds.size()) < config.faults) kinds.push_back(config.kinds[pick(rng)]);
  std::shuffle(kinds.begin(), kinds.end(), rng);

  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const double window_s = absl::ToDoubleSeconds(config.window);
  std::vector<PlannedFault> out;
  for (FaultKind kind : kinds) {
    // Every draw happens for every fault, whatever its kind, so the plan of one kind does not
    // shift when another kind is excluded.
    PlannedFault f{kind, absl::Seconds(2 + unit(rng) * (window_s - 2)), absl::ZeroDuration()};
    const double r = unit(rng);
    f.agent = static_cast<int>(unit(rng) * kAgents) % kAgents;
    f.variant = unit(rng) < 0.5 ? 0 : 1;
    switch (kind) {
      case FaultKind::kAgentKill: f.hold = absl::Seconds(r * 2); break;
      case FaultKind::kServerKill: f.hold = absl::Seconds(r * 1.5); break;
      case FaultKind::kPgRestart:
        // From well inside the lease (leases outlive it: reports sent meanwhile must still land)
        // to well past it (every running job's lease runs out).
        f.hold = absl::Seconds(0.3 + r * 3.2);
        break;
      case FaultKind::kConnCut:
        // Stopped past the lease and a sweep: the server must give its jobs to other agents and
        // refuse what the agent sends when it wakes up.
        f.hold = f.variant == 0 ? absl::ZeroDuration() : kLease + kSweep + absl::Seconds(0.5 + r);
        break;
      case FaultKind::kDiskFull: f.hold = absl::Seconds(3 + r * 2); break;
    }
    out.push_back(f);
  }
  std::sort(out.begin(), out.end(),
            [](const PlannedFault& a, const PlannedFault& b) { return a.at < b.at; });
  return out;
}

FaultDriver::FaultDriver(testing::Cluster& cluster, testing::PgServer& pg, TmpfsDisk* disk)
    : cluster_(cluster),
      pg_(pg),
      disk_(disk),
      agents_(kAgents, nullptr),
      server_up_since_(absl::Now()),
      pg_up_since_(absl::Now()) {}

std::string FaultDriver::AgentName(int i) const { return absl::StrCat("a", i + 1); }

absl::Status FaultDriver::StartAgent(int i) {
  auto p = cluster_.StartAgent(AgentName(i), {"--slots", std::to_string(kSlotsPerAgent)});
  if (!p.ok()) return p.status();
  agents_[static_cast<size_t>(i)] = *p;
  return absl::OkStatus();
}

absl::Status FaultDriver::StartAgents() {
  for (int i = 0; i < kAgents; ++i) {
    absl::Status s = StartAgent(i);
    if (!s.ok()) return s;
  }
  return cluster_.WaitForAgents(kAgents);
}

absl::Status FaultDriver::Begin(const PlannedFault& planned, absl::Duration now) {
  if (active_) return absl::FailedPreconditionError("a fault is active already");
  PlannedFault f = planned;
  if (f.kind == FaultKind::kConnCut && f.variant == 0 && ::geteuid() != 0) {
    // ss -K needs CAP_NET_ADMIN: cut by stopping the agent instead.
    f.variant = 1;
    f.hold = kLease + kSweep + absl::Seconds(1);
  }
  std::string what;
  testing::Process* agent = agents_[static_cast<size_t>(f.agent)];
  switch (f.kind) {
    case FaultKind::kAgentKill: {
      agent->Kill(SIGKILL);
      if (agent->Wait(absl::Seconds(10)) != 128 + SIGKILL) {
        return absl::InternalError(absl::StrCat("agent ", AgentName(f.agent),
                                                " did not die of SIGKILL:\n", agent->LogTail()));
      }
      what =
          absl::StrCat("SIGKILL agent ", AgentName(f.agent), ", restart after ", Seconds(f.hold));
      break;
    }
    case FaultKind::kServerKill: {
      server_up_since_ = absl::InfiniteFuture();
      absl::Status s = cluster_.StopServer(SIGKILL);
      if (!s.ok()) return s;
      what = absl::StrCat("SIGKILL server, restart after ", Seconds(f.hold));
      break;
    }
    case FaultKind::kPgRestart: {
      pg_up_since_ = absl::InfiniteFuture();
      absl::Status s = f.variant == 0 ? pg_.StopImmediate() : pg_.Kill();
      if (!s.ok()) return s;
      what = absl::StrCat(f.variant == 0 ? "pg_ctl stop -m immediate" : "SIGKILL postmaster",
                          ", start after ", Seconds(f.hold));
      break;
    }
    case FaultKind::kConnCut: {
      if (f.variant == 0) {
        // Resets every agent's TCP connection to the server's gRPC port, as a network blip
        // would; the agents reconnect and resend what was not acknowledged.
        const std::string port =
            cluster_.grpc_address().substr(cluster_.grpc_address().rfind(':') + 1);
        auto r = RunCommand({"ss", "-K", "dst", "127.0.0.1", "dport", "=", ":" + port}, "", {}, {},
                            absl::Seconds(10));
        if (!r.ok()) return r.status();
        int cut = 0;
        for (absl::string_view line : absl::StrSplit(r->out, '\n', absl::SkipEmpty())) {
          if (absl::StrContains(line, "ESTAB")) ++cut;
        }
        what = absl::StrCat("ss -K: reset ", cut, " agent connection(s)");
      } else {
        agent->Kill(SIGSTOP);
        what = absl::StrCat("SIGSTOP agent ", AgentName(f.agent), " for ", Seconds(f.hold));
      }
      break;
    }
    case FaultKind::kDiskFull: {
      if (disk_ == nullptr) return absl::FailedPreconditionError("disk_full without a tmpfs");
      auto n = disk_->Fill();
      if (!n.ok()) return n.status();
      what = absl::StrCat("data dir full (", *n >> 20, " MiB written) for ", Seconds(f.hold));
      break;
    }
  }
  ++injected_[static_cast<size_t>(f.kind)];
  absl::StrAppend(&description_, "  t=", Seconds(now), " ", FaultName(f.kind), ": ", what, "\n");
  active_ = f;
  heal_at_ = absl::Now() + f.hold;
  return absl::OkStatus();
}

absl::Status FaultDriver::Heal() {
  if (!active_) return absl::OkStatus();
  const PlannedFault f = *active_;
  active_.reset();
  heal_at_ = absl::InfiniteFuture();
  switch (f.kind) {
    case FaultKind::kAgentKill: return StartAgent(f.agent);
    case FaultKind::kServerKill: {
      absl::Status s = cluster_.StartServer();
      if (s.ok()) server_up_since_ = absl::Now();
      return s;
    }
    case FaultKind::kPgRestart: {
      absl::Status s = pg_.Start();
      if (s.ok()) pg_up_since_ = absl::Now();
      return s;
    }
    case FaultKind::kConnCut:
      if (f.variant == 1) agents_[static_cast<size_t>(f.agent)]->Kill(SIGCONT);
      return absl::OkStatus();
    case FaultKind::kDiskFull: return disk_->Free();
  }
  return absl::OkStatus();
}

bool FaultDriver::UpFor(absl::Duration d) const {
  const absl::Time since = std::max(server_up_since_, pg_up_since_);
  return since != absl::InfiniteFuture() && absl::Now() - since >= d;
}

}  // namespace assay::faults
