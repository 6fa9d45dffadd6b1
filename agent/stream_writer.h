#pragma once
// The writes of one agent stream, off the agent's state mutex: Push queues a message and
// never blocks; one thread writes the queue in order. Why: a gRPC write blocks while the
// server or the network is slow, and the agent's state (jobs, acks, cancels) must not wait
// for it.

#include <deque>
#include <functional>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "assay/v1/agent.pb.h"

namespace assay {

class StreamWriter {
 public:
  // Writes one message; false once the stream is broken. Called from the writer thread only.
  using WriteFn = std::function<bool(const v1::AgentMessage&)>;

  // The queue holds at most `max_messages` messages and `max_bytes` bytes (serialized
  // sizes). When a message does not fit, Push drops it and calls `on_overflow` (once per
  // writer), which should end the stream: a stream that has not taken this much is stuck,
  // and the reconnect resends what matters from the agent's own buffers (unacknowledged log
  // chunks, unacknowledged results; heartbeats are periodic). `write` and `on_overflow` must
  // stay callable until this writer is destroyed.
  StreamWriter(WriteFn write, std::function<void()> on_overflow, size_t max_messages = 1024,
               size_t max_bytes = 16 << 20);
  // Closes, then joins the thread: that waits for a write in progress, which returns once
  // the stream has ended.
  ~StreamWriter();
  StreamWriter(const StreamWriter&) = delete;
  StreamWriter& operator=(const StreamWriter&) = delete;

  // Queues `m`; false when it was dropped (the queue is full or overflowed before, or the
  // writer is closed or its stream broke). Never blocks on the stream. Thread-safe.
  bool Push(v1::AgentMessage m);
  // Queues `m` once the queue is at most half full (by count and bytes), waiting for the
  // stream to take what is ahead; for backlogs, so that Push keeps room. False when the
  // writer closed, its stream broke or it overflowed meanwhile (`m` is dropped).
  bool PushWhenRoom(v1::AgentMessage m);
  // Waits until the queue is at most half full (by count and bytes), as PushWhenRoom does
  // before it queues; false when the writer closed, its stream broke or it overflowed. For a
  // caller that must Push under its own lock, in order with other Pushes.
  bool WaitForRoom();
  // Stops taking messages and drops those not yet written (the stream is ending).
  void Close();

 private:
  void Loop();

  const WriteFn write_;
  const std::function<void()> on_overflow_;
  const size_t max_messages_, max_bytes_;
  absl::Mutex mu_;
  std::deque<v1::AgentMessage> queue_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool overflowed_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts once the rest is ready
};

}  // namespace assay
