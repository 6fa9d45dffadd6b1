// The webhook intake driven without HTTP: a verdict per delivery, the rows it leaves (none for
// a refused one), what reaches the planner's queue and the counter it bumps.

#include <catch2/catch.hpp>
#include <string>
#include <utility>
#include <vector>

#include "common/crypto/crypto.h"
#include "server/metrics/metrics.h"
#include "server/webhook/intake.h"
#include "tests/db/db_fixture.h"
#include "tests/support/cluster.h"

namespace assay::dbtest {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

const std::string kKey(32, 'k');
constexpr const char* kSecret = "s3cret";
constexpr const char* kCloneUrl = "https://github.com/acme/signed.git";

// A DbFixture with a second repository, acme/signed, whose webhook secret is kSecret, and an
// Intake over its stores that records what it hands to the planner.
struct IntakeFixture : DbFixture {
  Metrics metrics;
  std::vector<int64_t> enqueued;
  webhook::Intake intake{webhook::Intake::Deps{&repos, &deliveries, &metrics, kKey,
                                               [this](int64_t id) { enqueued.push_back(id); }}};
  int64_t signed_repo = 0;

  IntakeFixture() {
    store::NewRepo r;
    r.name = "acme/signed";
    r.provider = "github";
    r.clone_url = kCloneUrl;
    auto sealed = SealSecret(kKey, kSecret);
    REQUIRE(sealed.ok());
    r.webhook_secret_sealed = *sealed;
    auto created = repos.Create(r);
    REQUIRE(created.ok());
    signed_repo = created->id;
  }

  webhook::IntakeResult Receive(const Headers& headers, const std::string& body) {
    auto r = intake.Receive("github", headers, body);
    REQUIRE(r.ok());
    return *r;
  }

  std::string Counter(const std::string& result) {
    const std::string prefix =
        "assay_webhooks_received_total{provider=\"github\",result=\"" + result + "\"} ";
    const std::string text = metrics.Serialize();
    const size_t at = text.find(prefix);
    if (at == std::string::npos) return "absent";
    return text.substr(at + prefix.size(), text.find('\n', at) - at - prefix.size());
  }
};

Headers Push(const std::string& delivery, const std::string& signature) {
  return {{"X-GitHub-Event", "push"},
          {"x-github-delivery", delivery},  // names match in any case
          {"X-Hub-Signature-256", signature},
          {"User-Agent", "GitHub-Hookshot/1"},
          {"Authorization", "not stored"}};
}

const std::string kBody =
    testing::Cluster::PushPayload(kCloneUrl, "acme/signed", std::string(40, 'a'));

TEST_CASE("intake: a signed push is stored once, queued once, its redelivery is a duplicate",
          "[db][intake]") {
  IntakeFixture f;
  const std::string sig = testing::Cluster::GithubSignature(kSecret, kBody);
  webhook::IntakeResult first = f.Receive(Push("d-1", sig), kBody);
  CHECK(first.http_status == 202);
  CHECK(first.status == "queued");
  CHECK(first.result == "accepted");
  CHECK(first.error_code.empty());
  CHECK(first.delivery > 0);
  CHECK(f.enqueued == std::vector<int64_t>{first.delivery});
  CHECK(f.Query("SELECT provider, delivery_id, event, repo_id::text, state, "
                "convert_from(body, 'UTF8'), headers::text FROM webhook_deliveries") ==
        Rows{{"github", "d-1", "push", std::to_string(f.signed_repo), "received", kBody,
              "{\"User-Agent\": \"GitHub-Hookshot/1\", \"X-GitHub-Event\": \"push\", "
              "\"x-github-delivery\": \"d-1\", \"X-Hub-Signature-256\": \"" +
                  sig + "\"}"}});

  webhook::IntakeResult again = f.Receive(Push("d-1", sig), kBody);
  CHECK(again.http_status == 202);
  CHECK(again.status == "duplicate");
  CHECK(again.result == "duplicate");
  CHECK(again.delivery == first.delivery);
  CHECK(f.enqueued.size() == 1);  // not planned twice
  CHECK(f.Count("SELECT count(*) FROM webhook_deliveries") == 1);
  CHECK(f.Counter("accepted") == "1");
  CHECK(f.Counter("duplicate") == "1");
}

// The one answer to anything that cannot be authenticated.
void CheckNotAuthenticated(const webhook::IntakeResult& r, const std::string& result) {
  CHECK(r.http_status == 401);
  CHECK(r.error_code == "unauthenticated");
  CHECK(r.message == "webhook delivery could not be authenticated");
  CHECK(r.result == result);
  CHECK(r.delivery == 0);
}

TEST_CASE("intake: a bad signature is 401 and stores nothing", "[db][intake]") {
  IntakeFixture f;
  const std::string wrong = testing::Cluster::GithubSignature("not the secret", kBody);
  webhook::IntakeResult r = f.Receive(Push("d-2", wrong), kBody);
  CheckNotAuthenticated(r, "bad_signature");
  CHECK(f.enqueued.empty());
  CHECK(f.Count("SELECT count(*) FROM webhook_deliveries") == 0);
  CHECK(f.Counter("bad_signature") == "1");
  CHECK(f.Counter("accepted") == "0");

  // Unsigned, malformed, and signed for a repository without a secret: refused alike.
  CheckNotAuthenticated(
      f.Receive({{"X-GitHub-Event", "push"}, {"X-GitHub-Delivery", "d-3"}}, kBody),
      "bad_signature");
  CheckNotAuthenticated(f.Receive(Push("d-3", "sha256=00"), kBody), "bad_signature");
  const std::string open_body = testing::Cluster::PushPayload("https://github.com/acme/app.git",
                                                              "acme/app", std::string(40, 'b'));
  CheckNotAuthenticated(
      f.Receive(Push("d-4", testing::Cluster::GithubSignature(kSecret, open_body)), open_body),
      "unknown_repo");
  CHECK(f.Count("SELECT count(*) FROM webhook_deliveries") == 0);
  CHECK(f.Counter("bad_signature") == "3");
  CHECK(f.Counter("unknown_repo") == "1");
}

TEST_CASE("intake: an unknown repository is answered like a bad signature and stores nothing",
          "[db][intake]") {
  IntakeFixture f;
  const std::string body = testing::Cluster::PushPayload("https://github.com/other/x.git",
                                                         "other/x", std::string(40, 'c'));
  webhook::IntakeResult r =
      f.Receive(Push("d-5", testing::Cluster::GithubSignature(kSecret, body)), body);
  CheckNotAuthenticated(r, "unknown_repo");
  CHECK(f.enqueued.empty());
  CHECK(f.Count("SELECT count(*) FROM webhook_deliveries") == 0);
  CHECK(f.Counter("unknown_repo") == "1");
}

TEST_CASE(
    "intake: unknown repository, wrong forge and bad signature get the same answer on the "
    "per-repository URL",
    "[db][intake][security]") {
  IntakeFixture f;
  const std::string sig = testing::Cluster::GithubSignature(kSecret, kBody);
  const std::string id = std::to_string(f.signed_repo);
  const std::string open_repo =
      std::to_string(f.Count("SELECT id FROM repos WHERE name = 'acme/app'"));
  // Accepted on its own URL.
  auto ok = f.intake.Receive("github", Push("p-1", sig), kBody, id);
  REQUIRE(ok.ok());
  CHECK(ok->http_status == 202);
  CHECK(ok->status == "queued");

  struct Case {
    const char* what;
    std::string provider;
    webhook::Intake::Headers headers;
    std::string repo;
  };
  const std::vector<Case> cases = {
      {"unknown id", "github", Push("p-2", sig), "999999"},
      {"not an id", "github", Push("p-3", sig), "acme%2Fsigned"},
      {"wrong forge",
       "gitea",
       {{"X-Gitea-Event", "push"},
        {"X-Gitea-Delivery", "p-4"},
        {"X-Gitea-Signature", sig.substr(7)}},
       id},
      {"wrong forge (gitlab token)",
       "gitlab",
       {{"X-Gitlab-Event", "Push Hook"},
        {"X-Gitlab-Event-UUID", "p-5"},
        {"X-Gitlab-Token", kSecret}},
       id},
      {"bad signature", "github", Push("p-6", testing::Cluster::GithubSignature("guess", kBody)),
       id},
      {"no signature", "github", {{"X-GitHub-Event", "push"}, {"X-GitHub-Delivery", "p-7"}}, id},
      {"repository without a secret", "github", Push("p-8", sig), open_repo},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    auto r = f.intake.Receive(c.provider, c.headers, kBody, c.repo);
    REQUIRE(r.ok());
    CHECK(r->http_status == 401);
    CHECK(r->error_code == "unauthenticated");
    CHECK(r->message == "webhook delivery could not be authenticated");
  }
  CHECK(f.Count("SELECT count(*) FROM webhook_deliveries") == 1);
}

TEST_CASE(
    "intake: missing headers are 400 before any lookup, a bad payload is 400 only once "
    "signed",
    "[db][intake]") {
  IntakeFixture f;
  webhook::IntakeResult no_delivery = f.Receive({{"X-GitHub-Event", "push"}}, kBody);
  CHECK(no_delivery.http_status == 400);
  CHECK(no_delivery.error_code == "invalid_argument");
  CHECK(no_delivery.message == "headers X-GitHub-Event and X-GitHub-Delivery are required");
  webhook::IntakeResult control = f.Receive(Push("d\x01", "sha256=00"), kBody);
  CHECK(control.http_status == 400);
  CHECK(control.message ==
        "header X-GitHub-Delivery must be at most 200 printable ASCII characters");
  // An unsigned bad payload is never parsed: it is refused as unauthenticated.
  CheckNotAuthenticated(f.Receive(Push("d-6", "sha256=00"), "{not json"), "bad_signature");
  const std::string bad = "{not json";
  webhook::IntakeResult bad_json =
      f.Receive(Push("d-6", testing::Cluster::GithubSignature(kSecret, bad)), bad);
  CHECK(bad_json.http_status == 400);
  CHECK(bad_json.error_code == "invalid_payload");
  CHECK(f.Count("SELECT count(*) FROM webhook_deliveries") == 0);
  CHECK(f.Counter("bad_request") == "3");
}

TEST_CASE("intake: a signed body resent with a new delivery id is a duplicate within the window",
          "[db][intake][security]") {
  IntakeFixture f;
  const std::string sig = testing::Cluster::GithubSignature(kSecret, kBody);
  webhook::IntakeResult first = f.Receive(Push("r-1", sig), kBody);
  REQUIRE(first.http_status == 202);
  webhook::IntakeResult replay = f.Receive(Push("r-2", sig), kBody);
  CHECK(replay.http_status == 202);
  CHECK(replay.status == "duplicate");
  CHECK(replay.result == "duplicate");
  CHECK(replay.delivery == first.delivery);
  CHECK(f.enqueued == std::vector<int64_t>{first.delivery});
  CHECK(f.Query("SELECT delivery_id, encode(body_sha256, 'hex') FROM webhook_deliveries") ==
        Rows{{"r-1", HexEncode(Sha256(kBody))}});

  // A different body is not a duplicate.
  const std::string other =
      testing::Cluster::PushPayload(kCloneUrl, "acme/signed", std::string(40, 'e'));
  webhook::IntakeResult next =
      f.Receive(Push("r-3", testing::Cluster::GithubSignature(kSecret, other)), other);
  CHECK(next.status == "queued");

  // Outside the window (the first delivery made 2 days old) the same body counts again.
  REQUIRE(f.Count("WITH u AS (UPDATE webhook_deliveries SET received_at = now() - interval "
                  "'2 days' WHERE delivery_id = 'r-1' RETURNING 1) SELECT count(*) FROM u") == 1);
  webhook::IntakeResult later = f.Receive(Push("r-4", sig), kBody);
  CHECK(later.status == "queued");
  CHECK(f.enqueued.size() == 3);
}

TEST_CASE("intake: with the window off only the delivery id deduplicates", "[db][intake]") {
  IntakeFixture f;
  webhook::Intake::Deps deps{&f.repos, &f.deliveries, &f.metrics, kKey,
                             [&f](int64_t id) { f.enqueued.push_back(id); }};
  deps.dedupe_window = absl::ZeroDuration();
  webhook::Intake no_window(std::move(deps));
  const std::string sig = testing::Cluster::GithubSignature(kSecret, kBody);
  for (const char* id : {"w-1", "w-2"}) {
    auto r = no_window.Receive("github", Push(id, sig), kBody);
    REQUIRE(r.ok());
    CHECK(r->status == "queued");
  }
  CHECK(f.Count("SELECT count(*) FROM webhook_deliveries WHERE body_sha256 IS NULL") == 2);
}

TEST_CASE("intake: the shared URL finds the repository by its secret, among several",
          "[db][intake]") {
  IntakeFixture f;
  store::NewRepo r;
  r.name = "acme/second";
  r.provider = "github";
  r.clone_url = "https://github.com/acme/second.git";
  r.webhook_secret_sealed = *SealSecret(kKey, "second-secret");
  auto created = f.repos.Create(r);
  REQUIRE(created.ok());
  const int64_t second = created->id;
  const std::string body =
      testing::Cluster::PushPayload(r.clone_url, "acme/second", std::string(40, 'f'));
  webhook::IntakeResult ok =
      f.Receive(Push("s-1", testing::Cluster::GithubSignature("second-secret", body)), body);
  CHECK(ok.status == "queued");
  CHECK(f.Query("SELECT repo_id::text FROM webhook_deliveries") == Rows{{std::to_string(second)}});
  // Signed with one repository's secret, naming the other: refused like an unknown one.
  const std::string crossed =
      testing::Cluster::PushPayload(kCloneUrl, "acme/signed", std::string(40, '1'));
  CheckNotAuthenticated(
      f.Receive(Push("s-2", testing::Cluster::GithubSignature("second-secret", crossed)), crossed),
      "unknown_repo");
}

TEST_CASE("intake: a ping is stored as ignored and answered pong, not planned", "[db][intake]") {
  IntakeFixture f;
  const std::string body =
      R"({"zen":"hi","repository":{"clone_url":"https://github.com/acme/signed.git",)"
      R"("full_name":"acme/signed"}})";
  Headers h = {{"X-GitHub-Event", "ping"},
               {"X-GitHub-Delivery", "d-7"},
               {"X-Hub-Signature-256", testing::Cluster::GithubSignature(kSecret, body)}};
  webhook::IntakeResult r = f.Receive(h, body);
  CHECK(r.http_status == 200);
  CHECK(r.status == "pong");
  CHECK(r.result == "accepted");
  CHECK(f.enqueued.empty());
  CHECK(f.Query("SELECT state, message FROM webhook_deliveries") == Rows{{"ignored", "ping"}});
}

}  // namespace
}  // namespace assay::dbtest

namespace assay::dbtest {
namespace {

TEST_CASE("intake: the shared URL refuses once more repositories than it checks share a forge",
          "[db][intake][security]") {
  IntakeFixture f;  // acme/signed has a secret: 1 candidate so far
  for (size_t i = 1; i <= webhook::kMaxSharedUrlRepos; ++i) {
    store::NewRepo r;
    r.name = "acme/r" + std::to_string(i);
    r.provider = "github";
    r.clone_url = "https://github.com/acme/r" + std::to_string(i) + ".git";
    r.webhook_secret_sealed = *SealSecret(kKey, "secret-" + std::to_string(i));
    REQUIRE(f.repos.Create(r).ok());
  }
  const std::string sig = testing::Cluster::GithubSignature(kSecret, kBody);
  CheckNotAuthenticated(f.Receive(Push("c-1", sig), kBody), "bad_signature");
  // Its own URL still takes it: one HMAC, whatever the number of repositories.
  auto own = f.intake.Receive("github", Push("c-2", sig), kBody, std::to_string(f.signed_repo));
  REQUIRE(own.ok());
  CHECK(own->status == "queued");
}

}  // namespace
}  // namespace assay::dbtest
