#pragma once
// The `train:` step on the agent (issue 10, docs/train.md). The step's process is the user's
// training command with ASSAY_MODEL_DIR, ASSAY_CHECKPOINT_DIR, ASSAY_METRICS_FILE, ASSAY_PARAMS
// (and ASSAY_RESUME_STEP after a restore) set; meanwhile a driver (step_runner.h StepDriver)
// streams the metrics file's points to the server and uploads each new checkpoint. Before the
// command starts, the newest checkpoint an earlier attempt saved is restored. When the command
// succeeded, the dataset digests are reported; the server registers the model when the job
// succeeds.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/step_runner.h"
#include "assay/v1/agent.grpc.pb.h"
#include "common/evals/train_spec.h"

namespace assay {

class LocalChunkCache;

inline constexpr size_t kMaxTrainSeries = 64;  // distinct names per step
inline constexpr size_t kMaxTrainMetricsLineBytes = 64 << 10;
inline constexpr size_t kMaxTrainPendingPoints = 100'000;  // unsent, kept in memory

// Reads ASSAY_METRICS_FILE's JSON lines as they grow: each complete line that is a JSON object
// with an integer "step" >= 0 gives one point per other field holding a finite number (names of
// 1 to 128 bytes without control characters; at most kMaxTrainSeries names in all, later ones
// are dropped). Anything else is a note naming the line (1-based).
class TrainMetricsParser {
 public:
  struct Point {
    std::string name;
    int64_t step = 0;
    double value = 0;
  };
  // Appends the points of the complete lines in `bytes` (with what was left over before) to
  // `out`, and a note per bad line to `notes`, e.g.
  //   line 3 is not a JSON object with an integer "step" >= 0: <the line, cut at 200 bytes>
  //   line 9 is longer than 65536 bytes; skipped
  //   line 12: more than 64 series; "x" and later new names are dropped
  // (a series name: 1 to 128 bytes of UTF-8 without control characters)
  void Feed(absl::string_view bytes, std::vector<Point>& out, std::vector<std::string>& notes);
  // The last line when it has no newline (the process ended), as Feed would take it.
  void Finish(std::vector<Point>& out, std::vector<std::string>& notes);
  int64_t lines() const { return line_; }

 private:
  void Line(absl::string_view line, std::vector<Point>& out, std::vector<std::string>& notes);
  std::string partial_;
  bool skipping_ = false;  // inside an over-long line
  int64_t line_ = 0;
  std::vector<std::string> names_;
  bool told_series_ = false;
};

// A DVC pointer file's first output: `path` (relative to the pointer's directory, joined to it
// here: "data/x.dvc" with path "x.csv" gives "data/x.csv") and its md5 (32 hex; a directory's
// "<hex>.dir" gives the hex and a path ending in '/'). kInvalidArgument when there is none.
struct DvcOutput {
  std::string path;
  std::string md5;
};
absl::StatusOr<DvcOutput> ParseDvcPointer(absl::string_view pointer_path, absl::string_view text);

// The shell text the executor runs for the step: the exports, `mkdir -p` of the model and
// checkpoint directories, an empty metrics file, then the user's command. Paths are under
// "$PWD" (the workspace, wherever the executor mounts it).
std::string TrainShellText(const evals::TrainSpec& spec, int step_index,
                           std::optional<int64_t> resume_step);

struct TrainStepContext {
  std::string workspace;
  int step_index = 0;
  std::optional<JobIdentity> user;
  std::function<void(std::string_view)> log;  // the job's log, masked
  v1::AgentService::StubInterface* stub = nullptr;
  std::string bearer;
  v1::Assignment assignment;          // job id, attempt token (for the RPCs and DownloadChunks)
  LocalChunkCache* chunks = nullptr;  // the agent's local chunk copy; null: a scratch one
  absl::Duration tick = absl::Seconds(1);  // how often the metrics file is read
};

std::shared_ptr<StepDriver> MakeTrainDriver(evals::TrainSpec spec, TrainStepContext ctx);

// A `promote:` step: the server does it (AgentService.Promote); the step's process is a no-op
// shell. The log gets the server's sentence, "assay: promote: promoted: m@staging -> version 3
// (was 2); `evals.qa.passed` is true" or "assay: promote: not promoted: ..."; an error fails
// the step with it.
std::shared_ptr<StepDriver> MakePromoteDriver(TrainStepContext ctx);

// One RPC of a driven step with the job's credentials (`ctx.bearer`), each try bounded by
// `deadline`, tried again after `backoff` on UNAVAILABLE and DEADLINE_EXCEEDED (the server
// restarting) up to `attempts` times in all.
grpc::Status StepRpc(const TrainStepContext& ctx,
                     const std::function<grpc::Status(grpc::ClientContext*)>& fn, int attempts,
                     absl::Duration deadline = absl::Seconds(30),
                     absl::Duration backoff = absl::Seconds(1));

}  // namespace assay
