#include "common/pipeline/matrix.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"

namespace assay {
namespace {

using Combination = std::map<std::string, std::string>;

// Counting gives up past this much work (values tried, times the excludes still in play);
// the file is then refused with N = the product before excludes.
constexpr uint64_t kMaxCountWork = 50'000'000;  // ~0.1 s
constexpr uint64_t kSaturated = UINT64_C(1) << 62;

uint64_t Add(uint64_t a, uint64_t b) { return std::min(a + std::min(b, kSaturated), kSaturated); }
uint64_t Mul(uint64_t a, uint64_t b) {
  if (a == 0 || b == 0) return 0;
  return a > kSaturated / b ? kSaturated : a * b;
}

absl::Status TooMany(uint64_t count, int cap) {
  return absl::InvalidArgumentError(
      absl::StrCat("matrix expands to ", count, " jobs, more than the limit of ", cap));
}

// Counts (and, when asked, lists) the combinations of the axes that survive the excludes,
// without building the others. Why: a 1000x1000 matrix is a million maps (gigabytes) before
// the cap could refuse it. A depth-first walk over the axes, those named by an exclude first,
// that drops a branch as soon as an exclude matches it and counts a branch no exclude can
// still match by multiplying the sizes of the axes left.
class Counter {
 public:
  explicit Counter(const MatrixSpec& spec) : spec_(spec) {
    const size_t n = spec.axes.size();
    std::vector<bool> named(n, false);
    for (const Combination& ex : spec.exclude) {
      Exclusion e;
      e.value.assign(n, nullptr);
      bool possible = true;
      for (const auto& [key, value] : ex) {
        const size_t axis = AxisOf(key);
        if (axis == n) possible = false;  // a combination has only axis keys
        if (axis < n) e.value[axis] = &value;
      }
      if (!possible) continue;
      if (ex.empty()) everything_excluded_ = true;
      for (size_t a = 0; a < n; ++a) named[a] = named[a] || e.value[a] != nullptr;
      exclusions_.push_back(std::move(e));
    }
    for (size_t a = 0; a < n; ++a) {
      if (named[a]) order_.push_back(a);
    }
    for (size_t a = 0; a < n; ++a) {
      if (!named[a]) order_.push_back(a);
    }
    for (Exclusion& e : exclusions_) {
      for (size_t level = 0; level < n; ++level) {
        if (e.value[order_[level]] != nullptr) e.last_level = level;
      }
    }
  }

  // Index of axis `key`, or axes.size().
  size_t AxisOf(const std::string& key) const {
    for (size_t a = 0; a < spec_.axes.size(); ++a) {
      if (spec_.axes[a].first == key) return a;
    }
    return spec_.axes.size();
  }

  // The surviving combinations whose axis values equal `fixed`'s (per axis; null: any),
  // stopping once more than `stop_above` are found. With `out`, each is also appended as its
  // value indices per axis. Sets gave_up() when the work limit is reached.
  uint64_t Count(const std::vector<const std::string*>& fixed, uint64_t stop_above,
                 std::vector<std::vector<size_t>>* out) {
    if (spec_.axes.empty() || everything_excluded_) return 0;
    std::vector<size_t> alive(exclusions_.size());
    for (size_t i = 0; i < alive.size(); ++i) alive[i] = i;
    std::vector<size_t> tuple(spec_.axes.size(), 0);
    return Walk(0, alive, fixed, stop_above, out, tuple);
  }

  bool gave_up() const { return work_ > kMaxCountWork; }

 private:
  struct Exclusion {
    std::vector<const std::string*> value;  // per axis; null: not named
    size_t last_level = 0;                  // the deepest level (in order_) that it names
  };

  uint64_t Walk(size_t level, const std::vector<size_t>& alive,
                const std::vector<const std::string*>& fixed, uint64_t stop_above,
                std::vector<std::vector<size_t>>* out, std::vector<size_t>& tuple) {
    if (level == order_.size()) {
      if (out != nullptr) out->push_back(tuple);
      return 1;
    }
    if (alive.empty() && out == nullptr) {
      uint64_t product = 1;
      for (size_t l = level; l < order_.size(); ++l) {
        const auto& values = spec_.axes[order_[l]].second;
        const std::string* want = fixed[order_[l]];
        const uint64_t size =
            want == nullptr ? values.size() : std::count(values.begin(), values.end(), *want);
        product = Mul(product, size);
      }
      return product;
    }
    const size_t axis = order_[level];
    const std::vector<std::string>& values = spec_.axes[axis].second;
    uint64_t total = 0;
    std::vector<size_t> next;
    for (size_t v = 0; v < values.size(); ++v) {
      if (fixed[axis] != nullptr && *fixed[axis] != values[v]) continue;
      work_ += 1 + alive.size();
      if (gave_up()) return total;
      next.clear();
      bool excluded = false;
      for (size_t e : alive) {
        const std::string* want = exclusions_[e].value[axis];
        if (want == nullptr) {
          next.push_back(e);
        } else if (*want == values[v]) {
          if (exclusions_[e].last_level == level) {
            excluded = true;
            break;
          }
          next.push_back(e);
        }
      }
      if (excluded) continue;
      tuple[axis] = v;
      total = Add(total, Walk(level + 1, next, fixed, stop_above, out, tuple));
      if (total > stop_above || gave_up()) return total;
    }
    return total;
  }

  const MatrixSpec& spec_;
  std::vector<Exclusion> exclusions_;
  bool everything_excluded_ = false;  // an empty exclude entry matches every combination
  std::vector<size_t> order_;         // axis indices: those named by an exclude first
  uint64_t work_ = 0;
};

}  // namespace

absl::StatusOr<std::vector<Combination>> ExpandMatrix(const MatrixSpec& spec, int cap) {
  uint64_t product = spec.axes.empty() ? 0 : 1;
  for (const auto& [name, values] : spec.axes) product = Mul(product, values.size());
  const uint64_t limit = static_cast<uint64_t>(std::max(cap, 0));

  // Count first: the survivors of the excludes, plus each include that merges into none.
  Counter counter(spec);
  const std::vector<const std::string*> any(spec.axes.size(), nullptr);
  uint64_t count = counter.Count(any, kSaturated, nullptr);
  std::vector<bool> merges(spec.include.size(), false);
  for (size_t i = 0; i < spec.include.size() && !counter.gave_up(); ++i) {
    std::vector<const std::string*> fixed(spec.axes.size(), nullptr);
    for (const auto& [key, value] : spec.include[i]) {
      const size_t axis = counter.AxisOf(key);
      if (axis < spec.axes.size()) fixed[axis] = &value;
    }
    merges[i] = count > 0 && counter.Count(fixed, 0, nullptr) > 0;
    if (!merges[i]) count = Add(count, 1);
  }
  if (counter.gave_up()) return TooMany(product, cap);
  if (count == 0) return absl::InvalidArgumentError("matrix expands to no jobs");
  if (count > limit) return TooMany(count, cap);

  // At most `cap` now: build them, in product order (first axis varying slowest).
  std::vector<std::vector<size_t>> tuples;
  counter.Count(any, kSaturated, &tuples);
  std::sort(tuples.begin(), tuples.end());
  std::vector<Combination> combinations;
  for (const std::vector<size_t>& tuple : tuples) {
    Combination c;
    for (size_t a = 0; a < spec.axes.size(); ++a) {
      c[spec.axes[a].first] = spec.axes[a].second[tuple[a]];
    }
    combinations.push_back(std::move(c));
  }

  auto is_axis = [&](const std::string& key) { return counter.AxisOf(key) < spec.axes.size(); };
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
  if (combinations.size() != count) {
    // A broken invariant of the count above; refuse rather than run a different matrix.
    return absl::InternalError(
        absl::StrCat("matrix counted ", count, " jobs but built ", combinations.size()));
  }
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
