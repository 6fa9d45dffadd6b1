#pragma once
// Results that existing test suites wrote, read so that an `eval:` step can gate on them
// (docs/eval-datasets.md "Ingest"): lm-evaluation-harness `results_*.json` and JUnit XML.
// No I/O: the caller passes the file's bytes and its name (for messages).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace assay::evals {

// ---- lm-evaluation-harness ----------------------------------------------------------------

struct LmEvalLimits {
  size_t max_bytes = size_t{64} << 20;
  int max_depth = 64;
  size_t max_metrics = 100'000;
};

// One number of an lm-evaluation-harness results file: results[task]["metric,filter"].
struct IngestedMetric {
  std::string task;    // The key under "results", e.g. "arc_easy", "mmlu_abstract_algebra".
  std::string metric;  // e.g. "acc", "acc_norm", "perplexity", "exact_match".
  std::string filter;  // e.g. "none", "strict-match".
  double value = 0;
  std::optional<double> stderr_value;  // "metric_stderr,filter"; unset when "N/A" or absent.
  std::string alias;                   // The task's "alias" ("" if none), as written.
  bool group = false;  // The task is a group (a key of "groups", or has group_subtasks).

  bool operator==(const IngestedMetric&) const = default;
};

// Reads every "metric,filter" number under the top-level "results" object, in file order.
// Keys without a comma ("alias", "name", "sample_len", "sample_count", ...) are not metrics.
// A metric whose value is a string ("N/A", " ") or null has no value and is skipped; its
// stderr likewise becomes unset. Python writes NaN and Infinity as bare words, which are not
// JSON: they are read as null (no value). Other sections ("configs", "versions", ...) are not
// read. Errors (kInvalidArgument) name the file and key: `results.json: key "results.arc_easy":
// must be an object`; a repeated key, bad JSON and every limit are errors too.
absl::StatusOr<std::vector<IngestedMetric>> ParseLmEvalResults(std::string_view json,
                                                               std::string_view file_name,
                                                               const LmEvalLimits& limits = {});

// ---- JUnit XML ----------------------------------------------------------------------------

struct JunitLimits {
  size_t max_bytes = size_t{64} << 20;
  int max_depth = 32;  // Element nesting.
  size_t max_elements = 1'000'000;
  size_t max_attributes = 64;  // On one element.
  size_t max_cases = 200'000;
};

struct JunitCase {
  std::string suite;      // The innermost <testsuite>'s (or <testsuites>') name, "" if none.
  std::string classname;  // "" if absent.
  std::string name;
  std::string status;   // passed, failed, error, skipped.
  std::string message;  // The <failure>/<error>/<skipped> message attribute ("" if none).
  std::string details;  // That element's text (a traceback), "" if none.
  double time_s = 0;    // The time attribute; 0 if absent.

  bool operator==(const JunitCase&) const = default;
};

struct JunitReport {
  // Counted from the cases (a suite's own tests="..." attributes are not trusted).
  int64_t tests = 0, failures = 0, errors = 0, skipped = 0;
  std::vector<JunitCase> cases;  // In file order.
};

// Reads JUnit XML as pytest (--junitxml), Maven Surefire, Jest, Go's gotestsum and others
// write it: a <testsuites> root holding <testsuite>s, or a lone <testsuite>; suites may nest.
// Each <testcase> is one case; its status is "error" when it has an <error> child, else
// "failed" with a <failure>, else "skipped" with a <skipped>, else "passed" (other children:
// <system-out>, <properties>, ... are ignored). XML itself: elements, attributes, text,
// CDATA, comments, processing instructions, the five predefined entities and numeric
// character references; a DOCTYPE or ENTITY declaration is refused outright (no entity
// expansion, so no "billion laughs"). The document must be UTF-8 (or ASCII). Errors
// (kInvalidArgument) give the file, line and column: `junit.xml:3:14: unknown entity "&nbsp;"`.
absl::StatusOr<JunitReport> ParseJunitXml(std::string_view xml, std::string_view file_name,
                                          const JunitLimits& limits = {});

}  // namespace assay::evals
