#include "server/store/logs.h"

#include <algorithm>
#include <climits>

#include "absl/strings/str_cat.h"
#include "server/store/jobs.h"

namespace assay::store {
namespace {

#define ASSAY_LIVE_STATES "('pending', 'queued', 'assigned', 'running')"

// The bytes stored for (job $1, attempt $2): the end of its last row (one backward index step).
#define ASSAY_LOG_SIZE                                                        \
  "coalesce((SELECT s.start_offset + octet_length(s.data) FROM log_chunks s " \
  "WHERE s.job_id = $1 AND s.attempt = $2 AND s.start_offset IS NOT NULL "    \
  "ORDER BY s.start_offset DESC LIMIT 1), 0)"

const Query kLogHead{"log_head",
                     "SELECT coalesce((SELECT max(attempt) FROM log_chunks WHERE job_id = $1), 0) "
                     "FROM jobs WHERE id = $1"};
const Query kLogLiveHead{"log_live_head", "SELECT attempt FROM jobs WHERE id = $1"};
// $2 = 0: only whether the job ended. An attempt ended once it is not assigned or running.
const Query kLogStat{
    "log_stat", "SELECT j.state NOT IN " ASSAY_LIVE_STATES
                ", "
                "coalesce(a.state NOT IN ('assigned', 'running'), j.state NOT IN " ASSAY_LIVE_STATES
                "), " ASSAY_LOG_SIZE
                " FROM jobs j LEFT JOIN job_attempts a ON a.job_id = j.id AND a.attempt = $2 "
                "WHERE j.id = $1"};
// The rows overlapping [$3, $4): from the row holding byte $3 (the greatest start at or
// before it), at most $5 rows; of each row's data only its bytes from max(start, $3) to $4.
// Why the substring: a compacted row holds megabytes (bytea comes as hex text, twice its size,
// then unescaped), and a reader asks for 256 KiB of it.
const Query kLogRows{
    "log_rows",
    "SELECT start_offset, substring(data FROM greatest($3 - start_offset, 0)::int + 1 FOR "
    "least($4 - greatest(start_offset, $3), 2147483647)::int), marks, "
    ASSAY_EPOCH_US("received_at") " FROM log_chunks "
    "WHERE job_id = $1 AND attempt = $2 AND start_offset >= coalesce((SELECT max(start_offset) "
    "FROM log_chunks WHERE job_id = $1 AND attempt = $2 AND start_offset <= $3), 0) "
    "AND start_offset < $4 ORDER BY start_offset LIMIT $5"};
const Query kCompactLock{
    "log_compact_lock",
    "SELECT state NOT IN ('assigned', 'running'), log_compacted FROM job_attempts "
    "WHERE job_id = $1 AND attempt = $2 FOR UPDATE"};
const Query kCompactRows{
    "log_compact_rows",
    "SELECT seq, end_seq, start_offset, octet_length(data) FROM log_chunks "
    "WHERE job_id = $1 AND attempt = $2 AND start_offset >= $3 ORDER BY start_offset LIMIT 4000"};
const Query kCompactRead{
    "log_compact_read",
    "SELECT data, marks, " ASSAY_EPOCH_US("received_at") " FROM log_chunks "
    "WHERE job_id = $1 AND attempt = $2 AND start_offset >= $3 AND start_offset < $4 "
    "ORDER BY start_offset"};
const Query kCompactDelete{
    "log_compact_delete",
    "DELETE FROM log_chunks WHERE job_id = $1 AND attempt = $2 AND start_offset >= $3 "
    "AND start_offset < $4"};
const Query kCompactInsert{
    "log_compact_insert",
    "INSERT INTO log_chunks (job_id, attempt, seq, end_seq, start_offset, data, marks, "
    "received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now())"};
// Chunks still waiting for an earlier one when the attempt ended (that one is lost for good):
// they join the log at its end, in seq order.
const Query kCompactPending{
    "log_compact_pending",
    "SELECT seq, octet_length(data) FROM log_chunks WHERE job_id = $1 AND attempt = $2 AND "
    "start_offset IS NULL ORDER BY seq"};
const Query kCompactEnd{
    "log_compact_end",
    "SELECT coalesce(max(start_offset + octet_length(data)), 0) FROM log_chunks "
    "WHERE job_id = $1 AND attempt = $2 AND start_offset IS NOT NULL"};
const Query kCompactPlace{"log_compact_place",
                          "UPDATE log_chunks SET start_offset = $4 WHERE job_id = $1 AND "
                          "attempt = $2 AND seq = $3"};
const Query kCompactDone{
    "log_compact_done",
    "UPDATE job_attempts SET log_compacted = true WHERE job_id = $1 AND attempt = $2"};
const Query kUncompacted{
    "log_uncompacted",
    "SELECT job_id, attempt FROM job_attempts WHERE NOT log_compacted AND finished_at IS NOT NULL "
    "ORDER BY finished_at LIMIT $1"};

int64_t Le(std::string_view b, size_t at, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
  return static_cast<int64_t>(v);
}

}  // namespace

std::vector<LogMarkAt> DecodeLogMarks(std::string_view bytes, int64_t start_offset,
                                      int64_t fallback_us) {
  std::vector<LogMarkAt> out;
  if (bytes.size() % 12 == 0) {
    for (size_t at = 0; at < bytes.size(); at += 12) {
      const int64_t off = Le(bytes, at, 4);
      if (!out.empty() && start_offset + off < out.back().offset) continue;
      out.push_back({start_offset + off, Le(bytes, at + 4, 8)});
    }
  }
  if (out.empty() || out.front().offset != start_offset) {
    out.insert(out.begin(), {start_offset, fallback_us});
  }
  return out;
}

absl::StatusOr<LogHead> LogStore::Head(int64_t job_id, bool live) {
  LogHead head;
  bool exists = false;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto r = Exec(tx, c, live ? kLogLiveHead : kLogHead, {job_id});
    exists = !r.empty();
    if (!exists) return absl::OkStatus();
    head.attempt = r[0][0].as<int>();
    auto st = Exec(tx, c, kLogStat, {job_id, head.attempt});
    head.ended = st[0][1].as<bool>();
    head.size = st[0][2].as<int64_t>();
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (!exists) return absl::NotFoundError(absl::StrCat("job ", job_id, " does not exist"));
  return head;
}

absl::StatusOr<LogHead> LogStore::Stat(int64_t job_id, int attempt) {
  LogHead head;
  head.attempt = attempt;
  bool exists = false;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto st = Exec(tx, c, kLogStat, {job_id, attempt});
    exists = !st.empty();
    if (!exists) return absl::OkStatus();
    head.ended = st[0][1].as<bool>();
    head.size = st[0][2].as<int64_t>();
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (!exists) return absl::NotFoundError(absl::StrCat("job ", job_id, " does not exist"));
  return head;
}

absl::StatusOr<LogSlice> LogStore::Read(int64_t job_id, int attempt, int64_t from, int64_t to,
                                        size_t max_bytes) {
  LogSlice out;
  out.offset = from;
  if (from < 0 || to <= from || attempt <= 0) return out;
  const int64_t want_end = std::min<int64_t>(to, from + std::max<int64_t>(1, max_bytes));
  // Why from - 1: the byte before `from` says whether the slice begins a line.
  const int64_t seek = from > 0 ? from - 1 : 0;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.data.clear();
    out.marks.clear();
    out.line_start = from == 0;
    for (const auto& r : Exec(tx, c, kLogRows, {job_id, attempt, seek, want_end, 64})) {
      const int64_t start = r[0].as<int64_t>();
      // The row's bytes from `piece_start` on (kLogRows cuts them to [seek, want_end)).
      const int64_t piece_start = std::max(start, seek);
      const std::string data = BytesOf(r[1]);
      const int64_t end = piece_start + static_cast<int64_t>(data.size());
      if (from > 0 && piece_start <= from - 1 && from - 1 < end) {
        out.line_start = data[static_cast<size_t>(from - 1 - piece_start)] == '\n';
      }
      if (end <= from) continue;
      // Rows must be contiguous: a hole (never expected) ends the slice there.
      const int64_t at = from + static_cast<int64_t>(out.data.size());
      if (start > at) break;
      const int64_t lo = std::max(piece_start, at), hi = std::min(end, want_end);
      if (hi <= lo) break;
      out.data.append(data, static_cast<size_t>(lo - piece_start), static_cast<size_t>(hi - lo));
      for (const auto& m : DecodeLogMarks(BytesOf(r[2]), start, r[3].as<int64_t>())) {
        if (m.offset >= hi) break;
        out.marks.push_back(m);
      }
      if (hi >= want_end) break;
    }
    // Only the last mark at or before `from` matters for the slice's first byte.
    size_t first = 0;
    while (first + 1 < out.marks.size() && out.marks[first + 1].offset <= from) ++first;
    out.marks.erase(out.marks.begin(), out.marks.begin() + static_cast<ptrdiff_t>(first));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<CompactStep> LogStore::Compact(int64_t job_id, int attempt, int64_t from,
                                              size_t row_target, size_t step_bytes) {
  CompactStep out;
  out.next_offset = from;
  bool ended = true;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out = CompactStep{from, false, 0};
    auto lock = Exec(tx, c, kCompactLock, {job_id, attempt});
    if (lock.empty())
      return absl::NotFoundError(absl::StrCat("job ", job_id, " has no attempt ", attempt));
    ended = lock[0][0].as<bool>();
    if (!ended) return absl::OkStatus();
    if (lock[0][1].as<bool>()) {
      out.done = true;
      return absl::OkStatus();
    }
    if (from == 0) {
      auto pending = Exec(tx, c, kCompactPending, {job_id, attempt});
      if (!pending.empty()) {
        int64_t pos = Exec(tx, c, kCompactEnd, {job_id, attempt})[0][0].as<int64_t>();
        for (const auto& p : pending) {
          Exec(tx, c, kCompactPlace, {job_id, attempt, p[0].as<int64_t>(), pos});
          pos += p[1].as<int64_t>();
        }
      }
    }
    struct Row {
      int64_t seq, end_seq, start, size;
    };
    std::vector<Row> rows;
    for (const auto& r : Exec(tx, c, kCompactRows, {job_id, attempt, from})) {
      rows.push_back(
          {r[0].as<int64_t>(), r[1].as<int64_t>(), r[2].as<int64_t>(), r[3].as<int64_t>()});
    }
    size_t rewritten = 0;
    size_t i = 0;
    while (i < rows.size() && rewritten < step_bytes) {
      // Greedy: the longest run from i whose bytes fit in row_target.
      size_t j = i + 1;
      int64_t total = rows[i].size;
      while (j < rows.size() && total + rows[j].size <= static_cast<int64_t>(row_target)) {
        total += rows[j].size;
        ++j;
      }
      const int64_t lo = rows[i].start, hi = rows[j - 1].start + rows[j - 1].size;
      if (j - i >= 2) {
        std::string data, marks;
        data.reserve(static_cast<size_t>(total));
        for (const auto& r : Exec(tx, c, kCompactRead, {job_id, attempt, lo, hi})) {
          const int64_t base = lo + static_cast<int64_t>(data.size());
          for (const auto& m : DecodeLogMarks(BytesOf(r[1]), base, r[2].as<int64_t>())) {
            marks += LogMark(static_cast<uint32_t>(m.offset - lo), m.unix_us);
          }
          data += BytesOf(r[0]);
        }
        Exec(tx, c, kCompactDelete, {job_id, attempt, lo, hi});
        Exec(tx, c, kCompactInsert,
             {job_id, attempt, rows[i].seq, rows[j - 1].end_seq, lo, Param::Bytes(std::move(data)),
              Param::Bytes(std::move(marks))});
        out.rows_merged += static_cast<int>(j - i);
        rewritten += static_cast<size_t>(total);
      }
      out.next_offset = hi;
      i = j;
    }
    if (i >= rows.size() && rows.size() < 4000) {
      Exec(tx, c, kCompactDone, {job_id, attempt});
      out.done = true;
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (!ended) {
    return absl::FailedPreconditionError(
        absl::StrCat("attempt ", attempt, " of job ", job_id, " has not ended"));
  }
  return out;
}

absl::StatusOr<std::vector<std::pair<int64_t, int>>> LogStore::Uncompacted(int limit) {
  std::vector<std::pair<int64_t, int>> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    for (const auto& r : Exec(tx, c, kUncompacted, {limit})) {
      out.emplace_back(r[0].as<int64_t>(), r[1].as<int>());
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace assay::store
