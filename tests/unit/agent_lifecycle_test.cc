// The agent's lifecycle pieces without a stream: the disk floor's sentence, the drain
// phrases, and the removal of workspaces (also unwritable ones, also a crashed agent's).
#include <stdlib.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "agent/lifecycle.h"

namespace assay {
namespace {

namespace fs = std::filesystem;

TEST_CASE("lifecycle: the disk floor's sentence", "[agent][lifecycle]") {
  CHECK(DiskFloorReason(0.4, 1) == "not taking jobs: free disk 0.4 GB below the floor of 1 GB");
  CHECK(DiskFloorReason(12.25, 50.5) ==
        "not taking jobs: free disk 12.2 GB below the floor of 50.5 GB");
  CHECK(DiskFloorReason(0.04, 0.05) ==
        "not taking jobs: free disk 0.04 GB below the floor of 0.05 GB");
  CHECK(DiskFloorReason(0, 1) == "not taking jobs: free disk 0 GB below the floor of 1 GB");
  CHECK(DiskFloorReason(1, 1) == "");  // at the floor: takes jobs
  CHECK(DiskFloorReason(0, 0) == "");  // no floor
  CHECK(DiskFloorReason(500, 1) == "");
}

TEST_CASE("lifecycle: drain phrases", "[agent][lifecycle]") {
  CHECK(DrainingReason("SIGTERM") == "draining (SIGTERM)");
  CHECK(DrainTimeoutMessage("SIGTERM", absl::Minutes(10)) ==
        "stopped by the agent: it is stopping (SIGTERM) and its --drain-timeout of 10m passed");
  CHECK(DrainTimeoutMessage("SIGINT", absl::ZeroDuration()) ==
        "stopped by the agent: it is stopping (SIGINT) and its --drain-timeout of 0 passed");
}

TEST_CASE("lifecycle: free disk of an existing and of a missing path", "[agent][lifecycle]") {
  auto free = FreeDiskGb("/");
  REQUIRE(free.ok());
  CHECK(*free >= 0);
  auto missing = FreeDiskGb("/nonexistent/assay/path");
  CHECK(missing.status().code() == absl::StatusCode::kUnavailable);
  CHECK(missing.status().message() == "statvfs /nonexistent/assay/path: No such file or directory");
}

TEST_CASE("lifecycle: leftovers of an earlier run are removed, unwritable ones too",
          "[agent][lifecycle]") {
  char tmpl[] = "/tmp/assay-lifecycle-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string work = tmpl;
  fs::create_directories(work + "/jobs/job-7-1/locked/deep");
  fs::create_directories(work + "/spool");
  fs::create_directories(work + "/cache/abc.git");
  std::ofstream(work + "/jobs/job-7-1/locked/deep/f") << "x";
  std::ofstream(work + "/spool/job-7-1.log") << "log";
  fs::create_symlink("/etc", work + "/jobs/job-7-1/escape");
  // A job that took away its own write permission (as a user could).
  REQUIRE(chmod((work + "/jobs/job-7-1/locked/deep").c_str(), 0500) == 0);
  REQUIRE(chmod((work + "/jobs/job-7-1/locked").c_str(), 0500) == 0);

  CHECK(RemoveLeftovers(work) == 2);
  CHECK(fs::is_empty(work + "/jobs"));
  CHECK(fs::is_empty(work + "/spool"));
  CHECK(fs::exists(work + "/cache/abc.git"));  // the cache is kept
  CHECK(fs::exists("/etc/passwd"));            // the symlink was removed, not followed
  CHECK(RemoveLeftovers(work) == 0);
  CHECK(RemoveTree(work + "/missing").ok());
  fs::remove_all(work);
}

}  // namespace
}  // namespace assay
