// End to end: `assay-server rotate-key` while the server runs (issue 8, item 9). Webhooks
// still verify, with the value now sealed under the new key id; a failing rotation changes
// nothing.

#include <string>

#include "common/proc/subprocess.h"
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

TEST_CASE("rotate-key while the server runs: webhooks still verify under the new key", "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  const std::string key_id_sql =
      "SELECT get_byte(webhook_secret_enc, 7) FROM repos WHERE name = 'acme/app' AND "
      "substring(webhook_secret_enc from 1 for 4) = 'ASK1'::bytea";
  CHECK(MUST(c.QueryInt(key_id_sql)) == 1);

  const std::string server_bin = std::string(ASSAY_BINARY_DIR) + "/server/assay-server";
  const std::vector<std::pair<std::string, std::string>> env = {{"ASSAY_DATABASE_URL", c.dsn()}};
  CommandResult rotated =
      MUST(RunCommand({server_bin, "rotate-key", "--data-dir", c.dir() + "/server-data"}, "", env,
                      {}, absl::Seconds(60)));
  INFO(rotated.out << rotated.err);
  CHECK(rotated.exit_code == 0);
  CHECK(rotated.out == "rotated from key 1 to key 2: re-sealed 1 value(s)\n");
  CHECK(MUST(c.QueryInt(key_id_sql)) == 2);

  // The running server reads keys/2.key when it meets the value, and verifies the push.
  std::string sha = MUST(repo.Commit({{"a.txt", "a"}}));
  const std::string body = Cluster::PushPayload(repo.clone_url(), kRepoName, sha);
  auto unsigned_push = MUST(c.PostGithub(body, "d-0", Cluster::GithubSignature("wrong", body)));
  CHECK(unsigned_push.status == 401);
  int64_t delivery = MUST(c.Push(body, "d-1", kSecret));
  CHECK(delivery > 0);

  // A rotation that cannot open a value (tampered) fails and changes nothing.
  MUST(
      c.Query("UPDATE repos SET webhook_secret_enc = set_byte(webhook_secret_enc, 30, "
              "get_byte(webhook_secret_enc, 30) # 1)"));
  const auto before = MUST(c.Query("SELECT encode(webhook_secret_enc, 'hex') FROM repos"));
  CommandResult failed =
      MUST(RunCommand({server_bin, "rotate-key", "--data-dir", c.dir() + "/server-data"}, "", env,
                      {}, absl::Seconds(60)));
  CHECK(failed.exit_code == 1);
  CHECK(failed.err.find("rotation failed, nothing was re-sealed (key 3 exists") !=
        std::string::npos);
  CHECK(MUST(c.Query("SELECT encode(webhook_secret_enc, 'hex') FROM repos")) == before);
}

}  // namespace
}  // namespace assay::e2e
