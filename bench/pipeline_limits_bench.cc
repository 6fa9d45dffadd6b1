// assay-bench-pipeline-limits: how long the hostile `.assay.yml` files of issue 8 take to be
// refused, and how long the largest glob takes to match. Prints one line per case (median of 5
// runs, wall time); asserts nothing. Run: build/bench/assay-bench-pipeline-limits
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/pipeline/glob.h"
#include "common/pipeline/spec.h"

namespace {

double MedianMs(const std::function<void()>& f) {
  std::vector<double> ms;
  for (int i = 0; i < 5; ++i) {
    const auto start = std::chrono::steady_clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[2];
}

void Lint(const char* name, const std::string& yaml) {
  std::string first;
  const double ms = MedianMs([&] {
    auto errors = assay::LintPipelineSpec(yaml, ".assay.yml");
    first = errors.empty() ? "(valid)" : errors.front().ToString();
  });
  std::printf("%-28s %8.2f ms  %7zu bytes  %.90s\n", name, ms, yaml.size(), first.c_str());
}

}  // namespace

int main() {
  std::string bomb = "x0: &x0 [a, a, a, a, a, a, a, a, a, a]\n";
  for (int i = 1; i <= 9; ++i) {
    absl::StrAppend(&bomb, "x", i, ": &x", i, " [");
    for (int j = 0; j < 10; ++j) absl::StrAppend(&bomb, j ? ", " : "", "*x", i - 1);
    absl::StrAppend(&bomb, "]\n");
  }
  bomb += "jobs:\n  build:\n    steps: [make]\n";
  std::string a, b;
  for (int i = 0; i < 1000; ++i) {
    absl::StrAppend(&a, i ? ", " : "", i);
    absl::StrAppend(&b, i ? ", " : "", "v", i);
  }
  Lint("if: 20000 nested '('",
       absl::StrCat("jobs:\n  build:\n    if: \"", std::string(20000, '('), "true",
                    std::string(20000, ')'), "\"\n    steps: [make]\n"));
  Lint("alias bomb (10^9 nodes)", bomb);
  Lint("matrix 1000x1000", absl::StrCat("jobs:\n  build:\n    strategy:\n      matrix:\n"
                                        "        a: [",
                                        a, "]\n        b: [", b, "]\n    steps: [make]\n"));
  Lint("glob of 4000 '*'", absl::StrCat("on:\n  push:\n    branches: [\"", std::string(4000, '*'),
                                        "\"]\njobs:\n  build:\n    steps: [make]\n"));
  Lint("1 MiB + 1 byte", std::string((1 << 20) + 1, '#'));
  Lint("YAML 1,000,000 '['", "a: " + std::string(1000000, '['));
  const std::string stars(1023, '*');
  const std::string text(255, 'a');
  bool matched = true;
  const double ms = MedianMs([&] { matched = assay::GlobMatch(stars + "b", text); });
  std::printf("%-28s %8.2f ms  against %zu chars: %s\n", "glob 1023 '*' + 'b'", ms, text.size(),
              matched ? "match" : "no match");
  return 0;
}
