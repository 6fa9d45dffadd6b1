// Pull requests (GitHub, GitLab, Gitea), manual pipelines with inputs, repository settings and
// superseded-pipeline cancelation, end to end: real server, agent, CLI, git and PostgreSQL.
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_replace.h"
#include "common/crypto/crypto.h"
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

std::string ReadSource(const std::string& path) {
  std::ifstream in(std::string(ASSAY_SOURCE_DIR) + "/" + path, std::ios::binary);
  INFO(path);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void AddRepo(Cluster& c, const std::string& name, const std::string& provider,
             const std::string& url) {
  json::object body{
      {"name", name}, {"clone_url", url}, {"provider", provider}, {"webhook_secret", kSecret}};
  auto r = MUST(c.Api("POST", "/api/v1/repos", json::serialize(body)));
  REQUIRE(r.status == 201);
}

int64_t DeliveryOf(const HttpClientResponse& r) {
  INFO(r.status << " " << r.body);
  REQUIRE(r.status == 202);
  return json::parse(r.body).as_object().at("delivery").as_int64();
}

// {state, message} of a delivery once it is no longer 'received'.
std::vector<std::optional<std::string>> PlannedDelivery(Cluster& c, int64_t id) {
  const std::string sql =
      "SELECT state, message FROM webhook_deliveries WHERE id = " + std::to_string(id);
  MUST(c.WaitUntil("the delivery to be planned", [&](std::string& seen) {
    auto rows = c.Query(sql);
    if (!rows.ok() || rows->empty()) return false;
    seen = (*rows)[0][0].value_or("");
    return seen != "received";
  }));
  return MUST(c.Query(sql))[0];
}

// The GitHub pull_request fixture, pointed at our repository and commit.
std::string GithubPr(const std::string& clone_url, int64_t number, const std::string& sha,
                     const std::string& base, const std::string& head_repo) {
  json::object o =
      json::parse(ReadSource("tests/fixtures/github/pull_request-opened.json")).as_object();
  o["number"] = number;
  json::object& pr = o["pull_request"].as_object();
  pr["number"] = number;
  json::object& head = pr["head"].as_object();
  head["sha"] = sha;
  head["ref"] = "feature";
  head["repo"].as_object()["full_name"] = head_repo;
  json::object& b = pr["base"].as_object();
  b["ref"] = base;
  b["repo"].as_object()["full_name"] = kRepoName;
  json::object& repo = o["repository"].as_object();
  repo["clone_url"] = clone_url;
  repo["full_name"] = kRepoName;
  repo["default_branch"] = "main";
  return json::serialize(o);
}

// Pipeline `pid` once its job `check` is queued and waits because no connected agent accepts
// untrusted jobs (the agents of these tests are started without --accept-untrusted).
json::object WaitUntrustedCheck(Cluster& c, int64_t pid) {
  const std::string want =
      "queued: untrusted (fork pull request): no connected agent accepts untrusted jobs (start "
      "one with --accept-untrusted)";
  json::object p;
  MUST(c.WaitUntil("the fork's job to say why it waits", [&](std::string& seen) {
    auto got = c.ApiObject("GET", "/api/v1/pipelines/" + std::to_string(pid));
    if (!got.ok()) return false;
    p = *std::move(got);
    auto job = c.ApiObject("GET", "/api/v1/jobs/" + std::to_string(JobId(p, "check")));
    if (!job.ok()) return false;
    seen = JsonString(*job, "state") + ": " + JsonString(*job, "waiting");
    return seen == want;
  }));
  return p;
}

int64_t PostGithubPr(Cluster& c, const std::string& body, const std::string& delivery) {
  return DeliveryOf(
      MUST(c.PostGithub(body, delivery, Cluster::GithubSignature(kSecret, body), "pull_request")));
}

constexpr char kPrFile[] = R"yml(on:
  pull_request:
    branches: [main, dev]
jobs:
  check:
    steps:
      - run: echo "pr ${{ event }} on $ASSAY_REF"
  deploy:
    if: event == 'push'
    steps:
      - run: echo deploy
)yml";

TEST_CASE(
    "GitHub pull requests: a fork's is untrusted and waits for an agent that accepts it, base "
    "branches main and dev run, "
    "staging is ignored with its reason",
    "[e2e][triggers]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  MUST(repo.Commit({{".assay.yml", kPrFile}}));
  const std::string sha = MUST(repo.CommitOnRef("refs/pull/7/head", {{"src.txt", "change\n"}}));

  // From a fork, into main.
  int64_t d =
      PostGithubPr(c, GithubPr(repo.clone_url(), 7, sha, "main", "someone/app-fork"), "pr-1");
  int64_t pid = MUST(c.WaitForPipelineOf(d));
  // Untrusted: a1 does not accept untrusted jobs (no --accept-untrusted), so `check` waits and
  // says why; the pipeline's notes say what of its file is ignored.
  json::object p = WaitUntrustedCheck(c, pid);
  INFO(json::serialize(p) << "\n" << c.LogTails());
  CHECK(JsonString(p, "state") == "running");
  CHECK(JsonString(p, "event") == "pull_request");
  CHECK(JsonString(p, "ref") == "refs/pull/7/head");
  CHECK(JsonString(p, "commit_sha") == sha);
  CHECK(p.at("trusted") == json::value(false));
  CHECK(p.at("notes") ==
        json::array{
            "untrusted (fork pull request): runs only on agents started with --accept-untrusted",
            "untrusted (fork pull request): priority, concurrency.cancel_in_progress and "
            "timeouts over 60m in .assay.yml are ignored; concurrency groups are its own"});
  CHECK(p.at("pr_number") == json::value(7));
  CHECK(p.at("inputs").is_null());
  CHECK(JsonString(Job(p, "check"), "state") == "queued");
  CHECK(JsonString(Job(p, "deploy"), "state") == "skipped");
  // The jobs carry the mark too, for whatever hands out secrets.
  CHECK(MUST(c.Query("SELECT DISTINCT spec->>'trusted' FROM jobs WHERE pipeline_id = " +
                     std::to_string(pid))) ==
        std::vector<std::vector<std::optional<std::string>>>{{"false"}});

  // From the same repository, into dev: trusted.
  const std::string sha2 = MUST(repo.CommitOnRef("refs/pull/8/head", {{"src.txt", "two\n"}}));
  int64_t d2 = PostGithubPr(c, GithubPr(repo.clone_url(), 8, sha2, "dev", kRepoName), "pr-2");
  json::object p2 = MUST(c.WaitForPipelineDone(MUST(c.WaitForPipelineOf(d2))));
  CHECK(JsonString(p2, "state") == "succeeded");
  CHECK(p2.at("trusted") == json::value(true));
  CHECK(p2.at("notes") == json::array{});
  CHECK(p2.at("pr_number") == json::value(8));
  CHECK(MUST(c.JobLog(JobId(p2, "check"))) == "pr pull_request on refs/pull/8/head\n");

  // Into staging, which on.pull_request.branches leaves out: stored, ignored, no pipeline.
  int64_t d3 = PostGithubPr(c, GithubPr(repo.clone_url(), 9, sha2, "staging", kRepoName), "pr-3");
  CHECK(PlannedDelivery(c, d3) == std::vector<std::optional<std::string>>{
                                      "ignored",
                                      "on.pull_request.branches does not match base branch "
                                      "'staging'"});
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM pipelines")) == 2);

  // A push of the same file: no on.push trigger, so nothing runs.
  int64_t d4 =
      MUST(c.Push(Cluster::PushPayload(repo.clone_url(), kRepoName, sha), "push-1", kSecret));
  CHECK(PlannedDelivery(c, d4) ==
        std::vector<std::optional<std::string>>{"ignored", "the pipeline has no on.push trigger"});

  // The fork's job has waited all along while a1 ran the trusted one. An agent that accepts
  // untrusted jobs but runs them only on the host (h1) never gets it, and the job says why
  // (issue 9). One started with --accept-untrusted --executors sandbox takes it and runs it in
  // the sandbox; a1 and h1 never do.
  REQUIRE(
      JsonString(Job(MUST(c.ApiObject("GET", "/api/v1/pipelines/" + std::to_string(pid))), "check"),
                 "state") == "queued");
  MUST(c.StartAgent("h1", {"--accept-untrusted", "--executors", "host"}));
  MUST(c.WaitForAgents(2));
  MUST(c.WaitUntil("the fork's job to say no agent isolates it", [&](std::string& seen) {
    auto job = c.ApiObject("GET", "/api/v1/jobs/" + std::to_string(JobId(p, "check")));
    if (!job.ok()) return false;
    seen = JsonString(*job, "state") + ": " + JsonString(*job, "waiting");
    return seen ==
           "queued: untrusted (fork pull request): no connected agent accepts untrusted jobs in a "
           "sandbox, and the host executor never runs them (start one with --accept-untrusted "
           "--executors sandbox)";
  }));
  MUST(c.StartAgent("u1", {"--accept-untrusted", "--executors", "sandbox"}));
  MUST(c.WaitForAgents(3));
  json::object agents = MUST(c.ApiObject("GET", "/api/v1/agents"));
  std::map<std::string, json::value> accepts, executors;
  for (const auto& a : agents.at("agents").as_array()) {
    accepts[JsonString(a.as_object(), "name")] = a.as_object().at("accept_untrusted");
    executors[JsonString(a.as_object(), "name")] = a.as_object().at("executors");
  }
  CHECK(accepts == std::map<std::string, json::value>{{"a1", false}, {"h1", true}, {"u1", true}});
  CHECK(executors == std::map<std::string, json::value>{{"a1", json::array{"host"}},
                                                        {"h1", json::array{"host"}},
                                                        {"u1", json::array{"sandbox"}}});
  json::object done = MUST(c.WaitForPipelineDone(pid));
  INFO(json::serialize(done));
  CHECK(JsonString(done, "state") == "succeeded");
  CHECK(JsonString(Job(done, "check"), "state") == "succeeded");
  CHECK(JsonString(Job(done, "check"), "agent") == "u1");
  CHECK(MUST(c.JobLog(JobId(done, "check"))) == "pr pull_request on refs/pull/7/head\n");
  // Every attempt of the fork's jobs ran on u1 (none was ever handed to a1).
  CHECK(MUST(c.Query("SELECT DISTINCT ag.name FROM job_attempts ja JOIN jobs j ON j.id = "
                     "ja.job_id JOIN agents ag ON ag.id = ja.agent_id WHERE j.pipeline_id = " +
                     std::to_string(pid))) ==
        std::vector<std::vector<std::optional<std::string>>>{{"u1"}});
}

TEST_CASE("a GitLab merge request and a Gitea pull request run end to end", "[e2e][triggers]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo lab = MUST(GitRepo::Init(c.dir() + "/lab"));
  GitRepo tea = MUST(GitRepo::Init(c.dir() + "/tea"));
  AddRepo(c, "group/app", "gitlab", lab.clone_url());
  AddRepo(c, "org/app", "gitea", tea.clone_url());
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  MUST(lab.Commit({{".assay.yml", kPrFile}}));
  MUST(tea.Commit({{".assay.yml", kPrFile}}));
  const std::string lab_sha =
      MUST(lab.CommitOnRef("refs/merge-requests/3/head", {{"src.txt", "lab\n"}}));
  const std::string tea_sha = MUST(tea.CommitOnRef("refs/pull/4/head", {{"src.txt", "tea\n"}}));

  json::object mr{{"object_kind", "merge_request"},
                  {"project",
                   {{"path_with_namespace", "group/app"},
                    {"git_http_url", lab.clone_url()},
                    {"default_branch", "main"}}},
                  {"object_attributes",
                   {{"iid", 3},
                    {"action", "open"},
                    {"source_branch", "feature"},
                    {"target_branch", "main"},
                    {"source_project_id", 5},
                    {"target_project_id", 5},
                    {"last_commit", {{"id", lab_sha}}}}}};
  const std::string mr_body = json::serialize(mr);
  int64_t d1 = DeliveryOf(MUST(c.Fetch("POST", "/hooks/gitlab",
                                       {{"X-Gitlab-Event", "Merge Request Hook"},
                                        {"X-Gitlab-Event-UUID", "mr-1"},
                                        {"X-Gitlab-Token", kSecret},
                                        {"Content-Type", "application/json"}},
                                       mr_body)));
  json::object p1 = MUST(c.WaitForPipelineDone(MUST(c.WaitForPipelineOf(d1))));
  INFO(json::serialize(p1) << "\n" << c.LogTails());
  CHECK(JsonString(p1, "state") == "succeeded");
  CHECK(JsonString(p1, "repo") == "group/app");
  CHECK(JsonString(p1, "event") == "pull_request");
  CHECK(JsonString(p1, "ref") == "refs/merge-requests/3/head");
  CHECK(JsonString(p1, "commit_sha") == lab_sha);
  CHECK(p1.at("trusted") == json::value(true));
  CHECK(p1.at("pr_number") == json::value(3));
  CHECK(MUST(c.JobLog(JobId(p1, "check"))) == "pr pull_request on refs/merge-requests/3/head\n");

  json::object pr{
      {"action", "opened"},
      {"number", 4},
      {"pull_request",
       {{"number", 4},
        {"head", {{"sha", tea_sha}, {"ref", "feature"}, {"repo", {{"full_name", "fork/app"}}}}},
        {"base",
         {{"sha", std::string(40, 'a')}, {"ref", "main"}, {"repo", {{"full_name", "org/app"}}}}}}},
      {"repository",
       {{"clone_url", tea.clone_url()}, {"full_name", "org/app"}, {"default_branch", "main"}}}};
  const std::string pr_body = json::serialize(pr);
  int64_t d2 =
      DeliveryOf(MUST(c.Fetch("POST", "/hooks/gitea",
                              {{"X-Gitea-Event", "pull_request"},
                               {"X-Gitea-Delivery", "tea-1"},
                               {"X-Gitea-Signature", HexEncode(HmacSha256(kSecret, pr_body))},
                               {"Content-Type", "application/json"}},
                              pr_body)));
  json::object p2 = WaitUntrustedCheck(c, MUST(c.WaitForPipelineOf(d2)));
  INFO(json::serialize(p2) << "\n" << c.LogTails());
  CHECK(JsonString(p2, "state") == "running");
  CHECK(JsonString(p2, "repo") == "org/app");
  CHECK(JsonString(p2, "ref") == "refs/pull/4/head");
  CHECK(JsonString(p2, "commit_sha") == tea_sha);
  CHECK(p2.at("trusted") == json::value(false));
  CHECK(p2.at("pr_number") == json::value(4));
}

constexpr char kManualFile[] = R"yml(on:
  manual:
    inputs:
      model: {type: choice, options: [small, large], default: small}
      steps: {type: number, required: true}
      dry: {type: boolean, default: false}
jobs:
  train:
    if: inputs.dry == 'false'
    steps:
      - run: echo "model=$ASSAY_INPUT_MODEL steps=${{ inputs.steps }} ${{ event }} $ASSAY_REF"
)yml";

std::string ErrorMessage(const HttpClientResponse& r) {
  return JsonString(json::parse(r.body).as_object().at("error").as_object(), "message");
}

TEST_CASE(
    "manual pipelines: inputs reach if and steps, bad inputs are refused exactly and "
    "create nothing, repo settings",
    "[e2e][triggers]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const std::string sha = MUST(repo.Commit({{".assay.yml", kManualFile}}));
  MUST(repo.Git({"checkout", "--quiet", "-b", "plain"}));
  const std::string plain = MUST(repo.Commit({{".assay.yml", "jobs:\n  a:\n    steps: [echo]\n"}}));
  MUST(repo.Git({"checkout", "--quiet", "main"}));

  // Through the API.
  auto created = MUST(c.Api("POST", "/api/v1/repos/1/pipelines",
                            R"({"branch": "main", "inputs": {"model": "large", "steps": 3}})"));
  INFO(created.body);
  REQUIRE(created.status == 201);
  json::object p = json::parse(created.body).as_object();
  CHECK(JsonString(p, "event") == "manual");
  CHECK(JsonString(p, "ref") == "refs/heads/main");
  CHECK(JsonString(p, "commit_sha") == sha);
  CHECK(p.at("trusted") == json::value(true));
  CHECK(p.at("pr_number").is_null());
  CHECK(p.at("inputs") == json::parse(R"({"model": "large", "steps": "3", "dry": "false"})"));
  CHECK(p.at("jobs").as_array().size() == 1);
  json::object done = MUST(c.WaitForPipelineDone(p.at("id").as_int64()));
  INFO(json::serialize(done) << "\n" << c.LogTails());
  CHECK(JsonString(done, "state") == "succeeded");
  CHECK(MUST(c.JobLog(JobId(done, "train"))) == "model=large steps=3 manual refs/heads/main\n");

  // Through the CLI, on the default branch: dry=true makes the job's if false.
  auto run = MUST(c.RunCli({"run", kRepoName, "--input", "steps=5", "--input", "dry=true"}));
  INFO(run.out << run.err);
  REQUIRE(run.exit_code == 0);
  json::object cli = MUST(c.WaitForPipelineDone(std::stoll(run.out)));
  CHECK(run.out == JsonString(cli, "id") + "\n");
  CHECK(cli.at("inputs") == json::parse(R"({"model": "small", "steps": "5", "dry": "true"})"));
  CHECK(JsonString(Job(cli, "train"), "state") == "skipped");

  // Refused, each with its exact message; nothing is written.
  const std::vector<std::tuple<std::string, int, std::string>> bad = {
      {R"({"inputs": {"steps": 1, "colour": "red"}})", 400,
       "input 'colour' is not defined in on.manual.inputs"},
      {R"({"inputs": {}})", 400, "input 'steps' is required"},
      {R"({})", 400, "input 'steps' is required"},
      {R"({"inputs": {"steps": "ten"}})", 400, "input 'steps' must be a number, got 'ten'"},
      {R"({"inputs": {"steps": 1, "dry": "yes"}})", 400,
       "input 'dry' must be a boolean (true or false), got 'yes'"},
      {R"({"inputs": {"steps": 1, "model": "huge"}})", 400,
       "input 'model' must be one of small, large, got 'huge'"},
      {R"({"inputs": {"steps": [1]}})", 400, "input 'steps' must be a string, number or boolean"},
      {R"({"inputs": [1]})", 400, "field 'inputs' must be an object"},
      {R"({"ref": "main"})", 400, "unknown field 'ref' (allowed: branch, inputs)"},
      {R"({"branch": 7})", 400, "field 'branch' must be a string"},
      {R"({"branch": "-x"})", 400, "field 'branch': '-x' is not a valid branch name"},
      {R"({"branch": "nope"})", 404, "branch 'nope' does not exist in " + repo.clone_url()},
      {R"({"branch": "plain"})", 400,
       ".assay.yml at commit " + plain.substr(0, 12) + " has no on.manual trigger"},
  };
  for (const auto& [body, status, message] : bad) {
    auto r = MUST(c.Api("POST", "/api/v1/repos/1/pipelines", body));
    INFO(body << " -> " << r.status << " " << r.body);
    CHECK(r.status == status);
    CHECK(ErrorMessage(r) == message);
  }
  auto missing = MUST(c.Api("POST", "/api/v1/repos/99/pipelines", "{}"));
  CHECK(missing.status == 404);
  CHECK(ErrorMessage(missing) == "repository 99 does not exist");
  auto cli_bad = MUST(c.RunCli({"run", kRepoName, "--input", "steps=x"}));
  CHECK(cli_bad.exit_code == 1);
  CHECK(cli_bad.err == "assay: 400 invalid_argument: input 'steps' must be a number, got 'x'\n");
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM pipelines")) == 2);

  // Repository settings: PATCH and `assay repo set`, shown in the repo JSON.
  auto patched = MUST(c.Api("PATCH", "/api/v1/repos/1",
                            R"({"default_branch": "plain", "cancel_superseded": true})"));
  REQUIRE(patched.status == 200);
  json::object r = json::parse(patched.body).as_object();
  CHECK(JsonString(r, "default_branch") == "plain");
  CHECK(r.at("cancel_superseded") == json::value(true));
  // A manual pipeline without a branch now uses plain, whose file has no on.manual.
  auto on_plain = MUST(c.Api("POST", "/api/v1/repos/1/pipelines", "{}"));
  CHECK(ErrorMessage(on_plain) ==
        ".assay.yml at commit " + plain.substr(0, 12) + " has no on.manual trigger");
  const std::vector<std::pair<std::string, std::string>> bad_patch = {
      {R"({"default": "x"})",
       "unknown field 'default' (allowed: default_branch, cancel_superseded, "
       "webhook_secret)"},
      {R"({"default_branch": 3})", "field 'default_branch' must be a string"},
      {R"({"default_branch": "a b"})",
       "field 'default_branch' must be a valid branch name, got 'a b'"},
      {R"({"default_branch": ""})", "field 'default_branch' must be a valid branch name, got ''"},
      {R"({"cancel_superseded": "yes"})", "field 'cancel_superseded' must be a boolean"},
  };
  for (const auto& [body, message] : bad_patch) {
    auto res = MUST(c.Api("PATCH", "/api/v1/repos/1", body));
    INFO(body << " -> " << res.body);
    CHECK(res.status == 400);
    CHECK(ErrorMessage(res) == message);
  }
  CHECK(MUST(c.Api("PATCH", "/api/v1/repos/99", "{}")).status == 404);
  auto set = MUST(c.RunCli(
      {"repo", "set", kRepoName, "--default-branch", "main", "--cancel-superseded", "false"}));
  INFO(set.err);
  CHECK(set.exit_code == 0);
  CHECK(set.out == "repo acme/app: default_branch=main cancel_superseded=false\n");
  json::object listed = MUST(c.ApiObject("GET", "/api/v1/repos"));
  json::object first = listed.at("repos").as_array()[0].as_object();
  CHECK(JsonString(first, "default_branch") == "main");
  CHECK(first.at("cancel_superseded") == json::value(false));
}

TEST_CASE(
    "cancel_superseded: a new push cancels the older pipeline of its branch and stops its "
    "job's process tree, the new one keeps running",
    "[e2e][triggers]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1", {"--slots", "3"}));
  MUST(c.WaitForAgents(1));
  auto set = MUST(c.RunCli({"repo", "set", kRepoName, "--cancel-superseded", "true"}));
  REQUIRE(set.exit_code == 0);
  const std::string pids = c.dir();
  const std::string file = absl::StrReplaceAll(R"yml(jobs:
  long:
    steps:
      - run: |
          sleep 300 &
          echo $! > PIDS/bg-$ASSAY_PIPELINE_ID.pid
          sh -c 'echo $$ > PIDS/fg-'$ASSAY_PIPELINE_ID'.pid; exec sleep 300'
)yml",
                                               {{"PIDS", pids}});
  auto started = [&](int64_t pipeline) {
    MUST(c.WaitForJobState(pipeline, "long", "running"));
    MUST(c.WaitUntil("the job's processes to start", [&](std::string& seen) {
      seen = testing::ReadFileOrEmpty(absl::StrCat(pids, "/fg-", pipeline, ".pid"));
      return !seen.empty();
    }));
  };
  int64_t old_id = PushFiles(c, repo, {{".assay.yml", file}}, "push-1");
  started(old_id);
  int64_t new_id = PushFiles(c, repo, {{"README", "2\n"}}, "push-2");

  json::object old_p = MUST(c.WaitForPipelineDone(old_id));
  INFO(json::serialize(old_p) << "\n" << c.LogTails());
  const std::string why = absl::StrCat("superseded by pipeline ", new_id);
  CHECK(JsonString(old_p, "state") == "canceled");
  CHECK(JsonString(old_p, "message") == why);
  CHECK(JsonString(Job(old_p, "long"), "state") == "canceled");
  CHECK(JsonString(Job(old_p, "long"), "message") == why);
  for (const char* kind : {"bg", "fg"}) {
    const std::string path = absl::StrCat(pids, "/", kind, "-", old_id, ".pid");
    pid_t child = static_cast<pid_t>(std::atoi(testing::ReadFileOrEmpty(path).c_str()));
    REQUIRE(child > 1);
    MUST(c.WaitUntil(
        absl::StrCat("pid ", child, " (", path, ") to be gone"),
        [&](std::string& seen) {
          seen = testing::PidExists(child) ? "still exists" : "gone";
          return !testing::PidExists(child);
        },
        absl::Seconds(10)));
  }
  started(new_id);
  // A push to another branch supersedes nothing.
  std::string dev_sha = MUST(repo.Commit({{"README", "dev\n"}}));
  int64_t dev_delivery =
      MUST(c.Push(Cluster::PushPayload(repo.clone_url(), kRepoName, dev_sha, "refs/heads/dev"),
                  "push-3", kSecret));
  int64_t dev_id = MUST(c.WaitForPipelineOf(dev_delivery));
  started(dev_id);
  json::object new_p = MUST(c.ApiObject("GET", "/api/v1/pipelines/" + std::to_string(new_id)));
  CHECK(JsonString(new_p, "state") == "running");
  CHECK(JsonString(Job(new_p, "long"), "state") == "running");
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM pipelines WHERE state = 'canceled'")) == 1);
  // Clean up the sleepers.
  for (int64_t id : {new_id, dev_id}) {
    MUST(c.Api("POST", absl::StrCat("/api/v1/pipelines/", id, "/cancel")));
    MUST(c.WaitForPipelineDone(id));
  }
}

}  // namespace
}  // namespace assay::e2e
