// The GitHub adapter against GitHub's own example payloads (tests/fixtures/github, from
// octokit/webhooks, MIT licence beside them) and against malformed bodies.

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

TEST_CASE("github: RepoCandidates of push.json", "[unit][webhook]") {
  auto c = RepoCandidates(Fixture("push.json"));
  REQUIRE(c.ok());
  CHECK(*c == std::vector<std::string>{"https://github.com/Codertocat/Hello-World.git",
                                       "Codertocat/Hello-World",
                                       "https://github.com/Codertocat/Hello-World",
                                       "git@github.com:Codertocat/Hello-World.git",
                                       "git://github.com/Codertocat/Hello-World.git"});
  // The other Codertocat fixtures name the same repository (ping.json is Octocoders).
  for (const char* f : {"push-with-new-branch.json", "pull_request-opened.json", "delete.json"}) {
    auto other = RepoCandidates(Fixture(f));
    REQUIRE(other.ok());
    CHECK(*other == *c);
  }
}

TEST_CASE("github: RepoCandidates errors", "[unit][webhook]") {
  auto r = RepoCandidates("{\"zen\": \"x\"}");
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(r.status().message() == "payload: field 'repository' must be an object");
  r = RepoCandidates(R"({"repository": "acme/app"})");
  CHECK(r.status().message() == "payload: field 'repository' must be an object");
  r = RepoCandidates(R"({"repository": {"id": 1, "clone_url": 5}})");
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(r.status().message() == "payload: 'repository' has none of clone_url, full_name, html_url");
  r = RepoCandidates("[1, 2]");
  CHECK(r.status().message() == "payload is not a JSON object");
  r = RepoCandidates(R"({"repository": {"full_name": "a/b"})");  // truncated
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(r.status().message().rfind("payload is not valid JSON: ", 0) == 0);
  // Only present string fields count, in the documented order.
  auto partial = RepoCandidates(R"({"repository": {"html_url": "h", "full_name": "a/b"}})");
  REQUIRE(partial.ok());
  CHECK(*partial == std::vector<std::string>{"a/b", "h"});
}

TEST_CASE("github: ParsePush of the fixtures", "[unit][webhook]") {
  SECTION("a new branch") {
    auto e = ParsePush(Fixture("push-with-new-branch.json"));
    REQUIRE(e.ok());
    CHECK(e->ref == "refs/heads/master");
    CHECK(e->branch == "master");
    CHECK(e->tag.empty());
    CHECK(e->after == "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
    CHECK(e->before == "0000000000000000000000000000000000000000");
    CHECK_FALSE(e->deleted);
  }
  SECTION("a deleted tag (push.json)") {
    auto e = ParsePush(Fixture("push.json"));
    REQUIRE(e.ok());
    CHECK(e->ref == "refs/tags/simple-tag");
    CHECK(e->branch.empty());
    CHECK(e->tag == "simple-tag");
    CHECK(e->after == "0000000000000000000000000000000000000000");
    CHECK(e->before == "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
    CHECK(e->deleted);
  }
  SECTION("delete.json is a 'delete' event, not a push: its ref is refused") {
    auto e = ParsePush(Fixture("delete.json"));
    CHECK(e.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(e.status().message() ==
          "push payload: field 'ref' must start with refs/heads/ or refs/tags/, got "
          "'simple-tag'");
  }
}

TEST_CASE("github: ParsePush of hand-made bodies", "[unit][webhook]") {
  const std::string sha = "0123456789abcdef0123456789abcdef01234567";
  auto e = ParsePush(R"({"ref":"refs/heads/feature/x","after":")" + sha + R"("})");
  REQUIRE(e.ok());
  CHECK(e->branch == "feature/x");
  CHECK(e->after == sha);
  CHECK(e->before.empty());
  CHECK_FALSE(e->deleted);

  e = ParsePush(R"({"ref":"refs/tags/v1.2","after":")" + sha + R"("})");
  REQUIRE(e.ok());
  CHECK(e->tag == "v1.2");
  CHECK(e->branch.empty());

  // "deleted": true is honored even with a real sha; all-zero 'after' means deleted too.
  e = ParsePush(R"({"ref":"refs/heads/main","deleted":true,"after":")" + sha + R"("})");
  REQUIRE(e.ok());
  CHECK(e->deleted);
  e = ParsePush(R"({"ref":"refs/heads/main","after":")" + std::string(40, '0') + R"("})");
  REQUIRE(e.ok());
  CHECK(e->deleted);

  auto bad = ParsePush("{\"ref\": ");
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(bad.status().message().rfind("payload is not valid JSON: ", 0) == 0);
  bad = ParsePush("\"just a string\"");
  CHECK(bad.status().message() == "payload is not a JSON object");
  bad = ParsePush(R"({"after":")" + sha + R"("})");
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(bad.status().message() == "push payload: field 'ref' is missing");
  bad = ParsePush(R"({"ref": 7, "after":")" + sha + R"("})");
  CHECK(bad.status().message() == "push payload: field 'ref' is missing");
  const std::string after_msg = "push payload: field 'after' must be a 40-character hex commit id";
  for (const std::string& after :
       {std::string(R"("abc")"), std::string(R"(")" + std::string(40, 'g') + R"(")"),
        std::string(R"(")" + std::string(40, 'A') + R"(")"), std::string("null"),
        std::string("12")}) {
    bad = ParsePush(R"({"ref":"refs/heads/main","after":)" + after + "}");
    CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(bad.status().message() == after_msg);
  }
  bad = ParsePush(R"({"ref":"refs/heads/main"})");
  CHECK(bad.status().message() == after_msg);
}

}  // namespace
}  // namespace assay::webhook
