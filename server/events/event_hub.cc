#include "server/events/event_hub.h"

#include <boost/json.hpp>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace assay::events {
namespace {

bool PlainWord(const std::string& s) {
  if (s.empty() || s.size() > 32) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-')) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string SseFrame(int64_t seq, const std::string& json) {
  std::string type = "message", data;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(json, ec);
  if (!ec && v.is_object()) {
    // Compact, whatever spacing the database used (json_build_object writes "k" : v).
    data = boost::json::serialize(v);
    if (const auto* t = v.as_object().if_contains("type"); t != nullptr && t->is_string()) {
      std::string name(t->as_string());
      if (PlainWord(name)) type = std::move(name);
    }
  } else {
    data = json;
  }
  // One line only: a newline would end the SSE field early (and could forge another field).
  std::replace(data.begin(), data.end(), '\n', ' ');
  std::replace(data.begin(), data.end(), '\r', ' ');
  return absl::StrCat("id: ", seq, "\nevent: ", type, "\ndata: ", data, "\n\n");
}

Subscription::~Subscription() { hub_->Unsubscribe(this); }
void Subscription::Next(Sink sink) { hub_->Next(this, std::move(sink)); }

EventHub::EventHub(HubOptions options) : options_(options) {}
EventHub::~EventHub() { Stop(); }

void EventHub::Attach(store::Listener* listener) {
  listener->Listen("assay_events", [this](const std::string& payload) { Publish(payload); });
  listener->OnReconnect([this] { ResyncAll(); });
}

void EventHub::Start() {
  absl::MutexLock lock(&mu_);
  if (started_ || stopped_) return;
  started_ = true;
  timer_ = std::thread([this] { Timer(); });
}

void EventHub::Stop() {
  std::vector<Subscription::Sink> sinks;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    for (auto& [s, sub] : subs_) {
      if (sub.sink) sinks.push_back(std::exchange(sub.sink, nullptr));
    }
  }
  for (auto& sink : sinks) sink(std::string());
  if (timer_.joinable()) timer_.join();
}

std::unique_ptr<Subscription> EventHub::Subscribe() {
  absl::MutexLock lock(&mu_);
  if (stopped_ || static_cast<int>(subs_.size()) >= options_.max_subscribers) return nullptr;
  std::unique_ptr<Subscription> s(new Subscription(this));
  Sub sub;
  // Browsers reconnect after `retry` ms when a stream ends; then they fetch afresh.
  sub.queue.push_back(absl::StrCat("retry: 3000\n\n", SseFrame(++seq_, R"({"type":"hello"})")));
  subs_.emplace_back(s.get(), std::move(sub));
  return s;
}

void EventHub::Unsubscribe(Subscription* s) {
  Subscription::Sink orphan;
  {
    absl::MutexLock lock(&mu_);
    auto it = std::find_if(subs_.begin(), subs_.end(), [s](const auto& p) { return p.first == s; });
    if (it == subs_.end()) return;
    orphan = std::move(it->second.sink);
    subs_.erase(it);
  }
  if (orphan) orphan(std::string());
}

std::string EventHub::Drain(Sub& sub) {
  std::string out;
  if (sub.overflowed) {
    out = SseFrame(++seq_, R"({"type":"resync"})");
    sub.overflowed = false;
  }
  for (std::string& e : sub.queue) out += e;
  sub.queue.clear();
  return out;
}

void EventHub::Next(Subscription* s, Subscription::Sink sink) {
  std::string piece;
  bool now = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = std::find_if(subs_.begin(), subs_.end(), [s](const auto& p) { return p.first == s; });
    if (stopped_ || it == subs_.end()) {
      now = true;
    } else if (!it->second.queue.empty() || it->second.overflowed) {
      piece = Drain(it->second);
      now = true;
    } else {
      it->second.sink = std::move(sink);
      it->second.deadline = absl::Now() + options_.keepalive;
    }
  }
  if (now) sink(std::move(piece));
}

void EventHub::Deliver(const std::string& json, bool resync) {
  std::vector<std::pair<Subscription::Sink, std::string>> ready;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    const std::string framed = resync ? std::string() : SseFrame(++seq_, json);
    for (auto& [s, sub] : subs_) {
      if (resync) {
        sub.queue.clear();
        sub.overflowed = true;
      } else if (sub.queue.size() >= options_.max_queued) {
        sub.queue.clear();
        sub.overflowed = true;
      } else if (!sub.overflowed) {
        sub.queue.push_back(framed);
      }
      if (sub.sink) ready.emplace_back(std::exchange(sub.sink, nullptr), Drain(sub));
    }
  }
  for (auto& [sink, piece] : ready) sink(std::move(piece));
}

void EventHub::Publish(const std::string& json) { Deliver(json, false); }
void EventHub::ResyncAll() { Deliver("", true); }

int EventHub::subscribers() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(subs_.size());
}

void EventHub::Timer() {
  for (;;) {
    std::vector<Subscription::Sink> due;
    {
      absl::MutexLock lock(&mu_);
      if (stopped_) return;
      const absl::Time now = absl::Now();
      absl::Time next = now + options_.keepalive;
      for (auto& [s, sub] : subs_) {
        if (!sub.sink) continue;
        if (sub.deadline <= now) {
          due.push_back(std::exchange(sub.sink, nullptr));
        } else {
          next = std::min(next, sub.deadline);
        }
      }
      if (due.empty()) {
        mu_.AwaitWithDeadline(absl::Condition(&stopped_), next);
        continue;
      }
    }
    for (auto& sink : due) sink(std::string(": keepalive\n\n"));
  }
}

}  // namespace assay::events
