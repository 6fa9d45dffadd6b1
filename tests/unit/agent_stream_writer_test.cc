// The agent's stream writer: Push never waits for a blocked write, the queue's bounds and
// what a full queue does (drop, one overflow call, nothing more taken), order, and a paced
// backlog that leaves room for live messages.

#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "agent/stream_writer.h"

namespace assay {
namespace {

v1::AgentMessage Log(uint64_t seq, size_t bytes = 1) {
  v1::AgentMessage m;
  m.mutable_log()->set_job_id(7);
  m.mutable_log()->set_seq(seq);
  m.mutable_log()->set_data(std::string(bytes, 'x'));
  return m;
}

// A stream whose writes block until Release(); records what was written, in order.
class GatedStream {
 public:
  bool Write(const v1::AgentMessage& m) {
    absl::MutexLock l(&mu_);
    ++entered_;
    auto open = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return released_; };
    mu_.Await(absl::Condition(&open));
    written_.push_back(m.log().seq());
    return !broken_;
  }
  void Release(bool broken = false) {
    absl::MutexLock l(&mu_);
    released_ = true;
    broken_ = broken;
  }
  // Waits (bounded: 20 s) until `n` writes have begun.
  bool AwaitEntered(int n) {
    absl::MutexLock l(&mu_);
    auto done = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return entered_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(20));
  }
  bool AwaitWritten(size_t n) {
    absl::MutexLock l(&mu_);
    auto done = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return written_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(20));
  }
  std::vector<uint64_t> Written() {
    absl::MutexLock l(&mu_);
    return written_;
  }

 private:
  absl::Mutex mu_;
  int entered_ ABSL_GUARDED_BY(mu_) = 0;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<uint64_t> written_ ABSL_GUARDED_BY(mu_);
};

TEST_CASE(
    "stream writer: pushes do not wait for a blocked write, a full queue drops and "
    "calls the overflow once",
    "[agent]") {
  GatedStream stream;
  int overflows = 0;
  StreamWriter w([&](const v1::AgentMessage& m) { return stream.Write(m); }, [&] { ++overflows; },
                 /*max_messages=*/3, /*max_bytes=*/1 << 20);
  REQUIRE(w.Push(Log(1)));
  REQUIRE(stream.AwaitEntered(1));  // the writer is stuck in the first write
  CHECK(w.Push(Log(2)));
  CHECK(w.Push(Log(3)));
  CHECK(w.Push(Log(4)));
  CHECK(overflows == 0);
  CHECK_FALSE(w.Push(Log(5)));  // three queued behind the blocked write: full
  CHECK(overflows == 1);
  CHECK_FALSE(w.Push(Log(6)));  // overflowed: nothing more is taken, no second call
  CHECK(overflows == 1);

  stream.Release();
  REQUIRE(stream.AwaitWritten(4));
  CHECK(stream.Written() == std::vector<uint64_t>{1, 2, 3, 4});
}

TEST_CASE("stream writer: the byte bound", "[agent]") {
  GatedStream stream;
  int overflows = 0;
  const size_t kOne = Log(1, 1000).ByteSizeLong();
  StreamWriter w([&](const v1::AgentMessage& m) { return stream.Write(m); }, [&] { ++overflows; },
                 /*max_messages=*/100, /*max_bytes=*/2 * kOne);
  REQUIRE(w.Push(Log(1, 1000)));
  REQUIRE(stream.AwaitEntered(1));
  CHECK(w.Push(Log(2, 1000)));
  CHECK(w.Push(Log(3, 1000)));
  CHECK_FALSE(w.Push(Log(4, 1)));
  CHECK(overflows == 1);
  stream.Release();
  REQUIRE(stream.AwaitWritten(3));
  CHECK(stream.Written() == std::vector<uint64_t>{1, 2, 3});
}

TEST_CASE("stream writer: a broken stream or Close drops what follows", "[agent]") {
  GatedStream stream;
  int overflows = 0;
  StreamWriter w([&](const v1::AgentMessage& m) { return stream.Write(m); }, [&] { ++overflows; },
                 10, 1 << 20);
  REQUIRE(w.Push(Log(1)));
  REQUIRE(stream.AwaitEntered(1));
  stream.Release(/*broken=*/true);
  REQUIRE(stream.AwaitWritten(1));
  // The writer closes itself once its write failed; a push then returns false (bounded wait
  // for the writer thread to get there).
  bool dropped = false;
  for (int i = 0; i < 2000 && !dropped; ++i) {
    dropped = !w.Push(Log(100 + i));
    if (!dropped) absl::SleepFor(absl::Milliseconds(10));
  }
  CHECK(dropped);
  CHECK(overflows == 0);
  w.Close();
  CHECK_FALSE(w.Push(Log(9)));
  CHECK_FALSE(w.PushWhenRoom(Log(10)));
}

TEST_CASE("stream writer: a paced backlog waits for room and leaves half the queue free",
          "[agent]") {
  GatedStream stream;
  int overflows = 0;
  StreamWriter w([&](const v1::AgentMessage& m) { return stream.Write(m); }, [&] { ++overflows; },
                 /*max_messages=*/4, /*max_bytes=*/1 << 20);
  REQUIRE(w.Push(Log(1)));
  REQUIRE(stream.AwaitEntered(1));
  REQUIRE(w.PushWhenRoom(Log(2)));
  REQUIRE(w.PushWhenRoom(Log(3)));  // two queued: half of four
  absl::Notification backlog_done;
  std::thread backlog([&] {
    for (uint64_t seq = 4; seq <= 9; ++seq) {
      if (!w.PushWhenRoom(Log(seq))) break;
    }
    backlog_done.Notify();
  });
  // The backlog waits; live messages still fit in the other half.
  CHECK(w.Push(Log(50)));
  CHECK(w.Push(Log(51)));
  CHECK(overflows == 0);
  CHECK_FALSE(backlog_done.HasBeenNotified());
  stream.Release();
  CHECK(backlog_done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  backlog.join();
  REQUIRE(stream.AwaitWritten(11));
  // The live messages went ahead of the backlog that waited behind them.
  CHECK(stream.Written() == std::vector<uint64_t>{1, 2, 3, 50, 51, 4, 5, 6, 7, 8, 9});
  CHECK(overflows == 0);
}

}  // namespace
}  // namespace assay
