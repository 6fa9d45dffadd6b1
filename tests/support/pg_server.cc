#include "tests/support/pg_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/proc/subprocess.h"
#include "tests/support/process.h"

namespace assay::testing {
namespace {

namespace fs = std::filesystem;

// $PG_BIN, else the newest /usr/lib/postgresql/<major>/bin holding initdb; "" when none.
std::string FindPgBin() {
  if (const char* e = std::getenv("PG_BIN"); e != nullptr && *e != '\0') return e;
  std::string best;
  int best_version = -1;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    int version = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &version)) continue;
    const std::string bin = entry.path().string() + "/bin";
    if (version > best_version && ::access((bin + "/initdb").c_str(), X_OK) == 0) {
      best = bin;
      best_version = version;
    }
  }
  return best;
}

bool IsRoot() { return ::geteuid() == 0; }

// `argv` as the data directory's owner: PostgreSQL refuses to run as root.
std::vector<std::string> AsOwner(std::vector<std::string> argv) {
  if (!IsRoot()) return argv;
  std::vector<std::string> out = {"runuser", "-u", "postgres", "--"};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

// Whether `pid` is a live process: it exists and is not a zombie. Why not kill(pid, 0): a killed
// postmaster is reparented to whatever reaps orphans here, and until that reaps it, it is a
// zombie that kill(pid, 0) still finds.
bool Alive(pid_t pid) {
  std::string stat = ReadFileOrEmpty(absl::StrCat("/proc/", pid, "/stat"));
  auto paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return false;
  return stat[paren + 2] != 'Z' && stat[paren + 2] != 'X';
}

std::string Output(const CommandResult& r) { return Tail(r.out + r.err, 2000); }

}  // namespace

absl::StatusOr<std::unique_ptr<PgServer>> PgServer::Create() {
  std::string bin = FindPgBin();
  if (bin.empty()) {
    return absl::FailedPreconditionError(
        "no PostgreSQL server binaries (initdb) in $PG_BIN or /usr/lib/postgresql/*/bin: install "
        "postgresql");
  }
  const char* base = std::getenv("TMPDIR");
  std::string tmpl =
      absl::StrCat(base != nullptr && *base != '\0' ? base : "/tmp", "/assay-faults-pg-XXXXXX");
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp(", tmpl, "): ", strerror(errno)));
  }
  int port = FreePort();
  if (port == 0) return absl::InternalError("no free port for PostgreSQL");
  std::unique_ptr<PgServer> pg(new PgServer(tmpl, bin, port));
  if (IsRoot()) {
    const passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) {
      return absl::FailedPreconditionError("running as root but there is no user 'postgres'");
    }
    if (::chown(tmpl.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      return absl::InternalError(absl::StrCat("chown ", tmpl, ": ", strerror(errno)));
    }
  }
  auto init = RunCommand(AsOwner({bin + "/initdb", "-D", tmpl + "/data", "-A", "trust", "-U",
                                  "postgres", "-E", "UTF8", "--no-locale"}),
                         "/", {}, {}, absl::Minutes(2));
  if (!init.ok()) return init.status();
  if (init->exit_code != 0) {
    return absl::InternalError(absl::StrCat("initdb failed:\n", Output(*init)));
  }
  absl::Status started = pg->Start();
  if (!started.ok()) return started;
  return pg;
}

PgServer::~PgServer() {
  if (Running()) (void)StopImmediate();
  if (const char* keep = std::getenv("ASSAY_E2E_KEEP"); keep == nullptr || *keep != '1') {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

std::string PgServer::admin_dsn() const {
  return absl::StrCat("postgresql://postgres@127.0.0.1:", port_, "/postgres");
}

pid_t PgServer::PostmasterPid() const {
  std::string text = ReadFileOrEmpty(dir_ + "/data/postmaster.pid");
  int pid = 0;
  if (!absl::SimpleAtoi(text.substr(0, text.find('\n')), &pid) || pid <= 1) return 0;
  return static_cast<pid_t>(pid);
}

bool PgServer::Running() const {
  pid_t pid = PostmasterPid();
  return pid > 1 && Alive(pid);
}

absl::Status PgServer::Start() {
  // The socket goes into the temp dir so that nothing outside it is needed. Connections: a server
  // keeps a pool, tests open one at a time; the default 100 is tight with replicas, hence 200.
  // ASSAY_PG_DURABLE=1 (benchmarks): PostgreSQL's own defaults, every commit flushed to disk;
  // tests run without fsync (nothing they check needs a crash-safe disk).
  const char* durable = std::getenv("ASSAY_PG_DURABLE");
  const bool flush = durable != nullptr && std::string_view(durable) == "1";
  const std::string opts = absl::StrCat("-p ", port_, " -k ", dir_,
                                        " -c listen_addresses=127.0.0.1 -c max_connections=200",
                                        flush ? "" : " -c fsync=off -c full_page_writes=off");
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  std::string last;
  while (true) {
    auto r = RunCommand(AsOwner({bin_ + "/pg_ctl", "-D", dir_ + "/data", "-w", "-t", "60", "-l",
                                 log_path(), "-o", opts, "start"}),
                        "/", {}, {}, absl::Seconds(90));
    if (!r.ok()) return r.status();
    if (r->exit_code == 0) return absl::OkStatus();
    last = Output(*r);
    // Why retry: after a SIGKILL of the postmaster its backends may still hold the old shared
    // memory; the new postmaster refuses to start until they are gone.
    if (absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  return absl::InternalError(absl::StrCat("PostgreSQL did not start within 60 s on port ", port_,
                                          ":\n", last, "\n--- ", log_path(), " (tail) ---\n",
                                          LogTail()));
}

absl::Status PgServer::StopImmediate() {
  auto r = RunCommand(AsOwner({bin_ + "/pg_ctl", "-D", dir_ + "/data", "-m", "immediate", "-w",
                               "-t", "30", "stop"}),
                      "/", {}, {}, absl::Seconds(60));
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    return absl::InternalError(absl::StrCat("pg_ctl stop -m immediate failed:\n", Output(*r)));
  }
  return absl::OkStatus();
}

absl::Status PgServer::Kill() {
  pid_t pid = PostmasterPid();
  if (pid <= 1 || !Alive(pid)) {
    return absl::FailedPreconditionError("PgServer::Kill: PostgreSQL is not running");
  }
  ::kill(pid, SIGKILL);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (Alive(pid)) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("the postmaster (pid ", pid, ") still runs 30 s after SIGKILL"));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::OkStatus();
}

std::string PgServer::LogTail(size_t max_bytes) const {
  return Tail(ReadFileOrEmpty(log_path()), max_bytes);
}

}  // namespace assay::testing
