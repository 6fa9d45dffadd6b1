// assay-bench-dispatch: how fast one server's Dispatcher hands queued jobs to connected agents,
// in-process, against a real PostgreSQL. See bench/README.md ("Scheduler benchmarks", 1).
//
// Real Db / RepoStore / PipelineStore / AgentStore / JobStore / Dispatcher; the agents are
// in-memory AgentChannels (no process, no gRPC). Every simulated agent finishes a job as soon
// as it receives it: a small worker pool (the server's agent worker pool has 4 threads) calls
// JobStore::MarkRunning and JobStore::Finish (what JobAccepted and JobResult do on the server),
// then Dispatcher::JobReleased and Kick, exactly as AgentServiceImpl does.
//
// Phase A (backlog): --jobs queued jobs (pipelines of --jobs-per-pipeline jobs over --repos
//   repositories) are created first; then --agents agents connect and the dispatcher runs until
//   every job is dispatched and finished. Figure: assignments sent per second.
// Phase B (paced, --paced-rate > 0): one-job pipelines are created at a fixed rate for
//   --paced-seconds while the agents are idle; figure: queue → assignment latency.
//
// Figures are printed (and one `RESULT {json}` line for bench/sched.sh), never asserted.
#include <dirent.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/base/clock.h"
#include "common/base/config.h"
#include "common/base/log.h"
#include "server/metrics/metrics.h"
#include "server/scheduler/dispatcher.h"
#include "server/store/agents.h"
#include "server/store/db.h"
#include "server/store/jobs.h"
#include "server/store/migrations.h"
#include "server/store/pipelines.h"
#include "server/store/repos.h"

namespace assay::bench {
namespace {

constexpr char kSpec[] = R"({"steps":[{"name":"s","run":"true"}],"env":{},"timeout_s":60})";
constexpr char kSha[] = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "assay-bench-dispatch: " << what << "\n";
  std::exit(1);
}

template <typename T>
T Must(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) Die(absl::StrCat(what, ": ", v.status().ToString()));
  return *std::move(v);
}

// Nearest-rank percentile of `v` (sorted here); 0 when empty.
double Pct(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double ProcessCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// utime + stime (seconds) of `pid` and every process whose parent is `pid` (a postmaster and
// its backends); 0 when pid is 0.
double TreeCpuSeconds(long pid) {
  if (pid <= 0) return 0;
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  double total = 0;
  DIR* d = opendir("/proc");
  if (d == nullptr) return 0;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    long p = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0') continue;
    std::ifstream in(absl::StrCat("/proc/", p, "/stat"));
    std::string line;
    if (!std::getline(in, line)) continue;
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    std::string f[20];
    for (auto& s : f) rest >> s;
    // Fields after the command: state(3) ppid(4) ... utime(14) stime(15) → f[0] = field 3.
    long ppid = std::atol(f[1].c_str());
    if (p != pid && ppid != pid) continue;
    total += (std::atof(f[11].c_str()) + std::atof(f[12].c_str())) / hz;
  }
  closedir(d);
  return total;
}

struct Work {
  int64_t agent_id = 0;
  int64_t job_id = 0;
  std::string token;
};

// The simulated fleet: receives assignments on the dispatcher's thread, finishes them on a
// worker pool, and keeps the timings.
class Fleet {
 public:
  Fleet(store::JobStore* jobs, Dispatcher* dispatcher) : jobs_(jobs), dispatcher_(dispatcher) {}

  void AddAgent(int64_t id) {
    index_[id] = released_at_.size();
    released_at_.push_back(absl::InfinitePast());
  }

  void set_finish(bool finish) { finish_ = finish; }

  void OnAssignment(int64_t agent_id, const v1::Assignment& a) {
    const absl::Time now = absl::Now();
    {
      std::lock_guard<std::mutex> l(mu_);
      send_times_.push_back(now);
      if (!finish_) {
        ++finished_;  // counted as done when handed out: nothing runs
        done_cv_.notify_all();
        return;
      }
      absl::Time& rel = released_at_[index_.at(agent_id)];
      if (rel != absl::InfinitePast()) {
        refill_ms_.push_back(absl::ToDoubleMilliseconds(now - rel));
        rel = absl::InfinitePast();
      }
      if (track_pipelines_) sent_by_pipeline_[a.pipeline_id()] = now;
      if (a.attempt() != 1) ++retried_;
      work_.push_back({agent_id, a.job_id(), a.attempt_token()});
    }
    cv_.notify_one();
  }

  void StartWorkers(int n) {
    for (int i = 0; i < n; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  }

  void StopWorkers() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  // Waits up to `d` for `finished() >= n`; returns whether it got there.
  bool WaitFinished(int64_t n, absl::Duration d, const std::function<void()>& progress) {
    const absl::Time deadline = absl::Now() + d;
    absl::Time next_progress = absl::Now() + absl::Seconds(5);
    std::unique_lock<std::mutex> l(mu_);
    while (finished_ < n) {
      if (absl::Now() >= deadline) return false;
      done_cv_.wait_for(l, std::chrono::milliseconds(200));
      if (absl::Now() >= next_progress) {
        l.unlock();
        progress();
        l.lock();
        next_progress = absl::Now() + absl::Seconds(5);
      }
    }
    return true;
  }

  // For the "once" driver: blocks until a slot was freed since the last call (or 100 ms).
  void WaitReleased() {
    std::unique_lock<std::mutex> l(mu_);
    released_cv_.wait_for(l, std::chrono::milliseconds(100),
                          [this] { return released_since_ > 0 || stopping_; });
    released_since_ = 0;
  }

  int64_t finished() {
    std::lock_guard<std::mutex> l(mu_);
    return finished_;
  }
  int64_t sent() {
    std::lock_guard<std::mutex> l(mu_);
    return static_cast<int64_t>(send_times_.size());
  }
  int64_t errors() {
    std::lock_guard<std::mutex> l(mu_);
    return errors_;
  }
  int64_t retried() {
    std::lock_guard<std::mutex> l(mu_);
    return retried_;
  }

  // Clears the timings (between phases).
  void ResetStats(bool track_pipelines) {
    std::lock_guard<std::mutex> l(mu_);
    send_times_.clear();
    refill_ms_.clear();
    sent_by_pipeline_.clear();
    finished_ = 0;
    track_pipelines_ = track_pipelines;
  }

  std::vector<absl::Time> send_times() {
    std::lock_guard<std::mutex> l(mu_);
    return send_times_;
  }
  std::vector<double> refill_ms() {
    std::lock_guard<std::mutex> l(mu_);
    return refill_ms_;
  }
  std::unordered_map<int64_t, absl::Time> sent_by_pipeline() {
    std::lock_guard<std::mutex> l(mu_);
    return sent_by_pipeline_;
  }

 private:
  void WorkerLoop() {
    while (true) {
      Work w;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [this] { return stopping_ || !work_.empty(); });
        if (work_.empty()) return;
        w = std::move(work_.front());
        work_.pop_front();
      }
      bool ok = true;
      auto f = jobs_->MarkRunning(w.job_id, w.token);
      ok = f.ok() && *f == store::Fence::kOk;
      store::ResultReport r;
      r.job_id = w.job_id;
      r.attempt_token = w.token;
      r.state = "succeeded";
      r.exit_code = 0;
      auto out = jobs_->Finish(r);
      ok = ok && out.ok() && out->fence == store::Fence::kOk;
      {
        std::lock_guard<std::mutex> l(mu_);
        released_at_[index_.at(w.agent_id)] = absl::Now();
        ++finished_;
        ++released_since_;
        if (!ok) {
          if (errors_ < 5) {
            std::cerr << "job " << w.job_id << ": mark running "
                      << (f.ok() ? "ok" : f.status().ToString()) << ", finish "
                      << (out.ok() ? "ok" : out.status().ToString()) << "\n";
          }
          ++errors_;
        }
      }
      // As AgentServiceImpl::OnResult: release the slot, then kick the dispatcher.
      dispatcher_->JobReleased(w.agent_id, w.job_id);
      dispatcher_->Kick();
      released_cv_.notify_one();
      done_cv_.notify_all();
    }
  }

  store::JobStore* jobs_;
  Dispatcher* dispatcher_;
  bool finish_ = true;
  std::unordered_map<int64_t, size_t> index_;  // written before any thread starts

  std::mutex mu_;
  std::condition_variable cv_, done_cv_, released_cv_;
  std::deque<Work> work_;
  bool stopping_ = false;
  int64_t finished_ = 0, errors_ = 0, retried_ = 0, released_since_ = 0;
  std::vector<absl::Time> released_at_;
  std::vector<absl::Time> send_times_;
  std::vector<double> refill_ms_;
  bool track_pipelines_ = false;
  std::unordered_map<int64_t, absl::Time> sent_by_pipeline_;
  std::vector<std::thread> workers_;
};

class SimChannel final : public AgentChannel {
 public:
  SimChannel(Fleet* fleet, int64_t agent_id) : fleet_(fleet), agent_id_(agent_id) {}
  bool Send(const v1::ServerMessage& msg) override {
    if (msg.has_assignment()) fleet_->OnAssignment(agent_id_, msg.assignment());
    return true;
  }
  void Close(const std::string&) override {}

 private:
  Fleet* fleet_;
  int64_t agent_id_;
};

// Drives DispatchOnce from this program's own thread (mode "once"), timing every call.
class OnceDriver {
 public:
  OnceDriver(Dispatcher* d, Fleet* f) : d_(d), f_(f) {}
  void Start() {
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        const absl::Time t0 = absl::Now();
        const double c0 = ThreadCpuSeconds();
        int n = d_->DispatchOnce();
        const double wall = absl::ToDoubleMilliseconds(absl::Now() - t0);
        const double cpu = (ThreadCpuSeconds() - c0) * 1000;
        {
          std::lock_guard<std::mutex> l(mu_);
          if (n > 0) {
            wall_ms_.push_back(wall);
            cpu_ms_ += cpu;
            sent_ += n;
          } else {
            idle_wall_ms_ += wall;
          }
        }
        f_->WaitReleased();
      }
    });
  }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::vector<double> wall_ms() {
    std::lock_guard<std::mutex> l(mu_);
    return wall_ms_;
  }
  double cpu_ms() {
    std::lock_guard<std::mutex> l(mu_);
    return cpu_ms_;
  }
  double idle_wall_ms() {
    std::lock_guard<std::mutex> l(mu_);
    return idle_wall_ms_;
  }
  int64_t sent() {
    std::lock_guard<std::mutex> l(mu_);
    return sent_;
  }

 private:
  Dispatcher* d_;
  Fleet* f_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<double> wall_ms_;
  double cpu_ms_ = 0, idle_wall_ms_ = 0;
  int64_t sent_ = 0;
};

std::string DsnWithDb(const std::string& dsn, const std::string& db) {
  // postgresql://user@host:port/dbname[?...] → replace dbname.
  auto scheme = dsn.find("://");
  auto slash = dsn.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (slash == std::string::npos) return dsn + "/" + db;
  auto q = dsn.find('?', slash);
  return dsn.substr(0, slash + 1) + db + (q == std::string::npos ? "" : dsn.substr(q));
}

int Run(int argc, char** argv) {
  const std::vector<OptionSpec> specs = {
      {"dsn", "", "maintenance DSN of the PostgreSQL to use (a scratch database is created)", true},
      {"db", "assay_bench_dispatch", "name of the scratch database (dropped and re-created)"},
      {"agents", "1000", "simulated agents"},
      {"slots", "1", "CPU slots per simulated agent"},
      {"finish", "true",
       "true: workers finish each job (MarkRunning + Finish) and free its slot; false: "
       "nothing finishes, so phase A measures handing out jobs alone (give enough slots)"},
      {"jobs", "20000", "phase A: queued jobs"},
      {"repos", "4", "repositories the pipelines are spread over"},
      {"jobs-per-pipeline", "10", "phase A: jobs per pipeline (no needs: all queued)"},
      {"workers", "4", "threads that finish jobs (MarkRunning + Finish) for the agents"},
      {"db-pool", "8", "PostgreSQL connections (the server's default is 8)"},
      {"mode", "loop",
       "loop: the Dispatcher's own thread (Start); once: DispatchOnce from this program's "
       "thread, each call timed"},
      {"paced-rate", "0", "phase B: one-job pipelines created per second (0: no phase B)"},
      {"paced-seconds", "10", "phase B: how long to create them"},
      {"deadline", "300s", "phase A gives up after this long"},
      {"pg-pid", "0", "postmaster pid: report its and its backends' CPU time"},
      {"pg-stats", "", "report pg_stat_statements for phase A (needs the library preloaded)", false,
       true},
  };
  auto cfg = Config::Parse(argc, argv, specs, "assay-bench-dispatch");
  if (!cfg.ok()) {
    bool help = cfg.status().code() == absl::StatusCode::kCancelled;
    std::cerr << cfg.status().message() << "\n";
    return help ? 0 : 2;
  }
  auto geti = [&](const char* k) { return static_cast<int>(Must(cfg->GetInt(k), k)); };
  const int n_agents = geti("agents"), n_jobs = geti("jobs"), n_repos = geti("repos");
  const int jpp = std::max(1, geti("jobs-per-pipeline")), n_workers = geti("workers");
  const int slots = std::max(1, geti("slots"));
  const bool finish = cfg->Get("finish") != "false";
  const int pool = geti("db-pool"), paced_rate = geti("paced-rate");
  const int paced_seconds = geti("paced-seconds");
  const long pg_pid = geti("pg-pid");
  const absl::Duration deadline = Must(cfg->GetDuration("deadline"), "deadline");
  const std::string mode = cfg->Get("mode");
  const bool pg_stats = cfg->GetBool("pg-stats");
  if (mode != "loop" && mode != "once") Die("--mode must be loop or once");
  SetLogLevel(LogLevel::kWarn);

  // ---- scratch database
  const std::string db_name = cfg->Get("db");
  {
    pqxx::connection admin(cfg->Get("dsn"));
    pqxx::nontransaction tx(admin);
    tx.exec("DROP DATABASE IF EXISTS " + tx.quote_name(db_name));
    tx.exec("CREATE DATABASE " + tx.quote_name(db_name));
  }
  const std::string dsn = DsnWithDb(cfg->Get("dsn"), db_name);
  {
    pqxx::connection c(dsn);
    Must(store::ApplyMigrations(c, store::EmbeddedMigrations()), "migrations");
    if (pg_stats) {
      pqxx::nontransaction tx(c);
      tx.exec("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    }
  }

  const Clock* clock = SystemClock::Get();
  store::Db db(dsn, pool);
  store::RepoStore repos(&db);
  store::PipelineStore pipelines(&db, clock);
  store::JobStore jobs(&db, clock);
  store::AgentStore agents(&db);
  Metrics metrics;
  Dispatcher dispatcher(&jobs, &metrics, clock, DispatcherOptions{});
  Fleet fleet(&jobs, &dispatcher);
  fleet.set_finish(finish);

  std::vector<int64_t> repo_ids;
  for (int r = 0; r < n_repos; ++r) {
    store::NewRepo nr;
    nr.name = absl::StrCat("bench/repo", r);
    nr.provider = "github";
    nr.clone_url = absl::StrCat("https://example.invalid/bench/repo", r, ".git");
    nr.html_url = absl::StrCat("https://example.invalid/bench/repo", r);
    repo_ids.push_back(Must(repos.Create(nr), "repo").id);
  }
  auto make_pipeline = [&](int64_t repo_id, int njobs, int seq) {
    store::NewPipeline p;
    p.repo_id = repo_id;
    p.event = "push";
    p.ref = "refs/heads/main";
    p.commit_sha = kSha;
    for (int j = 0; j < njobs; ++j) {
      store::NewJob nj;
      nj.name = absl::StrCat("job", j);
      nj.spec_json = kSpec;
      (void)seq;
      p.jobs.push_back(std::move(nj));
    }
    return p;
  };

  // ---- phase A set-up: the backlog (2 threads), then the agents
  const absl::Time setup0 = absl::Now();
  const int n_pipelines = (n_jobs + jpp - 1) / jpp;
  {
    std::atomic<int> next{0};
    std::vector<std::thread> creators;
    for (int t = 0; t < 2; ++t) {
      creators.emplace_back([&] {
        for (int i = next++; i < n_pipelines; i = next++) {
          const int njobs = std::min(jpp, n_jobs - i * jpp);
          Must(pipelines.Create(make_pipeline(repo_ids[i % n_repos], njobs, i)), "pipeline");
        }
      });
    }
    for (auto& t : creators) t.join();
  }
  const double create_s = absl::ToDoubleSeconds(absl::Now() - setup0);
  std::vector<int64_t> agent_ids;
  for (int i = 0; i < n_agents; ++i) {
    store::AgentHello h;
    h.name = absl::StrFormat("sim-%05d", i);
    h.version = "bench";
    h.cpu_slots = slots;
    agent_ids.push_back(Must(agents.Connect(h), "agent").id);
    fleet.AddAgent(agent_ids.back());
  }
  std::cerr << "set-up: " << n_jobs << " jobs in " << n_pipelines << " pipelines over " << n_repos
            << " repos (" << absl::StrFormat("%.1f", create_s) << " s), " << n_agents
            << " agents registered\n";
  {
    pqxx::connection c(dsn);
    pqxx::nontransaction tx(c);
    tx.exec("VACUUM ANALYZE");
    if (pg_stats) tx.exec("SELECT pg_stat_statements_reset()");
  }

  // ---- phase A: drain the backlog
  fleet.StartWorkers(n_workers);
  OnceDriver once(&dispatcher, &fleet);
  const double cpu0 = ProcessCpuSeconds();
  const double pg_cpu0 = TreeCpuSeconds(pg_pid);
  const absl::Time t0 = absl::Now();
  for (int64_t id : agent_ids) {
    dispatcher.AgentConnected(id, {}, slots, {}, std::make_shared<SimChannel>(&fleet, id));
  }
  if (mode == "loop") {
    dispatcher.Start();
  } else {
    once.Start();
  }
  auto progress = [&] {
    std::cerr << absl::StrFormat("  %.0f s: %d sent, %d finished\n",
                                 absl::ToDoubleSeconds(absl::Now() - t0), fleet.sent(),
                                 fleet.finished());
  };
  const bool complete = fleet.WaitFinished(n_jobs, deadline, progress);
  const absl::Time t1 = absl::Now();
  const double cpu_a = ProcessCpuSeconds() - cpu0;
  const double pg_cpu_a = TreeCpuSeconds(pg_pid) - pg_cpu0;

  std::vector<absl::Time> sends = fleet.send_times();
  const int64_t sent_a = static_cast<int64_t>(sends.size());
  const absl::Time last_send = sends.empty() ? t1 : *std::max_element(sends.begin(), sends.end());
  const double span_s = absl::ToDoubleSeconds(last_send - t0);
  const double rate = span_s > 0 ? static_cast<double>(sent_a) / span_s : 0;
  // Per-second counts; "steady" is the median of the full seconds between the first and the
  // last (the first second holds the initial burst of one job per agent).
  std::vector<double> per_second;
  {
    std::map<int64_t, int> buckets;
    for (absl::Time t : sends) ++buckets[absl::ToInt64Seconds(t - t0)];
    const int64_t last = sends.empty() ? 0 : absl::ToInt64Seconds(last_send - t0);
    for (int64_t s = 1; s < last; ++s) per_second.push_back(buckets.contains(s) ? buckets[s] : 0);
  }
  std::vector<double> ps_sorted = per_second;
  const double steady = Pct(ps_sorted, 50);
  std::vector<double> refill = fleet.refill_ms();
  const double refill_p50 = Pct(refill, 50), refill_p99 = Pct(refill, 99);
  const double total_s = absl::ToDoubleSeconds(t1 - t0);

  std::vector<double> pass_ms;
  double pass_cpu_ms = 0, pass_idle_ms = 0;
  int64_t once_sent = 0;
  if (mode == "once") {
    pass_ms = once.wall_ms();
    pass_cpu_ms = once.cpu_ms();
    pass_idle_ms = once.idle_wall_ms();
    once_sent = once.sent();
  }

  std::printf(
      "== phase A: %d queued jobs, %d agents x %d slot(s), %s, "
      "db pool %d, mode %s\n",
      n_jobs, n_agents, slots,
      finish ? absl::StrCat(n_workers, " finishing workers").c_str()
             : "nothing finishes (hand-out only)",
      pool, mode.c_str());
  std::printf("  assignments sent           %lld%s\n", static_cast<long long>(sent_a),
              complete ? "" : "  (INCOMPLETE: deadline reached)");
  std::printf("  jobs finished              %lld (errors %lld, assignments of attempt > 1: %lld)\n",
              static_cast<long long>(fleet.finished()), static_cast<long long>(fleet.errors()),
              static_cast<long long>(fleet.retried()));
  std::printf("  time to last assignment    %.2f s\n", span_s);
  std::printf("  dispatches/s (whole run)   %.0f\n", rate);
  std::printf("  dispatches/s (median 1-s)  %.0f   (%zu full seconds)\n", steady,
              per_second.size());
  std::printf("  slot freed -> next assignment  p50 %.2f ms, p99 %.2f ms (n=%zu)\n", refill_p50,
              refill_p99, refill.size());
  std::printf("  CPU: this process %.2f s (%.0f%% of one core)", cpu_a, 100 * cpu_a / total_s);
  if (pg_pid > 0) std::printf(", PostgreSQL %.2f s (%.0f%%)", pg_cpu_a, 100 * pg_cpu_a / total_s);
  std::printf(" over %.2f s\n", total_s);
  if (mode == "once") {
    std::vector<double> p = pass_ms;
    double sum = 0;
    for (double v : pass_ms) sum += v;
    std::printf(
        "  DispatchOnce calls that sent: %zu, %lld jobs (%.1f per call); wall p50 %.2f ms, "
        "p99 %.2f ms, total %.0f ms; dispatcher thread CPU %.0f ms; calls that sent "
        "nothing: %.0f ms\n",
        pass_ms.size(), static_cast<long long>(once_sent),
        pass_ms.empty() ? 0.0 : static_cast<double>(once_sent) / pass_ms.size(), Pct(p, 50),
        Pct(p, 99), sum, pass_cpu_ms, pass_idle_ms);
  }
  boost::json::array top;
  if (pg_stats) {
    pqxx::connection c(dsn);
    pqxx::nontransaction tx(c);
    auto rows = tx.exec(
        "SELECT calls, total_exec_time, rows, regexp_replace(query, '\\s+', ' ', 'g') "
        "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = "
        "current_database()) ORDER BY total_exec_time DESC LIMIT 12");
    double all =
        tx.exec(
              "SELECT coalesce(sum(total_exec_time), 0) FROM pg_stat_statements WHERE dbid = "
              "(SELECT oid FROM pg_database WHERE datname = current_database())")[0][0]
            .as<double>();
    std::printf("  pg_stat_statements (server-side execution time, all statements %.0f ms):\n",
                all);
    std::printf("    %8s %10s %8s  %s\n", "calls", "total ms", "us/call", "statement");
    for (const auto& r : rows) {
      const auto calls = r[0].as<int64_t>();
      const double ms = r[1].as<double>();
      std::string q = r[3].as<std::string>();
      if (q.size() > 90) q = q.substr(0, 87) + "...";
      std::printf("    %8lld %10.0f %8.0f  %s\n", static_cast<long long>(calls), ms,
                  calls > 0 ? ms * 1000 / static_cast<double>(calls) : 0.0, q.c_str());
      top.push_back({{"calls", calls}, {"total_ms", ms}, {"query", q}});
    }
  }

  // ---- phase B: paced arrivals, queue → assignment latency
  boost::json::object phase_b;
  if (paced_rate > 0 && complete) {
    fleet.ResetStats(true);
    std::mutex cmu;
    std::unordered_map<int64_t, absl::Time> created;  // pipeline id → just before Create
    const int total = paced_rate * paced_seconds;
    const absl::Time b0 = absl::Now();
    std::atomic<int> next{0};
    std::vector<std::thread> creators;
    for (int t = 0; t < 2; ++t) {
      creators.emplace_back([&] {
        for (int i = next++; i < total; i = next++) {
          const absl::Time due = b0 + absl::Seconds(1) * i / paced_rate;
          absl::SleepFor(due - absl::Now());
          const absl::Time before = absl::Now();
          int64_t id =
              Must(pipelines.Create(make_pipeline(repo_ids[i % n_repos], 1, i)), "pipeline");
          dispatcher.Kick();  // what the planner does after creating a pipeline
          std::lock_guard<std::mutex> l(cmu);
          created[id] = before;
        }
      });
    }
    for (auto& t : creators) t.join();
    const double offered_s = absl::ToDoubleSeconds(absl::Now() - b0);
    const bool b_complete = fleet.WaitFinished(total, absl::Seconds(60), progress);
    std::vector<double> lat;
    for (const auto& [pid, at] : fleet.sent_by_pipeline()) {
      auto it = created.find(pid);
      if (it != created.end()) lat.push_back(absl::ToDoubleMilliseconds(at - it->second));
    }
    const size_t n = lat.size();
    const double p50 = Pct(lat, 50), p99 = Pct(lat, 99), mx = lat.empty() ? 0 : lat.back();
    std::printf("== phase B: %d one-job pipelines at %d/s (created in %.2f s), agents idle\n",
                total, paced_rate, offered_s);
    std::printf("  queued -> assignment sent  p50 %.2f ms, p99 %.2f ms, max %.2f ms (n=%zu)%s\n",
                p50, p99, mx, n, b_complete ? "" : "  (INCOMPLETE)");
    phase_b = {{"rate", paced_rate},    {"jobs", total}, {"n", n},
               {"p50_ms", p50},         {"p99_ms", p99}, {"max_ms", mx},
               {"complete", b_complete}};
  }

  if (mode == "loop") {
    dispatcher.Stop();
  } else {
    once.Stop();
  }
  fleet.StopWorkers();

  boost::json::object result{{"agents", n_agents},
                             {"jobs", n_jobs},
                             {"workers", n_workers},
                             {"slots", slots},
                             {"finish", finish},
                             {"db_pool", pool},
                             {"mode", mode},
                             {"complete", complete},
                             {"sent", sent_a},
                             {"errors", fleet.errors()},
                             {"span_s", span_s},
                             {"dispatches_per_s", rate},
                             {"steady_per_s", steady},
                             {"refill_p50_ms", refill_p50},
                             {"refill_p99_ms", refill_p99},
                             {"cpu_s", cpu_a},
                             {"pg_cpu_s", pg_cpu_a},
                             {"wall_s", total_s},
                             {"pg_top", top}};
  if (!phase_b.empty()) result["paced"] = phase_b;
  std::printf("RESULT %s\n", boost::json::serialize(result).c_str());
  std::fflush(stdout);
  return complete ? 0 : 3;
}

}  // namespace
}  // namespace assay::bench

int main(int argc, char** argv) { return assay::bench::Run(argc, argv); }
