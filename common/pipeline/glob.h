#pragma once
// Glob patterns for branch, tag and path filters in `.assay.yml` (`on.push.branches`,
// `on.push.paths`, `runs_on.gpu_model`, ...). Pure functions; no I/O.
//
// Syntax:
//   *       any run of characters except '/'
//   **      any run of characters including '/'; `**/` also matches zero directories
//           ("src/**/x.py" matches "src/x.py"), and "dir/**" matches everything below dir
//   ?       one character except '/'
//   [abc] [a-z] [!a]   one character (never '/') in / not in the set; a ']' right after
//           '[' or '[!' is a member
//   \c      the character c literally
// Everything else matches itself; the whole text must match.

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace assay {

// Patterns are at most this long: a longer one matches nothing (and ValidateGlob refuses it).
inline constexpr size_t kMaxPatternLength = 1024;

// True when `text` matches `pattern`, in O(pattern length * text length) time and
// O(pattern length) memory, without backtracking. An invalid pattern (see ValidateGlob) never
// crashes: an unterminated '[' and a trailing '\' match themselves literally.
bool GlobMatch(std::string_view pattern, std::string_view text);

// OK, or kInvalidArgument with one of these exact messages:
//   "pattern must not be empty"
//   "pattern is longer than 1024 characters"
//   "unterminated '[' at column N in pattern 'P'"       (N is 1-based)
//   "pattern 'P' ends with a lone '\'"
//   "invalid range 'z-a' in pattern 'P'"
absl::Status ValidateGlob(std::string_view pattern);

// GitHub-style filter lists: an entry starting with '!' excludes. Entries are tried in
// order and the last one that matches `text` decides; when none matches the result is
// false, unless every entry is a negation (then the list starts from "match"). An
// empty list matches everything.
bool MatchesFilters(const std::vector<std::string>& patterns, std::string_view text);

}  // namespace assay
