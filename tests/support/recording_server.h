#pragma once
// A local HTTP endpoint standing in for a remote service the tests cannot run here (an
// OpenTelemetry collector, a Kubernetes API server): it records every request exactly as it
// arrived and answers from a script, then with a default answer. Header-only, so that unit, db
// and e2e tests can all use it.

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "server/http/http_server.h"

namespace assay::testing {

// One scripted answer of a RecordingServer.
struct HttpAnswer {
  int status = 200;
  std::string body = "{}";
};

class RecordingServer {
 public:
  using Answer = HttpAnswer;
  // `script`: the first answers, in order; after them `fallback`, or (echo_body) 200 with the
  // request's own body (as an API server answers an apply with the object), "{}" for none.
  explicit RecordingServer(std::deque<HttpAnswer> script = {}, HttpAnswer fallback = HttpAnswer(),
                           bool echo_body = false)
      : script_(std::move(script)),
        fallback_(std::move(fallback)),
        echo_body_(echo_body),
        server_(http::ServerOptions{}, [this](http::Request& r) { return Handle(r); }) {
    absl::Status s = server_.Start();
    if (!s.ok()) throw std::runtime_error("recording server: " + std::string(s.message()));
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_.port()); }

  std::vector<http::Request> requests() {
    std::lock_guard<std::mutex> l(mu_);
    return requests_;
  }
  void Clear() {
    std::lock_guard<std::mutex> l(mu_);
    requests_.clear();
  }
  // Waits up to `timeout` until `done(requests)`; whether it came to be.
  bool WaitFor(const std::function<bool(const std::vector<http::Request>&)>& done,
               absl::Duration timeout = absl::Seconds(60)) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, absl::ToChronoMilliseconds(timeout), [&] { return done(requests_); });
  }

  // A request's header by name, ignoring case; "<none>" when absent.
  static std::string Header(const http::Request& r, std::string_view name) {
    for (const auto& [k, v] : r.headers) {
      if (absl::EqualsIgnoreCase(k, absl::string_view(name.data(), name.size()))) return v;
    }
    return "<none>";
  }

 private:
  http::Response Handle(http::Request& r) {
    std::lock_guard<std::mutex> l(mu_);
    requests_.push_back(r);
    cv_.notify_all();
    Answer a = fallback_;
    if (!script_.empty()) {
      a = script_.front();
      script_.pop_front();
    } else if (echo_body_) {
      a = {200, r.body.empty() ? "{}" : r.body};
    }
    http::Response resp;
    resp.status = a.status;
    resp.body = a.body;
    return resp;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Answer> script_;
  const Answer fallback_;
  const bool echo_body_;
  std::vector<http::Request> requests_;
  http::Server server_;  // last: stopped (its destructor) before the rest goes
};

}  // namespace assay::testing
