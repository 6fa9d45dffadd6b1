#include "common/deploy/spec.h"

#include <algorithm>
#include <cmath>
#include <set>

#include <boost/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/pipeline/duration.h"

namespace assay::deploy {
namespace {

namespace json = boost::json;

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status Bad(std::string_view path, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(AV(path), ": ", AV(what)));
}

// Refuses keys outside `allowed`, naming the first unknown one and what is allowed.
absl::Status Only(const json::object& o, std::string_view path,
                  const std::vector<std::string_view>& allowed) {
  for (const auto& kv : o) {
    if (std::find(allowed.begin(), allowed.end(), std::string_view(kv.key())) == allowed.end()) {
      std::string expected;
      for (std::string_view a : allowed) {
        absl::StrAppend(&expected, expected.empty() ? "" : ", ", AV(a));
      }
      return Bad(absl::StrCat(AV(path), ".", std::string(kv.key())),
                 absl::StrCat("unknown field (expected ", expected, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<const json::object*> Object(const json::value& v, std::string_view path) {
  if (!v.is_object()) return Bad(path, "must be an object");
  return &v.as_object();
}

absl::StatusOr<int> Int(const json::value& v, std::string_view path, int lo, int hi) {
  std::optional<int64_t> n;
  if (v.is_int64()) n = v.as_int64();
  if (v.is_uint64() && v.as_uint64() <= static_cast<uint64_t>(hi)) n = v.as_uint64();
  if (v.is_double() && std::floor(v.as_double()) == v.as_double() &&
      std::fabs(v.as_double()) <= 1e9) {
    n = static_cast<int64_t>(v.as_double());
  }
  if (!n || *n < lo || *n > hi) {
    return Bad(path, absl::StrCat("must be an integer from ", lo, " to ", hi));
  }
  return static_cast<int>(*n);
}

absl::StatusOr<std::string> String(const json::value& v, std::string_view path, size_t max) {
  if (!v.is_string()) return Bad(path, "must be a string");
  std::string s(v.as_string());
  if (s.empty()) return Bad(path, "must not be empty");
  if (s.size() > max) return Bad(path, absl::StrCat("is longer than ", max, " bytes"));
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return Bad(path, "must not contain control characters");
  }
  return s;
}

bool ValidName(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')) {
      return false;
    }
  }
  return true;
}

// http://host[:port][/path]: the scheme is checked here; where it may connect is the server's
// address policy's to say when it is used.
absl::Status HttpUrl(std::string_view url, std::string_view path) {
  if (!absl::StartsWith(AV(url), "http://") && !absl::StartsWith(AV(url), "https://")) {
    return Bad(path, "must be an http:// or https:// URL");
  }
  if (url.find_first_of(" \"<>\\^`{|}") != std::string_view::npos &&
      url.find("{{") == std::string_view::npos) {
    return Bad(path, "must be a URL without spaces or quotes");
  }
  return absl::OkStatus();
}

absl::StatusOr<MetricSpec> ParseMetric(const json::value& v, const std::string& path,
                                       bool background) {
  auto o = Object(v, path);
  if (!o.ok()) return o.status();
  if (absl::Status s = Only(
          **o, path,
          {"name", "provider", "interval", "initial_delay", "count", "success_condition",
           "failure_condition", "failure_limit", "inconclusive_limit", "consecutive_error_limit"});
      !s.ok()) {
    return s;
  }
  MetricSpec m;
  const json::value* name = (*o)->if_contains("name");
  if (name == nullptr) return Bad(path + ".name", "is required");
  auto n = String(*name, path + ".name", 64);
  if (!n.ok()) return n.status();
  if (!ValidName(*n)) return Bad(path + ".name", "must be 1 to 64 of A-Z a-z 0-9 _ . -");
  m.name = *n;

  const json::value* provider = (*o)->if_contains("provider");
  if (provider == nullptr) {
    return Bad(path + ".provider", "is required: {\"prometheus\": {...}} or {\"web\": {...}}");
  }
  auto p = Object(*provider, path + ".provider");
  if (!p.ok()) return p.status();
  if ((*p)->size() != 1) {
    return Bad(path + ".provider",
               "must name exactly one provider: prometheus, web, drift, mann_whitney or job");
  }
  const std::string kind((*p)->begin()->key());
  const std::string ppath = absl::StrCat(path, ".provider.", kind);
  auto body = Object((*p)->begin()->value(), ppath);
  if (!body.ok()) return body.status();
  if (kind == "prometheus") {
    m.provider = ProviderKind::kPrometheus;
    if (absl::Status s = Only(**body, ppath, {"address", "query"}); !s.ok()) return s;
    const json::value* a = (*body)->if_contains("address");
    const json::value* q = (*body)->if_contains("query");
    if (a == nullptr) return Bad(ppath + ".address", "is required (http://host:9090)");
    if (q == nullptr) return Bad(ppath + ".query", "is required (a PromQL query)");
    auto as = String(*a, ppath + ".address", kMaxUrlBytes);
    if (!as.ok()) return as.status();
    if (absl::Status s = HttpUrl(*as, ppath + ".address"); !s.ok()) return s;
    auto qs = String(*q, ppath + ".query", kMaxQueryBytes);
    if (!qs.ok()) return qs.status();
    m.address = *as;
    m.query = *qs;
  } else if (kind == "web") {
    m.provider = ProviderKind::kWeb;
    if (absl::Status s = Only(**body, ppath, {"url", "json_path"}); !s.ok()) return s;
    const json::value* u = (*body)->if_contains("url");
    if (u == nullptr) return Bad(ppath + ".url", "is required");
    auto us = String(*u, ppath + ".url", kMaxUrlBytes);
    if (!us.ok()) return us.status();
    if (absl::Status s = HttpUrl(*us, ppath + ".url"); !s.ok()) return s;
    m.url = *us;
    if (const json::value* jp = (*body)->if_contains("json_path")) {
      if (!jp->is_string() || jp->as_string().size() > 256) {
        return Bad(ppath + ".json_path", "must be a dotted path of at most 256 bytes");
      }
      m.json_path = std::string(jp->as_string());
    }
  } else if (kind == "drift" || kind == "mann_whitney") {
    const bool drift = kind == "drift";
    m.provider = drift ? ProviderKind::kDrift : ProviderKind::kMannWhitney;
    if (drift) {
      if (absl::Status s = Only(**body, ppath, {"current", "reference", "method", "bins"});
          !s.ok()) {
        return s;
      }
    } else if (absl::Status s = Only(**body, ppath, {"canary", "baseline", "direction"}); !s.ok()) {
      return s;
    }
    auto source = [&](const char* key, SampleSource* out, bool allow_model) -> absl::Status {
      const std::string spath = absl::StrCat(ppath, ".", key);
      const json::value* v = (*body)->if_contains(key);
      if (v == nullptr) return Bad(spath, "is required: {\"url\": ..., \"feature\": ...}");
      if (allow_model && v->is_string() && v->as_string() == "model_version") {
        m.reference_model_version = true;
        return absl::OkStatus();
      }
      if (!v->is_object()) {
        return Bad(spath, allow_model ? "must be {\"url\", \"feature\"} or \"model_version\""
                                      : "must be {\"url\", \"feature\"}");
      }
      const json::object& o = v->as_object();
      if (absl::Status s = Only(o, spath, {"url", "feature"}); !s.ok()) return s;
      const json::value* u = o.if_contains("url");
      const json::value* f = o.if_contains("feature");
      if (u == nullptr) return Bad(spath + ".url", "is required");
      if (f == nullptr) return Bad(spath + ".feature", "is required");
      auto us = String(*u, spath + ".url", kMaxUrlBytes);
      if (!us.ok()) return us.status();
      if (absl::Status s = HttpUrl(*us, spath + ".url"); !s.ok()) return s;
      auto fs = String(*f, spath + ".feature", 64);
      if (!fs.ok()) return fs.status();
      if (!ValidName(*fs)) return Bad(spath + ".feature", "must be 1 to 64 of A-Z a-z 0-9 _ . -");
      out->url = *us;
      out->feature = *fs;
      return absl::OkStatus();
    };
    if (absl::Status s = source(drift ? "current" : "canary", &m.current, false); !s.ok()) {
      return s;
    }
    if (absl::Status s = source(drift ? "reference" : "baseline", &m.reference, drift); !s.ok()) {
      return s;
    }
    if (drift) {
      if (const json::value* v = (*body)->if_contains("method")) {
        const std::string t = v->is_string() ? std::string(v->as_string()) : "";
        if (t == "psi") {
          m.method = DriftMethod::kPsi;
        } else if (t == "ks") {
          m.method = DriftMethod::kKs;
        } else if (t == "js") {
          m.method = DriftMethod::kJs;
        } else {
          return Bad(ppath + ".method", "must be psi, ks or js");
        }
      }
      if (m.method == DriftMethod::kJs && m.reference_model_version) {
        return Bad(ppath + ".reference",
                   "js compares categorical features, which eval examples do not have: give a "
                   "{url, feature} reference");
      }
      if (const json::value* v = (*body)->if_contains("bins")) {
        auto n = Int(*v, ppath + ".bins", 2, 100);
        if (!n.ok()) return n.status();
        m.bins = *n;
      }
    } else if (const json::value* v = (*body)->if_contains("direction")) {
      const std::string t = v->is_string() ? std::string(v->as_string()) : "";
      if (t != "increase" && t != "decrease") {
        return Bad(ppath + ".direction",
                   "must be increase (a larger canary is worse) or decrease (a smaller one is)");
      }
      m.increase_is_bad = t == "increase";
    }
  } else if (kind == "job") {
    m.provider = ProviderKind::kJob;
    if (absl::Status s = Only(**body, ppath, {"command", "timeout"}); !s.ok()) return s;
    const json::value* c = (*body)->if_contains("command");
    if (c == nullptr) return Bad(ppath + ".command", "is required");
    auto command = ParseHookCommand(*c, ppath + ".command");
    if (!command.ok()) return command.status();
    m.command = *std::move(command);
    if (const json::value* t = (*body)->if_contains("timeout")) {
      auto d = ParseDurationField(*t, ppath + ".timeout");
      if (!d.ok()) return d.status();
      if (*d > kMaxHookTimeout) {
        return Bad(ppath + ".timeout",
                   "must be at most 60s: the controller waits for it; a "
                   "longer check belongs in a pipeline job before the deploy");
      }
      m.job_timeout = *d;
    }
  } else {
    return Bad(path + ".provider",
               absl::StrCat("unknown provider '", kind,
                            "' (expected prometheus, web, drift, mann_whitney or job)"));
  }

  if (const json::value* iv = (*o)->if_contains("interval")) {
    auto d = ParseDurationField(*iv, path + ".interval");
    if (!d.ok()) return d.status();
    m.interval = *d;
  }
  if (const json::value* iv = (*o)->if_contains("initial_delay")) {
    auto d = ParseDurationField(*iv, path + ".initial_delay", absl::ZeroDuration());
    if (!d.ok()) return d.status();
    m.initial_delay = *d;
  }
  m.count = background ? 0 : 1;
  if (const json::value* c = (*o)->if_contains("count")) {
    auto n = Int(*c, path + ".count", background ? 0 : 1, 1000);
    if (!n.ok()) return n.status();
    m.count = *n;
  }
  for (const char* key : {"success_condition", "failure_condition"}) {
    const json::value* c = (*o)->if_contains(key);
    if (c == nullptr) continue;
    const std::string cpath = absl::StrCat(path, ".", key);
    if (!c->is_string()) return Bad(cpath, "must be a string, e.g. 'result < 0.02'");
    auto parsed = Condition::Parse(std::string_view(c->as_string()));
    if (!parsed.ok()) return Bad(cpath, std::string(parsed.status().message()));
    (std::string_view(key) == "success_condition" ? m.success : m.failure) = *std::move(parsed);
  }
  if (!m.success && !m.failure) {
    // Drift and the canary judge have the usual thresholds as their default.
    const char* fallback = nullptr;
    if (m.provider == ProviderKind::kDrift) {
      fallback = m.method == DriftMethod::kPsi  ? "result < 0.2"
                 : m.method == DriftMethod::kKs ? "result >= 0.05"
                                                : "result < 0.1";
    } else if (m.provider == ProviderKind::kMannWhitney) {
      fallback = "result >= 0.05";
    } else if (m.provider == ProviderKind::kJob) {
      fallback = "result == 1";
    }
    if (fallback == nullptr) return Bad(path, "needs a success_condition or a failure_condition");
    m.success = *Condition::Parse(fallback);
  }
  struct Limit {
    const char* key;
    int* field;
  };
  for (const Limit& l : {Limit{"failure_limit", &m.failure_limit},
                         Limit{"inconclusive_limit", &m.inconclusive_limit},
                         Limit{"consecutive_error_limit", &m.consecutive_error_limit}}) {
    if (const json::value* c = (*o)->if_contains(l.key)) {
      auto n = Int(*c, absl::StrCat(path, ".", l.key), 0, 1000);
      if (!n.ok()) return n.status();
      *l.field = *n;
    }
  }
  return m;
}

absl::StatusOr<AnalysisSpec> ParseAnalysisIn(const json::value& v, const std::string& path,
                                             bool background) {
  auto o = Object(v, path);
  if (!o.ok()) return o.status();
  if (absl::Status s = Only(**o, path, {"metrics"}); !s.ok()) return s;
  const json::value* metrics = (*o)->if_contains("metrics");
  if (metrics == nullptr || !metrics->is_array() || metrics->as_array().empty()) {
    return Bad(path + ".metrics", "must be a non-empty array of metrics");
  }
  if (metrics->as_array().size() > static_cast<size_t>(kMaxMetrics)) {
    return Bad(path + ".metrics", absl::StrCat("has more than ", kMaxMetrics, " metrics"));
  }
  AnalysisSpec a;
  std::set<std::string> names;
  for (size_t i = 0; i < metrics->as_array().size(); ++i) {
    const std::string mpath = absl::StrCat(path, ".metrics[", i, "]");
    auto m = ParseMetric(metrics->as_array()[i], mpath, background);
    if (!m.ok()) return m.status();
    if (!names.insert(m->name).second) {
      return Bad(mpath + ".name", absl::StrCat("'", m->name, "' is used twice"));
    }
    a.metrics.push_back(*std::move(m));
  }
  return a;
}

absl::StatusOr<std::vector<Step>> ParseCanarySteps(const json::value& v, const std::string& path) {
  if (!v.is_array() || v.as_array().empty()) {
    return Bad(path, "must be a non-empty array, e.g. [{\"weight\": 10}, {\"pause\": \"60s\"}]");
  }
  if (v.as_array().size() > static_cast<size_t>(kMaxSteps)) {
    return Bad(path, absl::StrCat("has more than ", kMaxSteps, " steps"));
  }
  std::vector<Step> steps;
  int last_weight = 0;
  for (size_t i = 0; i < v.as_array().size(); ++i) {
    const std::string spath = absl::StrCat(path, "[", i, "]");
    auto o = Object(v.as_array()[i], spath);
    if (!o.ok()) return o.status();
    if ((*o)->size() != 1) {
      return Bad(spath, "must have exactly one of weight, pause, analysis");
    }
    const std::string key((*o)->begin()->key());
    const json::value& body = (*o)->begin()->value();
    Step s;
    if (key == "weight") {
      s.kind = Step::Kind::kWeight;
      auto w = Int(body, spath + ".weight", 0, 100);
      if (!w.ok()) return w.status();
      if (*w < last_weight) {
        return Bad(spath + ".weight", absl::StrCat("must not go down (", *w, " after ", last_weight,
                                                   "); abort to roll back"));
      }
      s.weight = last_weight = *w;
    } else if (key == "pause") {
      s.kind = Step::Kind::kPause;
      // {"pause": {}} waits for a person; {"pause": "60s"} or {"pause": {"duration": "60s"}}.
      if (body.is_object()) {
        if (absl::Status st = Only(body.as_object(), spath + ".pause", {"duration"}); !st.ok()) {
          return st;
        }
        if (const json::value* d = body.as_object().if_contains("duration")) {
          auto dd = ParseDurationField(*d, spath + ".pause.duration");
          if (!dd.ok()) return dd.status();
          s.duration = *dd;
        }
      } else {
        auto dd = ParseDurationField(body, spath + ".pause");
        if (!dd.ok()) return dd.status();
        s.duration = *dd;
      }
    } else if (key == "analysis") {
      s.kind = Step::Kind::kAnalysis;
      auto a = ParseAnalysisIn(body, spath + ".analysis", /*background=*/false);
      if (!a.ok()) return a.status();
      s.analysis = *std::move(a);
    } else {
      return Bad(spath,
                 absl::StrCat("unknown step '", key, "' (expected weight, pause or analysis)"));
    }
    steps.push_back(std::move(s));
  }
  return steps;
}

Step WeightStep(int w) {
  Step s;
  s.kind = Step::Kind::kWeight;
  s.weight = w;
  return s;
}

Step AnalysisStep(AnalysisSpec a) {
  Step s;
  s.kind = Step::Kind::kAnalysis;
  s.analysis = std::move(a);
  return s;
}

}  // namespace

absl::StatusOr<absl::Duration> ParseDurationField(const json::value& v, std::string_view path,
                                                  absl::Duration min) {
  absl::Duration d;
  if (v.is_string()) {
    std::string_view s = v.as_string();
    // Any spelling of zero ("0", "0s", "0m", "0h0m"): ParseDurationSeconds refuses zero.
    if (!s.empty() && s.find_first_not_of("0hms") == std::string_view::npos &&
        absl::ascii_isdigit(static_cast<unsigned char>(s[0]))) {
      d = absl::ZeroDuration();
    } else {
      auto secs = ParseDurationSeconds(s);
      if (!secs.ok()) return Bad(path, std::string(secs.status().message()));
      d = absl::Seconds(*secs);
    }
  } else {
    auto n = Int(v, path, 0, 30 * 24 * 3600);
    if (!n.ok()) return Bad(path, "must be a duration such as \"30s\", \"10m\" or \"1h\"");
    d = absl::Seconds(*n);
  }
  if (d < min || d > absl::Hours(30 * 24)) {
    return Bad(path, absl::StrCat("must be from ", absl::FormatDuration(min), " to 30 days"));
  }
  return d;
}

absl::StatusOr<AnalysisSpec> ParseAnalysis(const json::value& analysis, std::string_view path) {
  return ParseAnalysisIn(analysis, std::string(path), /*background=*/true);
}

absl::StatusOr<Strategy> ParseStrategy(const json::value& strategy, std::string_view path_in) {
  const std::string path(path_in);
  auto o = Object(strategy, path);
  if (!o.ok()) return o.status();
  if ((*o)->size() != 1) {
    return Bad(path, "must name exactly one strategy: canary, blue_green or rolling");
  }
  const std::string kind((*o)->begin()->key());
  const std::string kpath = absl::StrCat(path, ".", kind);
  auto body = Object((*o)->begin()->value(), kpath);
  if (!body.ok()) return body.status();
  Strategy out;
  auto background = [&](const json::object& b) -> absl::Status {
    if (const json::value* a = b.if_contains("analysis")) {
      auto parsed = ParseAnalysisIn(*a, kpath + ".analysis", /*background=*/true);
      if (!parsed.ok()) return parsed.status();
      out.background = *std::move(parsed);
    }
    return absl::OkStatus();
  };
  auto delay = [&](const json::object& b) -> absl::Status {
    if (const json::value* d = b.if_contains("scale_down_delay")) {
      auto dd = ParseDurationField(*d, kpath + ".scale_down_delay", absl::ZeroDuration());
      if (!dd.ok()) return dd.status();
      out.scale_down_delay = *dd;
    }
    return absl::OkStatus();
  };
  if (kind == "canary") {
    out.kind = StrategyKind::kCanary;
    if (absl::Status s = Only(**body, kpath, {"steps", "analysis", "scale_down_delay"}); !s.ok()) {
      return s;
    }
    const json::value* steps = (*body)->if_contains("steps");
    if (steps == nullptr) return Bad(kpath + ".steps", "is required");
    auto parsed = ParseCanarySteps(*steps, kpath + ".steps");
    if (!parsed.ok()) return parsed.status();
    out.steps = *std::move(parsed);
    if (absl::Status s = background(**body); !s.ok()) return s;
    if (absl::Status s = delay(**body); !s.ok()) return s;
  } else if (kind == "blue_green") {
    out.kind = StrategyKind::kBlueGreen;
    out.scale_down_delay = absl::Seconds(30);
    if (absl::Status s = Only(**body, kpath,
                              {"pre_promotion_analysis", "post_promotion_analysis", "auto_promote",
                               "scale_down_delay"});
        !s.ok()) {
      return s;
    }
    out.steps.push_back(WeightStep(0));
    if (const json::value* a = (*body)->if_contains("pre_promotion_analysis")) {
      auto parsed = ParseAnalysisIn(*a, kpath + ".pre_promotion_analysis", false);
      if (!parsed.ok()) return parsed.status();
      out.steps.push_back(AnalysisStep(*std::move(parsed)));
    }
    if (const json::value* ap = (*body)->if_contains("auto_promote")) {
      if (!ap->is_bool()) return Bad(kpath + ".auto_promote", "must be true or false");
      if (!ap->as_bool()) out.steps.push_back(Step{Step::Kind::kPause, 0, std::nullopt, {}});
    }
    out.steps.push_back(WeightStep(100));
    if (const json::value* a = (*body)->if_contains("post_promotion_analysis")) {
      auto parsed = ParseAnalysisIn(*a, kpath + ".post_promotion_analysis", false);
      if (!parsed.ok()) return parsed.status();
      out.steps.push_back(AnalysisStep(*std::move(parsed)));
    }
    if (absl::Status s = delay(**body); !s.ok()) return s;
  } else if (kind == "rolling") {
    out.kind = StrategyKind::kRolling;
    if (absl::Status s = Only(
            **body, kpath, {"batch", "max_unavailable", "pause", "analysis", "scale_down_delay"});
        !s.ok()) {
      return s;
    }
    // batch: "25%" or a percentage as a number.
    int batch = 25;
    if (const json::value* b = (*body)->if_contains("batch")) {
      const std::string bpath = kpath + ".batch";
      if (b->is_string()) {
        std::string_view t = b->as_string();
        int n = 0;
        bool ok = absl::EndsWith(AV(t), "%") && t.size() >= 2 && t.size() <= 4;
        for (size_t i = 0; ok && i + 1 < t.size(); ++i) {
          ok = absl::ascii_isdigit(static_cast<unsigned char>(t[i]));
          n = n * 10 + (t[i] - '0');
        }
        if (!ok || n < 1 || n > 100) return Bad(bpath, "must be a percentage from 1% to 100%");
        batch = n;
      } else {
        auto n = Int(*b, bpath, 1, 100);
        if (!n.ok()) return n.status();
        batch = *n;
      }
    }
    std::optional<absl::Duration> pause;
    if (const json::value* p = (*body)->if_contains("pause")) {
      auto d = ParseDurationField(*p, kpath + ".pause");
      if (!d.ok()) return d.status();
      pause = *d;
    }
    if (const json::value* mu = (*body)->if_contains("max_unavailable")) {
      auto n = Int(*mu, kpath + ".max_unavailable", 0, kMaxServers);
      if (!n.ok()) return n.status();
      out.max_unavailable = *n;
    }
    for (int w = batch;; w += batch) {
      w = std::min(w, 100);
      out.steps.push_back(WeightStep(w));
      if (w == 100) break;
      if (pause) out.steps.push_back(Step{Step::Kind::kPause, 0, pause, {}});
    }
    if (absl::Status s = background(**body); !s.ok()) return s;
    if (absl::Status s = delay(**body); !s.ok()) return s;
  } else {
    return Bad(path, absl::StrCat("unknown strategy '", kind,
                                  "' (expected canary, blue_green or rolling)"));
  }
  return out;
}

std::string Substitute(std::string_view text, const Placeholders& p) {
  return absl::StrReplaceAll(AV(text), {{"{{version}}", p.version},
                                        {"{{previous_version}}", p.previous_version},
                                        {"{{environment}}", p.environment},
                                        {"{{deployment}}", p.deployment}});
}

ServerWeights SplitWeights(int weight, int new_servers, int old_servers) {
  weight = std::clamp(weight, 0, 100);
  ServerWeights w;
  if (new_servers <= 0 && old_servers <= 0) return w;
  if (old_servers <= 0) {
    w.new_each = weight > 0 ? 100 : 0;
    return w;
  }
  if (new_servers <= 0) {
    w.old_each = weight < 100 ? 100 : 0;
    return w;
  }
  // Scale so that neither side's per-server weight passes HAProxy's 256.
  const double scale = 2.56 * std::min(new_servers, old_servers);
  w.new_each = static_cast<int>(std::lround(weight * scale / new_servers));
  w.old_each = static_cast<int>(std::lround((100 - weight) * scale / old_servers));
  if (weight > 0) w.new_each = std::clamp(w.new_each, 1, 256);
  if (weight < 100) w.old_each = std::clamp(w.old_each, 1, 256);
  return w;
}

bool ImageByDigest(std::string_view i) {
  const size_t at = i.find("@sha256:");
  if (at == std::string_view::npos || at == 0 || i.size() != at + 8 + 64 || i.size() >= 512) {
    return false;
  }
  for (size_t k = 0; k < at; ++k) {
    const unsigned char c = static_cast<unsigned char>(i[k]);
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\') return false;
  }
  for (size_t k = at + 8; k < i.size(); ++k) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(i[k])) && !(i[k] >= 'a' && i[k] <= 'f')) {
      return false;
    }
  }
  return true;
}

bool ValidHookName(std::string_view name) { return ValidName(name) && name[0] != '.'; }

absl::StatusOr<std::vector<std::string>> ParseHookCommand(const json::value& v,
                                                          std::string_view path) {
  if (!v.is_array() || v.as_array().empty()) {
    return Bad(path,
               "must be a list: a program of the server's deploy hooks directory, then its "
               "arguments, e.g. [\"switch-traffic\", \"--env\", \"{{environment}}\"]");
  }
  const json::array& a = v.as_array();
  if (a.size() > static_cast<size_t>(kMaxHookArgs) + 1) {
    return Bad(path, absl::StrCat("has more than ", kMaxHookArgs, " arguments"));
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < a.size(); ++i) {
    const std::string at = absl::StrCat(AV(path), "[", i, "]");
    if (!a[i].is_string()) return Bad(at, "must be a string");
    std::string s(a[i].as_string());
    if (s.size() > kMaxHookArgBytes) {
      return Bad(at, absl::StrCat("is longer than ", kMaxHookArgBytes, " bytes"));
    }
    for (unsigned char c : s) {
      if (c < 0x20 || c == 0x7f) return Bad(at, "must not contain control characters");
    }
    if (i == 0 && !ValidHookName(s)) {
      return Bad(at,
                 "must name a program of the server's deploy hooks directory: 1 to 64 of "
                 "A-Z a-z 0-9 _ . - (not a path, not starting with '.')");
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace assay::deploy
