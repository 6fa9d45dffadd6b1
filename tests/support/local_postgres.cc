#include "tests/support/local_postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/proc/subprocess.h"

namespace assay::testing {
namespace {

// The newest /usr/lib/postgresql/<version>/bin holding initdb, or PG_BIN when set.
std::string PgBin() {
  if (const char* e = std::getenv("PG_BIN"); e != nullptr && *e != '\0') return e;
  std::string best;
  int best_version = -1;
  std::error_code ec;
  for (const auto& d : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    const int v = std::atoi(d.path().filename().c_str());
    if (v > best_version && std::filesystem::exists(d.path() / "bin/initdb")) {
      best_version = v;
      best = (d.path() / "bin").string();
    }
  }
  return best;
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

std::string Tail(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > 2000 ? s.substr(s.size() - 2000) : s;
}

}  // namespace

LocalPostgres::~LocalPostgres() {
  if (dir_.empty()) return;
  (void)StopImmediate();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

absl::Status LocalPostgres::Run(const std::vector<std::string>& argv) {
  std::vector<std::string> full;
  if (::geteuid() == 0) full = {"runuser", "-u", "postgres", "--"};
  full.insert(full.end(), argv.begin(), argv.end());
  auto r = RunCommand(full, "", {}, {}, absl::Seconds(90));
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    return absl::UnavailableError(absl::StrCat(DescribeCommand(full), " exited with ",
                                               r->exit_code, ": ", r->err, r->out, "\nlog: ",
                                               Tail(dir_ + "/data/server.log")));
  }
  return absl::OkStatus();
}

absl::Status LocalPostgres::Start() {
  if (dir_.empty()) {
    bin_ = PgBin();
    if (bin_.empty()) return absl::FailedPreconditionError("PostgreSQL's initdb not found");
    std::string tmpl = "/tmp/assay-local-pg-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return absl::InternalError(absl::StrCat("mkdtemp failed: ", strerror(errno)));
    }
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0755);
    const std::string data = dir_ + "/data";
    ::mkdir(data.c_str(), 0700);
    if (::geteuid() == 0) {
      auto chown = RunCommand({"chown", "postgres", data});
      if (!chown.ok() || chown->exit_code != 0) {
        return absl::InternalError("cannot give the data directory to user postgres");
      }
    }
    port_ = FreePort();
    absl::Status init = Run({bin_ + "/initdb", "-D", data, "-A", "trust", "-U", "postgres",
                             "-E", "UTF8", "--no-locale"});
    if (!init.ok()) return init;
  }
  const std::string data = dir_ + "/data";
  return Run({bin_ + "/pg_ctl", "-D", data, "-w", "-t", "60", "-l", data + "/server.log", "-o",
              absl::StrCat("-p ", port_, " -k ", data,
                           " -c listen_addresses=127.0.0.1 -c max_connections=300"),
              "start"});
}

absl::Status LocalPostgres::StopImmediate() {
  const std::string data = dir_ + "/data";
  if (!std::filesystem::exists(data + "/postmaster.pid")) return absl::OkStatus();
  return Run({bin_ + "/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"});
}

std::string LocalPostgres::admin_dsn() const {
  return absl::StrCat("postgresql://postgres@127.0.0.1:", port_, "/postgres");
}

}  // namespace assay::testing
