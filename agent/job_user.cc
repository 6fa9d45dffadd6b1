#include "agent/job_user.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace assay {
namespace {

bool AllDigits(std::string_view s) {
  if (s.empty() || s.size() > 10) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<JobIdentity> ParseJobUser(std::string_view spec) {
  const std::string quoted =
      absl::StrCat("--job-user '", absl::string_view(spec.data(), spec.size()), "'");
  JobIdentity id;
  if (const size_t colon = spec.find(':'); colon != std::string_view::npos) {
    const std::string_view u = spec.substr(0, colon), g = spec.substr(colon + 1);
    uint32_t uid = 0, gid = 0;
    if (!AllDigits(u) || !AllDigits(g) ||
        !absl::SimpleAtoi(absl::string_view(u.data(), u.size()), &uid) ||
        !absl::SimpleAtoi(absl::string_view(g.data(), g.size()), &gid) || uid == UINT32_MAX ||
        gid == UINT32_MAX) {
      return absl::InvalidArgumentError(absl::StrCat(quoted, ": must be a user name or UID:GID"));
    }
    id.uid = uid;
    id.gid = gid;
    // The name and home when the uid has an entry; a bare uid works without one.
    struct passwd pw, *found = nullptr;
    std::vector<char> buf(16384);
    if (getpwuid_r(id.uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) {
      id.name = pw.pw_name;
    }
    return id;
  }
  if (spec.empty() || spec.size() > 256 || spec.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(quoted, ": must be a user name or UID:GID"));
  }
  const std::string name(spec);
  struct passwd pw, *found = nullptr;
  std::vector<char> buf(16384);
  if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(quoted, ": no such user"));
  }
  id.uid = pw.pw_uid;
  id.gid = pw.pw_gid;
  id.name = pw.pw_name;
  id.home = pw.pw_dir != nullptr ? pw.pw_dir : "";
  // Service accounts often have no home (nobody's is /nonexistent): HOME is then the
  // workspace, where tools that write ~/.cache can.
  struct stat st;
  if (!id.home.empty() && (stat(id.home.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))) {
    id.home.clear();
  }
  int count = 64;
  std::vector<gid_t> groups(static_cast<size_t>(count));
  if (getgrouplist(name.c_str(), id.gid, groups.data(), &count) < 0) {
    groups.resize(static_cast<size_t>(count));
    if (getgrouplist(name.c_str(), id.gid, groups.data(), &count) < 0) count = 0;
  }
  groups.resize(static_cast<size_t>(count));
  id.groups = std::move(groups);
  return id;
}

absl::StatusOr<std::optional<JobIdentity>> ResolveJobUser(std::string_view spec, uid_t euid) {
  if (spec.empty()) {
    if (euid == 0) {
      return absl::FailedPreconditionError(
          "the agent runs as root, so its jobs would too, and could read its token and rewrite "
          "its git cache: pass --job-user USER (an unprivileged account, name or UID:GID) for "
          "jobs to run as, or --job-user root to accept running them as root");
    }
    return std::optional<JobIdentity>();
  }
  absl::StatusOr<JobIdentity> id = ParseJobUser(spec);
  if (!id.ok()) return id.status();
  if (id->uid == 0) {
    if (euid != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("--job-user root: the agent runs as uid ", euid, ", not root"));
    }
    return std::optional<JobIdentity>();  // the explicit opt-in: steps stay root
  }
  if (euid != 0) {
    if (id->uid == euid) return std::optional<JobIdentity>();
    return absl::FailedPreconditionError(absl::StrCat(
        "--job-user needs the agent to run as root to switch users (it runs as uid ", euid, ")"));
  }
  return std::optional<JobIdentity>(*std::move(id));
}

}  // namespace assay
