// assay-bench-logs: log ingest and live-tail delay (issue 9, "Benchmarks"). Starts its own
// PostgreSQL (tests/support/pg_server), assay-server and one agent on 127.0.0.1, then:
//   1. ingest: one job writes 100 MiB of 100-byte lines; MB/s = bytes / (last chunk stored −
//      first chunk read by the agent), from the stored rows (received_at, read-time marks).
//   2. live tail: a follower (GET /log?follow=1&timestamps=1, the CLI's streaming client)
//      started before the job; for every line it receives, delay = receive time − the agent's
//      read time of that line (one machine, one clock). Reported for the 100 MiB burst and for
//      a paced job (2,000 lines/s for 10 s), p50/p99/max, nearest rank.
// Figures are printed; nothing is asserted. Usage: assay-bench-logs [MiB] (default 100).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <streambuf>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "cli/log_follow.h"
#include "tests/support/cluster.h"
#include "tests/support/git_repo.h"
#include "tests/support/pg_server.h"

namespace {

using assay::testing::Cluster;

// Collects, for every complete stamped line, now − its stamp in microseconds.
class DelayBuf : public std::streambuf {
 public:
  std::vector<int64_t> delays_us;
  int64_t bytes = 0;

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    const int64_t now = absl::ToUnixMicros(absl::Now());
    bytes += n;
    for (std::streamsize i = 0; i < n; ++i) {
      line_ += s[i];
      if (s[i] != '\n') continue;
      if (line_.size() > 28) {
        absl::Time t;
        std::string err;
        if (absl::ParseTime("%Y-%m-%dT%H:%M:%E6SZ", line_.substr(0, 27), &t, &err)) {
          delays_us.push_back(now - absl::ToUnixMicros(t));
        }
      }
      line_.clear();
    }
    return n;
  }
  int overflow(int c) override {
    char ch = static_cast<char>(c);
    xsputn(&ch, 1);
    return c;
  }

 private:
  std::string line_;
};

std::string Pct(std::vector<int64_t> v) {
  if (v.empty()) return "no samples";
  std::sort(v.begin(), v.end());
  auto at = [&](double p) {
    size_t i = static_cast<size_t>(std::max(1.0, p * static_cast<double>(v.size()) + 0.999999));
    return static_cast<double>(v[std::min(i, v.size()) - 1]) / 1000.0;
  };
  return absl::StrCat("n=", v.size(), " p50=", at(0.5), " ms p99=", at(0.99),
                      " ms max=", static_cast<double>(v.back()) / 1000.0, " ms");
}

int64_t Push(Cluster& c, assay::testing::GitRepo& repo, const std::string& file, int n) {
  auto sha = repo.Commit({{".assay.yml", file}}, {}, absl::StrCat("bench ", n));
  if (!sha.ok()) throw std::runtime_error(sha.status().ToString());
  auto id = c.Push(Cluster::PushPayload(repo.clone_url(), "bench/logs", *sha), absl::StrCat("d", n),
                   "bench-secret");
  if (!id.ok()) throw std::runtime_error(id.status().ToString());
  auto p = c.WaitForPipelineOf(*id);
  if (!p.ok()) throw std::runtime_error(p.status().ToString());
  return *p;
}

void Run(int mib) {
  auto pg = assay::testing::PgServer::Create();
  if (!pg.ok()) throw std::runtime_error(pg.status().ToString());
  assay::testing::ClusterOptions o;
  o.binary_dir = ASSAY_BINARY_DIR;
  o.admin_dsn = (*pg)->admin_dsn();
  o.server_flags = {"--job-log-limit-mb", std::to_string(mib * 2)};
  Cluster c(o);
  if (auto s = c.StartServer(); !s.ok()) throw std::runtime_error(s.ToString());
  auto repo = assay::testing::GitRepo::Init(c.dir() + "/repo");
  if (!repo.ok()) throw std::runtime_error(repo.status().ToString());
  if (auto s = c.AddRepo("bench/logs", repo->clone_url(), "bench-secret"); !s.ok()) {
    throw std::runtime_error(s.ToString());
  }
  if (auto a = c.StartAgent("a1"); !a.ok()) throw std::runtime_error(a.status().ToString());
  if (auto s = c.WaitForAgents(1); !s.ok()) throw std::runtime_error(s.ToString());

  struct Phase {
    std::string name, run;
  };
  const std::string go = c.dir() + "/go";
  const std::vector<Phase> phases = {
      {absl::StrCat("burst ", mib, " MiB"),
       absl::StrCat("yes ", std::string(99, 'x').substr(0, 63), "-", std::string(35, 'y'),
                    " | head -c ", int64_t{mib} << 20)},
      {"paced 2,000 lines/s x 10 s",
       "i=0; while [ $i -lt 1000 ]; do seq 1 20; sleep 0.01; i=$((i + 1)); done"},
  };
  int n = 0;
  for (const auto& ph : phases) {
    std::remove(go.c_str());
    const std::string file =
        absl::StrCat("jobs:\n  j:\n    steps:\n      - run: |\n          while [ ! -f ", go,
                     " ]; do sleep 0.01; done\n          ", ph.run, "\n");
    const int64_t pipeline = Push(c, *repo, file, ++n);
    auto job = c.QueryInt(absl::StrCat("SELECT id FROM jobs WHERE pipeline_id = ", pipeline));
    if (!job.ok()) throw std::runtime_error(job.status().ToString());
    if (auto s = c.WaitForJobState(pipeline, "j", "running"); !s.ok()) {
      throw std::runtime_error(s.status().ToString());
    }
    DelayBuf buf;
    std::ostream sink(&buf);
    std::ostringstream err;
    assay::cli::FollowRequest f;
    f.server = c.http_url();
    f.token = assay::testing::kAdminToken;
    f.job_id = std::to_string(*job);
    f.timestamps = true;
    std::thread follower([&] { assay::cli::FollowLog(f, sink, err); });
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the follower is parked
    { std::ofstream(go) << "go"; }
    follower.join();
    auto done = c.WaitForPipelineDone(pipeline);
    if (!done.ok()) throw std::runtime_error(done.status().ToString());
    auto rows = c.Query(absl::StrCat(
        "SELECT sum(octet_length(data)), count(*), extract(epoch from max(received_at)) * 1e6 "
        "FROM log_chunks WHERE job_id = ",
        *job));
    double bytes = 0, last_us = 0;
    int64_t chunks = 0;
    if (rows.ok() && !rows->empty() && (*rows)[0][0]) {
      absl::SimpleAtod(*(*rows)[0][0], &bytes);
      absl::SimpleAtoi(*(*rows)[0][1], &chunks);
      absl::SimpleAtod(*(*rows)[0][2], &last_us);
    }
    double first_us = 0;
    auto read_us = c.QueryInt(absl::StrCat(
        "SELECT ('x' || encode(substring(marks from 5 for 8), 'hex'))::bit(64)::bigint "
        "FROM log_chunks WHERE job_id = ",
        *job, " ORDER BY start_offset LIMIT 1"));
    if (read_us.ok()) {
      // Marks are little-endian: reverse the bytes.
      uint64_t le = static_cast<uint64_t>(*read_us), v = 0;
      for (int i = 0; i < 8; ++i) v = (v << 8) | ((le >> (8 * i)) & 0xff);
      first_us = static_cast<double>(v);
    }
    const double secs = (last_us - first_us) / 1e6;
    std::cout << ph.name << ": stored " << static_cast<int64_t>(bytes) << " bytes in " << chunks
              << " chunks; ingest " << (secs > 0 ? bytes / secs / 1e6 : 0) << " MB/s over " << secs
              << " s; follower got " << buf.bytes << " bytes; tail delay " << Pct(buf.delays_us)
              << (err.str().empty() ? "" : " (follower: " + err.str() + ")") << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  int mib = 100;
  if (argc > 1 && (!absl::SimpleAtoi(argv[1], &mib) || mib < 1 || mib > 1024)) {
    std::cerr << "usage: assay-bench-logs [MiB 1..1024]\n";
    return 2;
  }
  try {
    Run(mib);
  } catch (const std::exception& e) {
    std::cerr << "assay-bench-logs: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
