#pragma once
// `strategy.matrix` expansion with GitHub Actions semantics. Pure; no I/O.

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace assay {

inline constexpr int kDefaultMatrixCap = 256;

struct MatrixSpec {
  // Axis name -> values, in file order.
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;
  std::vector<std::map<std::string, std::string>> include;
  std::vector<std::map<std::string, std::string>> exclude;
  int max_parallel = 0;  // 0: no limit. Not used by expansion; the scheduler honours it.

  bool operator==(const MatrixSpec&) const = default;
};

// The combinations, in this order and by these rules:
//  1. the product of the axes, first axis varying slowest;
//  2. each `exclude` entry removes every combination that matches all of its keys;
//  3. each `include` entry, in order, is merged into every combination whose original
//     (axis) values it does not overwrite, adding its other keys (values added by an
//     earlier include may be overwritten); when it merges into none, it is appended as a
//     combination of its own.
// The combinations are counted before any is built (time bounded, memory O(axes + excludes)),
// so a huge matrix is refused without being built.
// Errors (kInvalidArgument):
//   "matrix expands to N jobs, more than the limit of CAP"   (N is the product before
//                                                             excludes when counting gave up)
//   "matrix expands to no jobs"
absl::StatusOr<std::vector<std::map<std::string, std::string>>> ExpandMatrix(
    const MatrixSpec& spec, int cap = kDefaultMatrixCap);

// "JOB (v1, v2, ...)": the axis values in axis order, then any other keys' values (from
// include) in key order. "JOB" alone when `values` is empty.
std::string MatrixJobName(std::string_view job, const std::map<std::string, std::string>& values,
                          const MatrixSpec& spec);

}  // namespace assay
