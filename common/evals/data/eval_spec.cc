#include "common/evals/eval_spec.h"

#include <algorithm>
#include <boost/json.hpp>

#include "absl/strings/str_cat.h"

namespace assay::evals {
namespace {

namespace json = boost::json;

struct MetricInfo {
  std::string_view name;
  bool higher_is_better;
};

// Quality metrics are means over the examples of a per-example score in [0, 1] (bleu and chrf
// in [0, 100], as sacreBLEU prints them); the latency, token and cost metrics are over the
// answered requests.
constexpr MetricInfo kMetrics[] = {
    {"exact_match", true},
    {"contains", true},
    {"regex", true},
    {"json_valid", true},
    {"bleu", true},
    {"chrf", true},
    {"rouge_l", true},
    {"edit_similarity", true},
    {"assertions", true},
    {"judge", true},
    {"error_rate", false},
    {"latency_mean_ms", false},
    {"latency_p50_ms", false},
    {"latency_p95_ms", false},
    {"latency_p99_ms", false},
    {"input_tokens", false},
    {"output_tokens", false},
    {"cost_usd", false},
};

struct JunitMetricInfo {
  std::string_view name;
  bool higher_is_better;
};
constexpr JunitMetricInfo kJunitMetrics[] = {
    {"tests", true},    {"passed", true},    {"failures", false}, {"errors", false},
    {"skipped", false}, {"pass_rate", true}, {"time_s", false},
};

// Strict readers: a missing key keeps the default; a present key of the wrong type throws.
std::string Text(const json::object& o, std::string_view key, std::string fallback = "") {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return fallback;
  return std::string(v->as_string());
}

double Number(const json::object& o, std::string_view key, double fallback) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return fallback;
  return v->to_number<double>();
}

bool Bool(const json::object& o, std::string_view key, bool fallback) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return fallback;
  return v->as_bool();
}

json::object ExampleJson(const Example& e) {
  json::object o{{"id", e.id}, {"line", e.line}};
  if (!e.input.empty()) o["input"] = e.input;
  if (!e.messages.empty()) {
    json::array messages;
    for (const Message& m : e.messages) {
      messages.push_back(json::object{{"role", m.role}, {"content", m.content}});
    }
    o["messages"] = std::move(messages);
  }
  if (e.expected.has_value()) o["expected"] = *e.expected;
  if (!e.tags.empty()) {
    json::array tags;
    for (const std::string& t : e.tags) tags.push_back(json::string(t));
    o["tags"] = std::move(tags);
  }
  if (!e.vars.empty()) {
    json::array vars;  // pairs, to keep the file's order
    for (const auto& [k, v] : e.vars) vars.push_back(json::array{json::string(k), json::string(v)});
    o["vars"] = std::move(vars);
  }
  if (!e.asserts.empty()) {
    json::array asserts;
    for (const Assertion& a : e.asserts) {
      json::object ao{
          {"type", a.type}, {"negate", a.negate}, {"value", a.value}, {"weight", a.weight}};
      if (a.threshold.has_value()) ao["threshold"] = *a.threshold;
      asserts.push_back(std::move(ao));
    }
    o["assert"] = std::move(asserts);
  }
  return o;
}

Example ExampleFromJson(const json::object& o) {
  Example e;
  e.id = Text(o, "id");
  e.line = static_cast<int>(std::clamp<int64_t>(o.at("line").to_number<int64_t>(), 0, 1 << 30));
  e.input = Text(o, "input");
  if (const json::value* m = o.if_contains("messages")) {
    for (const json::value& item : m->as_array()) {
      const json::object& mo = item.as_object();
      e.messages.push_back({Text(mo, "role"), Text(mo, "content")});
    }
  }
  if (o.contains("expected")) e.expected = Text(o, "expected");
  if (const json::value* t = o.if_contains("tags")) {
    for (const json::value& tag : t->as_array()) e.tags.emplace_back(tag.as_string());
  }
  if (const json::value* v = o.if_contains("vars")) {
    for (const json::value& pair : v->as_array()) {
      const json::array& kv = pair.as_array();
      e.vars.emplace_back(std::string(kv.at(0).as_string()), std::string(kv.at(1).as_string()));
    }
  }
  if (const json::value* a = o.if_contains("assert")) {
    for (const json::value& item : a->as_array()) {
      const json::object& ao = item.as_object();
      Assertion as;
      as.type = Text(ao, "type");
      as.negate = Bool(ao, "negate", false);
      as.value = Text(ao, "value");
      as.weight = Number(ao, "weight", 1);
      if (ao.contains("threshold")) as.threshold = Number(ao, "threshold", 0);
      e.asserts.push_back(std::move(as));
    }
  }
  return e;
}

}  // namespace

bool KnownMetric(std::string_view name, bool* higher_is_better) {
  for (const MetricInfo& m : kMetrics) {
    if (m.name == name) {
      if (higher_is_better != nullptr) *higher_is_better = m.higher_is_better;
      return true;
    }
  }
  return false;
}

bool JunitMetric(std::string_view name, bool* higher_is_better) {
  for (const JunitMetricInfo& m : kJunitMetrics) {
    if (m.name == name) {
      if (higher_is_better != nullptr) *higher_is_better = m.higher_is_better;
      return true;
    }
  }
  return false;
}

bool HigherIsBetter(std::string_view name) {
  bool higher = true;
  if (KnownMetric(name, &higher) || JunitMetric(name, &higher)) return higher;
  // lm-evaluation-harness: "task/metric[,filter]"; its perplexities and bits per byte fall as
  // a model gets better, everything else (acc, exact_match, f1, bleu, ...) rises.
  const size_t slash = name.find('/');
  const std::string_view metric = slash == std::string_view::npos ? name : name.substr(slash + 1);
  return metric.find("perplexity") == std::string_view::npos &&
         metric.find("bits_per_byte") == std::string_view::npos;
}

const std::vector<std::string_view>& KnownMetricNames() {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> out;
    for (const MetricInfo& m : kMetrics) out.push_back(m.name);
    return out;
  }();
  return names;
}

std::string EvalSpecToJson(const EvalSpec& s) {
  json::object model{{"command", s.model.command}, {"url", s.model.url},
                     {"api", s.model.api},         {"name", s.model.name},
                     {"serve", s.model.serve},     {"api_key_secret", s.model.api_key_secret}};
  json::array tests;
  for (const Example& e : s.tests) tests.push_back(ExampleJson(e));
  json::array metrics;
  for (const std::string& m : s.metrics) metrics.push_back(json::string(m));
  json::array gates;
  for (const EvalGate& g : s.gates) {
    json::object go{{"metric", g.metric}, {"vs", g.vs}, {"confidence", g.confidence}};
    if (g.min.has_value()) go["min"] = *g.min;
    if (g.max.has_value()) go["max"] = *g.max;
    if (g.max_drop.has_value()) go["max_drop"] = *g.max_drop;
    gates.push_back(std::move(go));
  }
  json::object o{
      {"name", s.name},
      {"dataset", s.dataset},
      {"tests", std::move(tests)},
      {"prompt", s.prompt},
      {"model", std::move(model)},
      {"concurrency", s.concurrency},
      {"timeout_ms", s.timeout_ms},
      {"retries", s.retries},
      {"repeat", s.repeat},
      {"metrics", std::move(metrics)},
      {"regex", s.regex},
      {"normalize", json::object{{"lowercase", s.normalize.lowercase},
                                 {"strip", s.normalize.strip},
                                 {"collapse_whitespace", s.normalize.collapse_whitespace},
                                 {"remove_punctuation", s.normalize.remove_punctuation}}},
      {"price_input_per_mtok", s.price_input_per_mtok},
      {"price_output_per_mtok", s.price_output_per_mtok},
      {"gates", std::move(gates)},
  };
  if (s.judge.has_value()) {
    const EvalJudgeSpec& j = *s.judge;
    o["judge"] = json::object{{"url", j.url},
                              {"model", j.model},
                              {"rubric", j.rubric},
                              {"rubric_file", j.rubric_file},
                              {"api_key_secret", j.api_key_secret},
                              {"threshold", j.threshold}};
  }
  if (!s.ingest_format.empty()) {
    o["ingest"] = json::object{{"format", s.ingest_format}, {"path", s.ingest_path}};
  }
  return json::serialize(o);
}

absl::StatusOr<EvalSpec> EvalSpecFromJson(std::string_view text) {
  try {
    json::value root = json::parse(text);
    const json::object& o = root.as_object();
    EvalSpec s;
    s.name = Text(o, "name");
    s.dataset = Text(o, "dataset");
    if (const json::value* t = o.if_contains("tests")) {
      for (const json::value& e : t->as_array()) s.tests.push_back(ExampleFromJson(e.as_object()));
    }
    s.prompt = Text(o, "prompt");
    const json::object& m = o.at("model").as_object();
    s.model = {Text(m, "command"), Text(m, "url"),   Text(m, "api"),
               Text(m, "name"),    Text(m, "serve"), Text(m, "api_key_secret")};
    // Ranges are checked on the doubles: casting one out of an int's range is undefined.
    const double concurrency = Number(o, "concurrency", s.concurrency);
    const double timeout_ms = Number(o, "timeout_ms", static_cast<double>(s.timeout_ms));
    const double retries = Number(o, "retries", s.retries);
    const double repeat = Number(o, "repeat", s.repeat);
    if (!(concurrency >= 1 && concurrency <= kMaxEvalConcurrency && repeat >= 1 &&
          repeat <= kMaxEvalRepeat && retries >= 0 && retries <= kMaxEvalRetries &&
          timeout_ms >= 1 && timeout_ms <= 1e12)) {
      return absl::InvalidArgumentError(
          "eval step: concurrency, repeat, retries or timeout out of range");
    }
    s.concurrency = static_cast<int>(concurrency);
    s.timeout_ms = static_cast<int64_t>(timeout_ms);
    s.retries = static_cast<int>(retries);
    s.repeat = static_cast<int>(repeat);
    if (const json::value* ms = o.if_contains("metrics")) {
      for (const json::value& name : ms->as_array()) s.metrics.emplace_back(name.as_string());
    }
    s.regex = Text(o, "regex");
    if (const json::value* jv = o.if_contains("judge")) {
      const json::object& jo = jv->as_object();
      EvalJudgeSpec j{
          Text(jo, "url"),         Text(jo, "model"),          Text(jo, "rubric"),
          Text(jo, "rubric_file"), Text(jo, "api_key_secret"), Number(jo, "threshold", 0.5)};
      if (j.url.empty() || j.rubric.empty() == j.rubric_file.empty() || !(j.threshold >= 0) ||
          !(j.threshold <= 1)) {
        return absl::InvalidArgumentError(
            "eval step: judge needs a url, one of rubric and rubric_file, a threshold in [0, 1]");
      }
      s.judge = std::move(j);
    }
    if (const json::value* in = o.if_contains("ingest")) {
      s.ingest_format = Text(in->as_object(), "format");
      s.ingest_path = Text(in->as_object(), "path");
      if ((s.ingest_format != "junit" && s.ingest_format != "lm_eval") || s.ingest_path.empty()) {
        return absl::InvalidArgumentError(
            "eval step: ingest needs format junit or lm_eval and a path");
      }
    }
    if (const json::value* n = o.if_contains("normalize")) {
      const json::object& no = n->as_object();
      s.normalize.lowercase = Bool(no, "lowercase", false);
      s.normalize.strip = Bool(no, "strip", true);
      s.normalize.collapse_whitespace = Bool(no, "collapse_whitespace", false);
      s.normalize.remove_punctuation = Bool(no, "remove_punctuation", false);
    }
    s.price_input_per_mtok = Number(o, "price_input_per_mtok", 0);
    s.price_output_per_mtok = Number(o, "price_output_per_mtok", 0);
    if (const json::value* gs = o.if_contains("gates")) {
      for (const json::value& gv : gs->as_array()) {
        const json::object& go = gv.as_object();
        EvalGate g;
        g.metric = Text(go, "metric");
        g.vs = Text(go, "vs");
        g.confidence = Number(go, "confidence", 0.95);
        if (go.contains("min")) g.min = Number(go, "min", 0);
        if (go.contains("max")) g.max = Number(go, "max", 0);
        if (go.contains("max_drop")) g.max_drop = Number(go, "max_drop", 0);
        s.gates.push_back(std::move(g));
      }
    }
    if (s.ingest_format.empty() && s.model.command.empty() == s.model.url.empty()) {
      return absl::InvalidArgumentError("eval step: the model needs exactly one of command, url");
    }
    return s;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("eval step: malformed spec: ", e.what()));
  }
}

}  // namespace assay::evals
