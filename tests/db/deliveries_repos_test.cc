// Webhook deliveries (deduplicated on provider + delivery id) and repositories (unique names
// and clone URLs, lookup by any URL a payload carries, sealed secrets stored byte-exact).

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/crypto/crypto.h"
#include "tests/db/db_fixture.h"

namespace assay::dbtest {
namespace {

store::NewDelivery NewDel(int64_t repo_id, std::string delivery_id, std::string body) {
  store::NewDelivery d;
  d.provider = "github";
  d.delivery_id = std::move(delivery_id);
  d.event = "push";
  d.repo_id = repo_id;
  d.headers_json = R"({"X-GitHub-Event":"push","X-GitHub-Delivery":"x"})";
  d.body = std::move(body);
  return d;
}

TEST_CASE("deliveries: a redelivery is recognized and written once", "[db]") {
  DbFixture f;
  const std::string body = std::string(R"({"ref":"refs/heads/main"})") + std::string("\0\xff", 2);
  auto first = f.deliveries.Insert(NewDel(f.repo_id, "d-1", body));
  REQUIRE(first.ok());
  CHECK(first->inserted);
  CHECK(first->id > 0);

  auto again = f.deliveries.Insert(NewDel(f.repo_id, "d-1", "a different body"));
  REQUIRE(again.ok());
  CHECK_FALSE(again->inserted);
  CHECK(again->id == first->id);
  CHECK(f.Count("SELECT count(*) FROM webhook_deliveries") == 1);

  auto got = f.deliveries.Get(first->id);
  REQUIRE(got.ok());
  CHECK(got->provider == "github");
  CHECK(got->delivery_id == "d-1");
  CHECK(got->event == "push");
  CHECK(got->state == "received");
  CHECK(got->message.empty());
  CHECK(got->repo_id == f.repo_id);
  CHECK(got->body == body);  // the first body, byte-exact, NUL and 0xff included
  CHECK(f.One("SELECT headers->>'X-GitHub-Delivery' FROM webhook_deliveries") == "x");

  // The same id from another provider is another delivery.
  auto other = NewDel(f.repo_id, "d-1", "{}");
  other.provider = "gitea";
  auto third = f.deliveries.Insert(other);
  REQUIRE(third.ok());
  CHECK(third->inserted);
  CHECK(third->id != first->id);

  auto missing = f.deliveries.Get(999999);
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK(missing.status().message() == "delivery 999999 does not exist");
}

TEST_CASE("deliveries: unplanned ones are listed oldest first until finished", "[db]") {
  DbFixture f;
  auto a = f.deliveries.Insert(NewDel(f.repo_id, "a", "{}"));
  auto ignored_in = NewDel(f.repo_id, "i", "{}");
  ignored_in.initial_state = "ignored";
  ignored_in.message = "event 'ping' plans nothing";
  auto ignored = f.deliveries.Insert(ignored_in);
  auto b = f.deliveries.Insert(NewDel(f.repo_id, "b", "{}"));
  REQUIRE(a.ok());
  REQUIRE(ignored.ok());
  REQUIRE(b.ok());

  auto unplanned = f.deliveries.ListUnplanned();
  REQUIRE(unplanned.ok());
  CHECK(*unplanned == std::vector<int64_t>{a->id, b->id});
  CHECK(f.Query("SELECT state, message, processed_at IS NOT NULL FROM webhook_deliveries WHERE "
                "id = " +
                std::to_string(ignored->id)) ==
        Rows{{"ignored", "event 'ping' plans nothing", "t"}});

  REQUIRE(f.deliveries.Finish(a->id, "failed", "push payload: field 'ref' is missing").ok());
  unplanned = f.deliveries.ListUnplanned();
  REQUIRE(unplanned.ok());
  CHECK(*unplanned == std::vector<int64_t>{b->id});
  auto got = f.deliveries.Get(a->id);
  REQUIRE(got.ok());
  CHECK(got->state == "failed");
  CHECK(got->message == "push payload: field 'ref' is missing");

  // Finishing again does not overwrite the first outcome.
  REQUIRE(f.deliveries.Finish(a->id, "ignored", "later").ok());
  got = f.deliveries.Get(a->id);
  REQUIRE(got.ok());
  CHECK(got->state == "failed");
  CHECK(got->message == "push payload: field 'ref' is missing");

  // A state outside the CHECK is refused by the database.
  auto bad = f.deliveries.Finish(b->id, "bogus", "x");
  CHECK(bad.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(f.One("SELECT state FROM webhook_deliveries WHERE id = " + std::to_string(b->id)) ==
        "received");
}

TEST_CASE("repos: unique names and URLs, lookup by any payload URL, sealed secret", "[db]") {
  DbFixture f;  // registers acme/app (https://github.com/acme/app.git)
  const std::string key(32, '\x42');
  auto sealed = SealSecret(key, std::string("s3cr3t\0\xff", 8));
  REQUIRE(sealed.ok());

  store::NewRepo n;
  n.name = "Codertocat/Hello-World";
  n.provider = "github";
  n.clone_url = "https://github.com/Codertocat/Hello-World.git";
  n.html_url = "https://github.com/Codertocat/Hello-World";
  n.webhook_secret_sealed = *sealed;
  auto created = f.repos.Create(n);
  REQUIRE(created.ok());
  CHECK(created->name == "Codertocat/Hello-World");
  CHECK(created->provider == "github");
  CHECK(created->clone_url == "https://github.com/Codertocat/Hello-World.git");
  CHECK(created->html_url == "https://github.com/Codertocat/Hello-World");
  CHECK(created->webhook_secret_sealed == *sealed);

  auto got = f.repos.Get(created->id);
  REQUIRE(got.ok());
  CHECK(got->webhook_secret_sealed == *sealed);
  auto opened = OpenSecret(key, got->webhook_secret_sealed);
  REQUIRE(opened.ok());
  CHECK(*opened == std::string("s3cr3t\0\xff", 8));

  SECTION("duplicates and bad names") {
    store::NewRepo dup = n;
    dup.clone_url = "https://example.com/other.git";
    auto r = f.repos.Create(dup);
    CHECK(r.status().code() == absl::StatusCode::kAlreadyExists);
    CHECK(r.status().message() == "a repository with this name is already registered");

    store::NewRepo dup_url = n;
    dup_url.name = "other";
    r = f.repos.Create(dup_url);
    CHECK(r.status().code() == absl::StatusCode::kAlreadyExists);
    CHECK(r.status().message() == "a repository with this clone_url is already registered");

    store::NewRepo bad = n;
    bad.name = "-bad name";
    bad.clone_url = "https://example.com/bad.git";
    r = f.repos.Create(bad);
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(r.status().message() ==
          "field 'name': must start with a letter or digit and contain only letters, digits, "
          "'_', '.', '-' and '/' (at most 200 characters)");
    CHECK(f.Count("SELECT count(*) FROM repos") == 2);

    auto missing = f.repos.Get(999999);
    CHECK(missing.status().code() == absl::StatusCode::kNotFound);
    CHECK(missing.status().message() == "repository 999999 does not exist");
  }

  SECTION("FindByAny") {
    store::NewRepo plain;
    plain.name = "y";
    plain.provider = "gitea";
    plain.clone_url = "https://git.example.com/x/y/";  // stored with a trailing slash, no .git
    auto y = f.repos.Create(plain);
    REQUIRE(y.ok());
    CHECK(y->html_url.empty());

    auto find = [&](std::vector<std::string> c) -> int64_t {
      auto r = f.repos.FindByAny(c);
      if (!r.ok()) return r.status().code() == absl::StatusCode::kNotFound ? -1 : -2;
      return r->id;
    };
    CHECK(find({"https://github.com/Codertocat/Hello-World.git"}) == created->id);
    CHECK(find({"https://github.com/Codertocat/Hello-World"}) == created->id);
    CHECK(find({"https://github.com/Codertocat/Hello-World/"}) == created->id);
    CHECK(find({"https://github.com/Codertocat/Hello-World.git/"}) == created->id);
    CHECK(find({"Codertocat/Hello-World"}) == created->id);
    CHECK(find({"", "nothing", "Codertocat/Hello-World"}) == created->id);
    CHECK(find({"https://git.example.com/x/y.git"}) == y->id);
    CHECK(find({"https://git.example.com/x/y"}) == y->id);
    CHECK(find({"https://github.com/acme/app"}) == f.repo_id);
    CHECK(find({"https://github.com/Codertocat/Hello"}) == -1);
    CHECK(find({}) == -1);
    auto none = f.repos.FindByAny({"git@github.com:nobody/none.git"});
    CHECK(none.status().message() == "no registered repository matches this payload");

    auto all = f.repos.List();
    REQUIRE(all.ok());
    REQUIRE(all->size() == 3);
    CHECK((*all)[0].name == "acme/app");
    CHECK((*all)[1].name == "Codertocat/Hello-World");
    CHECK((*all)[2].name == "y");
    CHECK((*all)[0].webhook_secret_sealed.empty());
  }

  CHECK(store::NormalizeRepoUrl("https://github.com/a/b.git/") == "https://github.com/a/b");
  CHECK(store::NormalizeRepoUrl("https://github.com/a/b//") == "https://github.com/a/b");
  CHECK(store::NormalizeRepoUrl("a/b") == "a/b");
}

}  // namespace
}  // namespace assay::dbtest
