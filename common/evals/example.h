#pragma once
// The shared vocabulary of `eval:` steps (issue 10, docs/evals.md): one example of a dataset,
// its promptfoo-style assertions, and what scoring one model output yields. The server (the
// pipeline file's inline `tests:`), the agent (datasets, scoring) and the store all use these.
//
// The libraries around it:
//   common/evals/metrics/  assay_eval_metrics: text metrics (BLEU, chrF, ROUGE-L, edit
//                          similarity, exact match) and statistics (mean and 95 % interval,
//                          percentiles, paired bootstrap, pass@k). Pure functions, no I/O.
//   common/evals/data/     assay_eval_data: JSONL datasets, assertions, prompt templates,
//                          ingest of lm-evaluation-harness results and JUnit XML. No I/O
//                          beyond the bytes given.

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace assay::evals {

// One chat message of an example's `messages`.
struct Message {
  std::string role;  // system, user, assistant (others are refused by the dataset parser)
  std::string content;

  bool operator==(const Message&) const = default;
};

// One promptfoo-style assertion: `{type, value, threshold, weight}`. `type` is one of
// equals, contains, icontains, regex, starts-with, is-json; each also as `not-TYPE`
// (then `negate` is true and `type` holds the base name).
struct Assertion {
  std::string type;
  bool negate = false;
  std::string value;  // Unused by is-json.
  std::optional<double> threshold;
  double weight = 1;

  bool operator==(const Assertion&) const = default;
};

// One example. Exactly one of `input` and `messages` is set (a template may make `input`
// from `vars` alone; then both are empty and vars are non-empty).
struct Example {
  std::string id;  // The file's `id`, else "line-N" (JSONL) or "test-N" (tests:), 1-based.
  int line = 0;    // 1-based line of the JSONL file, or index + 1 in `tests:`.
  std::string input;
  std::vector<Message> messages;
  std::optional<std::string> expected;
  std::vector<std::string> tags;
  std::vector<std::pair<std::string, std::string>> vars;  // File order, unique names.
  std::vector<Assertion> asserts;

  bool operator==(const Example&) const = default;
};

}  // namespace assay::evals
