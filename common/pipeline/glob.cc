#include "common/pipeline/glob.h"

#include <algorithm>

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

// One element of a compiled pattern.
struct Token {
  enum class Kind { kLiteral, kOne, kClass, kStar, kAnyStar, kDirs, kInDirs };
  Kind kind;
  char literal = 0;
  std::string_view cls;  // kClass: the class with its brackets
};

// The pattern as tokens: `*` is kStar, `**` kAnyStar, `**/` kDirs then kInDirs (zero or more
// whole directories: kDirs may match nothing, kInDirs is inside them and only leaves them at a
// '/'), `?` kOne; '\c' and an unterminated '[' are literals.
std::vector<Token> Compile(std::string_view p) {
  std::vector<Token> tokens;
  while (!p.empty()) {
    const char c = p[0];
    if (c == '*') {
      if (p.size() >= 2 && p[1] == '*') {
        if (p.size() >= 3 && p[2] == '/') {
          tokens.push_back({Token::Kind::kDirs});
          tokens.push_back({Token::Kind::kInDirs});
          p.remove_prefix(3);
        } else {
          tokens.push_back({Token::Kind::kAnyStar});
          p.remove_prefix(2);
        }
      } else {
        tokens.push_back({Token::Kind::kStar});
        p.remove_prefix(1);
      }
      continue;
    }
    if (c == '?') {
      tokens.push_back({Token::Kind::kOne});
      p.remove_prefix(1);
      continue;
    }
    if (c == '[') {
      const size_t length = ClassLength(p);
      if (length > 0) {
        tokens.push_back({Token::Kind::kClass, 0, p.substr(0, length)});
        p.remove_prefix(length);
        continue;
      }
      // Unterminated: a literal '['.
    }
    if (c == '\\' && p.size() > 1) p.remove_prefix(1);
    tokens.push_back({Token::Kind::kLiteral, p[0]});
    p.remove_prefix(1);
  }
  return tokens;
}

// Adds the states reachable without reading a character: every star may match nothing.
// Why one ascending pass suffices: these moves only go forward.
void Close(const std::vector<Token>& tokens, std::vector<char>& states) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (!states[i]) continue;
    const Token::Kind kind = tokens[i].kind;
    if (kind == Token::Kind::kStar || kind == Token::Kind::kAnyStar) states[i + 1] = 1;
    if (kind == Token::Kind::kDirs) states[i + 2] = 1;  // no directory at all
  }
}

// Runs the pattern as a nondeterministic automaton over the text: state i means "the first i
// tokens matched the text read so far". Why not backtracking: k stars against n characters
// backtrack in O(n^k), and memoizing failed (pattern, text) positions still costs O(m n^2) time
// and a set of m n positions; this is O(m n) time and O(m) memory for m tokens, same answers.
bool Run(const std::vector<Token>& tokens, std::string_view text) {
  const size_t m = tokens.size();
  std::vector<char> states(m + 1, 0), next(m + 1, 0);
  states[0] = 1;
  Close(tokens, states);
  for (const char c : text) {
    std::fill(next.begin(), next.end(), 0);
    bool any = false;
    for (size_t i = 0; i < m; ++i) {
      if (!states[i]) continue;
      const Token& t = tokens[i];
      switch (t.kind) {
        case Token::Kind::kLiteral: next[i + 1] |= c == t.literal; break;
        case Token::Kind::kOne: next[i + 1] |= c != '/'; break;
        case Token::Kind::kClass: next[i + 1] |= ClassMatches(t.cls, c); break;
        case Token::Kind::kStar: next[i] |= c != '/'; break;
        case Token::Kind::kAnyStar: next[i] = 1; break;
        case Token::Kind::kDirs:  // the first character of the directories
          next[i + 1] = 1;
          next[i + 2] |= c == '/';
          break;
        case Token::Kind::kInDirs:
          next[i] = 1;
          next[i + 1] |= c == '/';
          break;
      }
    }
    for (char s : next) any = any || s;
    if (!any) return false;
    Close(tokens, next);
    states.swap(next);
  }
  return states[m] != 0;
}

}  // namespace

bool GlobMatch(std::string_view pattern, std::string_view text) {
  if (pattern.size() > kMaxPatternLength) return false;
  return Run(Compile(pattern), text);
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
