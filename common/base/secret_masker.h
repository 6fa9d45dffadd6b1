#pragma once
// Replaces secret values in a job's output with "***" (issue 9, docs/secrets.md).
//
// What is masked, for each value V given to the constructor:
//   - V itself;
//   - each line of a multi-line V (split at '\n', a trailing '\r' dropped);
//   - V in base64, standard and URL-safe alphabets, padded, and as it appears inside a longer
//     base64 text at each of the 3 byte alignments (the characters that also depend on the
//     neighbouring bytes are left out);
//   - V percent-encoded (upper- and lower-case hex, and '+' for a space).
// Patterns shorter than kMinPatternBytes (a short line of a multi-line value) are not masked:
// they would mask unrelated text. Where occurrences overlap or touch (two secrets, a value and
// its prefix), the whole covered run becomes one "***".
//
// Streaming: Mask() may be called with any split of the output; it holds back the shortest
// tail that could still be the start of a pattern (so a value split across two chunks is
// masked) and returns the rest. Flush() returns what is held at the end. The concatenated
// output is the same for every way of splitting the input. Not thread-safe.
//
// Limits: a value transformed any other way (hex, reversed, compressed, split by the job's own
// output) is not recognised.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace assay {

class SecretMasker {
 public:
  static constexpr size_t kMinPatternBytes = 4;
  static constexpr std::string_view kMask = "***";

  SecretMasker() = default;  // masks nothing
  explicit SecretMasker(const std::vector<std::string>& values);

  // The patterns built from the values (for tests), longest first.
  const std::vector<std::string>& patterns() const { return patterns_; }
  bool empty() const { return patterns_.empty(); }

  // The masked output that is final so far (possibly "").
  std::string Mask(std::string_view chunk);
  // Everything still held back, masked. The masker can be reused afterwards.
  std::string Flush();

  // Whole-text convenience: Mask(text) + Flush() on a fresh state.
  std::string MaskAll(std::string_view text) const;

 private:
  // Masks buf_[0, cut) into `out` (runs: covered [start, end) ranges, in order, merged) and
  // keeps buf_[cut, end) for later.
  void Emit(const std::vector<std::pair<size_t, size_t>>& runs, size_t cut,
            size_t max_end_before_cut, std::string* out);
  std::string Run(std::string_view chunk, bool final);

  void Index();  // builds the lookup structures below from patterns_

  std::vector<std::string> patterns_;
  bool first_byte_[256] = {};
  // Why: one pass over the text instead of one find() per pattern (x13 per value). Every
  // pattern is at least 4 bytes; a bit per hash of its first 4 bytes screens each position,
  // and the patterns with exactly those 4 bytes are compared only where the bit is set.
  std::vector<uint64_t> prefix_filter_;                          // 65536 bits
  std::unordered_map<uint32_t, std::vector<size_t>> by_prefix_;  // first 4 bytes -> patterns
  std::string buf_;                                              // held back, not yet emitted
  size_t carry_covered_ = 0;  // leading bytes of buf_ covered by an emitted occurrence
  bool last_masked_ = false;  // the last emitted output was kMask
};

// Standard ("+/") or URL-safe ("-_") base64 with '=' padding.
std::string Base64Encode(std::string_view in, bool url_safe);

}  // namespace assay
