#pragma once
// Masking of job logs at ingest, on the server (issue 9, secrets; defence in depth). The agent
// masks a job's output before sending it (common/base/secret_masker.h); the server masks the
// chunks it stores once more with the values the attempt was given at dispatch, so that an
// agent that does not mask (an older version, a bug) leaks no value into the stored and live
// log. Each chunk is masked on its own: a stored chunk must be the same bytes whenever it is
// (re)sent, so nothing is held back across chunks, and a value split across two chunks is left
// to the agent's masker. The values live only in this server's memory, from the assignment
// on the stream that sends it until the attempt's result is recorded; after the agent
// reconnects to another replica, that replica stores the chunks as the agent masked them.
//
// Thread-safe.

#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/base/secret_masker.h"

namespace assay {

class IngestMasks {
 public:
  // Remembers at most `max_attempts` attempts; past that the oldest is forgotten (an attempt
  // whose result never arrives, e.g. it was lost with its agent, is not kept for ever).
  explicit IngestMasks(size_t max_attempts = 4096) : max_attempts_(max_attempts) {}

  // Masks the chunks of attempt `token` with `values` (ignored when there are none).
  void Remember(const std::string& token, const std::vector<std::string>& values);
  // `data` masked (SecretMasker::MaskAll) when the attempt's values are known; else nullopt
  // (store `data` as it is).
  std::optional<std::string> Mask(const std::string& token, std::string_view data) const;
  void Forget(const std::string& token);
  size_t size() const;

 private:
  struct Entry {
    absl::Mutex mu;
    SecretMasker masker ABSL_GUARDED_BY(mu);
    explicit Entry(const std::vector<std::string>& values) : masker(values) {}
  };
  const size_t max_attempts_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Entry>> by_token_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> order_ ABSL_GUARDED_BY(mu_);  // insertion order; may hold forgotten
};

}  // namespace assay
