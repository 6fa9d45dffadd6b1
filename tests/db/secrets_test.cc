// Repository secrets against a real database (issue 9): the store (write, replace, list
// without values, limits), the seal bound to repo/environment/name (a copied row does not
// open), delivery at dispatch (environment over repository-wide, a missing secret failing the
// job by name, an untrusted job getting each withheld without the store being read) and
// rotate-key re-sealing them.

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "server/metrics/metrics.h"
#include "server/scheduler/dispatcher.h"
#include "server/secrets/job_secrets.h"
#include "server/secrets/rotate_key.h"
#include "server/store/secrets.h"
#include "tests/db/db_fixture.h"
#include "tests/db/fake_channel.h"

namespace assay::dbtest {
namespace {

const std::string kKey(32, '\x07');

struct SecretsFixture : DbFixture {
  store::SecretStore secrets{&db};
  KeyRing keys{kKey};

  void Put(const std::string& env, const std::string& name, const std::string& value) {
    auto sealed = keys.Seal(value, SecretAad(repo_id, env, name));
    REQUIRE(sealed.ok());
    REQUIRE(secrets.Put(repo_id, env, name, *sealed, 200).ok());
  }
};

store::NewJob SecretJob(std::string name, const std::string& secrets_json,
                        const std::string& extra = "") {
  store::NewJob j = Job(std::move(name));
  j.spec_json = R"({"steps":[{"name":"s","run":"true"}],"env":{},"timeout_s":60,"secrets":)" +
                secrets_json + extra + "}";
  return j;
}

std::vector<std::vector<std::string>> SecretsOf(const v1::Assignment& a) {
  std::vector<std::vector<std::string>> out;
  for (const auto& s : a.secrets()) {
    out.push_back({s.name(), s.value(), s.as_file() ? "file" : "env", s.withheld()});
  }
  return out;
}

TEST_CASE("secret store: put, replace, list without values, delete, limits", "[db][secrets]") {
  SecretsFixture f;
  CHECK(f.secrets.Put(f.repo_id, "", "A", "sealed-1", 2).value() == true);
  CHECK(f.secrets.Put(f.repo_id, "", "A", "sealed-2", 2).value() == false);
  CHECK(f.secrets.Put(f.repo_id, "prod", "A", "sealed-3", 2).value() == true);
  CHECK(f.secrets.Put(f.repo_id, "", "B", "sealed-4", 2).value() == true);
  // The scope is full; replacing one in it is still allowed; another scope has room.
  auto full = f.secrets.Put(f.repo_id, "", "C", "x", 2);
  CHECK(full.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(full.status().message() ==
        "repository " + std::to_string(f.repo_id) +
            " already has 2 secrets in its repository-wide scope (the limit is 2)");
  CHECK(f.secrets.Put(f.repo_id, "", "B", "sealed-5", 2).value() == false);
  CHECK(f.Query("SELECT environment, name, encode(value_enc, 'escape') FROM repo_secrets "
                "ORDER BY 1, 2") ==
        Rows{{"", "A", "sealed-2"}, {"", "B", "sealed-5"}, {"prod", "A", "sealed-3"}});

  auto list = f.secrets.List(f.repo_id);
  REQUIRE(list.ok());
  REQUIRE(list->size() == 3);
  CHECK((*list)[0].name == "A");
  CHECK((*list)[0].environment == "");
  CHECK((*list)[2].environment == "prod");

  CHECK(f.secrets.Delete(f.repo_id, "prod", "A").value() == true);
  CHECK(f.secrets.Delete(f.repo_id, "prod", "A").value() == false);
  CHECK(f.secrets.Put(999, "", "A", "x", 2).status().code() == absl::StatusCode::kNotFound);
  CHECK(f.secrets.List(999).status().message() == "repository 999 does not exist");
  CHECK(f.secrets.Delete(999, "", "A").status().code() == absl::StatusCode::kNotFound);
  // The database refuses names and environments the rules refuse, whoever writes.
  CHECK(f.secrets.Put(f.repo_id, "", "A=B", "x", 9).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(f.secrets.Put(f.repo_id, "../x", "A", "x", 9).status().code() ==
        absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("secret seal: bound to repo, environment and name", "[db][secrets]") {
  SecretsFixture f;
  f.Put("", "API_KEY", "value-of-api-key");
  f.Put("", "OTHER", "value-of-other");
  // Copy API_KEY's sealed bytes onto OTHER, and onto the same name in another environment.
  f.Query(
      "UPDATE repo_secrets SET value_enc = (SELECT value_enc FROM repo_secrets WHERE name = "
      "'API_KEY') WHERE name = 'OTHER'");
  f.Query(
      "INSERT INTO repo_secrets (repo_id, environment, name, value_enc) SELECT repo_id, "
      "'prod', name, value_enc FROM repo_secrets WHERE name = 'API_KEY'");
  auto rows = f.secrets.ForJob(f.repo_id, "prod", {"API_KEY", "OTHER"});
  REQUIRE(rows.ok());
  REQUIRE(rows->size() == 3);
  for (const store::SealedSecret& r : *rows) {
    auto opened = f.keys.Open(r.sealed, SecretAad(f.repo_id, r.environment, r.name));
    INFO(r.environment << "/" << r.name);
    CHECK(opened.ok() == (r.environment.empty() && r.name == "API_KEY"));
  }
  CHECK(SecretAad(7, "prod", "API_KEY") == "repo_secrets/7/prod/API_KEY");
  CHECK(SecretAad(7, "", "API_KEY") == "repo_secrets/7//API_KEY");

  // The job that lists the moved value fails naming it; nothing is sent.
  Metrics metrics;
  DispatcherOptions o;
  o.secret_key = f.keys;
  o.secrets = &f.secrets;
  Dispatcher d(&f.jobs, &metrics, &f.clock, o);
  auto ch = std::make_shared<FakeChannel>();
  d.AgentConnected(Capacity(f.Agent("a1"), "a1", 2), {}, ch);
  const int64_t p = f.CreatePipeline({SecretJob("j", R"([{"name":"OTHER","as":"env"}])")});
  d.DispatchOnce();
  CHECK(ch->TakeAssignments().empty());
  const int64_t j = f.JobId(p, "j");
  CHECK(f.JobState(j) == "failed");
  const std::string message = f.One("SELECT message FROM jobs WHERE id = " + std::to_string(j));
  CHECK(message.rfind("secrets: OTHER: cannot be opened (sealed with key 1): ", 0) == 0);
}

TEST_CASE("dispatch: secrets in the assignment, environment first, a missing one fails the job",
          "[db][secrets]") {
  SecretsFixture f;
  f.Put("", "API_KEY", "repo-wide-key");
  f.Put("staging", "API_KEY", "staging-key");
  f.Put("", "CERT", "line1\nline2");
  Metrics metrics;
  DispatcherOptions o;
  o.secret_key = f.keys;
  o.secrets = &f.secrets;
  Dispatcher d(&f.jobs, &metrics, &f.clock, o);
  auto ch = std::make_shared<FakeChannel>();
  d.AgentConnected(Capacity(f.Agent("a1"), "a1", 8), {}, ch);
  const std::string both = R"([{"name":"API_KEY","as":"env"},{"name":"CERT","as":"file"}])";
  const int64_t p = f.CreatePipeline({
      SecretJob("plain", both),
      SecretJob("staged", both, R"(,"environment":"staging")"),
      SecretJob("missing", R"([{"name":"API_KEY","as":"env"},{"name":"NOPE","as":"env"}])"),
      SecretJob("missing-env", R"([{"name":"NOPE","as":"env"}])", R"(,"environment":"prod")"),
      SecretJob("fork", both + R"(,"trusted":false)", ""),
  });
  CHECK(d.DispatchOnce() == 3);
  std::map<std::string, std::vector<std::vector<std::string>>> got;
  for (const v1::Assignment& a : ch->TakeAssignments()) got[a.job_name()] = SecretsOf(a);
  using V = std::vector<std::vector<std::string>>;
  CHECK(got["plain"] ==
        V{{"API_KEY", "repo-wide-key", "env", ""}, {"CERT", "line1\nline2", "file", ""}});
  CHECK(got["staged"] ==
        V{{"API_KEY", "staging-key", "env", ""}, {"CERT", "line1\nline2", "file", ""}});
  const std::string why(kWithheldUntrusted);
  CHECK(got["fork"] == V{{"API_KEY", "", "env", why}, {"CERT", "", "file", why}});
  CHECK(got.size() == 3);

  const int64_t missing = f.JobId(p, "missing");
  CHECK(
      f.Query("SELECT state, exit_code IS NULL, message FROM jobs WHERE id = " +
              std::to_string(missing)) ==
      Rows{{"failed", "t", "secrets: NOPE: no such secret in repo " + std::to_string(f.repo_id)}});
  CHECK(f.jobs.ReadLog(missing).value() ==
        "assay: secrets: NOPE: no such secret in repo " + std::to_string(f.repo_id) + "\n");
  CHECK(f.One("SELECT message FROM jobs WHERE id = " + std::to_string(f.JobId(p, "missing-env"))) ==
        "secrets: NOPE: no such secret in repo " + std::to_string(f.repo_id) +
            ", neither in environment 'prod' nor repository-wide");
  // The failed jobs' attempts closed; nothing else is queued.
  CHECK(f.Count("SELECT count(*) FROM jobs WHERE state = 'queued'") == 0);
}

TEST_CASE("dispatch: a hand-written spec with a bad secret name fails the job", "[db][secrets]") {
  SecretsFixture f;
  Metrics metrics;
  DispatcherOptions o;
  o.secret_key = f.keys;
  o.secrets = &f.secrets;
  Dispatcher d(&f.jobs, &metrics, &f.clock, o);
  auto ch = std::make_shared<FakeChannel>();
  d.AgentConnected(Capacity(f.Agent("a1"), "a1", 8), {}, ch);
  const int64_t p = f.CreatePipeline(
      {SecretJob("eq", R"([{"name":"A=B","as":"env"}])"), SecretJob("bad", R"("not a list")")});
  CHECK(d.DispatchOnce() == 0);
  CHECK(f.One("SELECT message FROM jobs WHERE id = " + std::to_string(f.JobId(p, "eq"))) ==
        "secrets: secret name 'A=B' must be upper-case letters, digits and '_', not starting "
        "with a digit");
  CHECK(f.JobState(f.JobId(p, "bad")) == "failed");
}

TEST_CASE("rotate-key re-seals repository secrets for their rows", "[db][secrets]") {
  SecretsFixture f;
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("assay-rotate-" + std::to_string(getpid())))
          .string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  {
    FILE* k = fopen((dir + "/secret.key").c_str(), "wb");
    fwrite(kKey.data(), 1, kKey.size(), k);
    fclose(k);
  }
  KeyRing ring = KeyRing::LoadDir(dir).value();
  f.keys = ring;
  f.Put("", "API_KEY", "value-one");
  f.Put("prod", "API_KEY", "value-two");
  auto rotated = RotateKey(&ring, &f.repos, &f.secrets);
  REQUIRE(rotated.ok());
  CHECK(rotated->new_id == 2);
  CHECK(rotated->resealed == 2);
  auto rows = f.secrets.ForJob(f.repo_id, "prod", {"API_KEY"});
  REQUIRE(rows->size() == 2);
  for (const store::SealedSecret& r : *rows) {
    CHECK(SealedKeyId(r.sealed) == 2);
    CHECK(ring.Open(r.sealed, SecretAad(f.repo_id, r.environment, r.name)).value() ==
          (r.environment.empty() ? "value-one" : "value-two"));
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace assay::dbtest
