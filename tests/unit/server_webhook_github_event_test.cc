// ParseGithubEvent against GitHub's own example payloads (tests/fixtures/github).

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "server/webhook/github.h"

#include "tests/unit/fixture.h"

namespace assay::webhook {
namespace {

std::string Fixture(const std::string& name) {
  return testing::ReadFixture("tests/fixtures/github/" + name);
}

const std::vector<std::string> kHelloWorld = {
    "https://github.com/Codertocat/Hello-World.git", "Codertocat/Hello-World",
    "https://github.com/Codertocat/Hello-World", "git@github.com:Codertocat/Hello-World.git",
    "git://github.com/Codertocat/Hello-World.git"};

TEST_CASE("github event: tag deletion push.json and push-1.json", "[unit][webhook]") {
  for (const char* f : {"push.json", "push-1.json"}) {
    auto e = ParseGithubEvent("push", "d-1", Fixture(f));
    REQUIRE(e.ok());
    CHECK(e->provider == "github");
    CHECK(e->kind == "tag");
    CHECK(e->delivery_id == "d-1");
    CHECK(e->ref == "refs/tags/simple-tag");
    CHECK(e->tag == "simple-tag");
    CHECK(e->branch == "");
    CHECK(e->before == "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
    CHECK(e->after == "0000000000000000000000000000000000000000");
    CHECK(e->deleted);
    CHECK(e->changed_paths.empty());
    CHECK(e->repo_candidates == kHelloWorld);
    CHECK(e->ignore_reason == "");
  }
}

TEST_CASE("github event: push-with-new-branch.json", "[unit][webhook]") {
  auto e = ParseGithubEvent("push", "d-2", Fixture("push-with-new-branch.json"));
  REQUIRE(e.ok());
  CHECK(e->kind == "push");
  CHECK(e->ref == "refs/heads/master");
  CHECK(e->branch == "master");
  CHECK(e->tag == "");
  CHECK(e->before == "0000000000000000000000000000000000000000");
  CHECK(e->after == "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
  CHECK_FALSE(e->deleted);
  CHECK(e->changed_paths == std::vector<std::string>{"README.md"});
  CHECK(e->repo_candidates == kHelloWorld);
  CHECK(e->pr_number == 0);
}

TEST_CASE("github event: changed_paths is the sorted union over commits", "[unit][webhook]") {
  const std::string body =
      R"({"ref":"refs/heads/main","after":"1111111111111111111111111111111111111111",
    "repository":{"full_name":"a/b"},
    "commits":[{"added":["z.py","a.py"],"modified":["m.md"],"removed":[]},
               {"added":[],"modified":["a.py"],"removed":["old/x.txt", 3]}, "junk"]})";
  auto e = ParseGithubEvent("push", "d", body);
  REQUIRE(e.ok());
  CHECK(e->changed_paths == std::vector<std::string>{"a.py", "m.md", "old/x.txt", "z.py"});
  CHECK(e->repo_candidates == std::vector<std::string>{"a/b"});
}

TEST_CASE("github event: pull_request opened and synchronize build the head", "[unit][webhook]") {
  auto e = ParseGithubEvent("pull_request", "d-3", Fixture("pull_request-opened.json"));
  REQUIRE(e.ok());
  CHECK(e->kind == "pull_request");
  CHECK(e->pr_action == "opened");
  CHECK(e->pr_number == 2);
  CHECK(e->after == "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
  CHECK(e->before == "");
  CHECK(e->ref == "refs/pull/2/head");
  CHECK(e->branch == "changes");
  CHECK(e->head_branch == "changes");
  CHECK(e->base_branch == "master");
  CHECK_FALSE(e->fork);
  CHECK_FALSE(e->deleted);
  CHECK(e->repo_candidates == kHelloWorld);
  CHECK(e->changed_paths.empty());

  auto s = ParseGithubEvent("pull_request", "d-4", Fixture("pull_request-synchronize.json"));
  REQUIRE(s.ok());
  CHECK(s->kind == "pull_request");
  CHECK(s->pr_action == "synchronize");
  CHECK(s->before == "f95f852bd8fca8fcc58a9a2d6c842781e32a215e");
  CHECK(s->after == "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
  CHECK(s->ref == "refs/pull/2/head");
}

TEST_CASE("github event: reopened builds, fork detection", "[unit][webhook]") {
  std::string body = Fixture("pull_request-opened.json");
  auto pos = body.find("\"action\": \"opened\"");
  REQUIRE(pos != std::string::npos);
  body.replace(pos, 18, "\"action\": \"reopened\"");
  auto e = ParseGithubEvent("pull_request", "d", body);
  REQUIRE(e.ok());
  CHECK(e->kind == "pull_request");
  CHECK(e->pr_action == "reopened");

  const std::string head = R"({"action":"opened","number":5,"repository":{"full_name":"o/r"},
    "pull_request":{"head":{"ref":"f","sha":"2222222222222222222222222222222222222222",)";
  auto fork = ParseGithubEvent(
      "pull_request", "d",
      head +
          R"("repo":{"full_name":"evil/r"}},"base":{"ref":"main","repo":{"full_name":"o/r"}}}})");
  REQUIRE(fork.ok());
  CHECK(fork->fork);
  auto deleted_head =
      ParseGithubEvent("pull_request", "d",
                       head + R"("repo":null},"base":{"ref":"main","repo":{"full_name":"o/r"}}}})");
  REQUIRE(deleted_head.ok());
  CHECK(deleted_head->fork);
  auto same = ParseGithubEvent(
      "pull_request", "d",
      head + R"("repo":{"full_name":"o/r"}},"base":{"ref":"main","repo":{"full_name":"o/r"}}}})");
  REQUIRE(same.ok());
  CHECK_FALSE(same->fork);
  CHECK(same->pr_number == 5);
  CHECK(same->ref == "refs/pull/5/head");
}

TEST_CASE("github event: closed and labeled pull requests are ignored", "[unit][webhook]") {
  auto c = ParseGithubEvent("pull_request", "d", Fixture("pull_request-closed.json"));
  REQUIRE(c.ok());
  CHECK(c->kind == "ignored");
  CHECK(c->ignore_reason == "pull_request action 'closed' does not start a build");
  CHECK(c->pr_number == 2);
  CHECK(c->repo_candidates == kHelloWorld);
  auto l = ParseGithubEvent("pull_request", "d", Fixture("pull_request-labeled.json"));
  REQUIRE(l.ok());
  CHECK(l->kind == "ignored");
  CHECK(l->ignore_reason == "pull_request action 'labeled' does not start a build");
}

TEST_CASE("github event: ping, create, delete, release", "[unit][webhook]") {
  auto p = ParseGithubEvent("ping", "d-p", Fixture("ping.json"));
  REQUIRE(p.ok());
  CHECK(p->kind == "ping");
  CHECK(p->ignore_reason == "");
  CHECK(p->repo_candidates.at(1) == "Octocoders/Hello-World");
  for (const char* ev : {"create", "delete"}) {
    auto e = ParseGithubEvent(ev, "d", Fixture(std::string(ev) + ".json"));
    REQUIRE(e.ok());
    CHECK(e->kind == "ignored");
    CHECK(e->ignore_reason == "event '" + std::string(ev) + "' is not handled");
    CHECK(e->after == "");
  }
  auto r = ParseGithubEvent("release", "d", Fixture("release-published.json"));
  REQUIRE(r.ok());
  CHECK(r->kind == "ignored");
  CHECK(r->ignore_reason == "event 'release' is not handled");
  // An ignored event without a repository is still fine.
  auto bare = ParseGithubEvent("meta", "d", "{}");
  REQUIRE(bare.ok());
  CHECK(bare->kind == "ignored");
  CHECK(bare->repo_candidates.empty());
}

TEST_CASE("github event: errors", "[unit][webhook]") {
  auto e = ParseGithubEvent("", "d", "{}");
  CHECK(e.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(e.status().message() == "header X-GitHub-Event is required");
  e = ParseGithubEvent("push", "d", "[1]");
  CHECK(e.status().message() == "payload is not a JSON object");
  e = ParseGithubEvent("push", "d", R"({"ref":"refs/heads/x"})");
  CHECK(e.status().message() == "payload: field 'repository' must be an object");
  e = ParseGithubEvent("push", "d",
                       R"({"ref":"refs/heads/x","after":"zz","repository":{"full_name":"a/b"}})");
  CHECK(e.status().message() == "push payload: field 'after' must be a 40-character hex commit id");
  e = ParseGithubEvent("pull_request", "d",
                       R"({"action":"opened","repository":{"full_name":"a/b"}})");
  CHECK(e.status().message() == "pull_request payload: field 'pull_request' must be an object");
  e = ParseGithubEvent("pull_request", "d",
                       R"({"action":"opened","pull_request":{},"repository":{"full_name":"a/b"}})");
  CHECK(e.status().message() == "pull_request payload: field 'number' must be an integer");
  e = ParseGithubEvent("pull_request", "d",
                       R"({"action":"opened","number":1,"pull_request":{"head":{"sha":"x"}}})");
  CHECK(e.status().message() ==
        "pull_request payload: field 'pull_request.head.sha' must be a 40-character hex commit id");
  e = ParseGithubEvent("pull_request", "d",
                       R"({"action":"opened","number":1,"pull_request":{"head":{"sha":)"
                       R"("3333333333333333333333333333333333333333"}}})");
  CHECK(e.status().message() == "pull_request payload: field 'pull_request.base.ref' is missing");
  e = ParseGithubEvent("pull_request", "d",
                       R"({"action":"opened","number":1,"pull_request":{"head":{"sha":)"
                       R"("3333333333333333333333333333333333333333"},"base":{"ref":"m"}}})");
  CHECK(e.status().message() == "payload: field 'repository' must be an object");
}

}  // namespace
}  // namespace assay::webhook
