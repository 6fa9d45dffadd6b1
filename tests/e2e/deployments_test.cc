// Deployments (issue 12) against a real server and PostgreSQL, a real HAProxy from Debian in
// front of real model servers (examples/canary/model_server.py), and a real Prometheus
// scraping them: a canary of a worse version rolls back by itself at its first failed
// measurement and the registry alias stays; a good one promotes and moves the alias; a breach
// during the watch moves traffic and the alias back together, audited; a blue-green switch
// under load answers every request; bad input pauses or fails naming the step and the cause,
// and traffic stays where it was.
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "tests/e2e/e2e.h"
#include "tests/support/deploy_world.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;
using testing::DeployWorld;

// Model "bot" with versions 1..n (rows as the registry keeps them), alias "production" on 1.
void AddModel(Cluster& c, int versions) {
  MUST(c.Query("INSERT INTO models (name, last_version, created_at, updated_at) VALUES ('bot', " +
               std::to_string(versions) + ", now(), now())"));
  MUST(c.Query(
      "INSERT INTO model_versions (model_id, version, source_path, files, bytes, request_sha256, "
      "created_at) SELECT m.id, v, 'model/', 0, 0, repeat('a', 64), now() FROM models m, "
      "generate_series(1, " +
      std::to_string(versions) + ") v"));
  auto alias = MUST(c.Api("PUT", "/api/v1/models/bot/aliases/production",
                          R"({"version": 1, "reason": "first release"})"));
  REQUIRE(alias.status == 200);
}

// The world: a server allowed to reach loopback (HAProxy's runtime API, Prometheus), a
// repository, and the model; the repository's id.
int64_t Setup(Cluster& c, int versions) {
  MUST(c.StartServer());
  auto repo = MUST(c.ApiObject("POST", "/api/v1/repos",
                               R"({"name":"acme/llm","clone_url":"https://example.com/llm.git"})"));
  AddModel(c, versions);
  return repo.at("id").as_int64();
}

std::string EnvironmentBody(const DeployWorld& w, const std::string& extra = "") {
  return absl::StrCat(R"({"target": {"kind": "haproxy", "runtime_api": ")", w.haproxy_runtime(),
                      R"(", "backend": "llm"})", extra, "}");
}

// The environment's analysis: the new version's error rate over 5 s, every second, below 10%.
std::string ErrorRateAnalysis(const DeployWorld& w, const std::string& watch) {
  json::object metric{
      {"name", "error-rate"},
      {"interval", "1s"},
      // Prometheus scrapes every second: the new version's first requests are in its answer.
      {"initial_delay", "2s"},
      {"provider",
       json::object{{"prometheus", json::object{{"address", w.prometheus_url()},
                                                {"query", testing::ErrorRateQuery("5s")}}}}},
      {"success_condition", "result < 0.1"}};
  json::object analysis{{"metrics", json::array{metric}}};
  if (!watch.empty()) analysis["watch"] = watch;
  return absl::StrCat(R"(, "analysis": )", json::serialize(analysis));
}

json::object Deployment(Cluster& c, int64_t id) {
  return MUST(c.ApiObject("GET", "/api/v1/deployments/" + std::to_string(id)));
}

std::string State(Cluster& c, int64_t id) { return JsonString(Deployment(c, id), "state"); }

json::array Events(Cluster& c, int64_t id) {
  return MUST(c.ApiObject("GET", "/api/v1/deployments/" + std::to_string(id) + "/events"))
      .at("events")
      .as_array();
}

std::string EventLines(Cluster& c, int64_t id) {
  std::string out;
  for (const json::value& e : Events(c, id)) {
    absl::StrAppend(&out, JsonString(e.as_object(), "kind"), ": ",
                    JsonString(e.as_object(), "message"), "\n");
  }
  return out;
}

void WaitForState(Cluster& c, DeployWorld& w, int64_t id, const std::string& state,
                  absl::Duration timeout = absl::Seconds(60)) {
  absl::Status s = c.WaitUntil(
      absl::StrCat("deployment ", id, " ", state),
      [&](std::string& seen) {
        seen = State(c, id);
        return seen == state;
      },
      timeout);
  INFO(EventLines(c, id));
  INFO(w.LogTails());
  MUST(s);
}

int AliasVersion(Cluster& c) {
  return static_cast<int>(
      MUST(c.ApiObject("GET", "/api/v1/models/bot/aliases/production")).at("version").as_int64());
}

// The backend's servers that take traffic (enabled, weight above 0) as "name:weight", sorted.
// Why not all: a drained server that still holds an idle connection stays in maintenance at
// weight 0 until HAProxy lets it go; it takes no request.
std::vector<std::string> Backend(DeployWorld& w) {
  std::string answer = MUST(w.Haproxy("show servers state llm"));
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(answer, '\n', absl::SkipWhitespace())) {
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 19 || f[0] == "#") continue;
    const int admin = std::stoi(f[6]);
    if ((admin & 0x67) != 0 || f[7] == "0") continue;
    out.push_back(absl::StrCat(f[3], ":", f[7]));
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool All(const std::vector<std::string>& versions, const std::string& v) {
  return !versions.empty() &&
         std::all_of(versions.begin(), versions.end(), [&](const auto& x) { return x == v; });
}

// Requests through HAProxy, in the background, until stopped: every answer counted.
struct Load {
  explicit Load(const DeployWorld& w) : world(w) {
    thread = std::thread([this] {
      // Prompts of 1 to 19 words in turn: the prompt_length feature's live distribution (19,
      // prime, so that two servers taking turns each see every length).
      for (int i = 0; !stop.load(); ++i) {
        for (const std::string& v : world.Requests(1, 1 + i % 19)) {
          std::lock_guard<std::mutex> l(mu);
          ++by_version[v];
        }
      }
    });
  }
  ~Load() { Stop(); }
  std::map<std::string, int> Stop() {
    stop = true;
    if (thread.joinable()) thread.join();
    return by_version;
  }
  const DeployWorld& world;
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::map<std::string, int> by_version;
  std::thread thread;
};

TEST_CASE(
    "deployments: a worse canary rolls back at its first failed measurement, a good one "
    "promotes and moves the alias, a watch breach moves traffic and alias back",
    "[e2e]") {
  Cluster c(Options({"--allow-private-hosts", "127.0.0.1"}));
  const int64_t repo = Setup(c, 3);
  // Version 2 answers half its requests with 500; versions 1 and 3 are good.
  auto world = MUST(
      DeployWorld::Start(c.dir() + "/world", {"1", "2", "3"}, {{}, {"--error-rate", "0.5"}, {}}));
  DeployWorld& w = *world;
  MUST(w.WaitForScrapes(absl::Seconds(30)));
  MUST(c.Api("PUT", absl::StrCat("/api/v1/repos/", repo, "/environments/production"),
             EnvironmentBody(w, ErrorRateAnalysis(w, "60s"))));
  Load load(w);

  // Version 2: its error rate fails the first measurement after it takes traffic.
  auto bad = MUST(c.RunCli({"deploy", "production", "--repo", std::to_string(repo), "--model",
                            "bot@2", "--endpoint", w.server(1).address(), "--strategy",
                            R"({"canary": {"steps": [{"weight": 50}, {"pause": "60s"}]}})"}));
  INFO(bad.out << bad.err);
  REQUIRE(bad.exit_code == 0);
  const int64_t d1 = MUST(c.QueryInt("SELECT max(id) FROM deployments"));
  WaitForState(c, w, d1, "rolled_back");
  {
    INFO(EventLines(c, d1));
    json::array events = Events(c, d1);
    // One failed measurement, and the rollback in the same tick: within one analysis interval.
    int failed = 0, successful = 0;
    size_t failed_at = 0, rolled_at = 0;
    for (size_t i = 0; i < events.size(); ++i) {
      const json::object& e = events[i].as_object();
      if (JsonString(e, "kind") == "measurement") {
        const std::string phase = JsonString(e.at("data").as_object(), "phase");
        if (phase == "failed") failed_at = i, ++failed;
        if (phase == "successful") ++successful;
      }
      if (JsonString(e, "kind") == "rolled_back") rolled_at = i;
    }
    CHECK(failed == 1);
    CHECK(rolled_at == failed_at + 1);
    CHECK(JsonString(events[rolled_at].as_object(), "at") ==
          JsonString(events[failed_at].as_object(), "at"));
    json::object d = Deployment(c, d1);
    CHECK(d.at("weight").as_int64() == 0);
    CHECK(absl::StrContains(JsonString(d, "message"), "metric 'error-rate'"));
    CHECK(absl::StrContains(JsonString(d, "message"), "fails 'result < 0.1'"));
  }
  // Traffic is all on the stable server; the alias never moved.
  CHECK(AliasVersion(c) == 1);
  CHECK(All(w.Requests(20), "1"));
  // The rollback is audited as the system, with its reason.
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM audit_log WHERE actor_kind = 'system' AND "
                        "action = 'rollback deployment " +
                        std::to_string(d1) + " of production' AND detail LIKE '%error-rate%'")) ==
        1);

  // Version 3 promotes: all traffic on it, the alias moved, the old server drained.
  auto good = MUST(c.RunCli({"deploy", "production", "--repo", std::to_string(repo), "--model",
                             "bot@3", "--endpoint", w.server(2).address(), "--strategy",
                             R"({"canary": {"steps": [{"weight": 50}, {"pause": "3s"}]}})"}));
  REQUIRE(good.exit_code == 0);
  const int64_t d2 = MUST(c.QueryInt("SELECT max(id) FROM deployments"));
  auto waited = MUST(c.RunCli({"deployments", "wait", std::to_string(d2), "--timeout", "60s"}));
  INFO(waited.out << waited.err << EventLines(c, d2));
  REQUIRE(waited.exit_code == 0);
  CHECK(State(c, d2) == "watching");
  CHECK(AliasVersion(c) == 3);
  CHECK(All(w.Requests(20), "3"));
  auto env =
      MUST(c.ApiObject("GET", absl::StrCat("/api/v1/repos/", repo, "/environments/production")));
  CHECK(env.at("live").as_object().at("version").as_int64() == 3);

  // Version 3 goes bad during the watch: traffic and alias go back to version 1 together.
  MUST(w.Control(2, R"({"error_rate": 0.6})"));
  WaitForState(c, w, d2, "rolled_back");
  CHECK(AliasVersion(c) == 1);
  CHECK(All(w.Requests(20), "1"));
  env = MUST(c.ApiObject("GET", absl::StrCat("/api/v1/repos/", repo, "/environments/production")));
  CHECK(env.at("live").as_object().at("servers").as_array().at(0).as_object().at("name") ==
        "stable-1");
  CHECK(absl::StrContains(JsonString(Deployment(c, d2), "message"), "watch breached"));
  auto history = MUST(c.ApiObject("GET", "/api/v1/models/bot/aliases/production/history"));
  const json::array& h = history.at("history").as_array();
  REQUIRE(h.size() >= 3);
  CHECK(h[0].as_object().at("to_version").as_int64() == 1);
  CHECK(h[0].as_object().at("from_version").as_int64() == 3);
  CHECK(JsonString(h[0].as_object(), "principal") == absl::StrCat("deployment ", d2));
  CHECK(absl::StrContains(JsonString(h[0].as_object(), "reason"), "watch breached"));
  std::map<std::string, int> seen = load.Stop();
  INFO("load by version: " << seen.size());
  CHECK(seen["2"] > 0);  // the canary did take traffic before it was rolled back
  CHECK(seen["3"] > 0);
}

TEST_CASE("deployments: a blue-green switch under load answers every request", "[e2e]") {
  Cluster c(Options({"--allow-private-hosts", "127.0.0.1"}));
  const int64_t repo = Setup(c, 2);
  auto world = MUST(DeployWorld::Start(c.dir() + "/world", {"1", "2"}));
  DeployWorld& w = *world;
  MUST(w.WaitForScrapes(absl::Seconds(30)));
  MUST(c.Api("PUT", absl::StrCat("/api/v1/repos/", repo, "/environments/production"),
             EnvironmentBody(w)));
  Load load(w);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // Pre-promotion analysis: the new server is up as Prometheus sees it.
  const std::string up = absl::StrCat(R"(up{instance=\")", w.server(1).address(), R"(\"})");
  auto r = MUST(
      c.Api("POST", "/api/v1/deployments",
            absl::StrCat(R"({"repo_id": )", repo, R"(, "environment": "production", "model": "bot",
        "version": 2, "servers": [")",
                         w.server(1).address(), R"("], "strategy": {"blue_green": {
        "scale_down_delay": "2s", "pre_promotion_analysis": {"metrics": [{"name": "up",
        "interval": "1s", "count": 2, "provider": {"prometheus": {"address": ")",
                         w.prometheus_url(), R"(", "query": ")", up,
                         R"("}}, "success_condition": "result == 1"}]}}}})")));
  INFO(r.body);
  REQUIRE(r.status == 201);
  const int64_t id = MUST(c.QueryInt("SELECT max(id) FROM deployments"));
  WaitForState(c, w, id, "succeeded");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::map<std::string, int> seen = load.Stop();
  std::string summary;
  for (const auto& [k, n] : seen) absl::StrAppend(&summary, k, "=", n, " ");
  INFO(summary);
  // Every answer came from version 1 or 2: not one error during the switch.
  CHECK(seen.size() == 2);
  CHECK(seen["1"] > 0);
  CHECK(seen["2"] > 0);
  CHECK(All(w.Requests(10), "2"));
  // After scale_down_delay only the new server takes traffic (the server of haproxy.cfg is
  // kept, drained and in maintenance).
  CHECK(
      Backend(w) ==
      std::vector<std::string>{absl::StrCat(
          JsonString(Deployment(c, id).at("servers").as_array()[0].as_object(), "name"), ":256")});
  CHECK(AliasVersion(c) == 2);
  std::string kinds;
  for (const json::value& e : Events(c, id)) {
    absl::StrAppend(&kinds, JsonString(e.as_object(), "kind"), " ");
  }
  CHECK(kinds ==
        "created started weight measurement measurement analysis_passed weight promoted alias "
        "scaled_down succeeded ");
}

TEST_CASE(
    "deployments: bad input is refused or pauses naming the step and the cause, and traffic "
    "stays where it was",
    "[e2e]") {
  Cluster c(Options({"--allow-private-hosts", "127.0.0.1"}));
  const int64_t repo = Setup(c, 2);
  auto world = MUST(DeployWorld::Start(c.dir() + "/world", {"1", "2"}));
  DeployWorld& w = *world;
  MUST(w.WaitForScrapes(absl::Seconds(30)));
  const std::string envs = absl::StrCat("/api/v1/repos/", repo, "/environments/");
  MUST(c.Api("PUT", envs + "production", EnvironmentBody(w)));
  const std::vector<std::string> before = Backend(w);
  REQUIRE(before == std::vector<std::string>{"stable-1:1"});
  auto deploy = [&](const std::string& fields) {
    return MUST(c.Api("POST", "/api/v1/deployments",
                      absl::StrCat(R"({"repo_id": )", repo, ", ", fields, "}")));
  };
  const std::string server = absl::StrCat(R"("servers": [")", w.server(1).address(), R"("])");

  // Refused before anything moves.
  struct Case {
    std::string fields;
    int status;
    std::string message;
  };
  for (const Case& k : std::vector<Case>{
           {R"("environment": "staging", "model": "bot", "version": 2, )" + server +
                R"(, "strategy": {"canary": {"steps": [{"weight": 10}]}})",
            404, "environment 'staging' of repository"},
           {R"("environment": "production", "model": "bot", "version": 9, )" + server +
                R"(, "strategy": {"canary": {"steps": [{"weight": 10}]}})",
            404, "model 'bot' has no version 9"},
           {R"("environment": "production", "model": "nope", "version": 1, )" + server +
                R"(, "strategy": {"canary": {"steps": [{"weight": 10}]}})",
            404, "model 'nope' not found"},
           {R"("environment": "production", "model": "bot", "version": 2, )" + server +
                R"(, "strategy": {"canary": {"steps": [{"weight": 50}, {"weight": 10}]}})",
            400, "strategy.canary.steps[1].weight: must not go down (10 after 50)"},
           {R"("environment": "production", "model": "bot", "version": 2, )" + server +
                R"(, "strategy": {"canary": {"steps": [{"analysis": {"metrics": [{"name": "x",
                "provider": {"prometheus": {"address": "http://127.0.0.1:1", "query": "up"}},
                "success_condition": "result <"}]}}]}})",
            400, "strategy.canary.steps[0].analysis.metrics[0].success_condition: column"},
           {R"("environment": "production", "model": "bot", "version": 2, "servers": ["a b:1"],
                "strategy": {"canary": {"steps": [{"weight": 10}]}})",
            400, "servers[0].address 'a b:1' must be HOST:PORT"},
           {R"("environment": "production", "image": "app:latest", )" + server +
                R"(, "strategy": {"canary": {"steps": [{"weight": 10}]}})",
            400, "field 'image' must be an image by digest"},
       }) {
    HttpClientResponse r = deploy(k.fields);
    INFO(k.fields << " -> " << r.status << " " << r.body);
    CHECK(r.status == k.status);
    CHECK(absl::StrContains(r.body, k.message));
  }
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM deployments")) == 0);

  // A PromQL error pauses at its step; traffic stays at the step's weight before it.
  HttpClientResponse r = deploy(
      R"("environment": "production", "model": "bot", "version": 2, )" + server +
      R"(, "strategy": {"canary": {"steps": [{"weight": 20}, {"analysis": {"metrics": [{"name":
      "broken", "interval": "1s", "consecutive_error_limit": 0, "provider": {"prometheus":
      {"address": ")" +
      w.prometheus_url() +
      R"(", "query": "sum(rate(llm_requests_total[1m]"}}, "success_condition": "result < 1"}]}}]}})");
  REQUIRE(r.status == 201);
  const int64_t d1 = MUST(c.QueryInt("SELECT max(id) FROM deployments"));
  WaitForState(c, w, d1, "paused");
  json::object d = Deployment(c, d1);
  INFO(JsonString(d, "message"));
  CHECK(absl::StartsWith(JsonString(d, "message"),
                         "error in step 2 of 2 analysis, metric 'broken': prometheus refused the "
                         "query (bad_data)"));
  CHECK(absl::EndsWith(JsonString(d, "message"), "; traffic stays at 20%"));
  const std::string fresh = JsonString(d.at("servers").as_array()[0].as_object(), "name");
  CHECK(Backend(w) == std::vector<std::string>{fresh + ":51", "stable-1:205"});

  // One deployment per environment: refused while it is paused, unless superseded.
  r = deploy(R"("environment": "production", "model": "bot", "version": 2, )" + server +
             R"(, "strategy": {"canary": {"steps": [{"weight": 100}]}})");
  CHECK(r.status == 409);
  CHECK(absl::StrContains(r.body, absl::StrCat("environment 'production' has deployment ", d1,
                                               " (paused); ask for \\\"supersede\\\": true")));
  // An unreachable Prometheus: the superseding deployment pauses naming it; the first one's
  // server is taken out of the backend when the new one starts.
  r = deploy(
      R"("environment": "production", "model": "bot", "version": 2, "supersede": true, )" + server +
      R"(, "strategy": {"canary": {"steps": [{"weight": 10}, {"analysis": {"metrics": [{"name":
             "gone", "interval": "1s", "consecutive_error_limit": 1, "provider": {"prometheus":
             {"address": "http://127.0.0.1:1", "query": "up"}}, "success_condition":
             "result == 1"}]}}]}})");
  INFO(r.body);
  REQUIRE(r.status == 201);
  const int64_t d2 = MUST(c.QueryInt("SELECT max(id) FROM deployments"));
  CHECK(State(c, d1) == "superseded");
  CHECK(Deployment(c, d1).at("superseded_by").as_int64() == d2);
  WaitForState(c, w, d2, "paused");
  d = Deployment(c, d2);
  INFO(JsonString(d, "message"));
  CHECK(absl::StrContains(JsonString(d, "message"),
                          "error in step 2 of 2 analysis, metric 'gone': prometheus at "
                          "http://127.0.0.1:1: GET http://127.0.0.1:1/api/v1/query?query=up: "
                          "cannot connect"));
  const std::string fresh2 = JsonString(d.at("servers").as_array()[0].as_object(), "name");
  CHECK(Backend(w) == std::vector<std::string>{fresh2 + ":26", "stable-1:230"});
  // Measurements: two errors in a row, then the pause (the limit is 1).
  int errors = 0;
  for (const json::value& e : Events(c, d2)) {
    if (JsonString(e.as_object(), "kind") == "measurement") ++errors;
  }
  CHECK(errors == 2);

  // Aborted by hand: traffic back on the stable server, the new one out.
  auto aborted = MUST(
      c.RunCli({"deployments", "abort", std::to_string(d2), "--reason", "prometheus is down"}));
  CHECK(aborted.exit_code == 0);
  WaitForState(c, w, d2, "aborted");
  CHECK(JsonString(Deployment(c, d2), "message") == "aborted by admin: prometheus is down");
  CHECK(Backend(w) == std::vector<std::string>{"stable-1:256"});
  CHECK(All(w.Requests(5), "1"));

  // A target that refuses (no such backend): paused at the start, nothing changed.
  MUST(c.Api("PUT", envs + "broken",
             absl::StrCat(R"({"target": {"kind": "haproxy", "runtime_api": ")", w.haproxy_runtime(),
                          R"(", "backend": "nope"}})")));
  r = deploy(R"("environment": "broken", "model": "bot", "version": 2, )" + server +
             R"(, "strategy": {"canary": {"steps": [{"weight": 10}]}})");
  REQUIRE(r.status == 201);
  const int64_t d3 = MUST(c.QueryInt("SELECT max(id) FROM deployments"));
  WaitForState(c, w, d3, "paused");
  CHECK(JsonString(Deployment(c, d3), "message") == "starting: haproxy backend 'nope' not found");
  CHECK(Backend(w) == std::vector<std::string>{"stable-1:256"});
  // Actions a state does not take are refused with the state.
  auto resume = MUST(c.Api("POST", "/api/v1/deployments/" + std::to_string(d2) + "/resume"));
  CHECK(resume.status == 409);
  CHECK(absl::StrContains(resume.body, "is aborted; it cannot be asked to resume"));
  CHECK(AliasVersion(c) == 1);
}

TEST_CASE(
    "deployments: a drifted input distribution and a slower canary fail their analyses, a "
    "version like its reference promotes",
    "[e2e]") {
  Cluster c(Options({"--allow-private-hosts", "127.0.0.1"}));
  const int64_t repo = Setup(c, 4);
  // Version 2 sees prompts 40 tokens longer than asked (drift); version 3 is 25 ms slower than
  // version 1 (the baseline); version 4 is like version 1.
  auto world =
      MUST(DeployWorld::Start(c.dir() + "/world", {"1", "2", "3", "4"},
                              {{}, {"--prompt-length-shift", "40"}, {"--latency-ms", "30"}, {}}));
  DeployWorld& w = *world;
  MUST(w.WaitForScrapes(absl::Seconds(30)));
  MUST(c.Api("PUT", absl::StrCat("/api/v1/repos/", repo, "/environments/production"),
             EnvironmentBody(w)));
  // Every version's reference: an eval whose 200 examples had prompts of 1 to 19 tokens.
  MUST(c.Query(
      "INSERT INTO pipelines (repo_id, commit_sha, ref, event, state, created_at, finished_at) "
      "VALUES (" +
      std::to_string(repo) +
      ", repeat('a', 40), 'refs/heads/main', 'push', 'succeeded', now(), now())"));
  MUST(
      c.Query("INSERT INTO jobs (pipeline_id, repo_id, name, state, spec, created_at) SELECT id, "
              "repo_id, 'eval', 'succeeded', '{}', now() FROM pipelines"));
  MUST(c.Query(
      "INSERT INTO eval_runs (job_id, attempt, step_index, repo_id, pipeline_id, job_name, name, "
      "ref, commit_sha, trusted, complete, passed, finished_at, model_version_id) SELECT j.id, 1, "
      "v.version, j.repo_id, j.pipeline_id, 'eval', 'qa', 'main', repeat('a', 40), true, true, "
      "true, now(), v.id FROM (SELECT jobs.id, pipelines.repo_id, jobs.pipeline_id FROM jobs "
      "JOIN pipelines ON pipelines.id = jobs.pipeline_id) j, model_versions v"));
  MUST(c.Query(
      "INSERT INTO eval_examples (run_id, idx, example_id, input, expected, output, error, "
      "passed, scores, latency_ms, input_tokens, output_tokens, answered, passes) SELECT r.id, "
      "i, 'e' || i, 'q', 'a', 'a', '', true, '{}', 2, 1 + i % 19, 16, 1, 1 FROM eval_runs r, "
      "generate_series(0, 199) i"));
  Load load(w);

  const auto analysis = [&](size_t server, const std::string& metric) {
    return absl::StrCat(R"({"repo_id": )", repo, R"(, "environment": "production", "model":
      "bot", "version": )",
                        w.server(server).version, R"(, "servers": [")", w.server(server).address(),
                        R"("], "strategy": {"canary": {"steps": [
      {"weight": 50}, {"pause": "4s"}, {"analysis": {"metrics": [)",
                        metric, "]}}]}}}");
  };
  const auto features = [&](size_t server) {
    return absl::StrCat("http://", w.server(server).address(), "/assay/features?limit=300");
  };
  // Thresholds far from what chance gives a version like its reference (PSI of two samples of
  // one distribution: about 0.08 here; a p-value below 1e-6: once in a million), and far from
  // what the bad versions give (a PSI of several units, a p-value far below 1e-20).
  const std::string drift = R"({"name": "prompt-drift", "provider": {"drift": {"current":
      {"url": "URL", "feature": "prompt_length"}, "reference": "model_version"}},
      "success_condition": "result < 0.5"})";
  const std::string judge = absl::StrCat(R"({"name": "latency-judge", "provider": {"mann_whitney":
      {"canary": {"url": "URL", "feature": "latency_ms"}, "baseline": {"url": ")",
                                         features(0), R"(", "feature": "latency_ms"},
      "direction": "increase"}}, "success_condition": "result >= 1e-6"})");

  // Drift: the live prompt lengths are far from the eval's.
  auto r = MUST(c.Api("POST", "/api/v1/deployments",
                      analysis(1, absl::StrReplaceAll(drift, {{"URL", features(1)}}))));
  REQUIRE(r.status == 201);
  int64_t id = MUST(c.QueryInt("SELECT max(id) FROM deployments"));
  WaitForState(c, w, id, "rolled_back");
  std::string message = JsonString(Deployment(c, id), "message");
  INFO(message);
  CHECK(absl::StrContains(message, "metric 'prompt-drift': result "));
  CHECK(absl::StrContains(message, "fails 'result < 0.5' (psi "));
  CHECK(absl::StrContains(message, "; reference 200 values, current "));
  CHECK(All(w.Requests(10), "1"));

  // The judge: version 3's latencies are larger than the baseline's.
  r = MUST(c.Api("POST", "/api/v1/deployments",
                 analysis(2, absl::StrReplaceAll(judge, {{"URL", features(2)}}))));
  REQUIRE(r.status == 201);
  id = MUST(c.QueryInt("SELECT max(id) FROM deployments"));
  WaitForState(c, w, id, "rolled_back");
  message = JsonString(Deployment(c, id), "message");
  INFO(message);
  CHECK(absl::StrContains(message, "metric 'latency-judge': result "));
  CHECK(absl::StrContains(message, "fails 'result >= 1e-6' (canary larger: p "));
  CHECK(absl::StrContains(message, " values, baseline 300"));

  // Version 4 passes both.
  r = MUST(c.Api("POST", "/api/v1/deployments",
                 analysis(3, absl::StrCat(absl::StrReplaceAll(drift, {{"URL", features(3)}}), ", ",
                                          absl::StrReplaceAll(judge, {{"URL", features(3)}})))));
  REQUIRE(r.status == 201);
  id = MUST(c.QueryInt("SELECT max(id) FROM deployments"));
  WaitForState(c, w, id, "succeeded");
  CHECK(AliasVersion(c) == 4);
  CHECK(All(w.Requests(10), "4"));
  std::map<std::string, int> seen = load.Stop();
  CHECK(seen.count("2") == 1);
  CHECK(seen.count("3") == 1);
}

TEST_CASE("deployments: a deploy step of a pipeline makes the deployment and follows it to its end",
          "[e2e]") {
  Cluster c(Options({"--allow-private-hosts", "127.0.0.1"}));
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  const int64_t repo_id = MUST(c.QueryInt("SELECT id FROM repos"));
  AddModel(c, 2);
  auto world = MUST(DeployWorld::Start(c.dir() + "/world", {"1", "2"}));
  DeployWorld& w = *world;
  MUST(
      c.Api("PUT", absl::StrCat("/api/v1/repos/", repo_id, "/environments/production"),
            absl::StrCat(R"({"branches": ["main"], "target": {"kind": "haproxy", "runtime_api": ")",
                         w.haproxy_runtime(), R"(", "backend": "llm"}})")));
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const auto file = [&](const std::string& model) {
    return absl::StrCat(R"(jobs:
  ship:
    steps:
      - deploy:
          environment: production
          model: )",
                        model, R"(
          endpoints: [")",
                        w.server(1).address(), R"("]
          strategy:
            canary:
              steps: [{ weight: 50 }, { pause: 2s }]
)");
  };
  const int64_t id = PushFiles(c, repo, {{".assay.yml", file("bot@2")}});
  json::object p = MUST(c.WaitForPipelineDone(id, absl::Seconds(90)));
  INFO(json::serialize(p));
  const int64_t job = JobId(p, "ship");
  const std::string log = MUST(c.JobLog(job));
  INFO(log);
  CHECK(JsonString(Job(p, "ship"), "state") == "succeeded");
  const int64_t d = MUST(c.QueryInt("SELECT max(id) FROM deployments"));
  CHECK(absl::StrContains(log, absl::StrCat("assay: deploy: deployment ", d, " (progressing)\n")));
  CHECK(absl::StrContains(
      log, "assay: deploy: weight: step 1 of 2: 50% of traffic to the new version\n"));
  CHECK(absl::StrContains(log,
                          "assay: deploy: promoted: promoted: the environment serves bot "
                          "version 2"));
  CHECK(absl::StrContains(log, absl::StrCat("assay: deploy: deployment ", d, " promoted\n")));
  json::object dep = Deployment(c, d);
  CHECK(JsonString(dep, "created_by") == absl::StrCat("pipeline ", id, " job ", job));
  CHECK(dep.at("pipeline_id").as_int64() == id);
  CHECK(dep.at("job_id").as_int64() == job);
  CHECK(JsonString(dep, "ref") == "main");
  CHECK(AliasVersion(c) == 2);
  CHECK(All(w.Requests(10), "2"));

  // A version that does not exist fails the step with the registry's words; nothing moves.
  const int64_t id2 = PushFiles(c, repo, {{".assay.yml", file("bot@9")}}, "delivery-2");
  json::object p2 = MUST(c.WaitForPipelineDone(id2, absl::Seconds(60)));
  const std::string log2 = MUST(c.JobLog(JobId(p2, "ship")));
  INFO(log2);
  CHECK(JsonString(Job(p2, "ship"), "state") == "failed");
  CHECK(absl::StrContains(log2, "model 'bot' has no version 9"));
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM deployments")) == 1);
  CHECK(All(w.Requests(5), "2"));
}

// An executable script `name` in `dir`.
void WriteHook(const std::string& dir, const std::string& name, const std::string& body) {
  const std::string path = dir + "/" + name;
  std::ofstream(path) << "#!/bin/sh\n" << body;
  REQUIRE(chmod(path.c_str(), 0755) == 0);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST_CASE(
    "deployments: a command target moves traffic through the operator's program, and a job "
    "metric that fails rolls it back",
    "[e2e]") {
  Cluster c(Options());
  const std::string hooks = c.dir() + "/hooks";
  REQUIRE(mkdir(hooks.c_str(), 0755) == 0);
  const std::string calls = c.dir() + "/calls.log";
  const std::string fail = c.dir() + "/smoke-fails";
  // The target records each call: its arguments, what the environment says, and whether any of
  // the server's own variables reached it (the test's database DSN is in the server's).
  WriteHook(hooks, "traffic",
            absl::StrReplaceAll(R"(input=$(cat)
echo "$* | $ASSAY_DEPLOY_ACTION $ASSAY_DEPLOY_WEIGHT new=[$ASSAY_DEPLOY_NEW] old=[$ASSAY_DEPLOY_OLD] $ASSAY_ENVIRONMENT v$ASSAY_VERSION prev=$ASSAY_PREVIOUS_VERSION leaked=${ASSAY_TEST_PG_DSN:-no}" >> CALLS
echo "$input" > CALLS.last
)",
                                {{"CALLS", calls}}));
  WriteHook(
      hooks, "smoke",
      absl::StrReplaceAll(
          R"(if [ -e FAIL ]; then echo "smoke: 2 of 5 prompts failed for version $1" >&2; exit 1; fi
)",
          {{"FAIL", fail}}));
  WriteHook(hooks, "refuse", "echo 'load balancer said: 503 busy' >&2; exit 3\n");
  std::ofstream(hooks + "/not-executable") << "#!/bin/sh\n";
  c.AddServerFlags({"--deploy-hooks", hooks});
  const int64_t repo = Setup(c, 3);
  const std::string env_path = absl::StrCat("/api/v1/repos/", repo, "/environments/production");

  // Hostile targets are refused when saved, naming the field.
  auto refused = [&](const std::string& target) {
    auto r = MUST(c.Api("PUT", env_path, absl::StrCat(R"({"target": )", target, "}")));
    INFO(r.body);
    CHECK(r.status == 400);
    return r.body;
  };
  CHECK(absl::StrContains(
      refused(R"({"kind": "command", "command": ["/bin/sh", "-c", "id"]})"),
      "target.command[0]: must name a program of the server's deploy hooks directory"));
  CHECK(absl::StrContains(refused(R"({"kind": "command", "command": ["../hooks/traffic"]})"),
                          "target.command[0]: must name a program"));
  CHECK(absl::StrContains(refused(R"({"kind": "command", "command": ["missing"]})"),
                          "target.command[0]: no executable program 'missing' in the server's "
                          "deploy hooks directory"));
  CHECK(absl::StrContains(refused(R"({"kind": "command", "command": ["not-executable"]})"),
                          "no executable program 'not-executable'"));
  CHECK(
      absl::StrContains(refused(R"({"kind": "command", "command": ["traffic"], "timeout": "2m"})"),
                        "target.timeout: must be at most 60s"));
  CHECK(absl::StrContains(refused(R"({"kind": "command", "command": ["traffic"], "shell": "sh"})"),
                          "unknown field"));

  auto put = MUST(c.Api("PUT", env_path,
                        R"({"target": {"kind": "command", "command": ["traffic", "--env",
                            "{{environment}}"]}})"));
  INFO(put.body);
  REQUIRE(put.status == 200);
  const std::string strategy =
      R"({"canary": {"steps": [{"weight": 50}, {"analysis": {"metrics": [{"name": "smoke",
          "provider": {"job": {"command": ["smoke", "{{version}}"], "timeout": "10s"}}}]}}]}})";
  auto deploy = [&](const std::string& version, const std::string& endpoint) {
    auto r = MUST(c.RunCli({"deploy", "production", "--repo", std::to_string(repo), "--model",
                            "bot@" + version, "--endpoint", endpoint, "--strategy", strategy}));
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    return MUST(c.QueryInt("SELECT max(id) FROM deployments"));
  };

  // Version 2: the job passes; the canary promotes and the alias moves.
  const int64_t d1 = deploy("2", "127.0.0.1:8102");
  MUST(c.WaitUntil(
      "deployment promoted",
      [&](std::string& seen) {
        seen = State(c, d1);
        return seen == "succeeded";
      },
      absl::Seconds(60)));
  INFO(EventLines(c, d1));
  CHECK(AliasVersion(c) == 2);
  // The first deployment to a command target has nothing live before it: no stable servers and
  // no previous version (HAProxy's backend would have told).
  CHECK(ReadFile(calls) ==
        "--env production | apply 50 new=[127.0.0.1:8102] old=[] production v2 prev= leaked=no\n"
        "--env production | apply 100 new=[127.0.0.1:8102] old=[] production v2 prev= "
        "leaked=no\n");
  auto last = json::parse(ReadFile(calls + ".last"));
  CHECK(last.at("action") == "apply");
  CHECK(last.at("weight").as_int64() == 100);
  CHECK(last.at("new").as_array().size() == 1);
  CHECK(JsonString(last.at("new").as_array()[0].as_object(), "address") == "127.0.0.1:8102");
  CHECK(JsonString(last.as_object(), "deployment") == std::to_string(d1));
  bool measured = false;
  for (const json::value& e : Events(c, d1)) {
    if (JsonString(e.as_object(), "kind") != "measurement") continue;
    measured = true;
    CHECK(absl::StrContains(JsonString(e.as_object(), "message"), "job 'smoke' exit 0"));
  }
  CHECK(measured);

  // Version 3: the job fails; traffic goes back to version 2's server, the alias stays.
  std::ofstream(fail) << "";
  std::ofstream(calls, std::ios::trunc) << "";
  const int64_t d2 = deploy("3", "127.0.0.1:8103");
  MUST(c.WaitUntil(
      "deployment rolled back",
      [&](std::string& seen) {
        seen = State(c, d2);
        return seen == "rolled_back";
      },
      absl::Seconds(60)));
  INFO(EventLines(c, d2));
  CHECK(AliasVersion(c) == 2);
  CHECK(ReadFile(calls) ==
        "--env production | apply 50 new=[127.0.0.1:8103] old=[127.0.0.1:8102] production v3 "
        "prev=2 leaked=no\n"
        "--env production | apply 0 new=[127.0.0.1:8103] old=[127.0.0.1:8102] production v3 "
        "prev=2 leaked=no\n"
        "--env production | retire 0 new=[] old=[127.0.0.1:8103] production v3 prev=2 "
        "leaked=no\n");
  const std::string why = JsonString(Deployment(c, d2), "message");
  CHECK(absl::StrContains(why, "metric 'smoke'"));
  CHECK(absl::StrContains(why, "job 'smoke' exit 1: smoke: 2 of 5 prompts failed for version 3"));

  // A target that refuses: the deployment pauses naming it and its words; nothing switched.
  MUST(c.Api("PUT", env_path, R"({"target": {"kind": "command", "command": ["refuse"]}})"));
  const int64_t d3 = deploy("3", "127.0.0.1:8103");
  MUST(c.WaitUntil(
      "deployment paused",
      [&](std::string& seen) {
        seen = State(c, d3);
        return seen == "paused";
      },
      absl::Seconds(60)));
  const std::string paused = JsonString(Deployment(c, d3), "message");
  INFO(paused);
  CHECK(absl::StrContains(paused,
                          "command target 'refuse' (apply 50%): exit 3: load balancer "
                          "said: 503 busy"));
  CHECK(AliasVersion(c) == 2);
}

}  // namespace
}  // namespace assay::e2e
