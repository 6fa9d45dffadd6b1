#pragma once
// The faults tier: a pipeline mix with numbered log lines runs while a driver kills agents, the
// server and PostgreSQL, cuts agent connections and fills the server's disk; afterwards the
// checker counts what was lost, duplicated or left stuck. This header holds what the pieces share:
// the run's configuration (from the environment), the fault kinds and the figures.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"

namespace assay::faults {

enum class FaultKind { kAgentKill, kServerKill, kPgRestart, kConnCut, kDiskFull };
inline constexpr int kFaultKinds = 5;
inline constexpr std::array<FaultKind, kFaultKinds> kAllFaultKinds = {
    FaultKind::kAgentKill, FaultKind::kServerKill, FaultKind::kPgRestart, FaultKind::kConnCut,
    FaultKind::kDiskFull};
// "agent_kill", "server_kill", "pg_restart", "conn_cut", "disk_full".
const char* FaultName(FaultKind kind);

// Jobs per pipeline (see PipelineFile) and numbered lines per job.
inline constexpr int kJobsPerPipeline = 5;
inline constexpr int kLinesPerJob = 30;
inline constexpr int kAgents = 4;
inline constexpr int kSlotsPerAgent = 2;
// The server's --lease and its sweep interval (server/server.h: 1 s): a job whose lease ran out
// more than kLease + kSweep ago while the server and PostgreSQL were up is stuck.
inline constexpr absl::Duration kLease = absl::Seconds(2);
inline constexpr absl::Duration kSweep = absl::Seconds(1);

// What one run does. From the environment (ConfigFromEnv):
//   FAULTS_SEED     the first run's seed (default: random); run r uses seed + r
//   FAULTS_RUNS     runs, each with a fresh PostgreSQL, server and agents (default 1)
//   FAULTS_JOBS     jobs per run, rounded up to whole pipelines of kJobsPerPipeline (default 200)
//   FAULTS_COUNT    faults per run (default max(5, jobs / 15)); each allowed kind at least once
//                   when the count allows
//   FAULTS_KINDS    comma-separated kinds to inject (default all five)
//   FAULTS_DRAIN_S  how long the last jobs may take after the last fault (default 60 + jobs/3)
struct Config {
  uint64_t seed = 0;
  int runs = 1;
  int pipelines = 40;
  int faults = 13;
  std::vector<FaultKind> kinds;
  absl::Duration drain = absl::Seconds(120);
  // Webhooks go out spread over this window; faults start inside it.
  absl::Duration window = absl::Seconds(40);
};
// kInvalidArgument-like problems (a bad number, an unknown kind) are reported by throwing
// std::runtime_error with the variable's name.
Config ConfigFromEnv();

// The numbers one run ends with; every one but the counts of work and faults must be 0.
struct Figures {
  uint64_t seed = 0;
  int pipelines = 0;
  int jobs = 0;
  int attempts = 0;
  int webhooks = 0;
  std::array<int, kFaultKinds> faults{};  // injected, by kind
  int lost_lines = 0;
  int dup_lines = 0;
  int foreign_lines = 0;      // lines in a job's log that are not its last attempt's numbered lines
  int stuck = 0;              // jobs left unfinished, or whose lease ran out unswept
  int results_not_one = 0;    // jobs without exactly one attempt with a final result
  int not_succeeded = 0;      // jobs that did not end 'succeeded' (none of them fails by itself)
  int not_accepted = 0;       // webhooks the server never answered 202
  int missing_pipelines = 0;  // accepted webhooks without a planned pipeline of all its jobs

  int total_faults() const;
  bool clean() const;
  // "seed=S runs=1 pipelines=P jobs=J attempts=A webhooks=W faults=F (agent_kill=..,...)
  // lost_lines=L dup_lines=D foreign_lines=.. stuck=K results_not_one=X not_succeeded=..
  // not_accepted=.. missing_pipelines=.."
  std::string Line() const;
};

// How a log compares with the `n` lines "<prefix>1\n" ... "<prefix>n\n" it should hold exactly
// once each. A numbered line that is absent is lost; each further copy is duplicated; any other
// line (another attempt's, a torn one) is foreign. A last line without '\n' counts as a line.
struct LineCount {
  int lost = 0;
  int duplicated = 0;
  int foreign = 0;
};
LineCount CountLines(std::string_view log, std::string_view prefix, int n);

// The prefix of job `name`'s numbered lines in attempt `attempt` (what PipelineFile's jobs print).
std::string LinePrefix(std::string_view name, int64_t attempt);

// The .assay.yml of every pushed commit: kJobsPerPipeline jobs (a small DAG) that each print
// kLinesPerJob numbered lines with short pauses, and retry only when their agent is lost (enough
// times to outlast every fault of a run).
std::string PipelineFile();
// The job names PipelineFile defines.
const std::vector<std::string>& JobNames();

}  // namespace assay::faults
