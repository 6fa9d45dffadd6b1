#include "common/pipeline/matrix.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"

namespace assay {
namespace {

using Combination = std::map<std::string, std::string>;

// Past this many raw combinations the product is refused before it is built.
constexpr uint64_t kHardLimit = 1'000'000;

bool MatchesAll(const Combination& combination, const Combination& keys) {
  return std::all_of(keys.begin(), keys.end(), [&](const auto& kv) {
    auto it = combination.find(kv.first);
    return it != combination.end() && it->second == kv.second;
  });
}

absl::Status TooMany(uint64_t count, int cap) {
  return absl::InvalidArgumentError(
      absl::StrCat("matrix expands to ", count, " jobs, more than the limit of ", cap));
}

}  // namespace

absl::StatusOr<std::vector<Combination>> ExpandMatrix(const MatrixSpec& spec, int cap) {
  uint64_t product = spec.axes.empty() ? 0 : 1;
  for (const auto& [name, values] : spec.axes) {
    product = std::min<uint64_t>(product * values.size(), UINT64_C(1) << 62);
  }
  if (product > kHardLimit) return TooMany(product, cap);

  std::vector<Combination> combinations;
  if (product > 0) combinations.emplace_back();
  for (const auto& [name, values] : spec.axes) {
    std::vector<Combination> next;
    for (const Combination& base : combinations) {
      for (const std::string& value : values) {
        Combination c = base;
        c[name] = value;
        next.push_back(std::move(c));
      }
    }
    combinations = std::move(next);
  }
  std::erase_if(combinations, [&](const Combination& c) {
    return std::any_of(spec.exclude.begin(), spec.exclude.end(),
                       [&](const Combination& ex) { return MatchesAll(c, ex); });
  });

  auto is_axis = [&](const std::string& key) {
    return std::any_of(spec.axes.begin(), spec.axes.end(),
                       [&](const auto& axis) { return axis.first == key; });
  };
  const size_t original_count = combinations.size();
  for (const Combination& inc : spec.include) {
    bool merged = false;
    for (size_t i = 0; i < original_count; ++i) {
      Combination& c = combinations[i];
      const bool keeps_originals = std::all_of(inc.begin(), inc.end(), [&](const auto& kv) {
        return !is_axis(kv.first) || c.at(kv.first) == kv.second;
      });
      if (!keeps_originals) continue;
      for (const auto& [key, value] : inc) c[key] = value;
      merged = true;
    }
    if (!merged) combinations.push_back(inc);
  }
  if (combinations.empty()) return absl::InvalidArgumentError("matrix expands to no jobs");
  if (combinations.size() > static_cast<size_t>(cap)) return TooMany(combinations.size(), cap);
  return combinations;
}

std::string MatrixJobName(std::string_view job, const Combination& values, const MatrixSpec& spec) {
  std::vector<std::string> parts;
  for (const auto& [axis, unused] : spec.axes) {
    auto it = values.find(axis);
    if (it != values.end()) parts.push_back(it->second);
  }
  for (const auto& [key, value] : values) {
    const bool axis = std::any_of(spec.axes.begin(), spec.axes.end(),
                                  [&key = key](const auto& a) { return a.first == key; });
    if (!axis) parts.push_back(value);
  }
  if (parts.empty()) return std::string(job);
  std::string name = absl::StrCat(std::string(job), " (");
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) name += ", ";
    name += parts[i];
  }
  return name + ")";
}

}  // namespace assay
