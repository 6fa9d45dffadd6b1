#include "agent/stream_writer.h"

#include <utility>

namespace assay {

StreamWriter::StreamWriter(WriteFn write, std::function<void()> on_overflow, size_t max_messages,
                           size_t max_bytes)
    : write_(std::move(write)),
      on_overflow_(std::move(on_overflow)),
      max_messages_(max_messages),
      max_bytes_(max_bytes),
      thread_([this] { Loop(); }) {}

StreamWriter::~StreamWriter() {
  Close();
  thread_.join();
}

bool StreamWriter::Push(v1::AgentMessage m) {
  const size_t size = m.ByteSizeLong();
  {
    absl::MutexLock l(&mu_);
    if (closed_ || overflowed_) return false;
    if (queue_.size() < max_messages_ && bytes_ + size <= max_bytes_) {
      bytes_ += size;
      queue_.push_back(std::move(m));
      return true;
    }
    overflowed_ = true;
  }
  on_overflow_();  // once: every later Push returns above
  return false;
}

bool StreamWriter::PushWhenRoom(v1::AgentMessage m) {
  const size_t size = m.ByteSizeLong();
  absl::MutexLock l(&mu_);
  auto room = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closed_ || overflowed_ ||
           (2 * (queue_.size() + 1) <= max_messages_ && 2 * (bytes_ + size) <= max_bytes_) ||
           queue_.empty();  // a message larger than half the bytes still goes alone
  };
  mu_.Await(absl::Condition(&room));
  if (closed_ || overflowed_) return false;
  bytes_ += size;
  queue_.push_back(std::move(m));
  return true;
}

bool StreamWriter::WaitForRoom() {
  absl::MutexLock l(&mu_);
  auto room = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closed_ || overflowed_ ||
           (2 * (queue_.size() + 1) <= max_messages_ && 2 * bytes_ <= max_bytes_);
  };
  mu_.Await(absl::Condition(&room));
  return !closed_ && !overflowed_;
}

void StreamWriter::Close() {
  absl::MutexLock l(&mu_);
  closed_ = true;
  queue_.clear();
  bytes_ = 0;
}

void StreamWriter::Loop() {
  while (true) {
    v1::AgentMessage m;
    {
      absl::MutexLock l(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return closed_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (closed_) return;
      m = std::move(queue_.front());
      queue_.pop_front();
      bytes_ -= m.ByteSizeLong();
    }
    if (!write_(m)) {
      // The stream broke; its reader notices and the agent reconnects, resending from its
      // own buffers. Nothing more can be written here.
      Close();
      return;
    }
  }
}

}  // namespace assay
