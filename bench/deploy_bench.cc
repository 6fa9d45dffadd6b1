// assay-bench-deploy: deployments (issue 12, "Tests and benchmarks"). Starts its own
// PostgreSQL, an assay-server, two example model servers (examples/canary), a real HAProxy in
// front of them and a real Prometheus scraping them (tests/support/deploy_world.h), then:
//   1. breach to traffic restored: a canary of version 2 takes 50% of the traffic under a
//      background analysis (error rate over 3 s, every INTERVAL); version 2 is then made to fail
//      every request (POST /control). Measured: from that moment until HAProxy's runtime API
//      shows version 2's server at weight 0 (or gone). The same run is then done by a
//      hand-written loop: the same query polled every INTERVAL, and on a breach the two
//      `set server` commands an operator would send. Target: at most 2 intervals + 1 s.
//   2. requests lost during a switch: 8 clients send requests through HAProxy back to back
//      while a blue-green deployment moves all traffic to version 2; every answer that is not
//      200 and every transport error counts. The same switch by hand-written runtime commands.
//      Target: 0.
// Figures are printed (median and max of RUNS runs); nothing is asserted.
// Usage: assay-bench-deploy [RUNS] [INTERVAL_S]   (default 5 runs, 2 s)

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <thread>

#include <boost/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/net/http_client.h"
#include "server/deploy/analysis.h"
#include "tests/support/cluster.h"
#include "tests/support/deploy_world.h"
#include "tests/support/pg_server.h"

namespace {

namespace json = boost::json;
using assay::testing::Cluster;
using assay::testing::DeployWorld;

template <typename T>
T Must(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) {
    std::cerr << what << ": " << v.status() << "\n";
    std::exit(1);
  }
  return *std::move(v);
}
void Must(absl::Status s, const char* what) {
  if (!s.ok()) {
    std::cerr << what << ": " << s << "\n";
    std::exit(1);
  }
}

// The weight HAProxy gives server `name` of backend llm; -1 when it is absent or in maintenance.
int Weight(const DeployWorld& w, const std::string& name) {
  auto servers = w.Servers();
  if (!servers.ok()) return -2;
  for (const assay::deploy::HaproxyServer& s : *servers) {
    if (s.name == name) return s.maint() ? -1 : s.weight;
  }
  return -1;
}

// Polls every 5 ms until `name` takes no traffic; the time from `since`.
absl::Duration UntilDrained(const DeployWorld& w, const std::string& name, absl::Time since) {
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    const int weight = Weight(w, name);
    if (weight == 0 || weight == -1) return absl::Now() - since;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return absl::InfiniteDuration();
}

// Clients sending requests through HAProxy back to back; counts answers by kind.
struct Load {
  Load(const DeployWorld& w, int clients) {
    for (int i = 0; i < clients; ++i) {
      threads.emplace_back([this, &w] {
        while (!stop.load()) {
          for (const std::string& v : w.Requests(1)) {
            std::lock_guard<std::mutex> l(mu);
            if (absl::StartsWith(v, "error:")) {
              ++errors;
              if (first_error.empty()) first_error = v;
            } else {
              ++ok;
            }
          }
        }
      });
    }
  }
  ~Load() { Stop(); }
  void Stop() {
    stop = true;
    for (auto& t : threads) {
      if (t.joinable()) t.join();
    }
  }
  std::atomic<bool> stop{false};
  std::mutex mu;
  int64_t ok = 0, errors = 0;
  std::string first_error;
  std::vector<std::thread> threads;
};

std::string Stats(std::vector<double> v, const char* unit) {
  if (v.empty()) return "-";
  std::sort(v.begin(), v.end());
  char buf[128];
  std::snprintf(buf, sizeof(buf), "median %.2f %s, max %.2f %s (n=%zu)", v[v.size() / 2], unit,
                v.back(), unit, v.size());
  return buf;
}

std::string Query() { return assay::testing::ErrorRateQuery("3s"); }

// The error rate of version `version` now (NaN when Prometheus has no data).
double ErrorRate(const DeployWorld& w, const std::string& version) {
  std::string q = Query();
  for (size_t at; (at = q.find("{{version}}")) != std::string::npos;) q.replace(at, 11, version);
  auto r = assay::HttpFetch(
      "GET", w.prometheus_url() + "/api/v1/query?query=" + assay::deploy::QueryEscape(q), {}, {},
      absl::Seconds(5));
  if (!r.ok()) return std::nan("");
  auto values = assay::deploy::ParsePrometheusAnswer(r->status, r->body);
  if (!values.ok() || values->empty()) return std::nan("");
  return (*values)[0];
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 5, interval_s = 2;
  if (argc > 1 && (!absl::SimpleAtoi(argv[1], &runs) || runs < 1)) {
    std::cerr << "usage: assay-bench-deploy [RUNS] [INTERVAL_S]\n";
    return 2;
  }
  if (argc > 2 && (!absl::SimpleAtoi(argv[2], &interval_s) || interval_s < 1)) {
    std::cerr << "usage: assay-bench-deploy [RUNS] [INTERVAL_S]\n";
    return 2;
  }
  auto pg = Must(assay::testing::PgServer::Create(), "postgresql");
  assay::testing::ClusterOptions o;
  o.binary_dir = ASSAY_BINARY_DIR;
  o.admin_dsn = pg->admin_dsn();
  o.server_flags = {"--allow-private-hosts", "127.0.0.1"};
  Cluster c(o);
  Must(c.StartServer(), "assay-server");
  auto repo = Must(c.ApiObject("POST", "/api/v1/repos",
                               R"({"name":"acme/llm","clone_url":"https://example.com/l.git"})"),
                   "repo");
  const int64_t repo_id = repo.at("id").as_int64();
  Must(c.Query("INSERT INTO models (name, last_version, created_at, updated_at) VALUES ('bot', 2, "
               "now(), now())"),
       "model");
  Must(c.Query("INSERT INTO model_versions (model_id, version, source_path, files, bytes, "
               "request_sha256, created_at) SELECT m.id, v, 'model/', 0, 0, repeat('a', 64), now() "
               "FROM models m, generate_series(1, 2) v"),
       "versions");
  auto world = Must(DeployWorld::Start(c.dir() + "/world", {"1", "2"}), "world");
  DeployWorld& w = *world;
  Must(w.WaitForScrapes(absl::Seconds(30)), "scrapes");
  const std::string env = absl::StrCat("/api/v1/repos/", repo_id, "/environments/production");
  Must(c.Api("PUT", env,
             absl::StrCat(R"({"target": {"kind": "haproxy", "runtime_api": ")", w.haproxy_runtime(),
                          R"(", "backend": "llm"}})"))
           .status(),
       "environment");
  const std::string fresh = w.server(1).address();
  std::printf("assay-bench-deploy: %d runs, analysis interval %d s, Prometheus scrapes every 1 s\n",
              runs, interval_s);

  // 1. Breach to traffic restored.
  std::vector<double> assay_s, manual_s;
  for (int run = 0; run < runs; ++run) {
    Must(w.Control(1, R"({"error_rate": 0})"), "control");
    Load load(w, 2);
    json::object metric{
        {"name", "error-rate"},
        {"interval", absl::StrCat(interval_s, "s")},
        {"initial_delay", "4s"},
        {"provider", json::object{{"prometheus", json::object{{"address", w.prometheus_url()},
                                                              {"query", Query()}}}}},
        {"success_condition", "result < 0.1"}};
    json::object body{
        {"repo_id", repo_id},
        {"environment", "production"},
        {"model", "bot"},
        {"version", 2},
        {"servers", json::array{json::value(fresh)}},
        {"strategy",
         json::object{
             {"canary",
              json::object{{"steps", json::array{json::object{{"weight", 50}},
                                                 json::object{{"pause", "600s"}}}},
                           {"analysis", json::object{{"metrics", json::array{metric}}}}}}}}};
    auto created =
        Must(c.ApiObject("POST", "/api/v1/deployments", json::serialize(body)), "deploy");
    const std::string id = std::to_string(created.at("id").as_int64());
    const std::string name =
        std::string(created.at("servers").as_array()[0].as_object().at("name").as_string());
    // Steady: two successful measurements.
    Must(c.WaitUntil(
             "two successful measurements",
             [&](std::string& seen) {
               seen = std::to_string(Must(c.QueryInt("SELECT count(*) FROM deployment_events WHERE "
                                                     "deployment_id = " +
                                                     id + " AND data->>'phase' = 'successful'"),
                                          "count"));
               return seen == "2";
             },
             absl::Seconds(60)),
         "steady");
    const absl::Time breach = absl::Now();
    Must(w.Control(1, R"({"error_rate": 1})"), "control");
    assay_s.push_back(absl::ToDoubleSeconds(UntilDrained(w, name, breach)));
    Must(c.WaitUntil("rolled back",
                     [&](std::string& seen) {
                       seen =
                           std::string(Must(c.ApiObject("GET", "/api/v1/deployments/" + id), "get")
                                           .at("state")
                                           .as_string());
                       return seen == "rolled_back";
                     }),
         "rolled back");
    load.Stop();
  }
  // The same by hand: add the canary at half the traffic, poll the query, drain on a breach.
  for (int run = 0; run < runs; ++run) {
    Must(w.Control(1, R"({"error_rate": 0})"), "control");
    const std::string name = absl::StrCat("manual-", run);
    Must(w.Haproxy(absl::StrCat("add server llm/", name, " ", fresh, " weight 128")).status(),
         "add");
    Must(w.Haproxy(absl::StrCat("enable server llm/", name)).status(), "enable");
    Must(w.Haproxy("set server llm/stable-1 weight 128").status(), "weight");
    Load load(w, 2);
    absl::SleepFor(absl::Seconds(6));
    const absl::Time breach = absl::Now();
    Must(w.Control(1, R"({"error_rate": 1})"), "control");
    for (;;) {
      const double rate = ErrorRate(w, "2");
      if (!std::isnan(rate) && rate >= 0.1) break;
      absl::SleepFor(absl::Seconds(interval_s));
    }
    Must(w.Haproxy(absl::StrCat("set server llm/", name, " weight 0")).status(), "drain");
    Must(w.Haproxy("set server llm/stable-1 weight 256").status(), "weight");
    manual_s.push_back(absl::ToDoubleSeconds(UntilDrained(w, name, breach)));
    load.Stop();
    (void)w.Haproxy(absl::StrCat("disable server llm/", name));
  }
  std::printf("breach -> traffic restored, Assay:         %s\n", Stats(assay_s, "s").c_str());
  std::printf("breach -> traffic restored, hand-written:  %s\n", Stats(manual_s, "s").c_str());
  std::printf("  target: <= 2 intervals + 1 s = %d s\n", 2 * interval_s + 1);

  // 2. Requests lost during a switch.
  int64_t assay_lost = 0, assay_total = 0, manual_lost = 0, manual_total = 0;
  std::string first_error;
  for (int run = 0; run < runs; ++run) {
    Must(w.Control(1, R"({"error_rate": 0})"), "control");
    // Version 1 serves everything again first (the last rollback left it so).
    Load load(w, 8);
    absl::SleepFor(absl::Milliseconds(500));
    json::object body{
        {"repo_id", repo_id},
        {"environment", "production"},
        {"model", "bot"},
        {"version", run % 2 == 0 ? 2 : 1},
        {"servers", json::array{json::value(run % 2 == 0 ? fresh : w.server(0).address())}},
        {"strategy", json::object{{"blue_green", json::object{{"scale_down_delay", "1s"}}}}}};
    auto created =
        Must(c.ApiObject("POST", "/api/v1/deployments", json::serialize(body)), "deploy");
    const std::string id = std::to_string(created.at("id").as_int64());
    Must(c.WaitUntil("succeeded",
                     [&](std::string& seen) {
                       seen =
                           std::string(Must(c.ApiObject("GET", "/api/v1/deployments/" + id), "get")
                                           .at("state")
                                           .as_string());
                       return seen == "succeeded";
                     }),
         "switch");
    absl::SleepFor(absl::Milliseconds(500));
    load.Stop();
    assay_lost += load.errors;
    assay_total += load.ok + load.errors;
    if (first_error.empty()) first_error = load.first_error;
  }
  for (int run = 0; run < runs; ++run) {
    // By hand: a fresh server for the other version, switched over and the old one drained.
    const std::string name = absl::StrCat("switch-", run);
    const std::string address = run % 2 == 0 ? fresh : w.server(0).address();
    std::vector<std::string> old;
    for (const assay::deploy::HaproxyServer& s : Must(w.Servers(), "servers")) {
      if (!s.maint() && s.weight != 0) old.push_back(s.name);
    }
    Load load(w, 8);
    absl::SleepFor(absl::Milliseconds(500));
    Must(w.Haproxy(absl::StrCat("add server llm/", name, " ", address, " weight 0")).status(),
         "add");
    Must(w.Haproxy(absl::StrCat("enable server llm/", name)).status(), "enable");
    Must(w.Haproxy(absl::StrCat("set server llm/", name, " weight 256")).status(), "weight");
    for (const std::string& s : old) {
      Must(w.Haproxy(absl::StrCat("set server llm/", s, " weight 0")).status(), "drain");
    }
    absl::SleepFor(absl::Seconds(1));
    for (const std::string& s : old) (void)w.Haproxy(absl::StrCat("disable server llm/", s));
    absl::SleepFor(absl::Milliseconds(500));
    load.Stop();
    manual_lost += load.errors;
    manual_total += load.ok + load.errors;
  }
  std::printf("requests lost in a blue-green switch, Assay:        %lld of %lld\n",
              static_cast<long long>(assay_lost), static_cast<long long>(assay_total));
  std::printf("requests lost in a blue-green switch, hand-written: %lld of %lld\n",
              static_cast<long long>(manual_lost), static_cast<long long>(manual_total));
  if (!first_error.empty()) std::printf("  first error: %s\n", first_error.c_str());
  return 0;
}
