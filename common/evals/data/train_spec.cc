#include "common/evals/train_spec.h"

#include <boost/json.hpp>
#include <cctype>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace assay::evals {
namespace {

namespace json = boost::json;

std::string Text(const json::object& o, std::string_view key, std::string fallback = "") {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return fallback;
  return std::string(v->as_string());
}

}  // namespace

std::string TrainSpecToJson(const TrainSpec& s) {
  json::object o{{"name", s.name},
                 {"command", s.command},
                 {"model", s.model},
                 {"params", json::parse(s.params_json)},
                 {"model_dir", s.model_dir},
                 {"register", s.register_model},
                 {"checkpoint_interval_ms", s.checkpoint_interval_ms}};
  json::array datasets;
  for (const std::string& d : s.datasets) datasets.emplace_back(d);
  o["datasets"] = std::move(datasets);
  if (!s.parent.empty()) o["parent"] = s.parent;
  return json::serialize(o);
}

absl::StatusOr<TrainSpec> TrainSpecFromJson(std::string_view text) {
  try {
    json::value root = json::parse(text);
    const json::object& o = root.as_object();
    TrainSpec s;
    s.name = Text(o, "name");
    s.command = Text(o, "command");
    s.model = Text(o, "model");
    if (const json::value* p = o.if_contains("params")) {
      s.params_json = json::serialize(p->as_object());
    }
    s.model_dir = Text(o, "model_dir", s.model_dir);
    if (const json::value* d = o.if_contains("datasets")) {
      for (const json::value& e : d->as_array()) s.datasets.emplace_back(e.as_string());
    }
    if (const json::value* r = o.if_contains("register")) s.register_model = r->as_bool();
    s.parent = Text(o, "parent");
    if (const json::value* i = o.if_contains("checkpoint_interval_ms")) {
      const double ms = i->to_number<double>();
      if (!(ms >= kMinCheckpointIntervalMs && ms <= 86'400'000.0)) {
        return absl::InvalidArgumentError("train step: checkpoint_interval_ms out of range");
      }
      s.checkpoint_interval_ms = static_cast<int64_t>(ms);
    }
    if (s.command.empty() || s.model_dir.empty() || (s.register_model && s.model.empty()) ||
        s.params_json.size() > kMaxTrainParamsBytes || s.datasets.size() > kMaxTrainDatasets) {
      return absl::InvalidArgumentError(
          "train step: command, model_dir and (to register) model are required; params and "
          "datasets within their limits");
    }
    return s;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("train step: bad JSON: ", e.what()));
  }
}

std::string PromoteSpecToJson(const PromoteSpec& s) {
  json::object o{{"model", s.model}, {"alias", s.alias}};
  if (!s.version.empty()) o["version"] = s.version;
  if (!s.condition.empty()) o["if"] = s.condition;
  return json::serialize(o);
}

absl::StatusOr<PromoteSpec> PromoteSpecFromJson(std::string_view text) {
  try {
    json::value root = json::parse(text);
    const json::object& o = root.as_object();
    PromoteSpec s{Text(o, "model"), Text(o, "alias"), Text(o, "version"), Text(o, "if")};
    if (s.model.empty() || s.alias.empty()) {
      return absl::InvalidArgumentError("promote step: model and alias are required");
    }
    return s;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("promote step: bad JSON: ", e.what()));
  }
}

std::optional<int64_t> CheckpointStep(std::string_view name) {
  size_t i = 0;
  for (std::string_view prefix : {"checkpoint", "step", "ckpt"}) {
    if (name.substr(0, prefix.size()) == prefix) {
      i = prefix.size();
      break;
    }
  }
  if (i == 0 || i >= name.size() || (name[i] != '-' && name[i] != '_')) return std::nullopt;
  ++i;
  const size_t digits = i;
  int64_t n = 0;
  while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])) != 0) {
    if (i - digits >= 15) return std::nullopt;
    n = n * 10 + (name[i] - '0');
    ++i;
  }
  if (i == digits) return std::nullopt;
  if (i == name.size()) return n;
  if (name[i] != '.') return std::nullopt;
  const size_t ext = ++i;
  while (i < name.size() && std::isalnum(static_cast<unsigned char>(name[i])) != 0) ++i;
  if (i != name.size() || i == ext || i - ext > 16) return std::nullopt;
  return n;
}

}  // namespace assay::evals
