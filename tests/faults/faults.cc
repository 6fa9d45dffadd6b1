#include "tests/faults/faults.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <random>
#include <stdexcept>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace assay::faults {
namespace {

// The integer in environment variable `name`, or `fallback` when unset; throws when it is not a
// number in [min, max].
int64_t EnvInt(const char* name, int64_t fallback, int64_t min, int64_t max) {
  const char* e = std::getenv(name);
  if (e == nullptr || *e == '\0') return fallback;
  int64_t v = 0;
  if (!absl::SimpleAtoi(e, &v) || v < min || v > max) {
    throw std::runtime_error(
        absl::StrCat(name, "='", e, "': expected an integer from ", min, " to ", max));
  }
  return v;
}

}  // namespace

const char* FaultName(FaultKind kind) {
  switch (kind) {
    case FaultKind::kAgentKill: return "agent_kill";
    case FaultKind::kServerKill: return "server_kill";
    case FaultKind::kPgRestart: return "pg_restart";
    case FaultKind::kConnCut: return "conn_cut";
    case FaultKind::kDiskFull: return "disk_full";
  }
  return "?";
}

Config ConfigFromEnv() {
  Config c;
  const char* seed = std::getenv("FAULTS_SEED");
  if (seed != nullptr && *seed != '\0') {
    if (!absl::SimpleAtoi(seed, &c.seed)) {
      throw std::runtime_error(absl::StrCat("FAULTS_SEED='", seed, "': expected an integer"));
    }
  } else {
    // Why 31 bits: short enough to copy from a log line without mistakes.
    c.seed = std::random_device{}() & 0x7fffffff;
  }
  c.runs = static_cast<int>(EnvInt("FAULTS_RUNS", 1, 1, 100));
  const int jobs = static_cast<int>(EnvInt("FAULTS_JOBS", 200, 1, 5000));
  c.pipelines = (jobs + kJobsPerPipeline - 1) / kJobsPerPipeline;
  c.faults = static_cast<int>(EnvInt("FAULTS_COUNT", std::max(5, jobs / 15), 0, 1000));
  c.drain = absl::Seconds(EnvInt("FAULTS_DRAIN_S", 60 + jobs / 3, 1, 3600));
  // A little faster than 4 agents of 2 slots finish the jobs (5 jobs of ~2 s per pipeline), so
  // that every agent is busy when a fault strikes; at least 12 s so that a small run still has
  // room for its faults.
  c.window = std::max(absl::Seconds(12), absl::Milliseconds(1000) * c.pipelines);
  const char* kinds = std::getenv("FAULTS_KINDS");
  if (kinds == nullptr || *kinds == '\0') {
    c.kinds.assign(kAllFaultKinds.begin(), kAllFaultKinds.end());
  } else {
    for (absl::string_view name : absl::StrSplit(kinds, ',', absl::SkipEmpty())) {
      auto it = std::find_if(kAllFaultKinds.begin(), kAllFaultKinds.end(),
                             [&](FaultKind k) { return FaultName(k) == std::string(name); });
      if (it == kAllFaultKinds.end()) {
        throw std::runtime_error(
            absl::StrCat("FAULTS_KINDS: unknown kind '", std::string(name),
                         "' (known: agent_kill, server_kill, pg_restart, conn_cut, disk_full)"));
      }
      if (std::find(c.kinds.begin(), c.kinds.end(), *it) == c.kinds.end()) c.kinds.push_back(*it);
    }
  }
  if (c.kinds.empty()) c.faults = 0;
  return c;
}

int Figures::total_faults() const {
  int n = 0;
  for (int f : faults) n += f;
  return n;
}

bool Figures::clean() const {
  return lost_lines == 0 && dup_lines == 0 && foreign_lines == 0 && stuck == 0 &&
         results_not_one == 0 && not_succeeded == 0 && not_accepted == 0 && missing_pipelines == 0;
}

std::string Figures::Line() const {
  std::string by_kind;
  for (int i = 0; i < kFaultKinds; ++i) {
    absl::StrAppend(&by_kind, i == 0 ? "" : ", ", FaultName(kAllFaultKinds[i]), "=", faults[i]);
  }
  return absl::StrCat("seed=", seed, " runs=1 pipelines=", pipelines, " jobs=", jobs,
                      " attempts=", attempts, " webhooks=", webhooks, " faults=", total_faults(),
                      " (", by_kind, ") lost_lines=", lost_lines, " dup_lines=", dup_lines,
                      " foreign_lines=", foreign_lines, " stuck=", stuck,
                      " results_not_one=", results_not_one, " not_succeeded=", not_succeeded,
                      " not_accepted=", not_accepted, " missing_pipelines=", missing_pipelines);
}

LineCount CountLines(std::string_view log, std::string_view prefix, int n) {
  std::vector<int> seen(static_cast<size_t>(n) + 1, 0);
  LineCount out;
  size_t pos = 0;
  while (pos < log.size()) {
    size_t end = log.find('\n', pos);
    if (end == std::string_view::npos) end = log.size();
    std::string_view line = log.substr(pos, end - pos);
    pos = end + 1;
    int i = 0;
    const bool numbered = line.size() > prefix.size() && line.substr(0, prefix.size()) == prefix;
    const absl::string_view number =
        numbered ? absl::string_view(line.data() + prefix.size(), line.size() - prefix.size())
                 : absl::string_view();
    // Why the last comparison: SimpleAtoi accepts "+7" and " 7"; the job prints digits only.
    if (numbered && absl::SimpleAtoi(number, &i) && i >= 1 && i <= n &&
        std::string(number) == std::to_string(i)) {
      ++seen[static_cast<size_t>(i)];
    } else {
      ++out.foreign;
    }
  }
  for (int i = 1; i <= n; ++i) {
    if (seen[static_cast<size_t>(i)] == 0) ++out.lost;
    if (seen[static_cast<size_t>(i)] > 1) out.duplicated += seen[static_cast<size_t>(i)] - 1;
  }
  return out;
}

std::string LinePrefix(std::string_view name, int64_t attempt) {
  return absl::StrCat(std::string(name), " a", attempt, " line ");
}

const std::vector<std::string>& JobNames() {
  static const auto* names =
      new std::vector<std::string>{"build", "lint", "unit", "integration", "package"};
  return *names;
}

std::string PipelineFile() {
  // Each job: kLinesPerJob numbered lines, a 0.2 s pause after every third, so a job takes about
  // 2 s and a fault lands in the middle of many logs. `retry` on agent_lost only: a job never
  // fails by itself, so any failure is the system's.
  const std::map<std::string, std::string> needs = {{"build", ""},
                                                    {"lint", ""},
                                                    {"unit", "[build]"},
                                                    {"integration", "[build]"},
                                                    {"package", "[unit, integration]"}};
  std::string out = "jobs:\n";
  for (const std::string& name : JobNames()) {
    absl::StrAppend(&out, "  ", name, ":\n");
    if (!needs.at(name).empty()) absl::StrAppend(&out, "    needs: ", needs.at(name), "\n");
    absl::StrAppend(&out, "    retry: { max: 10, on: [agent_lost] }\n", "    steps:\n",
                    "      - run: |\n", "          for i in $(seq 1 ", kLinesPerJob, "); do\n",
                    "            echo \"$ASSAY_JOB_NAME a$ASSAY_ATTEMPT line $i\"\n",
                    "            if [ $((i % 3)) = 0 ]; then sleep 0.2; fi\n", "          done\n");
  }
  return out;
}

}  // namespace assay::faults
