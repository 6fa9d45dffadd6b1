// The faults tier: a mix of pipelines whose jobs print numbered log lines runs on 4 agents while
// a seeded driver SIGKILLs agents and the server, crashes PostgreSQL and starts it again, cuts
// agent connections (ss -K) or freezes an agent past its lease (SIGSTOP), and fills the server's
// data dir (a small tmpfs) while webhooks arrive. Afterwards: every accepted webhook has its
// pipeline, every job exactly one recorded result, no job was stuck past lease + sweep, and every
// log holds its last attempt's lines exactly once. The figures are printed (and appended to
// <build>/faults-runs.log with the seed) so that a failing run can be replayed with FAULTS_SEED;
// see faults.h for the other knobs (FAULTS_JOBS=40 is the short variant).

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/net/http_client.h"
#include "tests/faults/fault_driver.h"
#include "tests/faults/faults.h"
#include "tests/support/cluster.h"
#include "tests/support/git_repo.h"
#include "tests/support/pg_server.h"

namespace assay::faults {
namespace {

using testing::Cluster;
using testing::GitRepo;

constexpr char kRepoName[] = "acme/faults";
constexpr char kSecret[] = "faults-webhook-secret";
constexpr int kDiskMb = 16;
// Examples kept per kind of problem for the failure message.
constexpr int kExamples = 8;

template <typename T>
T MustImpl(absl::StatusOr<T> v, const char* expr, uint64_t seed) {
  if (!v.ok()) FAIL("seed " << seed << ": " << expr << "\n  failed: " << v.status().ToString());
  return std::move(*v);
}
inline void MustImpl(absl::Status s, const char* expr, uint64_t seed) {
  if (!s.ok()) FAIL("seed " << seed << ": " << expr << "\n  failed: " << s.ToString());
}
#define MUST(expr) MustImpl((expr), #expr, seed)

// One push the run sends: its commit is made when it is first due, and it is sent again (same
// delivery id, as a forge redelivers) until the server answers 202.
struct Delivery {
  std::string guid;
  absl::Duration due;
  std::string body;  // empty until committed
  bool accepted = false;
  absl::Time retry_at = absl::InfinitePast();
  int tries = 0;
  std::string last_answer;
};

// Problems found, a few examples per kind.
class Problems {
 public:
  void Add(const std::string& kind, const std::string& what) {
    if (++counts_[kind] <= kExamples) absl::StrAppend(&text_, "  ", kind, ": ", what, "\n");
  }
  const std::string& text() const { return text_; }

 private:
  std::map<std::string, int> counts_;
  std::string text_;
};

// The last `n` WARN/ERROR lines of the servers' logs, oldest first.
std::string ServerWarnings(const std::string& dir, size_t n) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (absl::StartsWith(name, "server-") && absl::EndsWith(name, ".log")) {
      files.push_back(e.path().string());
    }
  }
  std::sort(files.begin(), files.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;  // server-2 before server-10
  });
  std::vector<std::string> lines;
  for (const std::string& f : files) {
    for (absl::string_view line : absl::StrSplit(testing::ReadFileOrEmpty(f), '\n')) {
      if (absl::StrContains(line, " WARN ") || absl::StrContains(line, " ERROR ")) {
        lines.push_back(absl::StrCat(std::filesystem::path(f).filename().string(), ": ",
                                     std::string(line.substr(0, 300))));
      }
    }
  }
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) {
    absl::StrAppend(&out, lines[i], "\n");
  }
  return out;
}

struct RunResult {
  Figures figures;
  int planned_faults = 0;
  std::string report;  // the fault log, the problems and, when not clean, the logs
};

RunResult RunOnce(const Config& config, uint64_t seed) {
  RunResult result;
  Figures& fig = result.figures;
  fig.seed = seed;
  std::mt19937_64 fault_rng(seed);
  std::mt19937_64 hook_rng(seed ^ 0x9e3779b97f4a7c15ULL);

  // Destroyed in reverse: the cluster (processes, then its database) before the disk and
  // PostgreSQL it uses.
  std::unique_ptr<testing::PgServer> pg = MUST(testing::PgServer::Create());
  std::unique_ptr<TmpfsDisk> disk;
  Config cfg = config;
  if (std::find(cfg.kinds.begin(), cfg.kinds.end(), FaultKind::kDiskFull) != cfg.kinds.end()) {
    auto d = TmpfsDisk::Mount(kDiskMb);
    if (d.ok()) {
      disk = std::move(*d);
    } else {
      std::cout << "faults: disk_full skipped: " << d.status().message() << "\n";
      std::erase(cfg.kinds, FaultKind::kDiskFull);
    }
  }
  testing::ClusterOptions options;
  options.binary_dir = ASSAY_BINARY_DIR;
  options.admin_dsn = pg->admin_dsn();
  options.server_flags = {"--lease", absl::FormatDuration(kLease), "--heartbeat-interval", "300ms"};
  Cluster c(options);
  if (disk) {
    // Why a symlink: Cluster puts the data dir at <dir>/server-data and removes <dir> at the end;
    // a mount point there could not be removed, a symlink can (and the tmpfs goes with `disk`).
    std::error_code ec;
    std::filesystem::create_directory_symlink(disk->path(), c.dir() + "/server-data", ec);
    if (ec) FAIL("symlink to the tmpfs: " << ec.message());
  }
  MUST(c.StartServer());
  GitRepo repo = MUST(GitRepo::Init(c.dir() + "/repo"));
  MUST(c.AddRepo(kRepoName, repo.clone_url(), kSecret));
  MUST(repo.Commit({{".assay.yml", PipelineFile()}}));
  FaultDriver driver(c, *pg, disk.get());
  MUST(driver.StartAgents());

  std::vector<PlannedFault> plan = PlanFaults(cfg, fault_rng);
  result.planned_faults = static_cast<int>(plan.size());
  std::vector<Delivery> deliveries;
  {
    std::uniform_real_distribution<double> when(0, absl::ToDoubleSeconds(cfg.window));
    std::vector<double> times;
    for (int i = 0; i < cfg.pipelines; ++i) times.push_back(when(hook_rng));
    std::sort(times.begin(), times.end());
    for (double t : times) {
      deliveries.push_back(
          {absl::StrCat("faults-", seed, "-", deliveries.size() + 1), absl::Seconds(t)});
    }
  }

  const absl::Time t0 = absl::Now();
  auto elapsed = [&] { return absl::Now() - t0; };
  std::set<int64_t> stuck_jobs;
  Problems problems;
  absl::Time next_sample = t0;
  // Jobs whose lease ran out more than lease + sweep ago although the server and PostgreSQL have
  // been up long enough to sweep them.
  auto sample_stuck = [&] {
    if (absl::Now() < next_sample || !driver.UpFor(kLease + kSweep)) return;
    next_sample = absl::Now() + absl::Seconds(1);
    auto rows = c.Query(absl::StrCat(
        "SELECT j.id, j.name, j.state, j.attempt, j.lease_expires_at::text, now()::text "
        "FROM jobs j WHERE j.state IN ('assigned', 'running') AND j.lease_expires_at < now() - "
        "interval '",
        absl::ToInt64Milliseconds(kLease + kSweep), " milliseconds'"));
    if (!rows.ok()) return;
    for (const auto& r : *rows) {
      if (stuck_jobs.insert(std::stoll(*r[0])).second) {
        problems.Add("stuck", absl::StrCat("t=", absl::ToInt64Seconds(elapsed()), "s job ", *r[0],
                                           " (", *r[1], ") ", *r[2], " attempt ", *r[3],
                                           ", lease expired at ", *r[4], ", now ", *r[5]));
      }
    }
  };
  // Sends the first due delivery that is not accepted yet, if any.
  auto send_one = [&] {
    for (Delivery& d : deliveries) {
      if (d.accepted || d.due > elapsed()) continue;
      if (absl::Now() < d.retry_at) continue;
      if (d.body.empty()) {
        std::string sha = MUST(repo.Commit({{"push.txt", d.guid + "\n"}}, {}, d.guid));
        d.body = Cluster::PushPayload(repo.clone_url(), kRepoName, sha);
      }
      ++d.tries;
      // Why a short timeout: a server waiting on a stopped PostgreSQL must not hold up the
      // driver, which has faults to heal.
      auto r = HttpFetch("POST", c.http_url() + "/hooks/github",
                         {{"X-GitHub-Event", "push"},
                          {"X-GitHub-Delivery", d.guid},
                          {"X-Hub-Signature-256", Cluster::GithubSignature(kSecret, d.body)}},
                         d.body, absl::Seconds(5));
      const bool queued = r.ok() && (absl::StrContains(r->body, "\"queued\"") ||
                                     absl::StrContains(r->body, "\"duplicate\""));
      if (r.ok() && r->status == 202 && queued) {
        d.accepted = true;
      } else {
        d.last_answer = r.ok() ? absl::StrCat("HTTP ", r->status, " ", r->body)
                               : std::string(r.status().message());
        d.retry_at = absl::Now() + absl::Milliseconds(500);
      }
      return;
    }
  };
  auto all_accepted = [&] {
    return std::all_of(deliveries.begin(), deliveries.end(),
                       [](const Delivery& d) { return d.accepted; });
  };

  // The fault phase: webhooks at their times, faults one after the other.
  size_t next_fault = 0;
  const absl::Time phase_deadline = t0 + cfg.window + absl::Minutes(2);
  while (absl::Now() < phase_deadline) {
    if (next_fault == plan.size() && !driver.active() && all_accepted()) break;
    if (driver.active() && absl::Now() >= driver.heal_at()) {
      MUST(driver.Heal());
    } else if (!driver.active() && next_fault < plan.size() && elapsed() >= plan[next_fault].at) {
      const PlannedFault& f = plan[next_fault++];
      MUST(driver.Begin(f, elapsed()));
      if (f.kind == FaultKind::kDiskFull) {
        // Two webhooks while the disk is full: planning them needs a git fetch into the data dir.
        int moved = 0;
        for (Delivery& d : deliveries) {
          if (moved < 2 && d.body.empty()) {
            d.due = std::min(d.due, elapsed());
            ++moved;
          }
        }
        for (; moved < 2; ++moved) {
          deliveries.push_back(
              {absl::StrCat("faults-", seed, "-", deliveries.size() + 1), elapsed()});
        }
      }
    }
    send_one();
    sample_stuck();
    absl::SleepFor(absl::Milliseconds(20));
  }

  // The drain: every pipeline of an accepted webhook finishes (bounded).
  const absl::Time drain_deadline = absl::Now() + cfg.drain;
  std::string unfinished;
  while (true) {
    send_one();
    sample_stuck();
    auto n = c.QueryInt(
        "SELECT count(*) FROM webhook_deliveries d LEFT JOIN pipelines p ON p.delivery_id = d.id "
        "WHERE p.id IS NULL OR p.state = 'running'");
    if (n.ok() && *n == 0 && all_accepted()) break;
    unfinished = n.ok() ? absl::StrCat(*n, " webhook(s) without a finished pipeline")
                        : std::string(n.status().message());
    if (absl::Now() >= drain_deadline) {
      problems.Add("drain",
                   absl::StrCat("after ", absl::FormatDuration(cfg.drain), ": ", unfinished));
      break;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  const absl::Duration took = elapsed();

  // The checks.
  fig.faults = driver.injected();
  fig.webhooks = static_cast<int>(deliveries.size());
  for (const Delivery& d : deliveries) {
    if (!d.accepted) {
      ++fig.not_accepted;
      problems.Add("not_accepted",
                   absl::StrCat(d.guid, " after ", d.tries, " tries, last: ", d.last_answer));
    }
  }
  auto rows = MUST(c.Query(
      "SELECT d.delivery_id, d.state, coalesce(d.message, ''), coalesce(p.id::text, ''), "
      "coalesce(p.state, ''), coalesce(p.message, ''), "
      "(SELECT count(*) FROM jobs j WHERE j.pipeline_id = p.id) "
      "FROM webhook_deliveries d LEFT JOIN pipelines p ON p.delivery_id = d.id ORDER BY d.id"));
  std::map<std::string, std::vector<std::optional<std::string>>> by_guid;
  for (auto& r : rows) by_guid[*r[0]] = r;
  for (const Delivery& d : deliveries) {
    if (!d.accepted) continue;
    auto it = by_guid.find(d.guid);
    if (it == by_guid.end()) {
      ++fig.missing_pipelines;
      problems.Add("missing_pipeline", absl::StrCat(d.guid, ": accepted but no delivery row"));
      continue;
    }
    const auto& r = it->second;
    ++fig.pipelines;
    if (r[3]->empty() || *r[4] == "error" || *r[6] != std::to_string(kJobsPerPipeline)) {
      ++fig.missing_pipelines;
      problems.Add("missing_pipeline",
                   absl::StrCat(d.guid, ": delivery ", *r[1], " '", *r[2], "', pipeline '", *r[3],
                                "' ", *r[4], " '", *r[5], "' with ", *r[6], " job(s)"));
    }
  }
  auto jobs = MUST(c.Query(
      "SELECT j.id, j.name, j.state, j.attempt, coalesce(j.message, ''), j.pipeline_id, "
      "(SELECT count(*) FROM job_attempts a WHERE a.job_id = j.id AND "
      "a.state IN ('succeeded', 'failed', 'timed_out', 'canceled', 'error')), "
      "(SELECT string_agg(a.attempt || ':' || a.state || coalesce('(' || a.message || ')', ''), "
      "', ' ORDER BY a.attempt) FROM job_attempts a WHERE a.job_id = j.id) "
      "FROM jobs j ORDER BY j.id"));
  fig.jobs = static_cast<int>(jobs.size());
  fig.attempts = static_cast<int>(MUST(c.QueryInt("SELECT count(*) FROM job_attempts")));
  for (const auto& r : jobs) {
    const int64_t id = std::stoll(*r[0]);
    const std::string& name = *r[1];
    const std::string& state = *r[2];
    const std::string where =
        absl::StrCat("job ", id, " (", name, " of pipeline ", *r[5], ") ", state, " attempt ",
                     *r[3], " '", *r[4], "' attempts [", r[7].value_or(""), "]");
    const bool finished =
        state != "pending" && state != "queued" && state != "assigned" && state != "running";
    if (!finished && stuck_jobs.insert(id).second) problems.Add("stuck", where + " at the end");
    if (*r[6] != "1") {
      ++fig.results_not_one;
      problems.Add("results_not_one", absl::StrCat(where, ": ", *r[6], " result(s)"));
    }
    if (state != "succeeded") {
      ++fig.not_succeeded;
      problems.Add("not_succeeded", where);
      continue;
    }
    auto log = c.JobLog(id);
    if (!log.ok()) {
      problems.Add("log", absl::StrCat(where, ": ", log.status().message()));
      fig.lost_lines += kLinesPerJob;
      continue;
    }
    LineCount n = CountLines(*log, LinePrefix(name, std::stoll(*r[3])), kLinesPerJob);
    fig.lost_lines += n.lost;
    fig.dup_lines += n.duplicated;
    fig.foreign_lines += n.foreign;
    if (n.lost + n.duplicated + n.foreign > 0) {
      problems.Add(
          "log", absl::StrCat(where, ": lost ", n.lost, ", duplicated ", n.duplicated, ", foreign ",
                              n.foreign, "; log:\n", testing::Tail(*log, 600)));
    }
  }
  fig.stuck = static_cast<int>(stuck_jobs.size());

  absl::StrAppend(&result.report, "faults of seed ", seed, " (run took ",
                  absl::FormatDuration(absl::Trunc(took, absl::Seconds(1))), "):\n",
                  driver.description());
  if (!fig.clean()) {
    absl::StrAppend(&result.report, "problems (at most ", kExamples, " of each kind):\n",
                    problems.text(), "--- server warnings (last 40) ---\n",
                    ServerWarnings(c.dir(), 40), "--- postgres log (tail) ---\n", pg->LogTail(1500),
                    "\n", c.LogTails());
  }
  return result;
}

// Appends one line per run to <build>/faults-runs.log: when, the figures (with the seed), the
// verdict. Why: a failure seen once can be replayed with its seed long after the output scrolled.
void RecordRun(const Figures& f) {
  std::ofstream out(std::string(ASSAY_BINARY_DIR) + "/faults-runs.log", std::ios::app);
  out << absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone()) << " " << f.Line()
      << " " << (f.clean() ? "PASS" : "FAIL") << "\n";
}

TEST_CASE("CountLines counts lost, duplicated and foreign lines exactly", "[faults]") {
  const std::string p = LinePrefix("build", 2);
  CHECK(p == "build a2 line ");
  auto count = [&](const std::string& log) {
    LineCount n = CountLines(log, p, 3);
    return std::vector<int>{n.lost, n.duplicated, n.foreign};
  };
  CHECK(count("build a2 line 1\nbuild a2 line 2\nbuild a2 line 3\n") == std::vector<int>{0, 0, 0});
  CHECK(count("build a2 line 1\nbuild a2 line 3") == std::vector<int>{1, 0, 0});
  CHECK(count("build a2 line 1\nbuild a2 line 1\nbuild a2 line 2\nbuild a2 line 3\n"
              "build a2 line 3\nbuild a2 line 3\n") == std::vector<int>{0, 3, 0});
  CHECK(count("build a1 line 1\nbuild a2 line 1\nbuild a2 line 2\nbuild a2 li\nbuild a2 line 4\n"
              "build a2 line +3\n") == std::vector<int>{1, 0, 4});
  CHECK(count("") == std::vector<int>{3, 0, 0});
}

TEST_CASE(
    "a pipeline mix outlives killed agents, server and PostgreSQL, cut connections and a "
    "full disk: nothing lost, duplicated or stuck",
    "[faults]") {
  const Config config = ConfigFromEnv();
  for (int run = 0; run < config.runs; ++run) {
    const uint64_t seed = config.seed + static_cast<uint64_t>(run);
    std::cout << "faults: run " << run + 1 << "/" << config.runs << " seed=" << seed << " ("
              << config.pipelines * kJobsPerPipeline << " jobs, " << config.faults
              << " faults; replay: FAULTS_SEED=" << seed
              << " FAULTS_JOBS=" << config.pipelines * kJobsPerPipeline << ")" << std::endl;
    RunResult r = RunOnce(config, seed);
    RecordRun(r.figures);
    std::cout << r.report << "faults: " << r.figures.Line() << std::endl;
    // The report (fault log, problems, process logs) went to stdout above.
    INFO("faults: " << r.figures.Line() << "\nreplay: FAULTS_SEED=" << seed
                    << " FAULTS_JOBS=" << config.pipelines * kJobsPerPipeline);
    CHECK(r.figures.lost_lines == 0);
    CHECK(r.figures.dup_lines == 0);
    CHECK(r.figures.foreign_lines == 0);
    CHECK(r.figures.stuck == 0);
    CHECK(r.figures.results_not_one == 0);
    CHECK(r.figures.not_succeeded == 0);
    CHECK(r.figures.not_accepted == 0);
    CHECK(r.figures.missing_pipelines == 0);
    CHECK(r.figures.total_faults() == r.planned_faults);
  }
}

}  // namespace
}  // namespace assay::faults
