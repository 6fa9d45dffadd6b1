#include "server/deploy/analysis.h"

#include <cmath>
#include <limits>

#include <boost/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/deploy/stats.h"
#include "common/net/address_policy.h"
#include "common/net/http_client.h"
#include "common/net/https_client.h"

namespace assay::deploy {
namespace {

namespace json = boost::json;

constexpr size_t kMaxValues = 10000;

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }
constexpr size_t kMaxBody = 16 << 20;

// Prometheus writes sample values as strings: "0.02", "NaN", "+Inf", "-Inf".
std::optional<double> SampleValue(const json::value& v) {
  if (v.is_string()) {
    std::string_view s = v.as_string();
    if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
    if (s == "+Inf" || s == "Inf") return std::numeric_limits<double>::infinity();
    if (s == "-Inf") return -std::numeric_limits<double>::infinity();
    double d = 0;
    if (absl::SimpleAtod(AV(s), &d)) return d;
    return std::nullopt;
  }
  if (v.is_number()) return v.to_number<double>();
  return std::nullopt;
}

// GET over http or https (verified against the system's CAs), where `policy` allows.
absl::StatusOr<HttpClientResponse> Get(const std::string& url, absl::Duration timeout,
                                       const AddressPolicy* policy) {
  TlsClientOptions tls;
  tls.address_policy = policy;
  return FetchHttpOrHttps("GET", url, {{"Accept", "application/json"}}, {}, timeout, tls);
}

// At most `n` bytes of `s` for a message, control characters as spaces. A character of several
// bytes is never split: an event message must stay valid UTF-8 for PostgreSQL to take it.
std::string Cut(std::string_view s, size_t n = 300) {
  std::string out(s.substr(0, n));
  if (s.size() > n) {
    size_t end = out.size();
    while (end > 0 && (static_cast<unsigned char>(out[end - 1]) & 0xC0) == 0x80) --end;
    // `end` is just after a lead or ASCII byte: drop a lead byte whose character was cut.
    if (end > 0 && static_cast<unsigned char>(out[end - 1]) >= 0xC0) {
      const unsigned char lead = static_cast<unsigned char>(out[end - 1]);
      const size_t len = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
      if (out.size() - (end - 1) < len) out.resize(end - 1);
    }
  }
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return out;
}

absl::StatusOr<json::value> ParseJson(std::string_view body, std::string_view what) {
  if (body.size() > kMaxBody) {
    return absl::FailedPreconditionError(
        absl::StrCat(AV(what), ": the answer is larger than ", kMaxBody, " bytes"));
  }
  json::parse_options opts;
  opts.max_depth = 64;
  boost::system::error_code ec;
  json::value v = json::parse(body, ec, {}, opts);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat(AV(what), ": the answer is not JSON (", ec.message(), "): ", Cut(body, 120)));
  }
  return v;
}

}  // namespace

std::string QueryEscape(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

absl::StatusOr<std::vector<double>> ParsePrometheusAnswer(int http_status, std::string_view body) {
  auto v = ParseJson(body, "prometheus");
  if (!v.ok()) {
    if (http_status != 200) {
      return absl::FailedPreconditionError(
          absl::StrCat("prometheus answered HTTP ", http_status, ": ", Cut(body, 200)));
    }
    return v.status();
  }
  const json::object* o = v->if_object();
  if (o == nullptr) return absl::FailedPreconditionError("prometheus: the answer is not an object");
  const json::value* status = o->if_contains("status");
  if (status != nullptr && status->is_string() && status->as_string() == "error") {
    std::string type, error;
    if (const json::value* t = o->if_contains("errorType"); t && t->is_string()) {
      type = std::string(t->as_string());
    }
    if (const json::value* e = o->if_contains("error"); e && e->is_string()) {
      error = std::string(e->as_string());
    }
    return absl::InvalidArgumentError(
        absl::StrCat("prometheus refused the query (", type, "): ", Cut(error)));
  }
  if (http_status != 200) {
    return absl::FailedPreconditionError(
        absl::StrCat("prometheus answered HTTP ", http_status, ": ", Cut(body, 200)));
  }
  const json::value* data = o->if_contains("data");
  if (data == nullptr || !data->is_object()) {
    return absl::FailedPreconditionError("prometheus: the answer has no 'data'");
  }
  const json::value* type = data->as_object().if_contains("resultType");
  const json::value* result = data->as_object().if_contains("result");
  if (type == nullptr || !type->is_string() || result == nullptr) {
    return absl::FailedPreconditionError("prometheus: the answer has no resultType or result");
  }
  std::vector<double> out;
  auto sample = [&](const json::value& pair) -> absl::Status {
    if (!pair.is_array() || pair.as_array().size() != 2) {
      return absl::FailedPreconditionError("prometheus: a sample is not [time, value]");
    }
    auto d = SampleValue(pair.as_array()[1]);
    if (!d) return absl::FailedPreconditionError("prometheus: a sample value is not a number");
    if (out.size() < kMaxValues) out.push_back(*d);
    return absl::OkStatus();
  };
  if (type->as_string() == "scalar") {
    if (absl::Status s = sample(*result); !s.ok()) return s;
    return out;
  }
  if (type->as_string() != "vector") {
    return absl::FailedPreconditionError(
        absl::StrCat("prometheus: the query gives a ", std::string(type->as_string()),
                     "; an analysis needs an instant vector or a scalar"));
  }
  if (!result->is_array()) return absl::FailedPreconditionError("prometheus: result is not a list");
  for (const json::value& series : result->as_array()) {
    const json::value* value =
        series.is_object() ? series.as_object().if_contains("value") : nullptr;
    if (value == nullptr) return absl::FailedPreconditionError("prometheus: a series has no value");
    if (absl::Status s = sample(*value); !s.ok()) return s;
  }
  return out;
}

absl::StatusOr<std::vector<double>> ParseWebAnswer(std::string_view body, std::string_view path) {
  auto v = ParseJson(body, "web");
  if (!v.ok()) return v.status();
  const json::value* at = &*v;
  if (!path.empty()) {
    for (absl::string_view part_av : absl::StrSplit(AV(path), '.')) {
      const std::string part(part_av);
      size_t index = 0;
      if (at->is_array() && absl::SimpleAtoi(part_av, &index)) {
        if (index >= at->as_array().size()) {
          return absl::FailedPreconditionError(
              absl::StrCat("web: '", AV(path), "': index ", index, " is past the end"));
        }
        at = &at->as_array()[index];
      } else if (at->is_object() && at->as_object().contains(part)) {
        at = &at->as_object().at(part);
      } else {
        return absl::FailedPreconditionError(
            absl::StrCat("web: the answer has nothing at '", AV(path), "' ('", part, "')"));
      }
    }
  }
  std::vector<double> out;
  auto number = [&](const json::value& n) -> absl::Status {
    if (n.is_null()) return absl::OkStatus();  // no data
    auto d = SampleValue(n);
    if (!d) {
      return absl::FailedPreconditionError(
          absl::StrCat("web: the value at '", AV(path), "' is not a number"));
    }
    if (out.size() < kMaxValues) out.push_back(*d);
    return absl::OkStatus();
  };
  if (at->is_array()) {
    for (const json::value& n : at->as_array()) {
      if (absl::Status s = number(n); !s.ok()) return s;
    }
  } else if (absl::Status s = number(*at); !s.ok()) {
    return s;
  }
  return out;
}

absl::StatusOr<FeatureSample> ParseFeatures(std::string_view body, const std::string& feature,
                                            bool categorical) {
  auto v = ParseJson(body, "features");
  if (!v.ok()) return v.status();
  const json::object* o = v->if_object();
  const char* section = categorical ? "categorical" : "features";
  const json::value* s = o != nullptr ? o->if_contains(section) : nullptr;
  if (s == nullptr || !s->is_object()) {
    return absl::FailedPreconditionError(
        absl::StrCat("features: the answer has no '", section, "' object"));
  }
  const json::value* f = s->as_object().if_contains(feature);
  FeatureSample out;
  if (f == nullptr) return out;  // no data
  if (categorical) {
    if (!f->is_object()) {
      return absl::FailedPreconditionError(
          absl::StrCat("features: categorical '", feature, "' is not {category: count}"));
    }
    for (const auto& kv : f->as_object()) {
      if (!kv.value().is_number() || out.counts.size() >= kMaxValues) {
        return absl::FailedPreconditionError(
            absl::StrCat("features: categorical '", feature, "' has a count that is not a number"));
      }
      out.counts[std::string(kv.key())] = kv.value().to_number<double>();
    }
    return out;
  }
  if (!f->is_array()) {
    return absl::FailedPreconditionError(
        absl::StrCat("features: '", feature, "' is not a list of numbers"));
  }
  for (const json::value& n : f->as_array()) {
    auto d = SampleValue(n);
    if (!d || !std::isfinite(*d)) {
      return absl::FailedPreconditionError(
          absl::StrCat("features: '", feature, "' holds a value that is not a finite number"));
    }
    if (out.values.size() < 100000) out.values.push_back(*d);
  }
  return out;
}

namespace {

absl::StatusOr<FeatureSample> FetchFeatures(const SampleSource& src, const Placeholders& p,
                                            bool categorical, const AddressPolicy* policy,
                                            absl::Duration timeout) {
  const std::string url = Substitute(src.url, p);
  auto r = Get(url, timeout, policy);
  if (!r.ok()) return r.status();
  if (r->status != 200) {
    return absl::FailedPreconditionError(
        absl::StrCat("GET ", url, " answered HTTP ", r->status, ": ", Cut(r->body, 200)));
  }
  auto f = ParseFeatures(r->body, src.feature, categorical);
  if (!f.ok())
    return absl::Status(f.status().code(), absl::StrCat(url, ": ", f.status().message()));
  return f;
}

std::string Num(double d) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g", d);
  return buf;
}

}  // namespace

absl::StatusOr<std::vector<double>> Fetch(const MetricSpec& metric, const Placeholders& p,
                                          const Providers& providers, std::string* detail) {
  const AddressPolicy* policy = providers.policy;
  const absl::Duration timeout = providers.timeout;
  const ReferenceFn& reference = providers.reference;
  if (metric.provider == ProviderKind::kJob) {
    if (providers.hooks == nullptr) {
      return absl::FailedPreconditionError("job metrics need the server's deploy hooks");
    }
    std::vector<std::string> argv = metric.command;
    for (size_t i = 1; i < argv.size(); ++i) argv[i] = Substitute(argv[i], p);
    auto r = providers.hooks->Run(argv,
                                  {{"ASSAY_ENVIRONMENT", p.environment},
                                   {"ASSAY_DEPLOYMENT", p.deployment},
                                   {"ASSAY_VERSION", p.version},
                                   {"ASSAY_PREVIOUS_VERSION", p.previous_version}},
                                  {}, metric.job_timeout);
    if (!r.ok()) return r.status();
    if (detail != nullptr) {
      *detail = absl::StrCat("job '", metric.command[0], "' ",
                             r->exit_code == 0 && r->term_signal == 0 ? std::string("exit 0")
                                                                      : DescribeHookFailure(*r));
    }
    return std::vector<double>{r->exit_code == 0 && r->term_signal == 0 ? 1.0 : 0.0};
  }
  if (metric.provider == ProviderKind::kPrometheus) {
    std::string base = metric.address;
    while (!base.empty() && base.back() == '/') base.pop_back();
    const std::string url =
        absl::StrCat(base, "/api/v1/query?query=", QueryEscape(Substitute(metric.query, p)));
    auto r = Get(url, timeout, policy);
    if (!r.ok()) {
      return absl::Status(r.status().code(), absl::StrCat("prometheus at ", metric.address, ": ",
                                                          r.status().message()));
    }
    return ParsePrometheusAnswer(r->status, r->body);
  }
  if (metric.provider == ProviderKind::kWeb) {
    const std::string url = Substitute(metric.url, p);
    auto r = Get(url, timeout, policy);
    if (!r.ok()) return r.status();
    if (r->status != 200) {
      return absl::FailedPreconditionError(
          absl::StrCat("GET ", url, " answered HTTP ", r->status, ": ", Cut(r->body, 200)));
    }
    return ParseWebAnswer(r->body, metric.json_path);
  }
  const bool categorical =
      metric.provider == ProviderKind::kDrift && metric.method == DriftMethod::kJs;
  auto current = FetchFeatures(metric.current, p, categorical, policy, timeout);
  if (!current.ok()) return current.status();
  FeatureSample ref;
  if (metric.reference_model_version) {
    if (!reference) {
      return absl::FailedPreconditionError("no reference: the deployment is not of a model");
    }
    auto values = reference(metric.current.feature);
    if (!values.ok()) return values.status();
    ref.values = *std::move(values);
  } else {
    auto r = FetchFeatures(metric.reference, p, categorical, policy, timeout);
    if (!r.ok()) return r.status();
    ref = *std::move(r);
  }
  std::string said;
  std::vector<double> out;
  if (categorical) {
    double n_cur = 0, n_ref = 0;
    for (const auto& [k, n] : current->counts) n_cur += n;
    for (const auto& [k, n] : ref.counts) n_ref += n;
    if (n_cur < kMinDriftSample || n_ref < kMinDriftSample) {
      said = absl::StrCat("too few values to judge (reference ", Num(n_ref), ", current ",
                          Num(n_cur), "; at least ", kMinDriftSample, " each)");
    } else {
      auto js = JensenShannon(ref.counts, current->counts);
      if (!js.ok()) return js.status();
      out.push_back(js->divergence);
      said = absl::StrCat("js ", Num(js->divergence), " bits over ", ref.counts.size(), " and ",
                          current->counts.size(), " categories");
    }
  } else if (metric.provider == ProviderKind::kDrift) {
    if (current->values.size() < kMinDriftSample || ref.values.size() < kMinDriftSample) {
      said = absl::StrCat("too few values to judge (reference ", ref.values.size(), ", current ",
                          current->values.size(), "; at least ", kMinDriftSample, " each)");
    } else if (metric.method == DriftMethod::kPsi) {
      auto psi = Psi(ref.values, current->values, metric.bins);
      if (!psi.ok()) return psi.status();
      out.push_back(psi->psi);
      said = absl::StrCat("psi ", Num(psi->psi), " over ", psi->bins.size(), " bins; reference ",
                          ref.values.size(), " values, current ", current->values.size());
    } else {
      auto ks = KolmogorovSmirnov(ref.values, current->values);
      if (!ks.ok()) return ks.status();
      out.push_back(ks->p_value);
      said = absl::StrCat("ks D ", Num(ks->d), ", p ", Num(ks->p_value),
                          ks->exact ? " (exact)" : " (asymptotic)", "; reference ",
                          ref.values.size(), " values, current ", current->values.size());
    }
  } else {
    if (current->values.size() < kMinJudgeSample || ref.values.size() < kMinJudgeSample) {
      said = absl::StrCat("too few values to judge (baseline ", ref.values.size(), ", canary ",
                          current->values.size(), "; at least ", kMinJudgeSample, " each)");
    } else {
      auto mw = MannWhitney(current->values, ref.values);
      if (!mw.ok()) return mw.status();
      const double pv = metric.increase_is_bad ? mw->p_greater : mw->p_less;
      out.push_back(pv);
      said = absl::StrCat("canary ", metric.increase_is_bad ? "larger" : "smaller", ": p ", Num(pv),
                          ", effect (rank-biserial) ", Num(mw->rank_biserial),
                          ", shift (Hodges-Lehmann) ", Num(mw->hodges_lehmann), "; canary ",
                          mw->n_canary, " values, baseline ", mw->n_baseline);
    }
  }
  if (detail != nullptr) *detail = said;
  return out;
}

Measurement Measure(const MetricSpec& metric, const Placeholders& p, const Providers& providers) {
  Measurement m;
  auto values = Fetch(metric, p, providers, &m.detail);
  if (!values.ok()) {
    m.phase = Phase::kError;
    m.message = std::string(values.status().message());
    return m;
  }
  m.values = *std::move(values);
  m.phase = Judge(metric.success, metric.failure, m.values, &m.message);
  if (!m.detail.empty()) absl::StrAppend(&m.message, " (", m.detail, ")");
  return m;
}

}  // namespace assay::deploy
