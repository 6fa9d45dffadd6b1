// End to end (issue 10): a job uploads a model directory as artifacts; `assay models` registers
// it, moves aliases (audited with the CLI's actor), and downloads it by alias byte for byte
// after the job's artifacts expired and were swept, through a real server, agent and CLI.

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "common/crypto/crypto.h"
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The `sha256sum` line of `file` in `log` ("" when absent).
std::string SumOf(const std::string& log, const std::string& file) {
  const size_t at = log.find("  " + file + "\n");
  if (at == std::string::npos || at < 64) return "";
  return log.substr(at - 64, 64);
}

TEST_CASE(
    "models: a job's model dir registered, aliased and downloaded by alias after its "
    "artifacts expired",
    "[e2e]") {
  Cluster c(Options({"--artifact-sweep-interval", "1s"}));
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const std::string pipeline_file = R"yml(jobs:
  train:
    artifacts:
      paths: [model/, train.log]
      expire_in: 2s
    steps:
      - run: |
          mkdir -p model/tokenizer
          head -c 5000000 /dev/urandom > model/weights.bin
          printf '{"vocab": 3}\n' > model/tokenizer/vocab.json
          printf '#!/bin/sh\necho serve\n' > model/serve.sh
          chmod 755 model/serve.sh
          echo training > train.log
          sha256sum model/weights.bin
)yml";
  const int64_t pipeline_id = PushFiles(c, repo, {{".assay.yml", pipeline_file}});
  json::object p = MUST(c.WaitForPipelineDone(pipeline_id));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  REQUIRE(JsonString(p, "state") == "succeeded");
  const int64_t job = Job(p, "train").at("id").as_int64();
  const std::string weights_sum = SumOf(MUST(c.JobLog(job)), "model/weights.bin");
  REQUIRE(weights_sum.size() == 64);
  const std::string j = std::to_string(job);

  auto reg = MUST(
      c.RunCli({"models", "register", "support-bot", "--job", j, "--param", "lr=0.001", "--param",
                "optimizer=adam", "--metric", "loss=0.25", "--tag", "run=nightly"}));
  INFO(reg.out << reg.err);
  CHECK(reg.exit_code == 0);
  CHECK(reg.out ==
        "registered support-bot version 1 from job " + j + " (3 files, 5000034 bytes)\n");
  // A second registration of the same job and path with other fields: 409, exit 1.
  auto again = MUST(c.RunCli({"models", "register", "support-bot", "--job", j}));
  CHECK(again.exit_code == 1);
  CHECK(again.err == "assay: 409 already_exists: job " + j +
                         "'s 'model/' is already version 1 of 'support-bot' (registered "
                         "with other fields)\n");
  // An alias on a version that does not exist: 404, named.
  auto bad =
      MUST(c.RunCli({"models", "alias", "support-bot", "production", "7", "--reason", "oops"}));
  CHECK(bad.exit_code == 1);
  CHECK(bad.err == "assay: 404 not_found: model 'support-bot' has no version 7\n");
  auto alias = MUST(c.RunCli(
      {"models", "alias", "support-bot", "production", "1", "--reason", "passed the qa eval"}));
  CHECK(alias.exit_code == 0);
  CHECK(alias.out == "support-bot@production: set to version 1\n");
  auto noreason = MUST(c.RunCli({"models", "alias", "support-bot", "staging", "1"}));
  CHECK(noreason.exit_code == 2);

  // The audit row: the admin token from 127.0.0.1, the CLI's $USER as the claimed actor.
  auto audit =
      MUST(c.Query("SELECT from_version, to_version, principal, client_addr, actor, "
                   "reason FROM model_alias_events"));
  REQUIRE(audit.size() == 1);
  CHECK(audit[0][0] == std::nullopt);
  CHECK(audit[0][1] == "1");
  CHECK(audit[0][2] == "admin");
  CHECK(audit[0][3] == "127.0.0.1");
  const char* user = std::getenv("USER");
  CHECK(audit[0][4] == (user != nullptr ? std::optional<std::string>(user) : std::nullopt));
  CHECK(audit[0][5] == "passed the qa eval");

  // The job's artifacts expire and are swept; the version keeps its files.
  MUST(c.WaitUntil("the job's artifacts swept", [&](std::string& seen) {
    auto r = c.Api("GET", "/api/v1/jobs/" + j + "/artifacts");
    seen = r.ok() ? std::to_string(r->status) : std::string(r.status().message());
    return r.ok() && r->status == 404;
  }));
  auto versions = MUST(c.RunCli({"models", "versions", "support-bot"}));
  CHECK(versions.exit_code == 0);
  CHECK(versions.out.find("VERSION  STATUS  ALIASES     JOB") == 0);
  const std::string out = c.dir() + "/downloaded";
  auto dl = MUST(c.RunCli({"models", "download", "support-bot@production", "-o", out}));
  INFO(dl.out << dl.err);
  CHECK(dl.exit_code == 0);
  CHECK(dl.out == "downloaded support-bot version 1: 3 files, 5000034 bytes into " + out + "\n");
  CHECK(HexSha256(Slurp(out + "/weights.bin")) == weights_sum);
  CHECK(Slurp(out + "/tokenizer/vocab.json") == "{\"vocab\": 3}\n");
  CHECK(Slurp(out + "/serve.sh") == "#!/bin/sh\necho serve\n");
  struct stat st {};
  REQUIRE(::stat((out + "/serve.sh").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0755);
  CHECK_FALSE(std::filesystem::exists(out + "/train.log"));

  auto history = MUST(c.RunCli({"models", "history", "support-bot", "production"}));
  CHECK(history.exit_code == 0);
  CHECK(history.out.find("passed the qa eval") != std::string::npos);
  auto show = MUST(c.RunCli({"models", "show", "support-bot@production"}));
  CHECK(show.exit_code == 0);
  CHECK(show.out.find("params: lr=0.001, optimizer=adam\nmetrics: loss=0.25\n") !=
        std::string::npos);
}

}  // namespace
}  // namespace assay::e2e
