// examples/finetune as a user would push it (issue 10): a character-level transformer in
// PyTorch (Debian's python3-torch, on the CPU here) trains in a train: step, is registered,
// evaluated by an eval: step whose model command loads it, and promoted to staging. The
// agent's own GPU check (when a device is lent) runs the same pipeline with runs_on gpus: 1.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/e2e/e2e.h"
#include "tests/support/process.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

TEST_CASE("finetune example: trains, registers charlm, evaluates it and promotes it to staging",
          "[e2e][train]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1", {"--slots", "2"}));
  MUST(c.WaitForAgents(1));
  std::vector<std::pair<std::string, std::string>> files;
  const std::string dir = std::string(ASSAY_SOURCE_DIR) + "/examples/finetune/";
  for (const char* name : {".assay.yml", "train.py", "generate.py", "model.py", "data/corpus.txt",
                           "evals/continue.jsonl"}) {
    std::string text = testing::ReadFileOrEmpty(dir + name);
    REQUIRE(!text.empty());
    files.emplace_back(name, std::move(text));
  }
  const int64_t id = PushFiles(c, repo, files);
  json::object p = MUST(c.WaitForPipelineDone(id, absl::Minutes(5)));
  const std::string train_log = MUST(c.JobLog(Job(p, "train").at("id").as_int64()));
  const std::string eval_log = MUST(c.JobLog(Job(p, "evaluate").at("id").as_int64()));
  const std::string promote_log = MUST(c.JobLog(Job(p, "promote").at("id").as_int64()));
  // The job logs go first: a failure digest keeps only the first lines of this message.
  INFO("--- train\n"
       << train_log << "\n--- evaluate\n"
       << eval_log << "\n--- promote\n"
       << promote_log << "\n--- pipeline\n"
       << json::serialize(p) << "\n"
       << c.LogTails());
  REQUIRE(JsonString(p, "state") == "succeeded");
  CHECK(absl::StrContains(train_log, "device: cpu"));
  CHECK(absl::StrContains(train_log, "assay: train: checkpoint step "));
  CHECK(absl::StrContains(eval_log, "assay: eval continue: gate chrf passed: chrf "));
  CHECK(absl::StrContains(promote_log,
                          "assay: promote: promoted: charlm@staging -> version 1 "
                          "(new alias); `evals.continue.passed` is true\n"));

  json::object v = MUST(c.ApiObject("GET", "/api/v1/models/charlm/versions/1"));
  INFO(json::serialize(v));
  CHECK(json::serialize(v.at("aliases")) == R"(["staging"])");
  CHECK(v.at("params").at("steps").as_int64() == 800);
  CHECK(v.at("metrics").as_object().contains("loss"));
  CHECK(v.at("metrics").as_object().contains("corpus_loss"));
  REQUIRE(v.at("datasets").as_array().size() == 1);
  CHECK(JsonString(v.at("datasets").as_array()[0].as_object(), "path") == "data/corpus.txt");
  REQUIRE(v.at("evals").as_array().size() == 1);
  CHECK(v.at("evals").as_array()[0].at("passed").as_bool());
  json::object files_list = MUST(c.ApiObject("GET", "/api/v1/models/charlm/versions/1/files"));
  CHECK(absl::StrContains(json::serialize(files_list), "\"model.pt\""));

  // The loss series went down: its last point is below its first.
  json::object train = MUST(c.ApiObject(
      "GET", "/api/v1/jobs/" + std::to_string(Job(p, "train").at("id").as_int64()) + "/train"));
  const json::array& loss = train.at("train").as_array()[0].at("series").at("loss").as_array();
  REQUIRE(loss.size() == 800);
  CHECK(loss.back().as_array()[1].as_double() < loss.front().as_array()[1].as_double());
}

}  // namespace
}  // namespace assay::e2e
