#pragma once
// Retention of artifacts and caches: deletes cache entries unused for cache_unused_for and
// expired manifests, then chunks no manifest references and
// nobody touched for `chunk_grace` (an upload between ChunksMissing and its commit touches
// them), in batches of `batch`, one transaction each. Replicas share the work through an
// advisory lock (store::ArtifactStore): one sweeps at a time, the others skip that round.
// *store, *blobs and *clock must outlive the sweeper.

#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/base/clock.h"
#include "server/artifacts/blob_store.h"
#include "server/artifacts/cache_service.h"
#include "server/store/artifacts.h"
#include "server/store/train.h"

namespace assay::artifacts {

struct SweeperOptions {
  absl::Duration interval = absl::Minutes(5);
  int batch = 500;
  absl::Duration chunk_grace = absl::Hours(24);
  int max_batches_per_round = 100;  // bounds one round; the rest waits for the next
  // Issue 9, caches: entries unused this long are deleted first in each round (their chunks
  // then go with the unreferenced ones). Only with a CacheService (SetCaches).
  absl::Duration cache_unused_for = absl::Hours(7 * 24);
  // Issue 10, training: checkpoints of jobs that ended this long ago are deleted (a retry
  // after an agent loss restores from them until then). Only with SetTrain.
  absl::Duration checkpoints_after_end = absl::Hours(1);
};

struct SweepCounts {
  int manifests = 0;
  int chunks = 0;
  int cache_entries = 0;
  int checkpoints = 0;
};

class Sweeper {
 public:
  Sweeper(store::ArtifactStore* store, BlobStore* blobs, const Clock* clock, SweeperOptions o)
      : store_(store), blobs_(blobs), clock_(clock), options_(o) {}
  ~Sweeper() { Stop(); }

  // One round: expired manifests, then unreferenced chunks, batch by batch until a batch
  // comes back short (or max_batches_per_round).
  absl::StatusOr<SweepCounts> RunOnce();

  void Start();  // a thread that runs a round every `interval`
  void Stop();
  // Issue 9: also sweeps unused cache entries; `caches` must outlive this. Before Start.
  void SetCaches(CacheService* caches) { caches_ = caches; }
  // Issue 10: also deletes checkpoints of ended jobs; `train` must outlive this. Before Start.
  void SetTrain(store::TrainStore* train) { train_ = train; }

 private:
  store::TrainStore* train_ = nullptr;
  CacheService* caches_ = nullptr;
  store::ArtifactStore* store_;
  BlobStore* blobs_;
  const Clock* clock_;
  SweeperOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace assay::artifacts
