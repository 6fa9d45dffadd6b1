#include "server/logs/ingest_masks.h"

namespace assay {

void IngestMasks::Remember(const std::string& token, const std::vector<std::string>& values) {
  if (values.empty()) return;
  // Why build outside the lock: indexing the patterns is the costly part.
  auto entry = std::make_shared<Entry>(values);
  {
    absl::MutexLock l(&entry->mu);
    if (entry->masker.empty()) return;  // every value too short to mask
  }
  absl::MutexLock l(&mu_);
  if (by_token_.insert_or_assign(token, std::move(entry)).second) order_.push_back(token);
  while (by_token_.size() > max_attempts_ && !order_.empty()) {
    by_token_.erase(order_.front());
    order_.pop_front();
  }
  // Forgotten tokens leave stale names in order_: drop them once they dominate.
  if (order_.size() > 2 * max_attempts_ + 16) {
    std::deque<std::string> live;
    for (auto& t : order_) {
      if (by_token_.contains(t)) live.push_back(std::move(t));
    }
    order_.swap(live);
  }
}

std::optional<std::string> IngestMasks::Mask(const std::string& token,
                                             std::string_view data) const {
  std::shared_ptr<Entry> entry;
  {
    absl::MutexLock l(&mu_);
    auto it = by_token_.find(token);
    if (it == by_token_.end()) return std::nullopt;
    entry = it->second;
  }
  absl::MutexLock l(&entry->mu);
  std::string out = entry->masker.Mask(data);
  out += entry->masker.Flush();  // nothing held back: each chunk stands alone
  return out;
}

void IngestMasks::Forget(const std::string& token) {
  absl::MutexLock l(&mu_);
  by_token_.erase(token);
}

size_t IngestMasks::size() const {
  absl::MutexLock l(&mu_);
  return by_token_.size();
}

}  // namespace assay
