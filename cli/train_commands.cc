#include "cli/train_commands.h"

#include <algorithm>
#include <boost/json.hpp>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/table.h"
#include "common/base/number_text.h"

namespace assay::cli {
namespace {

namespace json = boost::json;

std::string Text(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return "-";
  if (v->is_string()) return std::string(v->as_string());
  return json::serialize(*v);
}

// A parameter's value as written in a sweep: a string bare, a number in its shortest form
// (0.5, not 5E-1).
std::string Plain(const json::value& v) {
  if (v.is_string()) return std::string(v.as_string());
  if (v.is_double()) return ShortestDouble(v.as_double());
  return json::serialize(v);
}

std::string Value(const json::value& v) {
  return v.is_number() ? absl::StrFormat("%.6g", v.to_number<double>()) : "-";
}

}  // namespace

std::variant<int, std::string> TrainCommand(const TrainArgs& a, const ApiClient& api,
                                            std::ostream& out, std::ostream& err) {
  std::optional<std::string> series;
  for (const auto& [name, value] : a.options) {
    if (name != "--series") return absl::StrCat("unknown option '", name, "' for 'assay train'");
    if (series.has_value()) return std::string("option --series given more than once");
    series = value;
  }
  if (a.positional.size() != 1) return std::string("'assay train' needs one JOB_ID");
  int64_t id = 0;
  if (!absl::SimpleAtoi(a.positional[0], &id) || id <= 0) {
    return absl::StrCat("JOB_ID must be a positive integer, got '", a.positional[0], "'");
  }
  std::optional<json::value> reply =
      api.CallJson("GET", absl::StrCat("/api/v1/jobs/", id, "/train"), "", err);
  if (!reply) return 1;
  const json::value* runs = reply->is_object() ? reply->as_object().if_contains("train") : nullptr;
  if (runs == nullptr || !runs->is_array()) {
    err << "assay: unexpected response from the server: no 'train' list\n";
    return 1;
  }
  if (runs->as_array().empty()) {
    err << "assay: job " << id << " has no train step\n";
    return 1;
  }
  bool found_series = false;
  for (const json::value& item : runs->as_array()) {
    if (!item.is_object()) continue;
    const json::object& r = item.as_object();
    std::string attempts;
    if (const json::value* at = r.if_contains("attempts"); at != nullptr && at->is_array()) {
      for (const json::value& x : at->as_array()) {
        if (!x.is_object()) continue;
        const std::string resumed = Text(x.as_object(), "resumed_from");
        absl::StrAppend(&attempts, attempts.empty() ? "" : ", ", "attempt ",
                        Text(x.as_object(), "attempt"),
                        resumed == "-" ? " from scratch" : " resumed from step " + resumed);
      }
    }
    const json::value* s = r.if_contains("series");
    if (series.has_value()) {
      const json::value* pts =
          s != nullptr && s->is_object() ? s->as_object().if_contains(*series) : nullptr;
      if (pts == nullptr || !pts->is_array()) continue;
      found_series = true;
      std::vector<std::vector<std::string>> rows;
      for (const json::value& p : pts->as_array()) {
        if (!p.is_array() || p.as_array().size() != 3) continue;
        const json::array& pa = p.as_array();
        rows.push_back({json::serialize(pa[0]), Value(pa[1]), json::serialize(pa[2])});
      }
      WriteTable(out, {"STEP", "VALUE", "ATTEMPT"}, rows);
      continue;
    }
    out << "train step " << Text(r, "name") << " (step " << Text(r, "step_index") << "), model "
        << Text(r, "model") << ", version " << Text(r, "model_version") << ", newest checkpoint "
        << Text(r, "latest_checkpoint_step") << (attempts.empty() ? "" : "; ") << attempts << "\n";
    std::vector<std::vector<std::string>> rows;
    if (s != nullptr && s->is_object()) {
      for (const auto& [name, pts] : s->as_object()) {
        if (!pts.is_array() || pts.as_array().empty()) continue;
        const json::array& pa = pts.as_array();
        double lo = 0;
        bool first = true;
        for (const json::value& p : pa) {
          if (!p.is_array() || p.as_array().size() != 3 || !p.as_array()[1].is_number()) continue;
          const double v = p.as_array()[1].to_number<double>();
          lo = first ? v : std::min(lo, v);
          first = false;
        }
        const json::array& last = pa.back().as_array();
        rows.push_back({std::string(name), absl::StrCat(pa.size()),
                        json::serialize(pa.front().as_array()[0]), json::serialize(last[0]),
                        Value(last[1]), first ? "-" : absl::StrFormat("%.6g", lo)});
      }
    }
    WriteTable(out, {"SERIES", "POINTS", "FIRST STEP", "LAST STEP", "LAST", "MIN"}, rows);
  }
  if (series.has_value() && !found_series) {
    err << "assay: job " << id << " has no series '" << *series << "'\n";
    return 1;
  }
  return 0;
}

std::variant<int, std::string> SweepCommand(const TrainArgs& a, const ApiClient& api,
                                            std::ostream& out, std::ostream& err) {
  if (!a.options.empty()) {
    return absl::StrCat("unknown option '", a.options.front().first, "' for 'assay sweep'");
  }
  if (a.positional.size() != 1) return std::string("'assay sweep' needs one PIPELINE_ID");
  int64_t id = 0;
  if (!absl::SimpleAtoi(a.positional[0], &id) || id <= 0) {
    return absl::StrCat("PIPELINE_ID must be a positive integer, got '", a.positional[0], "'");
  }
  std::optional<json::value> reply =
      api.CallJson("GET", absl::StrCat("/api/v1/pipelines/", id, "/sweeps"), "", err);
  if (!reply) return 1;
  const json::value* sweeps =
      reply->is_object() ? reply->as_object().if_contains("sweeps") : nullptr;
  if (sweeps == nullptr || !sweeps->is_array()) {
    err << "assay: unexpected response from the server: no 'sweeps' list\n";
    return 1;
  }
  if (sweeps->as_array().empty()) {
    err << "assay: pipeline " << id << " has no sweep\n";
    return 1;
  }
  for (const json::value& item : sweeps->as_array()) {
    if (!item.is_object()) continue;
    const json::object& s = item.as_object();
    out << "sweep " << Text(s, "name") << ": " << Text(s, "method") << ", " << Text(s, "goal")
        << " " << Text(s, "metric") << "; ";
    const json::value* best = s.if_contains("best");
    const json::value* model = s.if_contains("model");
    if (best != nullptr && best->is_object()) {
      out << "best trial " << Text(best->as_object(), "trial") << " (job "
          << Text(best->as_object(), "job_id") << ")";
      if (model != nullptr && model->is_object()) {
        out << ", registered as " << Text(model->as_object(), "name") << " version "
            << Text(model->as_object(), "version");
      }
    } else if (s.if_contains("concluded") != nullptr && s.at("concluded").is_bool() &&
               s.at("concluded").as_bool()) {
      out << "no best trial";
    } else {
      out << "running";
    }
    const std::string message = Text(s, "message");
    out << (message == "-" || message.empty() ? "" : ": " + message) << "\n";
    std::vector<std::vector<std::string>> rows;
    if (const json::value* trials = s.if_contains("trials"); trials && trials->is_array()) {
      for (const json::value& t : trials->as_array()) {
        if (!t.is_object()) continue;
        const json::object& o = t.as_object();
        std::string params;
        if (const json::value* p = o.if_contains("params"); p && p->is_object()) {
          for (const auto& [k, v] : p->as_object()) {
            absl::StrAppend(&params, params.empty() ? "" : " ", std::string(k), "=", Plain(v));
          }
        }
        std::string mark;
        if (o.if_contains("best") && o.at("best").is_bool() && o.at("best").as_bool()) mark = "*";
        if (o.if_contains("stopped_early") && o.at("stopped_early").is_bool() &&
            o.at("stopped_early").as_bool()) {
          mark = "stopped";
        }
        const json::value* value = o.if_contains("value");
        rows.push_back({Text(o, "trial"), Text(o, "job_id"), Text(o, "state"), params,
                        Text(o, "step"), value ? Value(*value) : "-", mark});
      }
    }
    WriteTable(out, {"TRIAL", "JOB", "STATE", "PARAMS", "STEP", "VALUE", ""}, rows);
  }
  return 0;
}

}  // namespace assay::cli
