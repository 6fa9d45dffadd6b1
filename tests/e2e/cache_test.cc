// End to end (issue 9, docs/caches.md): a job's `cache:` through a real server, agent and git
// repository — saved after success only, restored byte for byte by a later pipeline's job, the
// default branch's entry for a feature branch, a restore_keys prefix when hashFiles changes the
// key, and hostile input: a path escaping the workspace or an unknown function in the key (lint
// errors), and a symlink in the workspace that would lead a restore outside it.

#include <filesystem>
#include <fstream>
#include <string>

#include "common/crypto/crypto.h"
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

constexpr char kPipeline[] = R"yml(jobs:
  build:
    cache:
      key: "deps-${{ hashFiles('requirements.txt') }}"
      paths: [.deps]
      restore_keys: [deps-]
    steps:
      - run: |
          if [ -f .deps/data.bin ]; then echo warm; else
            echo cold
            mkdir -p .deps/sub
            head -c 3145728 /dev/urandom > .deps/data.bin
            cp requirements.txt .deps/sub/small.txt
          fi
          sha256sum .deps/data.bin .deps/sub/small.txt
          test ! -f fail
)yml";

// hashFiles('requirements.txt') of a workspace whose requirements.txt holds `content`.
std::string HashOf(const std::string& content) {
  return HexEncode(
      Sha256("requirements.txt" + std::string(1, '\0') + HexEncode(Sha256(content)) + "\n"));
}

// The `sha256sum` lines of a log.
std::string SumLines(const std::string& log) {
  std::string out;
  size_t pos = 0;
  while (pos < log.size()) {
    size_t end = log.find('\n', pos);
    if (end == std::string::npos) end = log.size();
    const std::string line = log.substr(pos, end - pos);
    if (line.size() > 66 && line.substr(64, 2) == "  ") out += line + "\n";
    pos = end + 1;
  }
  return out;
}

struct Run {
  std::string state, log;
};

Run RunPush(Cluster& c, GitRepo& repo,
            const std::vector<std::pair<std::string, std::string>>& files,
            const std::string& delivery, const std::string& ref = "refs/heads/main",
            const std::vector<std::string>& remove = {}) {
  const std::string sha = MUST(repo.Commit(files, remove));
  const int64_t row =
      MUST(c.Push(Cluster::PushPayload(repo.clone_url(), kRepoName, sha, ref), delivery, kSecret));
  const int64_t pipeline_id = MUST(c.WaitForPipelineOf(row));
  json::object p = MUST(c.WaitForPipelineDone(pipeline_id));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  json::object job = Job(p, "build");
  return {JsonString(job, "state"), MUST(c.JobLog(job.at("id").as_int64()))};
}

TEST_CASE("caches: saved after success only, restored byte for byte, with scope fallback",
          "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  // Budget 0: nothing is kept locally between jobs, so every restore downloads its chunks.
  MUST(c.StartAgent("a1", {"--cache-budget-gb", "0"}));
  MUST(c.WaitForAgents(1));
  const std::string h1 = HashOf("numpy\n"), h2 = HashOf("numpy\ntorch\n");

  // 1. A failing job saves nothing.
  Run failed = RunPush(
      c, repo, {{".assay.yml", kPipeline}, {"requirements.txt", "numpy\n"}, {"fail", "1"}}, "d1");
  INFO("1:\n" << failed.log);
  CHECK(failed.state == "failed");
  CHECK(failed.log.rfind(
            "assay: cache: no entry for key 'deps-" + h1 + "' nor its restore_keys\ncold\n", 0) ==
        0);
  CHECK(failed.log.find("assay: cache: saved") == std::string::npos);

  // 2. Still cold (nothing was saved); succeeds and saves.
  Run saved = RunPush(c, repo, {{"note", "2"}}, "d2", "refs/heads/main", {"fail"});
  INFO("2:\n" << saved.log);
  CHECK(saved.state == "succeeded");
  const std::string sums = SumLines(saved.log);
  REQUIRE(sums.size() == 2 * 66 + std::string(".deps/data.bin\n.deps/sub/small.txt\n").size());
  CHECK(saved.log == "assay: cache: no entry for key 'deps-" + h1 +
                         "' nor its restore_keys\ncold\n" + sums +
                         "assay: cache: saved 2 files, 3.0 MiB (3.0 MiB new) as key 'deps-" + h1 +
                         "' (scope main)\n");

  // 3. A later pipeline restores the same bytes; the key exists, so nothing is saved.
  Run warm = RunPush(c, repo, {{"note", "3"}}, "d3");
  INFO("3:\n" << warm.log);
  CHECK(warm.state == "succeeded");
  CHECK(warm.log == "assay: cache: restored 2 files, 3.0 MiB from key 'deps-" + h1 +
                        "' (scope main), 3.0 MiB downloaded\nwarm\n" + sums +
                        "assay: cache: key 'deps-" + h1 +
                        "' exists (keys are immutable); not saved\n");

  // 4. A feature branch falls back to the default branch's entry, then saves into its own
  // scope: every chunk is on the server already (deduplicated by content).
  MUST(repo.Git({"checkout", "-q", "-b", "feature"}));
  Run feature = RunPush(c, repo, {{"note", "4"}}, "d4", "refs/heads/feature");
  INFO("4:\n" << feature.log);
  CHECK(feature.state == "succeeded");
  CHECK(feature.log == "assay: cache: restored 2 files, 3.0 MiB from key 'deps-" + h1 +
                           "' (scope main), 3.0 MiB downloaded\nwarm\n" + sums +
                           "assay: cache: saved 2 files, 3.0 MiB (0.0 MiB new) as key 'deps-" + h1 +
                           "' (scope feature)\n");
  MUST(repo.Git({"checkout", "-q", "main"}));

  // 5. hashFiles changes the key when the file changes; the restore_keys prefix finds the old.
  Run prefix = RunPush(c, repo, {{"requirements.txt", "numpy\ntorch\n"}}, "d5");
  INFO("5:\n" << prefix.log);
  CHECK(prefix.state == "succeeded");
  CHECK(prefix.log == "assay: cache: restored 2 files, 3.0 MiB from key 'deps-" + h1 +
                          "' (scope main, a restore_keys prefix), 3.0 MiB downloaded\nwarm\n" +
                          sums +
                          "assay: cache: saved 2 files, 3.0 MiB (0.0 MiB new) as key 'deps-" + h2 +
                          "' (scope main)\n");

  // 6. Hostile: .deps committed as a symlink to a directory outside the workspace. The restore
  // refuses to write through it (a warning; the job runs cold) and nothing lands outside.
  const std::string outside = c.dir() + "/outside";
  std::filesystem::create_directories(outside);
  std::filesystem::create_directory_symlink(outside, repo.dir() + "/.deps");
  std::string quiet = kPipeline;
  quiet = quiet.substr(0, quiet.find("    steps:")) + "    steps: [\"true\"]\n";
  Run hostile = RunPush(c, repo, {{".assay.yml", quiet}}, "d6");
  INFO("6:\n" << hostile.log);
  CHECK(hostile.state == "succeeded");
  CHECK(hostile.log.rfind("assay: warning: cache not restored: refusing to write "
                          ".deps/data.bin: .deps is a symlink or not a directory\n",
                          0) == 0);
  CHECK(std::filesystem::is_empty(outside));

  // Disk use per repository: main's two entries and feature's one (logical bytes).
  json::object usage = MUST(c.ApiObject("GET", "/api/v1/caches/usage"));
  INFO(json::serialize(usage));
  REQUIRE(usage.at("repos").as_array().size() == 1);
  const json::object& r = usage.at("repos").as_array()[0].as_object();
  CHECK(JsonString(r, "repo") == kRepoName);
  CHECK(r.at("cache_entries").as_int64() == 3);
  // Each entry: 3 MiB of data.bin and small.txt as first copied ("numpy\n": the warm step 5
  // does not copy it again).
  CHECK(r.at("cache_bytes").as_int64() == 3 * (3145728 + 6));
  const std::string caches_path =
      "/api/v1/repos/" + std::to_string(r.at("repo_id").as_int64()) + "/caches";
  json::object list = MUST(c.ApiObject("GET", caches_path));
  INFO(json::serialize(list));
  const json::array& entries = list.at("caches").as_array();
  REQUIRE(entries.size() == 3);
  CHECK(JsonString(entries[0].as_object(), "key") == "deps-" + h2);  // newest first
  CHECK(JsonString(entries[0].as_object(), "scope") == "main");
  CHECK(JsonString(entries[1].as_object(), "scope") == "feature");
  CHECK(JsonString(entries[2].as_object(), "key") == "deps-" + h1);
  const std::string one =
      caches_path + "/" + std::to_string(entries[1].as_object().at("id").as_int64());
  CHECK(MUST(c.Api("DELETE", one)).status == 200);
  CHECK(MUST(c.Api("DELETE", one)).status == 404);
  // The same through the CLI.
  auto listed = MUST(c.RunCli({"cache", "list", kRepoName}));
  INFO(listed.out << listed.err);
  CHECK(listed.exit_code == 0);
  CHECK(listed.out.find("deps-" + h2) != std::string::npos);
  CHECK(listed.out.find("feature") == std::string::npos);
  const std::string last = std::to_string(entries[2].as_object().at("id").as_int64());
  auto removed = MUST(c.RunCli({"cache", "rm", kRepoName, last}));
  CHECK(removed.exit_code == 0);
  CHECK(removed.out == "cache entry " + last + " of acme/app: removed\n");
  CHECK(MUST(c.RunCli({"cache", "rm", kRepoName, last})).exit_code == 1);
  CHECK(MUST(c.RunCli({"cache", "list"})).exit_code == 2);
  auto metrics = MUST(c.Fetch("GET", "/metrics"));
  CHECK(metrics.body.find("assay_cache_bytes{repo=\"acme/app\"} 3145734\n") != std::string::npos);
}

TEST_CASE("caches: the agent's local copy serves a restore without a download", "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));  // the default --cache-budget-gb (10)
  MUST(c.WaitForAgents(1));
  const std::string h1 = HashOf("numpy\n");
  Run saved = RunPush(c, repo, {{".assay.yml", kPipeline}, {"requirements.txt", "numpy\n"}}, "d1");
  INFO("1:\n" << saved.log);
  CHECK(saved.state == "succeeded");
  Run warm = RunPush(c, repo, {{"note", "2"}}, "d2");
  INFO("2:\n" << warm.log);
  CHECK(warm.state == "succeeded");
  CHECK(warm.log == "assay: cache: restored 2 files, 3.0 MiB from key 'deps-" + h1 +
                        "' (scope main), 0.0 MiB downloaded\nwarm\n" + SumLines(saved.log) +
                        "assay: cache: key 'deps-" + h1 +
                        "' exists (keys are immutable); not saved\n");
  // The chunks are under the agent's work dir, the agent's alone.
  const std::string chunks = c.dir() + "/agent-a1/chunk-cache";
  INFO(c.dir());
  CHECK((std::filesystem::status(chunks).permissions() & std::filesystem::perms::all) ==
        std::filesystem::perms::owner_all);
}

TEST_CASE("caches: an escaping path or an unknown function in the key is a lint error", "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  const std::string bad = R"yml(jobs:
  build:
    cache:
      key: "deps-${{ hashFile('requirements.txt') }}"
      paths: [../outside, /root/.cache]
    steps: [true]
)yml";
  const int64_t pipeline_id = PushFiles(c, repo, {{".assay.yml", bad}});
  json::object p = MUST(c.WaitForPipelineDone(pipeline_id));
  CHECK(JsonString(p, "state") == "error");
  CHECK(JsonString(p, "message") ==
        ".assay.yml:4:12: jobs.build.cache.key: unknown function 'hashFile' in cache.key "
        "'deps-${{ hashFile('requirements.txt') }}'\n"
        ".assay.yml:5:15: jobs.build.cache.paths[0]: cache path '../outside': must not leave "
        "the workspace ('..')\n"
        ".assay.yml:5:27: jobs.build.cache.paths[1]: cache path '/root/.cache': must be "
        "relative to the workspace");
  CHECK(MUST(c.ApiObject("GET", "/api/v1/pipelines/" + std::to_string(pipeline_id)))
            .at("jobs")
            .as_array()
            .empty());
}

}  // namespace
}  // namespace assay::e2e
