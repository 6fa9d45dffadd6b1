#include "tests/support/deploy_world.h"

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/net/http_client.h"
#include "server/deploy/haproxy.h"

namespace assay::testing {
namespace {

absl::Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// Polls `done` every 20 ms until it holds or `timeout` passes.
bool PollUntil(absl::Duration timeout, const std::function<bool()>& done) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

}  // namespace

std::string ModelServer::address() const { return absl::StrCat("127.0.0.1:", port); }

std::string ErrorRateQuery(const std::string& window) {
  return absl::StrCat("sum(rate(llm_requests_total{version=\"{{version}}\",code=~\"5..\"}[", window,
                      "])) / sum(rate(llm_requests_total{version=\"{{version}}\"}[", window, "]))");
}

absl::StatusOr<std::unique_ptr<DeployWorld>> DeployWorld::Start(
    const std::string& dir, const std::vector<std::string>& versions,
    const std::vector<std::vector<std::string>>& extra_flags) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  std::unique_ptr<DeployWorld> w(new DeployWorld());
  w->dir_ = dir;
  for (size_t i = 0; i < versions.size(); ++i) {
    ModelServer s;
    s.version = versions[i];
    const std::string ready = absl::StrCat(dir, "/model-", i, ".port");
    std::vector<std::string> argv = {
        "/usr/bin/python3", ASSAY_SOURCE_DIR "/examples/canary/model_server.py",
        "--port",           "0",
        "--ready-file",     ready,
        "--version",        versions[i],
        "--latency-ms",     "2",
        "--seed",           std::to_string(7 + i)};
    if (i < extra_flags.size())
      argv.insert(argv.end(), extra_flags[i].begin(), extra_flags[i].end());
    auto p = Process::Start(argv, absl::StrCat(dir, "/model-", i, ".log"));
    if (!p.ok()) return p.status();
    s.process = std::move(*p);
    if (!PollUntil(absl::Seconds(20), [&] {
          std::string text = ReadFileOrEmpty(ready);
          return absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &s.port) && s.port > 0;
        })) {
      return absl::InternalError(
          absl::StrCat("model server ", i, " did not start: ", s.process->LogTail()));
    }
    w->servers_.push_back(std::move(s));
  }

  w->haproxy_frontend_ = FreePort();
  w->haproxy_api_ = FreePort();
  const std::string cfg = absl::StrCat(
      "global\n  stats socket ipv4@127.0.0.1:", w->haproxy_api_,
      " level admin\n  maxconn 2000\n"
      "defaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n"
      "  option http-keep-alive\n"
      "frontend fe\n  bind 127.0.0.1:",
      w->haproxy_frontend_,
      "\n  default_backend llm\n"
      "backend llm\n  balance roundrobin\n  server stable-1 ",
      w->servers_[0].address(), "\n");
  if (absl::Status s = WriteFile(dir + "/haproxy.cfg", cfg); !s.ok()) return s;
  auto h = Process::Start({"/usr/sbin/haproxy", "-db", "-f", dir + "/haproxy.cfg"},
                          dir + "/haproxy.log");
  if (!h.ok()) return h.status();
  w->haproxy_ = std::move(*h);
  if (!PollUntil(absl::Seconds(10), [&] { return w->Haproxy("show info").ok(); })) {
    return absl::InternalError(absl::StrCat("haproxy did not start: ", w->haproxy_->LogTail()));
  }

  w->prometheus_port_ = FreePort();
  std::string targets;
  for (const ModelServer& s : w->servers_) {
    absl::StrAppend(&targets, targets.empty() ? "" : ", ", "'", s.address(), "'");
  }
  const std::string prom = absl::StrCat(
      "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
      "  - job_name: llm\n    static_configs:\n      - targets: [",
      targets, "]\n");
  if (absl::Status s = WriteFile(dir + "/prometheus.yml", prom); !s.ok()) return s;
  auto p = Process::Start({"/usr/bin/prometheus", "--config.file=" + dir + "/prometheus.yml",
                           "--storage.tsdb.path=" + dir + "/tsdb",
                           absl::StrCat("--web.listen-address=127.0.0.1:", w->prometheus_port_)},
                          dir + "/prometheus.log");
  if (!p.ok()) return p.status();
  w->prometheus_ = std::move(*p);
  if (!PollUntil(absl::Seconds(30), [&] {
        auto r = HttpFetch("GET", w->prometheus_url() + "/-/ready", {}, {}, absl::Seconds(2));
        return r.ok() && r->status == 200;
      })) {
    return absl::InternalError(
        absl::StrCat("prometheus did not start: ", w->prometheus_->LogTail()));
  }
  return w;
}

DeployWorld::~DeployWorld() {
  if (prometheus_) prometheus_->Stop(absl::Seconds(5));
  if (haproxy_) haproxy_->Stop(absl::Seconds(5));
  for (ModelServer& s : servers_) {
    if (s.process) s.process->Stop(absl::Seconds(3));
  }
}

std::string DeployWorld::haproxy_runtime() const {
  return absl::StrCat("127.0.0.1:", haproxy_api_);
}
std::string DeployWorld::frontend_url() const {
  return absl::StrCat("http://127.0.0.1:", haproxy_frontend_, "/v1/completions");
}
std::string DeployWorld::prometheus_url() const {
  return absl::StrCat("http://127.0.0.1:", prometheus_port_);
}

absl::StatusOr<std::vector<deploy::HaproxyServer>> DeployWorld::Servers() const {
  deploy::HaproxyRuntime runtime(haproxy_runtime(), nullptr, absl::Seconds(5));
  return runtime.Servers("llm");
}

absl::StatusOr<std::string> DeployWorld::Haproxy(const std::string& command) const {
  deploy::HaproxyRuntime runtime(haproxy_runtime(), nullptr, absl::Seconds(5));
  return runtime.Command(command);
}

absl::Status DeployWorld::Control(size_t i, const std::string& json) {
  auto r = HttpFetch("POST", absl::StrCat("http://", servers_[i].address(), "/control"), {}, json,
                     absl::Seconds(5));
  if (!r.ok()) return r.status();
  if (r->status != 200) {
    return absl::InternalError(absl::StrCat("/control answered ", r->status, ": ", r->body));
  }
  return absl::OkStatus();
}

std::vector<std::string> DeployWorld::Requests(int n, int words) const {
  std::vector<std::string> out;
  std::string prompt = "hello";
  for (int i = 1; i < words; ++i) prompt += "%20hello";
  for (int i = 0; i < n; ++i) {
    auto r = HttpFetch("GET", frontend_url() + "?prompt=" + prompt, {}, {}, absl::Seconds(10));
    if (!r.ok()) {
      out.push_back(absl::StrCat("error:", r.status().message()));
    } else if (r->status != 200) {
      out.push_back(absl::StrCat("error:", r->status));
    } else {
      out.push_back(r->Header("X-Model-Version"));
    }
  }
  return out;
}

absl::Status DeployWorld::WaitForScrapes(absl::Duration timeout) {
  const std::string url = prometheus_url() + "/api/v1/query?query=count(up%3D%3D1)";
  std::string last;
  if (PollUntil(timeout, [&] {
        auto r = HttpFetch("GET", url, {}, {}, absl::Seconds(2));
        if (!r.ok()) return false;
        last = r->body;
        return absl::StrContains(r->body, absl::StrCat("\"", servers_.size(), "\"]"));
      })) {
    return absl::OkStatus();
  }
  return absl::DeadlineExceededError(
      absl::StrCat("prometheus has not scraped every model server: ", last, "\n", LogTails()));
}

std::string DeployWorld::LogTails() const {
  std::string out;
  for (const ModelServer& s : servers_) {
    absl::StrAppend(&out, "--- model server ", s.version, "\n", s.process->LogTail(1500));
  }
  if (haproxy_) absl::StrAppend(&out, "--- haproxy\n", haproxy_->LogTail(1500));
  if (prometheus_) absl::StrAppend(&out, "--- prometheus\n", prometheus_->LogTail(1500));
  return out;
}

}  // namespace assay::testing
