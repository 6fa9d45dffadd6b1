#pragma once
// The `eval:` step on the agent (issue 10, docs/evals.md): a StepDriver (step_runner.h) whose
// process is the model under test, run by the job's executor like any step, and whose driver
// feeds it the dataset, scores its answers and judges the gates.
//
// The model, either:
//   command: the step's process is `{ COMMAND\n} <IN >OUT`, IN and OUT two FIFOs the agent
//            makes in the workspace (so that every executor reaches them: the container's
//            /workspace is the same directory). One JSON object per line each way:
//              request  {"id":"17","prompt":"...","input":"...","messages":[...],"vars":{...}}
//              reply    {"id":"17","output":"...","usage":{"input_tokens":N,"output_tokens":M}}
//                   or  {"id":"17","error":"..."}
//            Up to `concurrency` requests are in flight; replies may come in any order.
//   url:     an OpenAI-shaped endpoint (chat or completions), `concurrency` requests at once;
//            the step's process is `serve` when given (it must serve the url), else a sleep.
// Every request has `timeout` and `retries`; an example whose attempts all fail is scored as
// wrong and counted in error_rate. A reply that is not JSON, or the model command exiting
// early, ends the step: the examples answered so far are scored and reported, the step fails
// naming the line or the exit.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/executor.h"
#include "agent/step_runner.h"
#include "common/evals/eval_spec.h"

namespace assay {

// Bounds on what a step reads and holds.
inline constexpr size_t kMaxEvalDatasetBytes = 256 << 20;
inline constexpr size_t kMaxEvalPromptBytes = 1 << 20;
inline constexpr size_t kMaxEvalReplyLine = 16 << 20;  // one reply line of a model command
inline constexpr size_t kMaxEvalKeptText = 4096;       // input, expected, output kept per example

// One example's outcome, averaged over its repeats.
struct EvalExampleOutcome {
  int index = 0;  // in the dataset, 0-based
  std::string example_id;
  std::string input, expected, output;  // the first repeat's output; each cut at kMaxEvalKeptText
  std::string error;                    // the last repeat's error, "" when all answered
  bool passed = false;                  // every quality metric (and assertion) passed, repeat 1
  std::vector<std::pair<std::string, double>> scores;  // metric -> mean over the repeats
  double latency_ms = 0;                               // mean over answered repeats
  int64_t input_tokens = 0, output_tokens = 0;         // sums over the repeats
  int answered = 0, passes = 0;                        // repeats answered, and passed
};

struct EvalMetricSummary {
  std::string name;
  double value = 0;       // the mean (quality), percentile or total as docs/evals.md says
  double lo = 0, hi = 0;  // 95 % interval of a mean; value itself otherwise
  int64_t n = 0;
};

struct EvalGateVerdict {
  evals::EvalGate gate;
  bool passed = true;
  std::string explanation;  // one line: metric, bound or baseline, candidate, difference
};

struct EvalReport {
  std::string name;
  std::string dataset_path, dataset_sha256;
  int repeat = 1;
  std::vector<EvalExampleOutcome> examples;
  std::vector<EvalMetricSummary> metrics;
  std::vector<EvalGateVerdict> verdicts;
  std::vector<std::pair<std::string, double>> pass_at;  // "pass@3", "pass^3" with assertions
  bool passed = false;
  std::string error;            // why the run stopped early ("" when every example was run)
  int64_t baseline_run_id = 0;  // the baseline a relative gate compared with (0: none)
};

// Per-example baseline scores of a relative gate (server side: the last successful run of the
// same eval on a branch).
struct EvalBaseline {
  int64_t run_id = 0;
  std::string commit_sha;
  std::vector<std::pair<std::string, std::vector<std::pair<std::string, double>>>> examples;
};

struct EvalStepContext {
  std::string workspace;
  std::optional<JobIdentity> user;  // owns the FIFOs when set
  // A line for the job's log (masked by the caller); called from the driver's thread.
  std::function<void(std::string_view)> log;
  // The value of one of the job's secrets (model.api_key_secret), or nullopt.
  std::function<std::optional<std::string>(const std::string&)> secret;
  // The baseline of a relative gate; nullopt: none (the gate then says so and passes).
  std::function<absl::StatusOr<std::optional<EvalBaseline>>(const std::string& name,
                                                            const std::string& vs)>
      baseline;
  // Records the report (the server keeps it); a failure is logged, and fails the step.
  std::function<absl::Status(const EvalReport&)> record;
};

std::shared_ptr<StepDriver> MakeEvalDriver(evals::EvalSpec spec, EvalStepContext ctx);

// An eval with `ingest` (agent/eval_ingest.cc): its process is a no-op; the driver reads the
// files an earlier step's suite wrote, and gates on them as any eval does.
std::shared_ptr<StepDriver> MakeIngestDriver(evals::EvalSpec spec, EvalStepContext ctx);

// The report of an ingest: the files `spec.ingest_path` selects in `workspace` (only files
// `owner` owns, when set), each read whole (at most 64 MiB), in path order.
//   junit:   an example per test case (id "SUITE::CLASS::NAME", " #2" for a repeat), passed
//            unless failed or errored, scored pass_rate 1 or 0 (skipped cases are not); metrics
//            tests, passed, failures, errors, skipped, pass_rate (mean over the cases not
//            skipped, with its 95 % interval), time_s (the sum).
//   lm_eval: an example and a metric per "TASK/METRIC[,FILTER]" (",none" left out), its value
//            the harness's; the interval value ± 1.96 × its stderr when the file has one.
// dataset_path is the glob, dataset_sha256 the SHA-256 over every file's bytes in order.
// Errors name the file: no file matched, a parse error, a metric in two files.
absl::StatusOr<EvalReport> IngestReport(const evals::EvalSpec& spec, const std::string& workspace,
                                        std::optional<uid_t> owner);

// Fetches the baselines the gates name, judges, logs the report, records it, and gives the
// step's status (`ran` when not OK, else OK or the failed gates). Shared by both drivers.
absl::Status ConcludeEval(const evals::EvalSpec& spec, const EvalStepContext& ctx,
                          EvalReport& report, const absl::Status& ran);

// Scoring and judging, apart from any model (tests use them directly).
// The per-example scores of `output` for `spec`'s metrics (assertions included).
std::vector<std::pair<std::string, double>> ScoreOutput(const evals::EvalSpec& spec,
                                                        const evals::Example& example,
                                                        std::string_view output, bool* passed);
// The score in a judge's reply text (docs/evals.md "LLM-as-judge"): a JSON object, alone or
// inside other text or a ``` fence, with "score" in [0, 1], or else "pass" (true 1, false 0).
// kInvalidArgument naming what is wrong, quoting at most 200 bytes of the reply.
absl::StatusOr<double> ParseJudgeReply(std::string_view content);

// Summaries of the metrics, then the verdict of each gate against `baseline` (may be null).
void Summarize(const evals::EvalSpec& spec, EvalReport& report);
// `baselines`: per gate's `vs`, its baseline (nullopt: none found).
void Judge(const evals::EvalSpec& spec,
           const std::vector<std::pair<std::string, std::optional<EvalBaseline>>>& baselines,
           EvalReport& report);
// The report as log lines (each ending in '\n', each starting "assay: eval ").
std::string FormatEvalReport(const EvalReport& report);

}  // namespace assay
