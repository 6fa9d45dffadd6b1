// Fuzzes strategy.matrix expansion against a naive reference that builds every combination
// (the expansion before issue 8). The input's bytes pick axes, values, excludes and includes
// from a small alphabet, so that matches are common. Contract: ExpandMatrix never crashes,
// never builds what it has not counted, and whenever the product is small enough for the
// reference it returns exactly the reference's combinations (or the same error).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/pipeline/matrix.h"

namespace {

using Combination = std::map<std::string, std::string>;

bool MatchesAll(const Combination& c, const Combination& keys) {
  return std::all_of(keys.begin(), keys.end(), [&](const auto& kv) {
    auto it = c.find(kv.first);
    return it != c.end() && it->second == kv.second;
  });
}

// GitHub semantics, built naively (see matrix.h for the rules).
std::vector<Combination> Reference(const assay::MatrixSpec& spec) {
  std::vector<Combination> out;
  if (!spec.axes.empty()) out.emplace_back();
  for (const auto& [name, values] : spec.axes) {
    std::vector<Combination> next;
    for (const Combination& base : out) {
      for (const std::string& v : values) {
        Combination c = base;
        c[name] = v;
        next.push_back(std::move(c));
      }
    }
    out = std::move(next);
  }
  std::erase_if(out, [&](const Combination& c) {
    return std::any_of(spec.exclude.begin(), spec.exclude.end(),
                       [&](const Combination& ex) { return MatchesAll(c, ex); });
  });
  auto is_axis = [&](const std::string& key) {
    return std::any_of(spec.axes.begin(), spec.axes.end(),
                       [&](const auto& a) { return a.first == key; });
  };
  const size_t original = out.size();
  for (const Combination& inc : spec.include) {
    bool merged = false;
    for (size_t i = 0; i < original; ++i) {
      bool keeps = std::all_of(inc.begin(), inc.end(), [&](const auto& kv) {
        return !is_axis(kv.first) || out[i].at(kv.first) == kv.second;
      });
      if (!keeps) continue;
      for (const auto& [k, v] : inc) out[i][k] = v;
      merged = true;
    }
    if (!merged) out.push_back(inc);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  size_t pos = 0;
  auto next = [&]() -> unsigned { return pos < size ? data[pos++] : 0; };
  const char* const keys[] = {"a", "b", "c", "d", "x"};  // "x" is never an axis
  const char* const values[] = {"0", "1", "2", "3"};
  assay::MatrixSpec spec;
  const unsigned axes = next() % 5;
  for (unsigned a = 0; a < axes; ++a) {
    std::vector<std::string> vs;
    const unsigned n = next() % 9;  // 0..8 values, duplicates allowed
    for (unsigned i = 0; i < n; ++i) vs.push_back(values[next() % 4]);
    spec.axes.emplace_back(keys[a], std::move(vs));
  }
  auto entry = [&] {
    Combination c;
    const unsigned n = next() % 4;
    for (unsigned i = 0; i < n; ++i) c[keys[next() % 5]] = values[next() % 4];
    return c;
  };
  const unsigned excludes = next() % 8, includes = next() % 4;
  for (unsigned i = 0; i < excludes; ++i) spec.exclude.push_back(entry());
  for (unsigned i = 0; i < includes; ++i) spec.include.push_back(entry());
  const int cap = static_cast<int>(next() % 64) + 1;

  auto got = assay::ExpandMatrix(spec, cap);
  const std::vector<Combination> want = Reference(spec);
  if (want.empty()) {
    if (got.ok() || got.status().message() != "matrix expands to no jobs") std::abort();
  } else if (want.size() > static_cast<size_t>(cap)) {
    if (got.ok() || got.status().message() != "matrix expands to " + std::to_string(want.size()) +
                                                  " jobs, more than the limit of " +
                                                  std::to_string(cap)) {
      std::abort();
    }
  } else if (!got.ok() || *got != want) {
    std::abort();
  }
  return 0;
}
