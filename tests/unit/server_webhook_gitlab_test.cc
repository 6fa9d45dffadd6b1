// The GitLab adapter against payloads written from GitLab's docs (tests/fixtures/gitlab).

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "server/webhook/gitlab.h"

#include "tests/unit/fixture.h"

namespace assay::webhook {
namespace {

std::string Fixture(const std::string& name) {
  return testing::ReadFixture("tests/fixtures/gitlab/" + name);
}

// The merge request fixture with object_attributes edited by `edit`.
template <typename F>
std::string EditMr(F edit) {
  boost::json::value v = boost::json::parse(Fixture("merge_request_open.json"));
  edit(v.as_object()["object_attributes"].as_object());
  return boost::json::serialize(v);
}

const std::vector<std::string> kDiaspora = {"http://example.com/mike/diaspora.git",
                                            "git@example.com:mike/diaspora.git",
                                            "http://example.com/mike/diaspora", "mike/diaspora"};

TEST_CASE("gitlab: VerifyGitlabToken", "[unit][webhook]") {
  CHECK(VerifyGitlabToken("s3cret", "s3cret").ok());
  auto s = VerifyGitlabToken("s3creT", "s3cret");
  CHECK(s.code() == absl::StatusCode::kUnauthenticated);
  CHECK(s.message() == "header X-Gitlab-Token does not match the webhook secret");
  CHECK(VerifyGitlabToken("s3cret-longer", "s3cret").message() ==
        "header X-Gitlab-Token does not match the webhook secret");
  CHECK(VerifyGitlabToken("", "s3cret").message() == "header X-Gitlab-Token is missing");
  CHECK(VerifyGitlabToken("", "").message() == "webhook secret is not configured");
  CHECK(VerifyGitlabToken("x", "").code() == absl::StatusCode::kUnauthenticated);
}

TEST_CASE("gitlab: Push Hook", "[unit][webhook]") {
  auto e = ParseGitlabEvent("Push Hook", "uuid-1", Fixture("push.json"));
  REQUIRE(e.ok());
  CHECK(e->provider == "gitlab");
  CHECK(e->kind == "push");
  CHECK(e->delivery_id == "uuid-1");
  CHECK(e->ref == "refs/heads/master");
  CHECK(e->branch == "master");
  CHECK(e->tag == "");
  CHECK(e->before == "95790bf891e76fee5e1747ab589903a6a1f80f22");
  CHECK(e->after == "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
  CHECK_FALSE(e->deleted);
  CHECK(e->changed_paths == std::vector<std::string>{"CHANGELOG", "README.md",
                                                     "app/controller/application.rb", "old.txt"});
  CHECK(e->repo_candidates == kDiaspora);
}

TEST_CASE("gitlab: truncated commit list leaves changed_paths unknown", "[unit][webhook]") {
  boost::json::value v = boost::json::parse(Fixture("push.json"));
  v.as_object()["total_commits_count"] = 25;
  auto e = ParseGitlabEvent("Push Hook", "u", boost::json::serialize(v));
  REQUIRE(e.ok());
  CHECK(e->changed_paths.empty());
}

TEST_CASE("gitlab: branch deletion", "[unit][webhook]") {
  boost::json::value v = boost::json::parse(Fixture("push.json"));
  v.as_object()["after"] = "0000000000000000000000000000000000000000";
  v.as_object()["commits"] = boost::json::array();
  v.as_object()["total_commits_count"] = 0;
  auto e = ParseGitlabEvent("Push Hook", "u", boost::json::serialize(v));
  REQUIRE(e.ok());
  CHECK(e->kind == "push");
  CHECK(e->deleted);
}

TEST_CASE("gitlab: Tag Push Hook", "[unit][webhook]") {
  auto e = ParseGitlabEvent("Tag Push Hook", "uuid-2", Fixture("tag_push.json"));
  REQUIRE(e.ok());
  CHECK(e->kind == "tag");
  CHECK(e->ref == "refs/tags/v1.0.0");
  CHECK(e->tag == "v1.0.0");
  CHECK(e->branch == "");
  CHECK(e->after == "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7");
  CHECK_FALSE(e->deleted);
  CHECK(e->changed_paths.empty());
  CHECK(e->repo_candidates == std::vector<std::string>{"http://example.com/jsmith/example.git",
                                                       "git@example.com:jsmith/example.git",
                                                       "http://example.com/jsmith/example",
                                                       "jsmith/example"});
  auto wrong = ParseGitlabEvent("Tag Push Hook", "u", Fixture("push.json"));
  CHECK(wrong.status().message() ==
        "push payload: field 'ref' must start with refs/tags/, got 'refs/heads/master'");
}

TEST_CASE("gitlab: Merge Request Hook open from a fork", "[unit][webhook]") {
  auto e = ParseGitlabEvent("Merge Request Hook", "uuid-3", Fixture("merge_request_open.json"));
  REQUIRE(e.ok());
  CHECK(e->kind == "pull_request");
  CHECK(e->pr_action == "open");
  CHECK(e->pr_number == 1);
  CHECK(e->after == "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
  CHECK(e->before == "");
  CHECK(e->ref == "refs/merge-requests/1/head");
  CHECK(e->branch == "ms-viewport");
  CHECK(e->head_branch == "ms-viewport");
  CHECK(e->base_branch == "master");
  CHECK(e->fork);
  CHECK(e->repo_candidates == kDiaspora);
}

TEST_CASE("gitlab: merge request actions", "[unit][webhook]") {
  auto same_project = EditMr([](boost::json::object& a) { a["source_project_id"] = 15; });
  auto e = ParseGitlabEvent("Merge Request Hook", "u", same_project);
  REQUIRE(e.ok());
  CHECK_FALSE(e->fork);

  auto update = EditMr([](boost::json::object& a) {
    a["action"] = "update";
    a["oldrev"] = "95790bf891e76fee5e1747ab589903a6a1f80f22";
  });
  e = ParseGitlabEvent("Merge Request Hook", "u", update);
  REQUIRE(e.ok());
  CHECK(e->kind == "pull_request");
  CHECK(e->before == "95790bf891e76fee5e1747ab589903a6a1f80f22");

  e = ParseGitlabEvent("Merge Request Hook", "u",
                       EditMr([](boost::json::object& a) { a["action"] = "reopen"; }));
  REQUIRE(e.ok());
  CHECK(e->kind == "pull_request");

  e = ParseGitlabEvent("Merge Request Hook", "u",
                       EditMr([](boost::json::object& a) { a["action"] = "update"; }));
  REQUIRE(e.ok());
  CHECK(e->kind == "ignored");
  CHECK(e->ignore_reason == "merge_request update without new commits does not start a build");

  e = ParseGitlabEvent("Merge Request Hook", "u",
                       EditMr([](boost::json::object& a) { a["action"] = "close"; }));
  REQUIRE(e.ok());
  CHECK(e->kind == "ignored");
  CHECK(e->ignore_reason == "merge_request action 'close' does not start a build");
}

TEST_CASE("gitlab: other events and errors", "[unit][webhook]") {
  auto e = ParseGitlabEvent("Note Hook", "u", Fixture("push.json"));
  REQUIRE(e.ok());
  CHECK(e->kind == "ignored");
  CHECK(e->ignore_reason == "event 'Note Hook' is not handled");
  CHECK(e->repo_candidates == kDiaspora);

  CHECK(ParseGitlabEvent("", "u", "{}").status().message() == "header X-Gitlab-Event is required");
  CHECK(ParseGitlabEvent("Push Hook", "u", "{").status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(ParseGitlabEvent("Push Hook", "u", R"({"ref":"refs/heads/m"})").status().message() ==
        "payload: field 'project' must be an object");
  CHECK(ParseGitlabEvent("Push Hook", "u", R"({"project":{"id":1}})").status().message() ==
        "payload: 'project' has none of git_http_url, git_ssh_url, web_url, path_with_namespace");
  CHECK(ParseGitlabEvent("Push Hook", "u", R"({"project":{"web_url":"w"},"ref":"refs/heads/m"})")
            .status()
            .message() == "push payload: field 'after' must be a 40-character hex commit id");
  CHECK(ParseGitlabEvent("Merge Request Hook", "u", R"({"project":{"web_url":"w"}})")
            .status()
            .message() == "merge_request payload: field 'object_attributes' must be an object");
  auto no_iid = EditMr([](boost::json::object& a) { a.erase("iid"); });
  CHECK(ParseGitlabEvent("Merge Request Hook", "u", no_iid).status().message() ==
        "merge_request payload: field 'object_attributes.iid' must be an integer");
  auto no_commit = EditMr([](boost::json::object& a) { a.erase("last_commit"); });
  CHECK(ParseGitlabEvent("Merge Request Hook", "u", no_commit).status().message() ==
        "merge_request payload: field 'object_attributes.last_commit.id' must be a 40-character "
        "hex commit id");
  auto no_target = EditMr([](boost::json::object& a) { a.erase("target_branch"); });
  CHECK(ParseGitlabEvent("Merge Request Hook", "u", no_target).status().message() ==
        "merge_request payload: field 'object_attributes.target_branch' is missing");
}

}  // namespace
}  // namespace assay::webhook
