#pragma once
// Raw webhook deliveries: stored before the forge gets its answer, deduplicated on
// (provider, delivery id) and, within a window, on (repository, SHA-256 of the body).
// *db must outlive the store.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/store/db.h"

namespace assay::store {

struct NewDelivery {
  std::string provider, delivery_id, event;
  int64_t repo_id = 0;
  std::string headers_json;                // the request headers as a JSON object
  std::string body;                        // raw bytes as received
  std::string initial_state = "received";  // "ignored" for events that plan nothing
  std::string message;
  // SHA-256 of `body` (32 bytes) and the replay window: when both are set, a delivery of the
  // same repository with the same body hash received within the window makes this one a
  // duplicate of it, whatever its delivery id.
  std::string body_sha256;
  absl::Duration dedupe_window = absl::ZeroDuration();
};

struct Delivery {
  int64_t id = 0;
  std::string provider, delivery_id, event, state, message;
  int64_t repo_id = 0;
  std::string body;
  absl::Duration age;  // since it was received, by the database's clock
};

struct InsertResult {
  int64_t id = 0;
  bool inserted = false;   // false: this delivery id (or body) was seen before; nothing written
  bool same_body = false;  // not inserted because `id` has the same body (a replay)
};

// Issue 11: one delivery as the settings page lists it (no headers, no body).
struct DeliverySummary {
  int64_t id = 0;
  std::string provider, delivery_id, event, state, message;
  absl::Time received_at, processed_at;  // processed_at: InfinitePast while 'received'
  std::optional<int64_t> pipeline_id;    // the pipeline it started, if any
};

class DeliveryStore {
 public:
  explicit DeliveryStore(Db* db) : db_(db) {}
  absl::StatusOr<InsertResult> Insert(const NewDelivery& d);
  absl::StatusOr<Delivery> Get(int64_t id);
  // Ids of deliveries still in state 'received' (accepted but not yet planned), oldest first.
  absl::StatusOr<std::vector<int64_t>> ListUnplanned();
  // Marks a delivery that produced no pipeline ('ignored' or 'failed') with a reason.
  absl::Status Finish(int64_t id, std::string_view state, std::string_view message);
  // Issue 11: repository `repo_id`'s deliveries, newest first, with ids below `before_id` (0:
  // from the newest), at most `limit`.
  absl::StatusOr<std::vector<DeliverySummary>> ListOfRepo(int64_t repo_id, int64_t before_id,
                                                          int limit);

 private:
  Db* db_;
};

}  // namespace assay::store
