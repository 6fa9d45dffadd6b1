// Sealed secrets in the database (issue 8, item 9): each value is bound to its row and names
// its key; `rotate-key` re-seals all of them in one transaction, and a failed rotation
// changes nothing and leaves everything readable.

#include <unistd.h>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/crypto/crypto.h"
#include "common/crypto/sealed.h"
#include "server/secrets/rotate_key.h"
#include "tests/db/db_fixture.h"

namespace assay::dbtest {
namespace {

std::string S(int64_t v) { return std::to_string(v); }

// A data dir with secret.key = 32 x 0x11 (key 1), removed at the end.
struct KeyDir {
  std::string dir = std::filesystem::temp_directory_path() /
                    ("assay-keys-" + std::to_string(::getpid()) + "-" + RandomHexToken(4));
  std::string key1 = std::string(32, '\x11');
  KeyDir() {
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/secret.key", std::ios::binary) << key1;
  }
  ~KeyDir() { std::filesystem::remove_all(dir); }
};

struct Cells {
  DbFixture& f;
  // id → {webhook_secret_enc, status_token_enc} as raw bytes ("" for NULL).
  std::map<int64_t, std::pair<std::string, std::string>> Read() {
    std::map<int64_t, std::pair<std::string, std::string>> out;
    pqxx::nontransaction tx(f.raw);
    for (const auto& r : tx.exec("SELECT id, webhook_secret_enc, status_token_enc FROM repos")) {
      auto bytes = [](const pqxx::field& x) {
        return x.is_null() ? std::string() : store::BytesOf(x);
      };
      out[r[0].as<int64_t>()] = {bytes(r[1]), bytes(r[2])};
    }
    return out;
  }
};

int64_t NewRepo(DbFixture& f, const KeyRing& ring, const std::string& name,
                const std::string& secret) {
  store::NewRepo n;
  n.name = name;
  n.provider = "github";
  n.clone_url = "https://github.com/" + name + ".git";
  n.seal_webhook_secret = [&](int64_t id) {
    return ring.Seal(secret, RowAad("repos", id, "webhook_secret"));
  };
  auto r = f.repos.Create(n);
  REQUIRE(r.ok());
  return r->id;
}

void SetToken(DbFixture& f, const KeyRing& ring, int64_t id, const std::string& token) {
  store::CommitStatusSettings cs;
  cs.api_url = "https://api.github.com";
  cs.token_sealed = ring.Seal(token, RowAad("repos", id, "status_token")).value();
  REQUIRE(f.repos.SetCommitStatus(id, cs).ok());
}

TEST_CASE("sealed secrets: a value copied to another row or column does not open", "[db]") {
  DbFixture f;
  KeyDir kd;
  KeyRing ring = KeyRing::LoadDir(kd.dir).value();
  const int64_t a = NewRepo(f, ring, "acme/a", "secret-a");
  const int64_t b = NewRepo(f, ring, "acme/b", "secret-b");
  SetToken(f, ring, a, "token-a");
  auto cells = Cells{f}.Read();
  CHECK(SealedKeyId(cells[a].first) == 1);
  CHECK(ring.Open(cells[a].first, RowAad("repos", a, "webhook_secret")).value() == "secret-a");
  CHECK(ring.Open(cells[b].first, RowAad("repos", b, "webhook_secret")).value() == "secret-b");
  CHECK(ring.Open(cells[a].second, RowAad("repos", a, "status_token")).value() == "token-a");

  // Someone with write access to the table copies a's secret (which they know) over b's, and
  // a's status token into a's webhook secret column.
  f.Exec(
      "UPDATE repos SET webhook_secret_enc = (SELECT webhook_secret_enc FROM repos WHERE id "
      "= " +
      S(a) + ") WHERE id = " + S(b));
  f.Exec("UPDATE repos SET webhook_secret_enc = status_token_enc WHERE id = " + S(a));
  auto b_repo = f.repos.Get(b).value();
  auto copied = ring.Open(b_repo.webhook_secret_sealed, RowAad("repos", b, "webhook_secret"));
  CHECK(copied.status().code() == absl::StatusCode::kDataLoss);
  auto a_repo = f.repos.Get(a).value();
  auto moved = ring.Open(a_repo.webhook_secret_sealed, RowAad("repos", a, "webhook_secret"));
  CHECK(moved.status().code() == absl::StatusCode::kDataLoss);
}

TEST_CASE(
    "sealed secrets: rotate-key re-seals every value with a new key id in one "
    "transaction, a failing one changes nothing",
    "[db]") {
  DbFixture f;
  KeyDir kd;
  KeyRing ring = KeyRing::LoadDir(kd.dir).value();
  const int64_t a = NewRepo(f, ring, "acme/a", "secret-a");
  const int64_t b = NewRepo(f, ring, "acme/b", "secret-b");
  SetToken(f, ring, b, "token-b");
  // A value from before key ids (old format, no row binding), as an upgraded server has.
  store::CommitStatusSettings old;
  old.api_url = "https://api.github.com";
  old.token_sealed = SealSecret(kd.key1, "token-a").value();
  REQUIRE(f.repos.SetCommitStatus(a, old).ok());
  // The fixture's own repository has no sealed value.

  // 1. A value that cannot be opened (b's token, tampered) aborts the rotation.
  f.Exec(
      "UPDATE repos SET status_token_enc = set_byte(status_token_enc, 29, "
      "get_byte(status_token_enc, 29) # 1) WHERE id = " +
      S(b));
  const auto before = Cells{f}.Read();
  KeyRing rotator = KeyRing::LoadDir(kd.dir).value();
  auto failed = RotateKey(&rotator, &f.repos);
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.status().code() == absl::StatusCode::kDataLoss);
  CHECK(failed.status().message() ==
        "rotation failed, nothing was re-sealed (key 2 exists and seals new values; every old "
        "key still opens): cannot open repos/" +
            S(b) +
            "/status_token (sealed with key 1): sealed secret failed authentication (wrong key "
            "or tampered)");
  CHECK(Cells{f}.Read() == before);  // no row changed
  // Everything that was readable still is, by a server that loads the keys now.
  KeyRing after_crash = KeyRing::LoadDir(kd.dir).value();
  CHECK(after_crash.current_id() == 2);
  CHECK(after_crash.Open(before.at(a).first, RowAad("repos", a, "webhook_secret")).value() ==
        "secret-a");
  CHECK(after_crash.Open(before.at(a).second, RowAad("repos", a, "status_token")).value() ==
        "token-a");
  CHECK(after_crash.Open(before.at(b).first, RowAad("repos", b, "webhook_secret")).value() ==
        "secret-b");

  // 2. Repaired, the rotation re-seals all four values with key 3.
  SetToken(f, after_crash, b, "token-b2");
  KeyRing rotator2 = KeyRing::LoadDir(kd.dir).value();
  auto done = RotateKey(&rotator2, &f.repos);
  REQUIRE(done.ok());
  CHECK(done->old_id == 2);
  CHECK(done->new_id == 3);
  CHECK(done->resealed == 4);
  const auto now = Cells{f}.Read();
  KeyRing fresh = KeyRing::LoadDir(kd.dir).value();
  const std::map<std::string, std::string> want = {
      {RowAad("repos", a, "webhook_secret"), "secret-a"},
      {RowAad("repos", a, "status_token"), "token-a"},
      {RowAad("repos", b, "webhook_secret"), "secret-b"},
      {RowAad("repos", b, "status_token"), "token-b2"}};
  std::map<std::string, std::string> got;
  for (int64_t id : {a, b}) {
    CHECK(SealedKeyId(now.at(id).first) == 3);
    CHECK(SealedKeyId(now.at(id).second) == 3);
    got[RowAad("repos", id, "webhook_secret")] =
        fresh.Open(now.at(id).first, RowAad("repos", id, "webhook_secret")).value();
    got[RowAad("repos", id, "status_token")] =
        fresh.Open(now.at(id).second, RowAad("repos", id, "status_token")).value();
  }
  CHECK(got == want);
  // The old keys stay (a server still sealing with them must not lose its values).
  CHECK(std::filesystem::exists(kd.dir + "/secret.key"));
  CHECK(std::filesystem::exists(kd.dir + "/keys/2.key"));
  CHECK(std::filesystem::exists(kd.dir + "/keys/3.key"));
  // The ring that was loaded before the rotation opens the new values (it reads keys/3.key).
  CHECK(ring.Open(now.at(b).second, RowAad("repos", b, "status_token")).value() == "token-b2");
  CHECK(ring.current_id() == 3);
}

}  // namespace
}  // namespace assay::dbtest
