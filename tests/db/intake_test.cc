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

TEST_CASE("intake: a bad signature is 401 and stores nothing", "[db][intake]") {
  IntakeFixture f;
  const std::string wrong = testing::Cluster::GithubSignature("not the secret", kBody);
  webhook::IntakeResult r = f.Receive(Push("d-2", wrong), kBody);
  CHECK(r.http_status == 401);
  CHECK(r.error_code == "bad_signature");
  CHECK(r.message == "X-Hub-Signature-256: signature does not match the body");
  CHECK(r.result == "bad_signature");
  CHECK(r.delivery == 0);
  CHECK(f.enqueued.empty());
  CHECK(f.Count("SELECT count(*) FROM webhook_deliveries") == 0);
  CHECK(f.Counter("bad_signature") == "1");
  CHECK(f.Counter("accepted") == "0");

  // Unsigned, and signed for a repository without a secret: refused alike.
  webhook::IntakeResult unsigned_push =
      f.Receive({{"X-GitHub-Event", "push"}, {"X-GitHub-Delivery", "d-3"}}, kBody);
  CHECK(unsigned_push.http_status == 401);
  CHECK(unsigned_push.error_code == "bad_signature");
  const std::string open_body = testing::Cluster::PushPayload("https://github.com/acme/app.git",
                                                              "acme/app", std::string(40, 'b'));
  webhook::IntakeResult no_secret =
      f.Receive(Push("d-4", testing::Cluster::GithubSignature(kSecret, open_body)), open_body);
  CHECK(no_secret.http_status == 401);
  CHECK(no_secret.error_code == "unauthenticated");
  CHECK(no_secret.message ==
        "repository acme/app has no webhook secret; deliveries cannot be verified");
  CHECK(f.Count("SELECT count(*) FROM webhook_deliveries") == 0);
  CHECK(f.Counter("bad_signature") == "3");
}

TEST_CASE("intake: an unknown repository is 404 and stores nothing", "[db][intake]") {
  IntakeFixture f;
  const std::string body = testing::Cluster::PushPayload("https://github.com/other/x.git",
                                                         "other/x", std::string(40, 'c'));
  webhook::IntakeResult r =
      f.Receive(Push("d-5", testing::Cluster::GithubSignature(kSecret, body)), body);
  CHECK(r.http_status == 404);
  CHECK(r.error_code == "unknown_repository");
  CHECK(r.message == "no registered repository matches https://github.com/other/x.git");
  CHECK(r.result == "unknown_repo");
  CHECK(f.enqueued.empty());
  CHECK(f.Count("SELECT count(*) FROM webhook_deliveries") == 0);
  CHECK(f.Counter("unknown_repo") == "1");
}

TEST_CASE("intake: missing headers and unparsable payloads are 400 before any lookup",
          "[db][intake]") {
  IntakeFixture f;
  webhook::IntakeResult no_delivery = f.Receive({{"X-GitHub-Event", "push"}}, kBody);
  CHECK(no_delivery.http_status == 400);
  CHECK(no_delivery.error_code == "invalid_argument");
  CHECK(no_delivery.message == "headers X-GitHub-Event and X-GitHub-Delivery are required");
  webhook::IntakeResult bad_json = f.Receive(Push("d-6", "sha256=00"), "{not json");
  CHECK(bad_json.http_status == 400);
  CHECK(bad_json.error_code == "invalid_payload");
  CHECK(f.Count("SELECT count(*) FROM webhook_deliveries") == 0);
  CHECK(f.Counter("bad_request") == "2");
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
