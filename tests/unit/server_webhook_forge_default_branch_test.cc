// ParseDelivery reports the repository's default branch where a payload names it (the planner
// learns repos.default_branch from it).

#include <catch2/catch.hpp>
#include <string>

#include "server/webhook/forge.h"
#include "tests/unit/fixture.h"

namespace assay::webhook {
namespace {

std::string DefaultBranch(const char* provider, const char* event, const std::string& path) {
  auto e = ParseDelivery(provider, event, "d-1", testing::ReadFixture(path));
  INFO(path << ": " << e.status().ToString());
  REQUIRE(e.ok());
  return e->default_branch;
}

TEST_CASE("webhooks: the default branch of the payload's repository", "[triggers]") {
  CHECK(DefaultBranch("github", "push", "tests/fixtures/github/push.json") == "master");
  CHECK(DefaultBranch("github", "pull_request", "tests/fixtures/github/pull_request-opened.json") ==
        "master");
  CHECK(DefaultBranch("gitlab", "Push Hook", "tests/fixtures/gitlab/push.json") == "master");
  CHECK(DefaultBranch("gitlab", "Merge Request Hook",
                      "tests/fixtures/gitlab/merge_request_open.json") == "master");
  CHECK(DefaultBranch("gitea", "push", "tests/fixtures/gitea/push.json") == "master");
  CHECK(DefaultBranch("gitea", "pull_request", "tests/fixtures/gitea/pull_request_opened.json") ==
        "master");

  const std::string bare = R"({"ref": "refs/heads/main", "before": ")" + std::string(40, '0') +
                           R"(", "after": ")" + std::string(40, 'a') +
                           R"(", "repository": {"clone_url": "https://x/y.git"}})";
  auto e = ParseDelivery("github", "push", "d-2", bare);
  REQUIRE(e.ok());
  CHECK(e->default_branch == "");
}

}  // namespace
}  // namespace assay::webhook
