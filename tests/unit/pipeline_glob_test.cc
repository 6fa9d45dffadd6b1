#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/pipeline/glob.h"

namespace assay {
namespace {

TEST_CASE("glob: literals, * and ?") {
  CHECK(GlobMatch("main", "main"));
  CHECK_FALSE(GlobMatch("main", "mainx"));
  CHECK_FALSE(GlobMatch("main", "mai"));
  CHECK(GlobMatch("", ""));
  CHECK(GlobMatch("feature/*", "feature/x"));
  CHECK(GlobMatch("feature/*", "feature/"));
  CHECK_FALSE(GlobMatch("feature/*", "feature/x/y"));
  CHECK(GlobMatch("*", "dev"));
  CHECK_FALSE(GlobMatch("*", "feature/x"));
  CHECK(GlobMatch("v?.?", "v1.2"));
  CHECK_FALSE(GlobMatch("a?b", "a/b"));
  CHECK(GlobMatch("*.py", "x.py"));
  CHECK_FALSE(GlobMatch("*.py", "src/x.py"));
  CHECK(GlobMatch("*a*b*", "xxaxxbxx"));
}

TEST_CASE("glob: ** crosses directories") {
  CHECK(GlobMatch("release/**", "release/1.0"));
  CHECK(GlobMatch("release/**", "release/1/2"));
  CHECK_FALSE(GlobMatch("release/**", "release"));
  CHECK_FALSE(GlobMatch("release/**", "releases/1"));
  CHECK(GlobMatch("**", "a/b/c"));
  CHECK(GlobMatch("**", ""));
  CHECK(GlobMatch("src/**/x.py", "src/x.py"));
  CHECK(GlobMatch("src/**/x.py", "src/a/x.py"));
  CHECK(GlobMatch("src/**/x.py", "src/a/b/x.py"));
  CHECK_FALSE(GlobMatch("src/**/x.py", "src/ax.py"));
  CHECK(GlobMatch("**/*.md", "README.md"));
  CHECK(GlobMatch("**/*.md", "docs/a/b.md"));
  CHECK_FALSE(GlobMatch("**/*.md", "docs/a/b.mdx"));
  CHECK(GlobMatch("src/**.cc", "src/a/b.cc"));
}

TEST_CASE("glob: classes and escapes") {
  CHECK(GlobMatch("v[0-9]", "v7"));
  CHECK_FALSE(GlobMatch("v[0-9]", "vx"));
  CHECK(GlobMatch("[abc]x", "bx"));
  CHECK_FALSE(GlobMatch("[abc]x", "dx"));
  CHECK(GlobMatch("[!a]x", "bx"));
  CHECK_FALSE(GlobMatch("[!a]x", "ax"));
  CHECK_FALSE(GlobMatch("a[!x]b", "a/b"));
  CHECK(GlobMatch("[]]", "]"));
  CHECK(GlobMatch("[!]]", "a"));
  CHECK(GlobMatch("a\\*b", "a*b"));
  CHECK_FALSE(GlobMatch("a\\*b", "axb"));
  CHECK(GlobMatch("\\[x]", "[x]"));
  CHECK(GlobMatch("[a\\-z]", "-"));
  CHECK_FALSE(GlobMatch("[a\\-z]", "b"));
  // Invalid patterns match literally rather than fail.
  CHECK(GlobMatch("a[b", "a[b"));
  CHECK(GlobMatch("a\\", "a\\"));
}

TEST_CASE("glob: ValidateGlob messages") {
  CHECK(ValidateGlob("release/**").ok());
  CHECK(ValidateGlob("[a-z]*").ok());
  CHECK(ValidateGlob("\\[").ok());
  CHECK(ValidateGlob("").message() == "pattern must not be empty");
  absl::Status s = ValidateGlob("release/[0-9");
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(s.message() == "unterminated '[' at column 9 in pattern 'release/[0-9'");
  CHECK(ValidateGlob("a\\").message() == "pattern 'a\\' ends with a lone '\\'");
  CHECK(ValidateGlob("v[9-0]").message() == "invalid range '9-0' in pattern 'v[9-0]'");
}

TEST_CASE("glob: branch filters with main, dev, staging, feature/x, release/**") {
  const std::vector<std::string> branches = {"main",      "dev",         "staging",
                                             "feature/x", "release/1.0", "release/2/rc"};
  auto matching = [&](const std::vector<std::string>& filters) {
    std::vector<std::string> out;
    for (const std::string& b : branches) {
      if (MatchesFilters(filters, b)) out.push_back(b);
    }
    return out;
  };
  using V = std::vector<std::string>;
  CHECK(matching({}) == branches);
  CHECK(matching({"main", "dev", "staging"}) == V{"main", "dev", "staging"});
  CHECK(matching({"release/**"}) == V{"release/1.0", "release/2/rc"});
  CHECK(matching({"feature/*"}) == V{"feature/x"});
  CHECK(matching({"*"}) == V{"main", "dev", "staging"});
  CHECK(matching({"**"}) == branches);
  CHECK(matching({"!main"}) == V{"dev", "staging", "feature/x", "release/1.0", "release/2/rc"});
  CHECK(matching({"!main", "!release/**"}) == V{"dev", "staging", "feature/x"});
  // Last match wins.
  CHECK(matching({"**", "!release/**", "release/1.0"}) ==
        V{"main", "dev", "staging", "feature/x", "release/1.0"});
  CHECK(matching({"release/**", "!release/2/*"}) == V{"release/1.0"});
  CHECK(matching({"!dev", "dev"}) == V{"dev"});
}

// Backtracking retried the same (pattern, text) positions: k stars against n characters cost
// O(n^k), and this one ran for hours. A pattern comes from a pushed .assay.yml and the text
// from the push, so matching must stay polynomial.
TEST_CASE("glob: many stars match in polynomial time") {
  std::string stars, double_stars;
  for (int i = 0; i < 16; ++i) {
    stars += "*a";
    double_stars += "**a";
  }
  const std::string text(60, 'a');
  CHECK_FALSE(GlobMatch(stars + "b", text));
  CHECK_FALSE(GlobMatch(double_stars + "b", text));
  CHECK(GlobMatch(stars + "*", text));
  CHECK(GlobMatch(double_stars, text));
  CHECK_FALSE(GlobMatch(stars + "b", std::string(30, 'a') + "/" + std::string(29, 'a')));
}

TEST_CASE("glob: patterns are at most 1024 characters") {
  const std::string longest(1024, '*');
  CHECK(ValidateGlob(longest).ok());
  CHECK(GlobMatch(longest, "any/path"));
  CHECK(ValidateGlob(longest + "*").message() == "pattern is longer than 1024 characters");
  CHECK_FALSE(GlobMatch(longest + "*", "any/path"));
}

}  // namespace
}  // namespace assay
