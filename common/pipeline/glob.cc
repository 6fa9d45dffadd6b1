#include "common/pipeline/glob.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace assay {
namespace {

// Parses the class starting at pattern[0] == '['. Returns the length of the class
// including both brackets, or 0 when it is unterminated.
size_t ClassLength(std::string_view pattern) {
  size_t i = 1;
  if (i < pattern.size() && pattern[i] == '!') ++i;
  if (i < pattern.size() && pattern[i] == ']') ++i;  // Literal ']' as first member.
  while (i < pattern.size() && pattern[i] != ']') {
    if (pattern[i] == '\\' && i + 1 < pattern.size()) ++i;
    ++i;
  }
  return i < pattern.size() ? i + 1 : 0;
}

// Calls f(lo, hi) for each member range of the class `cls` (with brackets, as
// measured by ClassLength); a single character is the range c-c.
template <typename F>
void ForEachRange(std::string_view cls, F f) {
  size_t i = 1;
  if (cls[i] == '!') ++i;
  const size_t end = cls.size() - 1;
  while (i < end) {
    char lo = cls[i];
    if (lo == '\\' && i + 1 < end) lo = cls[++i];
    ++i;
    char hi = lo;
    if (i + 1 < end && cls[i] == '-') {
      ++i;
      if (cls[i] == '\\' && i + 1 < end) ++i;
      hi = cls[i++];
    }
    f(lo, hi);
  }
}

// Whether `c` is in the class `cls`. '/' never is.
bool ClassMatches(std::string_view cls, char c) {
  if (c == '/') return false;
  bool found = false;
  ForEachRange(cls, [&](char lo, char hi) { found = found || (lo <= c && c <= hi); });
  return found != (cls[1] == '!');
}

// Matches suffixes of one pattern against suffixes of one text, remembering which pairs
// failed. Why: retrying a pair that already failed made k stars against n characters cost
// O(n^k) ("*a*a*a*a*a*a*a*a*a*ab" against 30 a's took seconds); with the memo each pair is
// tried once. Recursion is one level per star, so at most kMaxPatternLength deep.
class Matcher {
 public:
  explicit Matcher(size_t text_size) : text_size_(text_size) {}

  bool Match(std::string_view p, std::string_view t) {
    const size_t key = p.size() * (text_size_ + 1) + t.size();
    if (failed_.contains(key)) return false;
    if (MatchOnce(p, t)) return true;
    failed_.insert(key);
    return false;
  }

 private:
  bool MatchOnce(std::string_view p, std::string_view t);

  size_t text_size_;
  absl::flat_hash_set<size_t> failed_;  // keys of (pattern suffix, text suffix) by lengths
};

bool Matcher::MatchOnce(std::string_view p, std::string_view t) {
  while (!p.empty()) {
    const char c = p[0];
    if (c == '*') {
      if (p.size() >= 2 && p[1] == '*') {
        std::string_view rest = p.substr(2);
        if (!rest.empty() && rest[0] == '/') {
          // `**/`: zero directories, or any prefix that ends at a '/'.
          std::string_view after = rest.substr(1);
          if (Match(after, t)) return true;
          for (size_t i = 0; i < t.size(); ++i) {
            if (t[i] == '/' && Match(after, t.substr(i + 1))) return true;
          }
          return false;
        }
        for (size_t i = 0; i <= t.size(); ++i) {
          if (Match(rest, t.substr(i))) return true;
        }
        return false;
      }
      std::string_view rest = p.substr(1);
      for (size_t i = 0; i <= t.size(); ++i) {
        if (Match(rest, t.substr(i))) return true;
        if (i < t.size() && t[i] == '/') break;
      }
      return false;
    }
    if (t.empty()) return false;
    if (c == '?') {
      if (t[0] == '/') return false;
      p.remove_prefix(1);
      t.remove_prefix(1);
      continue;
    }
    if (c == '[') {
      const size_t length = ClassLength(p);
      if (length > 0) {
        if (!ClassMatches(p.substr(0, length), t[0])) return false;
        p.remove_prefix(length);
        t.remove_prefix(1);
        continue;
      }
      // Unterminated: a literal '['.
    }
    if (c == '\\' && p.size() > 1) p.remove_prefix(1);
    if (p[0] != t[0]) return false;
    p.remove_prefix(1);
    t.remove_prefix(1);
  }
  return t.empty();
}

}  // namespace

bool GlobMatch(std::string_view pattern, std::string_view text) {
  if (pattern.size() > kMaxPatternLength) return false;
  return Matcher(text.size()).Match(pattern, text);
}

absl::Status ValidateGlob(std::string_view pattern) {
  const std::string quoted = std::string(pattern);
  if (pattern.empty()) return absl::InvalidArgumentError("pattern must not be empty");
  if (pattern.size() > kMaxPatternLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("pattern is longer than ", kMaxPatternLength, " characters"));
  }
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\') {
      if (i + 1 == pattern.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("pattern '", quoted, "' ends with a lone '\\'"));
      }
      ++i;
      continue;
    }
    if (pattern[i] != '[') continue;
    const size_t length = ClassLength(pattern.substr(i));
    if (length == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("unterminated '[' at column ", i + 1, " in pattern '", quoted, "'"));
    }
    std::string bad;
    ForEachRange(pattern.substr(i, length), [&](char lo, char hi) {
      if (hi < lo && bad.empty()) bad = absl::StrCat(std::string(1, lo), "-", std::string(1, hi));
    });
    if (!bad.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid range '", bad, "' in pattern '", quoted, "'"));
    }
    i += length - 1;
  }
  return absl::OkStatus();
}

bool MatchesFilters(const std::vector<std::string>& patterns, std::string_view text) {
  if (patterns.empty()) return true;
  bool all_negated = true;
  for (const std::string& p : patterns) {
    if (p.empty() || p[0] != '!') all_negated = false;
  }
  bool result = all_negated;
  for (const std::string& p : patterns) {
    const bool negated = !p.empty() && p[0] == '!';
    std::string_view glob = negated ? std::string_view(p).substr(1) : std::string_view(p);
    if (GlobMatch(glob, text)) result = !negated;
  }
  return result;
}

}  // namespace assay
