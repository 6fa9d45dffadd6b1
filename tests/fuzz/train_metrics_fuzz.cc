// Fuzzes what a train: step's command and an LLM judge write, as the agent reads them (issue
// 10): the metrics file (cut into reads at positions the input chooses), a DVC pointer file, and
// a judge's reply. Contract: never a crash; every point has a good series name, a step >= 0 and
// a finite value; every line is counted; an accepted DVC output has a 32-hex md5 and a relative
// path without '..'; an accepted judge score is in [0, 1].
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "agent/eval_step.h"
#include "agent/train_step.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  assay::TrainMetricsParser parser;
  std::vector<assay::TrainMetricsParser::Point> points;
  std::vector<std::string> notes;
  // Read sizes from the first byte: 1 to 256 bytes a read.
  const size_t step = size > 0 ? static_cast<size_t>(data[0]) + 1 : 1;
  for (size_t at = 0; at < text.size(); at += step) {
    parser.Feed(absl::string_view(text).substr(at, step), points, notes);
  }
  parser.Finish(points, notes);
  int64_t newlines = 0;
  for (char c : text) newlines += c == '\n' ? 1 : 0;
  const bool tail = !text.empty() && text.back() != '\n';
  if (parser.lines() != newlines + (tail ? 1 : 0)) std::abort();
  for (const auto& p : points) {
    if (p.name.empty() || p.name.size() > 128 || p.step < 0 || !std::isfinite(p.value)) {
      std::abort();
    }
    for (unsigned char c : p.name) {
      if (c < 0x20 || c == 0x7f) std::abort();
    }
  }
  if (auto dvc = assay::ParseDvcPointer("data/x.dvc", text); dvc.ok()) {
    if (dvc->md5.size() != 32 || dvc->path.empty() || dvc->path[0] == '/' ||
        dvc->path.find("..") != std::string::npos) {
      std::abort();
    }
  }
  if (auto score = assay::ParseJudgeReply(text); score.ok()) {
    if (!(*score >= 0 && *score <= 1)) std::abort();
  }
  return 0;
}
