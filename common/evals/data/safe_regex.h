#pragma once
// Regular expressions for datasets and pipeline files, on RE2: matching takes time linear in
// the text whatever the pattern, so a dataset cannot hang the agent (no catastrophic
// backtracking), and compiled programs are bounded in memory.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace re2 {
class RE2;
}

namespace assay::evals {

class SafeRegex {
 public:
  // Memory RE2 may use for one compiled pattern (its program and match caches).
  static constexpr int64_t kMaxMem = 8 << 20;
  // The longest pattern accepted.
  static constexpr size_t kMaxPatternBytes = 64 << 10;

  // Compiles `pattern` (RE2 syntax, UTF-8, case-sensitive, `.` not matching "\n"). Errors
  // (kInvalidArgument) quote the pattern and say what is wrong, e.g.
  // `regex "(a": missing ): (a` or, for lookaround and backreferences, which RE2 lacks,
  // `regex "(?=x)": invalid perl operator: (?= (RE2 has no lookaround)`.
  static absl::StatusOr<SafeRegex> Compile(std::string_view pattern);

  // True when the pattern matches somewhere in `text` (JavaScript's RegExp.test).
  bool PartialMatch(std::string_view text) const;

  const std::string& pattern() const;

 private:
  explicit SafeRegex(std::shared_ptr<const re2::RE2> re) : re_(std::move(re)) {}
  std::shared_ptr<const re2::RE2> re_;  // Immutable; RE2 matching is thread-safe.
};

}  // namespace assay::evals
