#include "agent/lifecycle.h"

#include <ftw.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/log.h"

namespace assay {
namespace {

std::string Gb(double gb) {
  std::string s = gb < 0.1 && gb > 0 ? absl::StrFormat("%.2f", gb) : absl::StrFormat("%.1f", gb);
  if (absl::EndsWith(s, ".0")) s.resize(s.size() - 2);
  if (absl::EndsWith(s, ".00")) s.resize(s.size() - 3);
  return s;
}

int MakeWritable(const char* path, const struct stat* st, int type, struct FTW*) {
  // Directories only, and only the owner's bits: enough to delete what is inside.
  if (type == FTW_D || type == FTW_DNR) chmod(path, (st->st_mode & 07777) | S_IRWXU);
  return 0;
}

}  // namespace

absl::StatusOr<double> FreeDiskGb(const std::string& path) {
  struct statvfs s;
  if (statvfs(path.c_str(), &s) != 0) {
    return absl::UnavailableError(absl::StrCat("statvfs ", path, ": ", std::strerror(errno)));
  }
  return static_cast<double>(s.f_bavail) * static_cast<double>(s.f_frsize) / 1e9;
}

std::string DiskFloorReason(double free_gb, double floor_gb) {
  if (floor_gb <= 0 || free_gb >= floor_gb) return "";
  return absl::StrCat("not taking jobs: free disk ", Gb(free_gb), " GB below the floor of ",
                      Gb(floor_gb), " GB");
}

std::string DrainingReason(const std::string& why) { return absl::StrCat("draining (", why, ")"); }

std::string DrainTimeoutMessage(const std::string& why, absl::Duration timeout) {
  return absl::StrCat("stopped by the agent: it is stopping (", why,
                      ") and its --drain-timeout of ", absl::FormatDuration(timeout), " passed");
}

absl::Status RemoveTree(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(path, ec))) return absl::OkStatus();
  // Pre-order (no FTW_DEPTH): a directory is made writable and searchable before its entries
  // are visited. nftw's callback has no context; MakeWritable needs none.
  if (fs::is_directory(fs::symlink_status(path, ec))) {
    nftw(path.c_str(), MakeWritable, 32, FTW_PHYS);
  }
  fs::remove_all(path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot remove ", path, ": ", ec.message()));
  return absl::OkStatus();
}

int RemoveLeftovers(const std::string& work_dir) {
  namespace fs = std::filesystem;
  int removed = 0;
  for (const char* sub : {"/jobs", "/spool"}) {
    std::error_code ec;
    for (fs::directory_iterator it(work_dir + sub, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string p = it->path().string();
      absl::Status s = RemoveTree(p);
      if (s.ok()) {
        ++removed;
      } else {
        LogWarn("agent", "removing the leftover ", p, " failed: ", s.ToString());
      }
    }
  }
  return removed;
}

}  // namespace assay
