// EventHub (server/events/event_hub.h): SSE framing, delivery to waiting and queued
// subscribers, the queue bound and its resync, keepalives, the subscriber bound, and stopping.

#include "server/events/event_hub.h"

#include <catch2/catch.hpp>
#include <optional>
#include <string>

#include "absl/synchronization/notification.h"

namespace assay::events {
namespace {

// The next piece of `s`, waiting at most `timeout`.
std::optional<std::string> NextPiece(Subscription& s, absl::Duration timeout = absl::Seconds(10)) {
  auto done = std::make_shared<absl::Notification>();
  auto piece = std::make_shared<std::string>();
  s.Next([done, piece](absl::StatusOr<std::string> p) {
    *piece = p.ok() ? *p : "error";
    done->Notify();
  });
  if (!done->WaitForNotificationWithTimeout(timeout)) return std::nullopt;
  return *piece;
}

TEST_CASE("event hub: SSE frames name the event and stay one line", "[events]") {
  CHECK(SseFrame(7, R"({"type":"job","id":3,"state":"running"})") ==
        "id: 7\nevent: job\ndata: {\"type\":\"job\",\"id\":3,\"state\":\"running\"}\n\n");
  CHECK(SseFrame(1, R"({"id":3})") == "id: 1\nevent: message\ndata: {\"id\":3}\n\n");
  // A type that is not a plain word; raw newlines (not JSON, so sent as given) that would
  // start a forged field become spaces.
  CHECK(SseFrame(2, R"({"type":"a b"})") == "id: 2\nevent: message\ndata: {\"type\":\"a b\"}\n\n");
  CHECK(SseFrame(3, "{\"type\":\"x\",\"v\":\"1\ndata: forged\r\n\"}") ==
        "id: 3\nevent: message\ndata: {\"type\":\"x\",\"v\":\"1 data: forged  \"}\n\n");
  // The database's spacing is compacted.
  CHECK(SseFrame(4, R"({"type" : "pipeline", "id" : 5})") ==
        "id: 4\nevent: pipeline\ndata: {\"type\":\"pipeline\",\"id\":5}\n\n");
}

TEST_CASE("event hub: hello first, then events to waiting and to queued subscribers", "[events]") {
  EventHub hub;
  hub.Start();
  auto a = hub.Subscribe();
  REQUIRE(a != nullptr);
  CHECK(NextPiece(*a) == "retry: 3000\n\nid: 1\nevent: hello\ndata: {\"type\":\"hello\"}\n\n");
  // Queued while nobody waits: both come in one piece.
  hub.Publish(R"({"type":"pipeline","id":1})");
  hub.Publish(R"({"type":"job","id":2})");
  CHECK(NextPiece(*a) ==
        "id: 2\nevent: pipeline\ndata: {\"type\":\"pipeline\",\"id\":1}\n\n"
        "id: 3\nevent: job\ndata: {\"type\":\"job\",\"id\":2}\n\n");
  // A waiting subscriber is called by Publish itself.
  auto done = std::make_shared<absl::Notification>();
  std::string got;
  a->Next([&got, done](absl::StatusOr<std::string> p) {
    got = *p;
    done->Notify();
  });
  hub.Publish(R"({"type":"job","id":4})");
  REQUIRE(done->WaitForNotificationWithTimeout(absl::Seconds(10)));
  CHECK(got == "id: 4\nevent: job\ndata: {\"type\":\"job\",\"id\":4}\n\n");
  CHECK(hub.subscribers() == 1);
  a.reset();
  CHECK(hub.subscribers() == 0);
}

TEST_CASE("event hub: a subscriber that falls behind gets one resync, not a growing queue",
          "[events]") {
  HubOptions o;
  o.max_queued = 3;
  EventHub hub(o);
  hub.Start();
  auto a = hub.Subscribe();
  REQUIRE(NextPiece(*a).has_value());  // hello
  for (int i = 0; i < 10; ++i) hub.Publish(R"({"type":"job","id":1})");
  const std::string piece = NextPiece(*a).value();
  CHECK(piece.find("event: resync") != std::string::npos);
  CHECK(piece.find("event: job") == std::string::npos);
  // After it, events flow again.
  hub.Publish(R"({"type":"job","id":9})");
  CHECK(NextPiece(*a).value().find("\"id\":9") != std::string::npos);
  // The listener reconnected: everyone resyncs.
  hub.ResyncAll();
  CHECK(NextPiece(*a).value().find("event: resync") != std::string::npos);
}

TEST_CASE("event hub: keepalives while idle, a bound on subscribers, Stop ends every stream",
          "[events]") {
  HubOptions o;
  o.keepalive = absl::Milliseconds(50);
  o.max_subscribers = 2;
  EventHub hub(o);
  hub.Start();
  auto a = hub.Subscribe();
  auto b = hub.Subscribe();
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  CHECK(hub.Subscribe() == nullptr);
  REQUIRE(NextPiece(*a).has_value());
  CHECK(NextPiece(*a) == ": keepalive\n\n");
  // A waiting stream ends with "" at Stop; later ones too; no new subscriber.
  REQUIRE(NextPiece(*b).has_value());
  auto done = std::make_shared<absl::Notification>();
  std::string got = "unset";
  b->Next([&got, done](absl::StatusOr<std::string> p) {
    got = *p;
    done->Notify();
  });
  hub.Stop();
  REQUIRE(done->WaitForNotificationWithTimeout(absl::Seconds(10)));
  CHECK(got.empty());
  CHECK(NextPiece(*a) == "");
  CHECK(hub.Subscribe() == nullptr);
}

}  // namespace
}  // namespace assay::events
