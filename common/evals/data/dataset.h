#pragma once
// JSONL eval datasets (docs/eval-datasets.md "Datasets"): one JSON object per line with
// `input` or `messages`, and `expected`, `id`, `tags`, `vars`, `assert`. No I/O: the caller
// reads the file (it knows where it came from) and passes its bytes.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/evals/example.h"

namespace assay::evals {

// Bounds on one dataset; each error that one of them causes names it ("(max_examples)").
struct DatasetLimits {
  size_t max_bytes = size_t{256} << 20;  // The whole file.
  size_t max_examples = 1'000'000;       // Non-empty lines.
  size_t max_line_bytes = size_t{1} << 20;
  int max_depth = 32;  // JSON nesting on one line.
  size_t max_asserts = 64;
  size_t max_vars = 256;
  size_t max_messages = 256;
  size_t max_tags = 64;
  size_t max_id_bytes = 256;
};

// Parses a JSONL dataset. Lines are split on "\n" (a "\r" before it is dropped); empty and
// whitespace-only lines are skipped; a UTF-8 byte-order mark at the start is skipped. Each
// other line is one JSON object with these keys (any other key is refused, naming the
// allowed ones):
//   input     string, non-empty                    } exactly one of the two; or neither when
//   messages  [{role, content}], role system/user/ } `vars` is non-empty (a prompt template
//             assistant, content a string          } then makes the input)
//   expected  string (a number or boolean is refused: write "42", so that what is compared is
//             what the file says)
//   id        string or integer, unique in the file; default "line-N" (N = the line number,
//             1-based), which an explicit id may not take either
//   tags      [string], non-empty strings
//   vars      {name: string | number | boolean}; names [A-Za-z_][A-Za-z0-9_]*, not `input` or
//             `expected`; numbers become JavaScript's String(x) ("3", "0.5"), booleans
//             "true"/"false"
//   assert    [{type, value, threshold, weight}] (ParseAssertion)
// Errors are kInvalidArgument and name the file, the line and the key:
//   `qa.jsonl:12: not JSON: syntax error at column 7`
//   `qa.jsonl:7: key "expected": must be a string (write 42 as "42")`
//   `qa.jsonl:9: id "a" repeats line 3`
//   `qa.jsonl:4: unknown key "output" (allowed: input, messages, expected, id, tags, vars,
//   assert)`
//   `qa.jsonl: 5 examples is over the limit of 4 (max_examples)`
// A file without any example is an error ("no examples").
absl::StatusOr<std::vector<Example>> ParseJsonlDataset(std::string_view bytes,
                                                       std::string_view file_name,
                                                       const DatasetLimits& limits = {});

// The dataset's digest as recorded with each eval run: lowercase hex SHA-256 of the exact
// bytes (BOM and line endings included).
std::string DatasetDigest(std::string_view bytes);

}  // namespace assay::evals
