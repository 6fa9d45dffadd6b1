// Logs at scale (issue 9): byte offsets of stored chunks, range reads, read-time marks,
// compaction (bytes before == bytes after, also for a reader going on during it) and a
// resent chunk after compaction.

#include <catch2/catch.hpp>
#include <string>
#include <thread>

#include "server/logs/log_format.h"
#include "server/store/logs.h"
#include "tests/db/db_fixture.h"

namespace assay::dbtest {
namespace {

// Line i of a numbered log: "line 000123\n" (12 bytes).
std::string Line(int i) {
  std::string n = std::to_string(i);
  return "line " + std::string(6 - n.size(), '0') + n + "\n";
}

// Reads [from, to) in pages of `page` bytes, as GET /log does.
std::string ReadAll(store::LogStore& logs, int64_t job, int attempt, int64_t from, int64_t to,
                    size_t page) {
  std::string out;
  int64_t pos = from;
  for (int guard = 0; guard < 100000; ++guard) {
    auto s = logs.Read(job, attempt, pos, to, page);
    REQUIRE(s.ok());
    if (s->data.empty()) break;
    REQUIRE(s->offset == pos);
    pos += static_cast<int64_t>(s->data.size());
    out += s->data;
  }
  return out;
}

// The whole log with timestamps, read in pages of `page` bytes (stamps across page edges).
std::string StampedAll(store::LogStore& logs, int64_t job, int attempt, size_t page) {
  std::string out;
  int64_t pos = 0;
  for (int guard = 0; guard < 100000; ++guard) {
    auto s = logs.Read(job, attempt, pos, INT64_MAX, page);
    REQUIRE(s.ok());
    if (s->data.empty()) break;
    pos += static_cast<int64_t>(s->data.size());
    out += logs::StampLines(*s);
  }
  return out;
}

TEST_CASE("log store: chunks get byte offsets, and a range reads exact bytes at any offset",
          "[db]") {
  DbFixture f;
  store::LogStore logs(&f.db);
  f.CreatePipeline({Job("a")});
  auto a = f.ClaimOne(f.Agent("agent-1"));
  std::string all;
  for (int seq = 1; seq <= 50; ++seq) {
    std::string chunk;
    for (int i = 0; i < seq; ++i) chunk += Line(seq * 100 + i);
    all += chunk;
    auto r = f.jobs.AppendLog(a.job_id, a.attempt_token, seq, chunk, store::kDefaultLogQuotaBytes,
                              1700000000000000 + seq);
    REQUIRE(r.ok());
    CHECK(*r == store::Fence::kOk);
  }
  auto head = logs.Head(a.job_id, false);
  REQUIRE(head.ok());
  CHECK(head->attempt == 1);
  CHECK(head->size == static_cast<int64_t>(all.size()));
  CHECK_FALSE(head->ended);
  CHECK(f.Count("SELECT count(*) FROM log_chunks c WHERE start_offset <> coalesce((SELECT "
                "sum(octet_length(data)) FROM log_chunks d WHERE d.seq < c.seq), 0)") == 0);
  const int64_t n = static_cast<int64_t>(all.size());
  for (int64_t from : {int64_t{0}, int64_t{1}, int64_t{11}, int64_t{12}, n / 3, n - 1}) {
    for (size_t page : {size_t{1}, size_t{7}, size_t{1000}, size_t{1} << 20}) {
      INFO("from " << from << " page " << page);
      CHECK(ReadAll(logs, a.job_id, 1, from, INT64_MAX, page) == all.substr(from));
      CHECK(ReadAll(logs, a.job_id, 1, from, from + 30, page) == all.substr(from, 30));
    }
  }
  // Past the end: nothing; an unknown job: kNotFound.
  CHECK(ReadAll(logs, a.job_id, 1, n, INT64_MAX, 100).empty());
  CHECK(ReadAll(logs, a.job_id, 1, n + 10, INT64_MAX, 100).empty());
  CHECK(logs.Head(999999, false).status().code() == absl::StatusCode::kNotFound);

  // Timestamps: each line carries the read time of the chunk its first byte came in.
  auto s = logs.Read(a.job_id, 1, 0, Line(0).size() * 3, 1 << 20);
  REQUIRE(s.ok());
  CHECK(logs::StampLines(*s) ==
        "2023-11-14T22:13:20.000001Z line 000100\n"
        "2023-11-14T22:13:20.000002Z line 000200\n"
        "2023-11-14T22:13:20.000002Z line 000201\n");
  // From the middle of a line: no stamp until the next line begins.
  auto mid = logs.Read(a.job_id, 1, 5, 24, 1 << 20);
  REQUIRE(mid.ok());
  CHECK(logs::StampLines(*mid) == "000100\n2023-11-14T22:13:20.000002Z line 000200\n");
}

TEST_CASE("log store: compaction keeps every byte and mark, under a concurrent reader", "[db]") {
  DbFixture f;
  store::LogStore logs(&f.db);
  f.CreatePipeline({Job("a")});
  auto a = f.ClaimOne(f.Agent("agent-1"));
  std::string all;
  for (int seq = 1; seq <= 400; ++seq) {
    std::string chunk;
    for (int i = 0; i < 1 + seq % 7; ++i) chunk += Line(seq * 10 + i);
    all += chunk;
    REQUIRE(f.jobs
                .AppendLog(a.job_id, a.attempt_token, seq, chunk, store::kDefaultLogQuotaBytes,
                           1700000000000000 + seq)
                .ok());
  }
  const std::string before = StampedAll(logs, a.job_id, 1, 1 << 20);
  CHECK(StampedAll(logs, a.job_id, 1, 5) == before);
  CHECK(before.size() == all.size() + logs::kStampBytes * (all.size() / 12));
  // Not ended: compaction refuses.
  CHECK(logs.Compact(a.job_id, 1, 0, 4096, 1 << 20).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(f.FinishJob(a, "succeeded", 0).fence == store::Fence::kOk);

  // A reader in pages of 100 bytes runs while compaction merges rows in small steps.
  std::string seen;
  std::thread reader([&] {
    int64_t pos = 0;
    for (int guard = 0; guard < 100000; ++guard) {
      auto s = logs.Read(a.job_id, 1, pos, INT64_MAX, 100);
      if (!s.ok() || s->data.empty()) break;
      pos += static_cast<int64_t>(s->data.size());
      seen += s->data;
    }
  });
  int64_t from = 0;
  int steps = 0;
  for (; steps < 1000; ++steps) {
    auto step = logs.Compact(a.job_id, 1, from, 4096, 8192);
    REQUIRE(step.ok());
    from = step->next_offset;
    if (step->done) break;
  }
  ++steps;  // the one that finished
  reader.join();
  CHECK(seen == all);
  CHECK(steps > 1);  // bounded steps, not one transaction
  CHECK(f.Count("SELECT count(*) FROM log_chunks") < 400 / 4);
  CHECK(f.Count("SELECT count(*) FROM log_chunks WHERE octet_length(data) > 4096") == 0);
  CHECK(f.Query("SELECT log_compacted FROM job_attempts") == Rows{{"t"}});
  CHECK(f.Query("SELECT min(seq), max(end_seq) FROM log_chunks") == Rows{{"1", "400"}});
  CHECK(ReadAll(logs, a.job_id, 1, 0, INT64_MAX, 333) == all);
  CHECK(StampedAll(logs, a.job_id, 1, 1 << 20) == before);
  CHECK(StampedAll(logs, a.job_id, 1, 7) == before);
  auto log = f.jobs.ReadLog(a.job_id);
  REQUIRE(log.ok());
  CHECK(*log == all);
  // A chunk resent after the merge is a duplicate, found inside the merged row.
  auto again = f.jobs.AppendLog(a.job_id, a.attempt_token, 123, "x");
  REQUIRE(again.ok());
  CHECK(*again == store::Fence::kDuplicate);
  // Uncompacted lists nothing now.
  auto todo = logs.Uncompacted(10);
  REQUIRE(todo.ok());
  CHECK(todo->empty());
}

TEST_CASE("log store: Head and Stat say when an attempt ended", "[db]") {
  DbFixture f;
  store::LogStore logs(&f.db);
  f.CreatePipeline({Job("a")});
  auto live0 = logs.Head(f.Count("SELECT id FROM jobs"), true);
  REQUIRE(live0.ok());
  CHECK(live0->attempt == 0);
  CHECK_FALSE(live0->ended);
  auto a = f.ClaimOne(f.Agent("agent-1"));
  auto live = logs.Head(a.job_id, true);
  REQUIRE(live.ok());
  CHECK(live->attempt == 1);
  CHECK(live->size == 0);
  CHECK_FALSE(live->ended);
  REQUIRE(f.jobs.AppendLog(a.job_id, a.attempt_token, 1, "hello\n").ok());
  CHECK(f.FinishJob(a, "failed", 1).fence == store::Fence::kOk);
  auto st = logs.Stat(a.job_id, 1);
  REQUIRE(st.ok());
  CHECK(st->ended);
  CHECK(st->size == 6);
}

}  // namespace
}  // namespace assay::dbtest

namespace assay::dbtest {
namespace {

TEST_CASE("log ranges: one range of bytes, hostile headers refused", "[db]") {
  auto ok = [](std::string_view h, int64_t size) {
    auto r = logs::ParseRange(h, size);
    REQUIRE(r.ok());
    return std::make_pair(r->first, r->last);
  };
  CHECK(ok("bytes=0-9", 100) == std::make_pair(int64_t{0}, int64_t{9}));
  CHECK(ok("bytes=90-", 100) == std::make_pair(int64_t{90}, int64_t{99}));
  CHECK(ok("bytes=-10", 100) == std::make_pair(int64_t{90}, int64_t{99}));
  CHECK(ok("bytes=-1000", 100) == std::make_pair(int64_t{0}, int64_t{99}));
  CHECK(ok("bytes=5-999999999999999999", 100) == std::make_pair(int64_t{5}, int64_t{99}));
  auto code = [](std::string_view h, int64_t size) {
    return logs::ParseRange(h, size).status().code();
  };
  using absl::StatusCode;
  CHECK(code("bytes=100-", 100) == StatusCode::kOutOfRange);
  CHECK(code("bytes=0-0", 0) == StatusCode::kOutOfRange);
  CHECK(code("bytes=-0", 100) == StatusCode::kOutOfRange);
  for (const char* bad : {"bytes=0-1,5-6", "items=0-1", "bytes=", "bytes=-", "bytes=a-b",
                          "bytes=9-3", "bytes=-5-6", "bytes=0x10-", "bytes=+1-2",
                          "bytes=1234567890123456789-", "bytes=0-12345678901234567890"}) {
    INFO(bad);
    CHECK(code(bad, 100) == StatusCode::kInvalidArgument);
  }
  CHECK(code(std::string(201, ' ') + "bytes=0-1", 100) == StatusCode::kInvalidArgument);
  CHECK(logs::Stamp(0) == "1970-01-01T00:00:00.000000Z ");
  CHECK(logs::Stamp(0).size() == logs::kStampBytes);
}

}  // namespace
}  // namespace assay::dbtest

namespace assay::dbtest {
namespace {

TEST_CASE(
    "log store: a chunk stored before an earlier one waits for it, and compaction places "
    "what is still waiting",
    "[db]") {
  DbFixture f;
  store::LogStore logs(&f.db);
  f.CreatePipeline({Job("a")});
  auto a = f.ClaimOne(f.Agent("agent-1"));
  auto append = [&](int64_t seq, const std::string& data) {
    auto r = f.jobs.AppendLog(a.job_id, a.attempt_token, seq, data);
    REQUIRE(r.ok());
    return *r;
  };
  auto read = [&] {
    auto s = logs.Read(a.job_id, 1, 0, INT64_MAX, 1 << 20);
    REQUIRE(s.ok());
    return s->data;
  };
  CHECK(append(2, "b\n") == store::Fence::kOk);
  CHECK(logs.Head(a.job_id, false)->size == 0);  // not part of the log yet
  CHECK(read().empty());
  CHECK(append(2, "b\n") == store::Fence::kDuplicate);
  CHECK(append(1, "a\n") == store::Fence::kOk);
  CHECK(read() == "a\nb\n");
  CHECK(append(4, "d\n") == store::Fence::kOk);  // 3 never comes
  CHECK(read() == "a\nb\n");
  CHECK(f.Query("SELECT seq, start_offset FROM log_chunks ORDER BY seq") ==
        Rows{{"1", "0"}, {"2", "2"}, {"4", "NULL"}});
  CHECK(f.FinishJob(a, "failed", 1).fence == store::Fence::kOk);
  auto step = logs.Compact(a.job_id, 1, 0, 1 << 20, 8 << 20);
  REQUIRE(step.ok());
  CHECK(step->done);
  CHECK(read() == "a\nb\nd\n");
  CHECK(f.Query("SELECT seq, end_seq, start_offset FROM log_chunks") == Rows{{"1", "4", "0"}});
}

}  // namespace
}  // namespace assay::dbtest
