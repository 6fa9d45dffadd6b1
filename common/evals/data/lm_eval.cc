// lm-evaluation-harness results (ingest.h). The format, as lm_eval/evaluator.py and
// evaluator_utils.py write it: results[task]["<metric>,<filter>"] = number, and
// results[task]["<metric>_stderr,<filter>"] = number or "N/A"; other keys of a task ("alias",
// "name", "sample_len", "samples", "sample_count") have no comma.
#include <string>
#include <unordered_set>
#include <utility>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/evals/data/ingest.h"
#include "common/evals/data/json_strict.h"
#include "common/evals/data/text.h"

namespace assay::evals {
namespace {

namespace json = boost::json;

// Python's json.dumps writes NaN, Infinity and -Infinity as bare words: each becomes null.
std::string NonFiniteToNull(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  bool in_string = false;
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (in_string) {
      out.push_back(c);
      if (c == '\\' && i + 1 < in.size()) {
        out.push_back(in[++i]);
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') in_string = true;
    const std::string_view rest = in.substr(i);
    size_t skip = 0;
    if (rest.substr(0, 3) == "NaN") skip = 3;
    if (rest.substr(0, 8) == "Infinity") skip = 8;
    if (rest.substr(0, 9) == "-Infinity") skip = 9;
    if (skip > 0) {
      out.append("null");
      i += skip - 1;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::optional<double> Number(const json::value* v) {
  if (v == nullptr || !v->is_number()) return std::nullopt;
  return v->to_number<double>();
}

}  // namespace

absl::StatusOr<std::vector<IngestedMetric>> ParseLmEvalResults(std::string_view text,
                                                               std::string_view file_name,
                                                               const LmEvalLimits& limits) {
  const auto error = [&](std::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(Av(file_name), ": ", Av(what)));
  };
  if (text.size() > limits.max_bytes) {
    return error(absl::StrCat(text.size(), " bytes is over the limit of ", limits.max_bytes,
                              " bytes (max_bytes)"));
  }
  absl::StatusOr<json::value> doc = ParseStrictJson(NonFiniteToNull(text), limits.max_depth);
  if (!doc.ok()) return error(Sv(doc.status().message()));
  const json::object* root = doc->if_object();
  if (root == nullptr) return error("must be a JSON object with \"results\"");
  const json::value* results_v = root->if_contains("results");
  if (results_v == nullptr) return error("key \"results\" is missing");
  const json::object* results = results_v->if_object();
  if (results == nullptr) return error("key \"results\": must be an object");

  std::unordered_set<std::string> groups;
  if (const json::value* g = root->if_contains("groups"); g != nullptr && g->is_object()) {
    for (const auto& kv : g->get_object()) groups.emplace(kv.key());
  }
  if (const json::value* g = root->if_contains("group_subtasks"); g != nullptr && g->is_object()) {
    for (const auto& kv : g->get_object()) {
      if (kv.value().is_array() && !kv.value().get_array().empty()) groups.emplace(kv.key());
    }
  }

  std::vector<IngestedMetric> out;
  for (const auto& [task_key, task_v] : *results) {
    const std::string task(task_key);
    const json::object* task_obj = task_v.if_object();
    if (task_obj == nullptr) {
      return error(absl::StrCat("key \"results.", task, "\": must be an object"));
    }
    std::string alias;
    if (const json::value* a = task_obj->if_contains("alias"); a != nullptr && a->is_string()) {
      alias = std::string(a->get_string());
    }
    for (const auto& [key_v, value] : *task_obj) {
      const std::string_view key = key_v;
      const size_t comma = key.find(',');
      if (comma == std::string_view::npos) continue;
      const std::string_view metric = key.substr(0, comma);
      const std::string_view filter = key.substr(comma + 1);
      if (metric.size() >= 7 && metric.substr(metric.size() - 7) == "_stderr") continue;
      if (metric.empty()) {
        return error(absl::StrCat("key \"results.", task, ".", Av(key), "\": no metric name"));
      }
      if (value.is_string() || value.is_null()) continue;  // "N/A": no value.
      if (!value.is_number()) {
        return error(absl::StrCat("key \"results.", task, ".", Av(key),
                                  "\": must be a number, a string (\"N/A\") or null"));
      }
      if (out.size() >= limits.max_metrics) {
        return error(absl::StrCat("more than ", limits.max_metrics, " metrics (max_metrics)"));
      }
      IngestedMetric m;
      m.task = task;
      m.metric = std::string(metric);
      m.filter = std::string(filter);
      m.value = value.to_number<double>();
      m.stderr_value =
          Number(task_obj->if_contains(absl::StrCat(Av(metric), "_stderr,", Av(filter))));
      m.alias = alias;
      m.group = groups.count(task) > 0;
      out.push_back(std::move(m));
    }
  }
  return out;
}

}  // namespace assay::evals
