// The Gitea/Forgejo adapter against payloads written from Gitea's docs (tests/fixtures/gitea).

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/crypto/crypto.h"
#include "server/webhook/gitea.h"

#include "tests/unit/fixture.h"

namespace assay::webhook {
namespace {

std::string Fixture(const std::string& name) {
  return testing::ReadFixture("tests/fixtures/gitea/" + name);
}

const std::vector<std::string> kWebhooks = {
    "http://localhost:3000/gitea/webhooks.git", "gitea/webhooks",
    "http://localhost:3000/gitea/webhooks", "ssh://gitea@localhost:2222/gitea/webhooks.git"};

TEST_CASE("gitea: VerifyGiteaSignature", "[unit][webhook]") {
  const std::string body = Fixture("push.json");
  const std::string sig = HexEncode(HmacSha256("hook-secret", body));
  CHECK(VerifyGiteaSignature(sig, "", "hook-secret", body).ok());
  CHECK(VerifyGiteaSignature("", sig, "hook-secret", body).ok());  // Forgejo header
  CHECK(VerifyGiteaSignature(sig, sig, "hook-secret", body).ok());
  auto s = VerifyGiteaSignature(sig, "", "other-secret", body);
  CHECK(s.code() == absl::StatusCode::kUnauthenticated);
  CHECK(s.message() == "signature does not match the body");
  CHECK(VerifyGiteaSignature("sha256=" + sig, "", "hook-secret", body).message() ==
        "signature must be 64 hex characters after the prefix, got 71");
  CHECK(VerifyGiteaSignature("", "", "hook-secret", body).message() ==
        "signature header is missing");
  CHECK(VerifyGiteaSignature(sig, "", "", body).message() == "webhook secret is not configured");
  CHECK(VerifyGiteaSignature(sig, "", "hook-secret", body + " ").message() ==
        "signature does not match the body");
}

TEST_CASE("gitea: push", "[unit][webhook]") {
  auto e = ParseGiteaEvent("push", "f6266f16-1bf3-46a5-9ea4-602e06ead473", Fixture("push.json"));
  REQUIRE(e.ok());
  CHECK(e->provider == "gitea");
  CHECK(e->kind == "push");
  CHECK(e->delivery_id == "f6266f16-1bf3-46a5-9ea4-602e06ead473");
  CHECK(e->ref == "refs/heads/develop");
  CHECK(e->branch == "develop");
  CHECK(e->before == "28e1879d029cb852e4844d9c718537df08844e03");
  CHECK(e->after == "bffeb74224043ba2feb48d137756c8a9331c449a");
  CHECK_FALSE(e->deleted);
  CHECK(e->changed_paths == std::vector<std::string>{"README.md", "docs/hooks.md"});
  CHECK(e->repo_candidates == kWebhooks);

  boost::json::value v = boost::json::parse(Fixture("push.json"));
  v.as_object()["ref"] = "refs/tags/v2";
  v.as_object()["after"] = "0000000000000000000000000000000000000000";
  auto t = ParseGiteaEvent("push", "d", boost::json::serialize(v));
  REQUIRE(t.ok());
  CHECK(t->kind == "tag");
  CHECK(t->tag == "v2");
  CHECK(t->deleted);
}

TEST_CASE("gitea: pull requests", "[unit][webhook]") {
  auto e = ParseGiteaEvent("pull_request", "d", Fixture("pull_request_opened.json"));
  REQUIRE(e.ok());
  CHECK(e->kind == "pull_request");
  CHECK(e->pr_action == "opened");
  CHECK(e->pr_number == 7);
  CHECK(e->after == "5f9c8a2e3b1d4c6e7f8091a2b3c4d5e6f7a8b9c0");
  CHECK(e->ref == "refs/pull/7/head");
  CHECK(e->head_branch == "docs");
  CHECK(e->base_branch == "master");
  CHECK(e->fork);  // head repo alice/webhooks, base gitea/webhooks
  CHECK(e->repo_candidates == kWebhooks);

  for (const char* action : {"synchronized", "reopened"}) {
    boost::json::value v = boost::json::parse(Fixture("pull_request_opened.json"));
    v.as_object()["action"] = action;
    auto s = ParseGiteaEvent("pull_request_sync", "d", boost::json::serialize(v));
    REQUIRE(s.ok());
    CHECK(s->kind == "pull_request");
    CHECK(s->pr_action == action);
  }
  boost::json::value v = boost::json::parse(Fixture("pull_request_opened.json"));
  v.as_object()["action"] = "closed";
  auto c = ParseGiteaEvent("pull_request", "d", boost::json::serialize(v));
  REQUIRE(c.ok());
  CHECK(c->kind == "ignored");
  CHECK(c->ignore_reason == "pull_request action 'closed' does not start a build");
  // GitHub's word for new commits is not Gitea's.
  v.as_object()["action"] = "synchronize";
  c = ParseGiteaEvent("pull_request", "d", boost::json::serialize(v));
  REQUIRE(c.ok());
  CHECK(c->kind == "ignored");
}

// Found by tests/fuzz/webhook_gitea_fuzz: a number too large for int64 was converted anyway
// (undefined behaviour; UBSan aborts), so it must be refused like any non-integer.
TEST_CASE("gitea: a pull request number outside int64 is refused", "[unit][webhook]") {
  for (double n : {7e40, -7e40, 9223372036854775808.0, 7.5}) {
    boost::json::value v = boost::json::parse(Fixture("pull_request_opened.json"));
    v.as_object()["number"] = n;
    v.as_object()["pull_request"].as_object()["number"] = n;
    auto e = ParseGiteaEvent("pull_request", "d", boost::json::serialize(v));
    CHECK(e.status().message() == "pull_request payload: field 'number' must be an integer");
  }
  boost::json::value v = boost::json::parse(Fixture("pull_request_opened.json"));
  v.as_object()["number"] = 1e18;
  auto e = ParseGiteaEvent("pull_request", "d", boost::json::serialize(v));
  REQUIRE(e.ok());
  CHECK(e->pr_number == 1000000000000000000);
}

TEST_CASE("gitea: other events and errors", "[unit][webhook]") {
  auto e = ParseGiteaEvent("create", "d", Fixture("push.json"));
  REQUIRE(e.ok());
  CHECK(e->kind == "ignored");
  CHECK(e->ignore_reason == "event 'create' is not handled");
  CHECK(ParseGiteaEvent("", "d", "{}").status().message() == "header X-Gitea-Event is required");
  CHECK(ParseGiteaEvent("push", "d", "null").status().message() == "payload is not a JSON object");
  CHECK(ParseGiteaEvent("push", "d", R"({"ref":"refs/heads/x"})").status().message() ==
        "payload: field 'repository' must be an object");
}

}  // namespace
}  // namespace assay::webhook
