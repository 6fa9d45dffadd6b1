#pragma once
// The world of the deployment tests and benchmark (issue 12): real model servers
// (examples/canary/model_server.py), a real HAProxy from Debian in front of them (its runtime
// API on a loopback port, the first server as the stable version of backend `llm`), and a real
// Prometheus scraping every model server once a second. Everything listens on 127.0.0.1 and
// stops with the object. Not thread-safe.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/deploy/haproxy.h"
#include "tests/support/process.h"

namespace assay::testing {

struct ModelServer {
  std::string version;
  int port = 0;
  std::unique_ptr<Process> process;
  std::string address() const;  // 127.0.0.1:PORT
};

class DeployWorld {
 public:
  // Starts `versions.size()` model servers (versions[i] is the i-th one's --version, with
  // `extra_flags[i]` when given), HAProxy with the first as server "stable-1" of backend "llm",
  // and Prometheus scraping them all. `dir` holds configs and logs.
  static absl::StatusOr<std::unique_ptr<DeployWorld>> Start(
      const std::string& dir, const std::vector<std::string>& versions,
      const std::vector<std::vector<std::string>>& extra_flags = {});
  ~DeployWorld();

  ModelServer& server(size_t i) { return servers_[i]; }
  std::string haproxy_runtime() const;  // 127.0.0.1:PORT
  std::string frontend_url() const;     // http://127.0.0.1:PORT/v1/completions
  std::string prometheus_url() const;   // http://127.0.0.1:PORT

  // Backend "llm"'s servers, as HaproxyRuntime::Servers reads them.
  absl::StatusOr<std::vector<deploy::HaproxyServer>> Servers() const;
  // One HAProxy runtime API command's answer.
  absl::StatusOr<std::string> Haproxy(const std::string& command) const;
  // POST /control to model server i (e.g. {"error_rate": 0.5}).
  absl::Status Control(size_t i, const std::string& json);
  // `n` requests through HAProxy, each with a prompt of `words` words: the versions that
  // answered (X-Model-Version), in order; a transport error or non-200 answer is
  // "error:<what>".
  std::vector<std::string> Requests(int n, int words = 1) const;
  // Waits until Prometheus has scraped every model server at least once.
  absl::Status WaitForScrapes(absl::Duration timeout);
  std::string LogTails() const;

 private:
  std::string dir_;
  std::vector<ModelServer> servers_;
  int haproxy_frontend_ = 0, haproxy_api_ = 0, prometheus_port_ = 0;
  std::unique_ptr<Process> haproxy_, prometheus_;
};

// PromQL of the example server's error rate for the version being deployed, over `window`.
std::string ErrorRateQuery(const std::string& window = "5s");

}  // namespace assay::testing
