#include "server/store/listener.h"

#include <map>
#include <memory>
#include <pqxx/pqxx>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/log.h"

namespace assay::store {
namespace {

// Takes one channel's notifications and hands them to its callbacks.
class Receiver : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& c, const std::string& channel,
           std::vector<const Listener::Callback*> callbacks, std::atomic<int64_t>* received)
      : pqxx::notification_receiver(c, channel),
        callbacks_(std::move(callbacks)),
        received_(received) {}

  void operator()(const std::string& payload, int /*backend_pid*/) override {
    received_->fetch_add(1);
    for (const auto* cb : callbacks_) (*cb)(payload);
  }

 private:
  std::vector<const Listener::Callback*> callbacks_;
  std::atomic<int64_t>* received_;
};

// The DSN with a bounded connect: libpq's default waits for the TCP connect as long as the OS.
std::string WithConnectTimeout(const std::string& dsn, int seconds) {
  if (absl::StrContains(dsn, "connect_timeout")) return dsn;
  const std::string kv = absl::StrCat("connect_timeout=", seconds);
  if (absl::StartsWith(dsn, "postgresql://") || absl::StartsWith(dsn, "postgres://")) {
    return absl::StrCat(dsn, absl::StrContains(dsn, "?") ? "&" : "?", kv);
  }
  return absl::StrCat(dsn, dsn.empty() ? "" : " ", kv);
}

}  // namespace

Listener::Listener(std::string dsn, ListenerOptions options)
    : dsn_(WithConnectTimeout(dsn, options.connect_timeout_s)), options_(options) {}

Listener::~Listener() { Stop(); }

void Listener::Listen(std::string channel, Callback callback) {
  channels_.emplace_back(std::move(channel), std::move(callback));
}

void Listener::OnReconnect(std::function<void()> callback) {
  on_reconnect_.push_back(std::move(callback));
}

void Listener::Start() {
  if (thread_.joinable()) return;
  {
    absl::MutexLock l(&mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] { Run(); });
}

void Listener::Stop() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool Listener::SleepUnlessStopping(absl::Duration d) {
  absl::MutexLock l(&mu_);
  auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
  return !mu_.AwaitWithTimeout(absl::Condition(&stop), d);
}

void Listener::Run() {
  absl::Duration backoff = options_.min_backoff;
  bool warned = false;
  for (;;) {
    {
      absl::MutexLock l(&mu_);
      if (stopping_) return;
    }
    const int64_t before = connections_.load();
    const std::string error = ServeOnce();
    if (connections_.load() != before) {
      // It was connected, so this is a fresh outage: retry soon, and say so once.
      backoff = options_.min_backoff;
      warned = false;
    }
    if (!warned && !error.empty()) {
      LogWarn("listener", "not listening to PostgreSQL notifications (reconnecting): ", error);
      warned = true;
    }
    if (!SleepUnlessStopping(backoff)) return;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

std::string Listener::ServeOnce() {
  const long wait_us = static_cast<long>(absl::ToInt64Microseconds(options_.wait));
  try {
    pqxx::connection conn(dsn_);
    std::map<std::string, std::vector<const Callback*>> by_channel;
    for (const auto& [channel, cb] : channels_) by_channel[channel].push_back(&cb);
    // Why declared after conn: receivers unregister from the connection when destroyed.
    std::vector<std::unique_ptr<Receiver>> receivers;
    for (auto& [channel, cbs] : by_channel) {
      receivers.push_back(std::make_unique<Receiver>(conn, channel, cbs, &received_));
    }
    // LISTEN is sent by each receiver's constructor; a round trip makes sure it took effect
    // before the users re-scan.
    {
      pqxx::nontransaction tx(conn);
      tx.exec("SELECT 1");
    }
    listening_ = true;
    connections_.fetch_add(1);
    if (connections_.load() > 1) LogInfo("listener", "listening again");
    for (const auto& cb : on_reconnect_) cb();
    absl::Time last_heard = absl::Now();
    for (;;) {
      {
        absl::MutexLock l(&mu_);
        if (stopping_) break;
      }
      if (conn.await_notification(wait_us / 1000000, wait_us % 1000000) > 0) {
        last_heard = absl::Now();
      } else if (!conn.is_open()) {
        throw pqxx::broken_connection("the LISTEN connection closed");
      } else if (absl::Now() - last_heard >= options_.probe_interval) {
        pqxx::nontransaction tx(conn);
        tx.exec("SELECT 1");
        last_heard = absl::Now();
      }
    }
    listening_ = false;
    receivers.clear();
    return "";
  } catch (const std::exception& e) {
    listening_ = false;
    return e.what();
  }
}

}  // namespace assay::store
