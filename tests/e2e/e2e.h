#pragma once
// Shared by the e2e test files: Catch2 glue for absl::Status, and the usual world of one registered
// repository with a webhook secret.

#include <catch2/catch.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/support/cluster.h"
#include "tests/support/git_repo.h"

// Sanitizer builds (their servers and agents too) allocate through the sanitizer's allocator
// (redzones, quarantine): memory figures there say nothing about the product, so memory
// bounds are asserted only in plain builds and printed in all.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ASSAY_E2E_UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ASSAY_E2E_UNDER_SANITIZER 1
#endif
#endif

namespace assay::e2e {

#ifdef ASSAY_E2E_UNDER_SANITIZER
inline constexpr bool kMemoryBoundsHold = false;
#else
inline constexpr bool kMemoryBoundsHold = true;
#endif

using testing::Cluster;
using testing::ClusterOptions;
using testing::FindJob;
using testing::GitRepo;
using testing::JsonString;

inline constexpr char kRepoName[] = "acme/app";
inline constexpr char kSecret[] = "e2e-webhook-secret";

template <typename T>
T MustImpl(absl::StatusOr<T> v, const char* expr) {
  if (!v.ok()) FAIL(expr << "\n  failed: " << v.status().ToString());
  return std::move(*v);
}
inline void MustImpl(absl::Status s, const char* expr) {
  if (!s.ok()) FAIL(expr << "\n  failed: " << s.ToString());
}
// The value of a StatusOr (or nothing, for a Status); FAILs the test with the status otherwise.
#define MUST(expr) ::assay::e2e::MustImpl((expr), #expr)

inline ClusterOptions Options(std::vector<std::string> server_flags = {}) {
  ClusterOptions o;
  o.binary_dir = ASSAY_BINARY_DIR;
  o.server_flags = std::move(server_flags);
  return o;
}

// A git repository at <cluster dir>/repo, registered with the server as kRepoName.
inline GitRepo MakeRepo(Cluster& c) {
  GitRepo repo = MUST(GitRepo::Init(c.dir() + "/repo"));
  MUST(c.AddRepo(kRepoName, repo.clone_url(), kSecret));
  return repo;
}

// Commits `files`, sends a signed push of that commit and returns the pipeline's id.
inline int64_t PushFiles(Cluster& c, GitRepo& repo,
                         const std::vector<std::pair<std::string, std::string>>& files,
                         const std::string& delivery = "delivery-1") {
  std::string sha = MUST(repo.Commit(files));
  int64_t delivery_row =
      MUST(c.Push(Cluster::PushPayload(repo.clone_url(), kRepoName, sha), delivery, kSecret));
  return MUST(c.WaitForPipelineOf(delivery_row));
}

// The job named `name` of a pipeline object; FAILs when absent.
inline boost::json::object Job(const boost::json::object& pipeline, std::string_view name) {
  const boost::json::object* j = FindJob(pipeline, name);
  if (j == nullptr) FAIL("no job '" << name << "' in " << boost::json::serialize(pipeline));
  return *j;
}

inline int64_t JobId(const boost::json::object& pipeline, std::string_view name) {
  return Job(pipeline, name).at("id").as_int64();
}

}  // namespace assay::e2e
