#pragma once
// Reading and compacting stored job logs (issue 9, "Logs at scale"). JobStore::AppendLog
// stores them; every row of log_chunks knows its byte offset in its attempt's log
// (start_offset), so a read at any offset is one index seek, and a reader's position is a
// byte offset that stays valid while rows are merged. *db must outlive the store.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/store/db.h"

namespace assay::store {

// When the bytes from `offset` on (up to the next mark) were read by the agent.
struct LogMarkAt {
  int64_t offset = 0;  // in the attempt's log
  int64_t unix_us = 0;
};

// Bytes of one attempt's log.
struct LogSlice {
  int64_t offset = 0;  // of data's first byte
  std::string data;
  bool line_start = true;  // data begins a line (offset 0, or the byte before it is '\n')
  // Ascending; the first at or before `offset` (when data is not empty).
  std::vector<LogMarkAt> marks;
};

// Where an attempt's log stands.
struct LogHead {
  int attempt = 0;     // 0: none (no chunk stored; for a live head: no attempt yet)
  int64_t size = 0;    // bytes stored for the attempt
  bool ended = false;  // no byte will be added: the attempt (or, without one, the job) ended
};

struct CompactStep {
  int64_t next_offset = 0;  // where the next step starts
  bool done = false;        // the attempt is compacted (log_compacted set)
  int rows_merged = 0;      // rows replaced in this step
};

class LogStore {
 public:
  explicit LogStore(Db* db) : db_(db) {}

  // The attempt GET /log shows: the latest one with stored bytes, or with `live` the job's
  // latest attempt (stored bytes or not). kNotFound when the job does not exist.
  absl::StatusOr<LogHead> Head(int64_t job_id, bool live);
  // The size and state of a known attempt (attempt 0: only whether the job ended).
  absl::StatusOr<LogHead> Stat(int64_t job_id, int attempt);
  // Bytes [from, to) of the attempt's log, cut at about `max_bytes` (at least one byte when
  // any is stored at `from`): an empty slice means nothing is stored at `from` yet. `to`:
  // exclusive; INT64_MAX for "to the end". One index seek and one statement (one snapshot),
  // so a concurrent compaction is seen wholly or not at all.
  absl::StatusOr<LogSlice> Read(int64_t job_id, int attempt, int64_t from, int64_t to,
                                size_t max_bytes);
  // One bounded step of merging an ended attempt's rows, from byte `from`: consecutive rows
  // are merged into rows of at most `row_target` bytes (a row already larger stays), until
  // about `step_bytes` were rewritten; one transaction under the attempt row's lock (the
  // ingest's lock), so readers and a late resent chunk see either the old rows or the new.
  // kFailedPrecondition when the attempt has not ended.
  absl::StatusOr<CompactStep> Compact(int64_t job_id, int attempt, int64_t from, size_t row_target,
                                      size_t step_bytes);
  // Ended attempts whose rows are not merged yet, oldest first, at most `limit`.
  absl::StatusOr<std::vector<std::pair<int64_t, int>>> Uncompacted(int limit);

 private:
  Db* db_;
};

// The marks of a row (log_chunks.marks) decoded, shifted by the row's `start_offset`; a row
// without marks gets one at its start with `fallback_us`. Records that are not 12 bytes long
// or out of order are ignored.
std::vector<LogMarkAt> DecodeLogMarks(std::string_view bytes, int64_t start_offset,
                                      int64_t fallback_us);

}  // namespace assay::store
