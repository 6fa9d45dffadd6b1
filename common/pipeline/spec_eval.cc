// The `eval:` step (issue 10, docs/evals.md): a dataset, a model under test, metrics and
// gates. Everything the agent needs is checked here, so that a typo is a lint error naming
// its line and key rather than a failed job an hour later.

#include <cmath>
#include <cstdlib>

#include "common/evals/data/assertions.h"
#include "common/evals/eval_spec.h"
#include "common/pipeline/duration.h"
#include "common/pipeline/spec_internal.h"
#include "common/registry/model_input.h"

namespace assay::spec_internal {
namespace {

using evals::EvalGate;
using evals::EvalSpec;

// Assertion types of promptfoo that an eval understands, each also as `not-TYPE`.
constexpr std::string_view kAssertionTypes[] = {"equals", "contains",    "icontains",
                                                "regex",  "starts-with", "is-json"};

bool Number(Linter& lint, const YAML::Node& node, const YAML::Mark& mark, const std::string& path,
            std::string_view what, double lo, double hi, double& out) {
  if (Describe(node) == "a number") {
    char* end = nullptr;
    const double v = std::strtod(node.Scalar().c_str(), &end);
    if (*end == '\0' && std::isfinite(v) && v >= lo && v <= hi) {
      out = v;
      return true;
    }
  }
  lint.Error(mark, path,
             absl::StrCat(std::string(what), " must be a number from ", lo, " to ", hi, ", got ",
                          Describe(node) == "a number" ? node.Scalar() : Describe(node)));
  return false;
}

bool Integer(Linter& lint, const Entry& e, const std::string& path, int lo, int hi, int& out) {
  double v = 0;
  if (Describe(e.value) == "a number" &&
      e.value.Scalar().find_first_of(".eE") == std::string::npos) {
    char* end = nullptr;
    const long n = std::strtol(e.value.Scalar().c_str(), &end, 10);
    if (*end == '\0' && n >= lo && n <= hi) {
      out = static_cast<int>(n);
      return true;
    }
  }
  (void)v;
  lint.Error(e.value_mark, path,
             absl::StrCat(e.key, " must be an integer from ", lo, " to ", hi, ", got ",
                          Describe(e.value) == "a number" ? e.value.Scalar() : Describe(e.value)));
  return false;
}

constexpr FieldRule<evals::EvalModelSpec> kModelRules[] = {
    {"command", false,
     [](Linter& lint, const Entry& e, const std::string& path, evals::EvalModelSpec& out) {
       NonEmptyText(lint, e, path, out.command);
     }},
    {"url", false,
     [](Linter& lint, const Entry& e, const std::string& path, evals::EvalModelSpec& out) {
       NonEmptyText(lint, e, path, out.url);
       if (out.url.empty()) return;
       if (out.url.rfind("http://", 0) != 0 && out.url.rfind("https://", 0) != 0) {
         lint.Error(e.value_mark, path,
                    absl::StrCat("url '", out.url, "' must start with http:// or https://"));
       }
     }},
    {"api", false,
     [](Linter& lint, const Entry& e, const std::string& path, evals::EvalModelSpec& out) {
       if (!ScalarText(lint, e.value, e.value_mark, path, "api", "chat or completions", out.api)) {
         return;
       }
       if (out.api != "chat" && out.api != "completions") {
         lint.Error(e.value_mark, path,
                    absl::StrCat("api must be chat or completions, got '", out.api, "'"));
       }
     }},
    {"name", false,
     [](Linter& lint, const Entry& e, const std::string& path, evals::EvalModelSpec& out) {
       NonEmptyText(lint, e, path, out.name);
     }},
    {"serve", false,
     [](Linter& lint, const Entry& e, const std::string& path, evals::EvalModelSpec& out) {
       NonEmptyText(lint, e, path, out.serve);
     }},
    {"api_key_secret", false,
     [](Linter& lint, const Entry& e, const std::string& path, evals::EvalModelSpec& out) {
       NonEmptyText(lint, e, path, out.api_key_secret);
     }},
};

void ParseModel(Linter& lint, const Entry& e, const std::string& path, EvalSpec& out) {
  if (e.value.IsScalar()) {  // `model: "python serve.py"`: a command
    NonEmptyText(lint, e, path, out.model.command);
    return;
  }
  if (!e.value.IsMap()) {
    lint.Error(e.value_mark, path,
               absl::StrCat("model must be a command string or a mapping with command or url, "
                            "got ",
                            Describe(e.value)));
    return;
  }
  const size_t errors = lint.ErrorCount();
  ParseFields<evals::EvalModelSpec>(lint, e.value, path, e.key_node.Mark(), kModelRules, out.model);
  if (lint.ErrorCount() != errors) return;
  evals::EvalModelSpec& m = out.model;
  if (m.command.empty() == m.url.empty()) {
    lint.Error(e.value_mark, path, "model needs exactly one of command and url");
    return;
  }
  if (!m.command.empty() &&
      (!m.serve.empty() || !m.api.empty() || !m.name.empty() || !m.api_key_secret.empty())) {
    lint.Error(e.value_mark, path,
               "model: api, name, serve and api_key_secret go with url, not with command");
  }
  if (!m.url.empty() && m.api.empty()) {
    if (m.url.ends_with("/chat/completions")) {
      m.api = "chat";
    } else if (m.url.ends_with("/completions")) {
      m.api = "completions";
    } else {
      lint.Error(e.value_mark, Join(path, "api"),
                 absl::StrCat("url '", m.url,
                              "' ends in neither /chat/completions nor /completions: say "
                              "which with api: chat or api: completions"));
    }
  }
}

// One promptfoo-style assertion of an inline test.
bool ParseAssertion(Linter& lint, const YAML::Node& node, const YAML::Mark& mark,
                    const std::string& path, evals::Assertion& out) {
  if (!node.IsMap()) {
    lint.Error(
        mark, path,
        absl::StrCat("an assertion must be a mapping with type and value, got ", Describe(node)));
    return false;
  }
  bool ok = true;
  bool has_type = false;
  for (const Entry& e : MappingEntries(lint, node, path)) {
    const std::string key = Join(path, e.key);
    if (e.key == "type") {
      std::string type;
      if (!ScalarText(lint, e.value, e.value_mark, key, "type", "an assertion type", type)) {
        ok = false;
        continue;
      }
      has_type = true;
      out.negate = type.rfind("not-", 0) == 0;
      out.type = out.negate ? type.substr(4) : type;
      bool known = false;
      for (std::string_view t : kAssertionTypes) known = known || t == out.type;
      if (!known) {
        std::vector<std::string_view> allowed(std::begin(kAssertionTypes),
                                              std::end(kAssertionTypes));
        lint.Error(e.value_mark, key,
                   absl::StrCat("unknown assertion type '", type, "' (known: ",
                                JoinViews(allowed, ", "), ", each also as not-TYPE)"));
        ok = false;
      }
    } else if (e.key == "value") {
      ok = ScalarText(lint, e.value, e.value_mark, key, "value", "a string", out.value) && ok;
    } else if (e.key == "threshold") {
      double t = 0;
      if (Number(lint, e.value, e.value_mark, key, "threshold", 0, 1, t)) {
        out.threshold = t;
      } else {
        ok = false;
      }
    } else if (e.key == "weight") {
      ok = Number(lint, e.value, e.value_mark, key, "weight", 0, 1e6, out.weight) && ok;
    } else {
      lint.Error(
          e.key_node.Mark(), key,
          absl::StrCat("unknown key '", e.key, "' (allowed keys: type, value, threshold, weight)"));
      ok = false;
    }
  }
  if (!has_type && ok) {
    lint.Error(mark, Join(path, "type"), "missing required key 'type'");
    return false;
  }
  if (ok) {  // the value itself: a regex RE2 compiles, a JSON schema it understands
    if (absl::Status valid = evals::ValidateAssertion(out); !valid.ok()) {
      lint.Error(mark, path, std::string(valid.message()));
      return false;
    }
  }
  return ok;
}

void ParseTests(Linter& lint, const Entry& e, const std::string& path, EvalSpec& out) {
  if (!e.value.IsSequence() || e.value.size() == 0 || e.value.size() > evals::kMaxInlineTests) {
    lint.Error(e.value_mark, path,
               absl::StrCat("tests must be a list of 1 to ", evals::kMaxInlineTests, " tests, got ",
                            e.value.IsSequence() ? absl::StrCat("a list of ", e.value.size())
                                                 : Describe(e.value)));
    return;
  }
  for (size_t i = 0; i < e.value.size(); ++i) {
    const YAML::Node item = e.value[i];
    const std::string item_path = Index(path, i);
    const YAML::Mark mark = MarkOr(item, e.value.Mark());
    if (!item.IsMap()) {
      lint.Error(
          mark, item_path,
          absl::StrCat("a test must be a mapping with vars and assert, got ", Describe(item)));
      continue;
    }
    evals::Example ex;
    ex.line = static_cast<int>(i + 1);
    ex.id = absl::StrCat("test-", i + 1);
    for (const Entry& t : MappingEntries(lint, item, item_path)) {
      const std::string key = Join(item_path, t.key);
      if (t.key == "vars") {
        if (!t.value.IsMap()) {
          lint.Error(t.value_mark, key,
                     absl::StrCat("vars must be a mapping, got ", Describe(t.value)));
          continue;
        }
        for (const Entry& v : MappingEntries(lint, t.value, key)) {
          std::string text;
          if (ScalarText(lint, v.value, v.value_mark, Join(key, v.key), "a var", "a scalar",
                         text)) {
            if (v.key == "input") ex.input = text;
            ex.vars.emplace_back(v.key, std::move(text));
          }
        }
      } else if (t.key == "assert") {
        if (!t.value.IsSequence()) {
          lint.Error(t.value_mark, key,
                     absl::StrCat("assert must be a list, got ", Describe(t.value)));
          continue;
        }
        for (size_t j = 0; j < t.value.size(); ++j) {
          evals::Assertion a;
          if (ParseAssertion(lint, t.value[j], MarkOr(t.value[j], t.value.Mark()), Index(key, j),
                             a)) {
            ex.asserts.push_back(std::move(a));
          }
        }
      } else if (t.key == "expected") {
        std::string text;
        if (ScalarText(lint, t.value, t.value_mark, key, "expected", "a string", text)) {
          ex.expected = std::move(text);
        }
      } else if (t.key == "id") {
        ScalarText(lint, t.value, t.value_mark, key, "id", "a string", ex.id);
      } else if (t.key == "description") {
        std::string ignored;
        ScalarText(lint, t.value, t.value_mark, key, "description", "a string", ignored);
      } else {
        lint.Error(t.key_node.Mark(), key,
                   absl::StrCat("unknown key '", t.key,
                                "' (allowed keys: vars, assert, expected, id, description)"));
      }
    }
    out.tests.push_back(std::move(ex));
  }
}

constexpr FieldRule<evals::EvalNormalize> kNormalizeRules[] = {
    {"lowercase", false,
     [](Linter& lint, const Entry& e, const std::string& path, evals::EvalNormalize& out) {
       ParseBoolValue(lint, e, path, out.lowercase);
     }},
    {"strip", false,
     [](Linter& lint, const Entry& e, const std::string& path, evals::EvalNormalize& out) {
       ParseBoolValue(lint, e, path, out.strip);
     }},
    {"collapse_whitespace", false,
     [](Linter& lint, const Entry& e, const std::string& path, evals::EvalNormalize& out) {
       ParseBoolValue(lint, e, path, out.collapse_whitespace);
     }},
    {"remove_punctuation", false,
     [](Linter& lint, const Entry& e, const std::string& path, evals::EvalNormalize& out) {
       ParseBoolValue(lint, e, path, out.remove_punctuation);
     }},
};

void ParseGate(Linter& lint, const Entry& e, const std::string& path, EvalSpec& out) {
  if (!e.value.IsMap() || e.value.size() == 0 || e.value.size() > evals::kMaxEvalGates) {
    lint.Error(
        e.value_mark, path,
        absl::StrCat("gate must be a mapping of 1 to ", evals::kMaxEvalGates,
                     " metrics to {min, max, max_drop, vs, confidence}, got ", Describe(e.value)));
    return;
  }
  for (const Entry& m : MappingEntries(lint, e.value, path)) {
    const std::string key = Join(path, m.key);
    EvalGate g;
    g.metric = m.key;
    // An ingest's metrics (a JUnit report's, an lm-eval "task/metric") are checked once the
    // whole eval is read, when it is known whether it ingests.
    if (!evals::KnownMetric(g.metric) && !evals::JunitMetric(g.metric) &&
        g.metric.find('/') == std::string::npos) {
      const std::string suggestion = ClosestMatch(g.metric, evals::KnownMetricNames());
      lint.Error(
          m.key_node.Mark(), key,
          suggestion.empty()
              ? absl::StrCat("unknown metric '", g.metric,
                             "' (known: ", JoinViews(evals::KnownMetricNames(), ", "), ")")
              : absl::StrCat("unknown metric '", g.metric, "' (did you mean '", suggestion, "'?)"));
      continue;
    }
    if (!m.value.IsMap()) {
      lint.Error(m.value_mark, key,
                 absl::StrCat("a gate must be a mapping with min, max or max_drop, got ",
                              Describe(m.value)));
      continue;
    }
    bool ok = true;
    for (const Entry& b : MappingEntries(lint, m.value, key)) {
      const std::string bkey = Join(key, b.key);
      double v = 0;
      if (b.key == "min" || b.key == "max" || b.key == "max_drop") {
        if (!Number(lint, b.value, b.value_mark, bkey, b.key, b.key == "max_drop" ? 0 : -1e18, 1e18,
                    v)) {
          ok = false;
          continue;
        }
        (b.key == "min" ? g.min : b.key == "max" ? g.max : g.max_drop) = v;
      } else if (b.key == "vs") {
        ok = ScalarText(lint, b.value, b.value_mark, bkey, "vs", "a branch name", g.vs) && ok;
        if (g.vs.empty()) {
          lint.Error(b.value_mark, bkey, "vs must not be empty");
          ok = false;
        } else if (g.vs[0] == '@') {  // the version a registry alias points at
          if (absl::Status s = registry::ValidateAlias(g.vs.substr(1)); !s.ok()) {
            lint.Error(b.value_mark, bkey, absl::StrCat("vs '", g.vs, "': ", s.message()));
            ok = false;
          }
        }
      } else if (b.key == "confidence") {
        ok =
            Number(lint, b.value, b.value_mark, bkey, "confidence", 0.5, 0.999, g.confidence) && ok;
      } else {
        lint.Error(b.key_node.Mark(), bkey,
                   absl::StrCat("unknown key '", b.key,
                                "' (allowed keys: min, max, max_drop, vs, confidence)"));
        ok = false;
      }
    }
    if (!ok) continue;
    if (!g.min && !g.max && !g.max_drop) {
      lint.Error(m.value_mark, key, "a gate needs at least one of min, max and max_drop");
      continue;
    }
    if (g.max_drop.has_value() != !g.vs.empty()) {
      lint.Error(m.value_mark, key,
                 "max_drop and vs go together: vs names the baseline (a branch) that max_drop "
                 "compares with");
      continue;
    }
    out.gates.push_back(std::move(g));
  }
}

constexpr FieldRule<evals::EvalJudgeSpec> kJudgeRules[] = {
    {"url", true,
     [](Linter& lint, const Entry& e, const std::string& path, evals::EvalJudgeSpec& out) {
       NonEmptyText(lint, e, path, out.url);
       if (!out.url.empty() && out.url.rfind("http://", 0) != 0 &&
           out.url.rfind("https://", 0) != 0) {
         lint.Error(e.value_mark, path,
                    absl::StrCat("url '", out.url, "' must start with http:// or https://"));
       }
     }},
    {"model", false,
     [](Linter& lint, const Entry& e, const std::string& path, evals::EvalJudgeSpec& out) {
       NonEmptyText(lint, e, path, out.model);
     }},
    {"rubric", false,
     [](Linter& lint, const Entry& e, const std::string& path, evals::EvalJudgeSpec& out) {
       NonEmptyText(lint, e, path, out.rubric);
       if (out.rubric.size() > 65536) lint.Error(e.value_mark, path, "rubric is over 64 KiB");
     }},
    {"rubric_file", false,
     [](Linter& lint, const Entry& e, const std::string& path, evals::EvalJudgeSpec& out) {
       WorkspacePath(lint, e, path, out.rubric_file);
     }},
    {"api_key_secret", false,
     [](Linter& lint, const Entry& e, const std::string& path, evals::EvalJudgeSpec& out) {
       NonEmptyText(lint, e, path, out.api_key_secret);
     }},
    {"threshold", false,
     [](Linter& lint, const Entry& e, const std::string& path, evals::EvalJudgeSpec& out) {
       Number(lint, e.value, e.value_mark, path, "threshold", 0, 1, out.threshold);
     }},
};

constexpr FieldRule<EvalSpec> kEvalRules[] = {
    {"name", false,
     [](Linter& lint, const Entry& e, const std::string& path, EvalSpec& out) {
       NonEmptyText(lint, e, path, out.name);
       if (out.name.size() > 128) lint.Error(e.value_mark, path, "name is longer than 128 bytes");
     }},
    {"dataset", false,
     [](Linter& lint, const Entry& e, const std::string& path, EvalSpec& out) {
       WorkspacePath(lint, e, path, out.dataset);
     }},
    {"tests", false, ParseTests},
    {"prompt", false,
     [](Linter& lint, const Entry& e, const std::string& path, EvalSpec& out) {
       WorkspacePath(lint, e, path, out.prompt);
     }},
    {"model", false, ParseModel},  // required unless ingest (ParseEvalStep)
    {"judge", false,
     [](Linter& lint, const Entry& e, const std::string& path, EvalSpec& out) {
       if (!e.value.IsMap()) {
         lint.Error(
             e.value_mark, path,
             absl::StrCat("judge must be a mapping with url and rubric, got ", Describe(e.value)));
         return;
       }
       evals::EvalJudgeSpec j;
       ParseFields<evals::EvalJudgeSpec>(lint, e.value, path, e.key_node.Mark(), kJudgeRules, j);
       if (j.rubric.empty() == j.rubric_file.empty()) {
         lint.Error(e.key_node.Mark(), path, "judge needs exactly one of rubric and rubric_file");
       }
       out.judge = std::move(j);
     }},
    {"ingest", false,
     [](Linter& lint, const Entry& e, const std::string& path, EvalSpec& out) {
       if (!e.value.IsMap() || e.value.size() != 1) {
         lint.Error(e.value_mark, path,
                    absl::StrCat("ingest must be a mapping with one key, junit or lm_eval, whose "
                                 "value is a path or glob, got ",
                                 Describe(e.value)));
         return;
       }
       for (const Entry& f : MappingEntries(lint, e.value, path)) {
         if (f.key != "junit" && f.key != "lm_eval") {
           lint.Error(f.key_node.Mark(), Join(path, f.key),
                      absl::StrCat("unknown ingest format '", f.key, "' (junit or lm_eval)"));
           return;
         }
         out.ingest_format = f.key;
         WorkspacePath(lint, f, Join(path, f.key), out.ingest_path);
       }
     }},
    {"concurrency", false,
     [](Linter& lint, const Entry& e, const std::string& path, EvalSpec& out) {
       Integer(lint, e, path, 1, evals::kMaxEvalConcurrency, out.concurrency);
     }},
    {"timeout", false,
     [](Linter& lint, const Entry& e, const std::string& path, EvalSpec& out) {
       std::string text;
       if (!ScalarText(lint, e.value, e.value_mark, path, "timeout", "a duration", text)) return;
       absl::StatusOr<int64_t> seconds = ParseDurationSeconds(text);
       if (!seconds.ok()) {
         lint.Error(e.value_mark, path, std::string(seconds.status().message()));
         return;
       }
       out.timeout_ms = *seconds * 1000;
     }},
    {"retries", false,
     [](Linter& lint, const Entry& e, const std::string& path, EvalSpec& out) {
       Integer(lint, e, path, 0, evals::kMaxEvalRetries, out.retries);
     }},
    {"repeat", false,
     [](Linter& lint, const Entry& e, const std::string& path, EvalSpec& out) {
       Integer(lint, e, path, 1, evals::kMaxEvalRepeat, out.repeat);
     }},
    {"metrics", false,
     [](Linter& lint, const Entry& e, const std::string& path, EvalSpec& out) {
       if (!e.value.IsSequence()) {
         lint.Error(
             e.value_mark, path,
             absl::StrCat("metrics must be a list of metric names, got ", Describe(e.value)));
         return;
       }
       for (size_t i = 0; i < e.value.size(); ++i) {
         std::string name;
         const YAML::Mark mark = MarkOr(e.value[i], e.value.Mark());
         if (!ScalarText(lint, e.value[i], mark, Index(path, i), "metrics entries", "metric names",
                         name)) {
           continue;
         }
         if (!evals::KnownMetric(name)) {
           const std::string suggestion = ClosestMatch(name, evals::KnownMetricNames());
           lint.Error(mark, Index(path, i),
                      suggestion.empty()
                          ? absl::StrCat("unknown metric '", name, "' (known: ",
                                         JoinViews(evals::KnownMetricNames(), ", "), ")")
                          : absl::StrCat("unknown metric '", name, "' (did you mean '", suggestion,
                                         "'?)"));
           continue;
         }
         if (std::find(out.metrics.begin(), out.metrics.end(), name) != out.metrics.end()) {
           lint.Error(mark, Index(path, i),
                      absl::StrCat("metric '", name, "' is listed more than once"));
           continue;
         }
         out.metrics.push_back(std::move(name));
       }
     }},
    {"regex", false,
     [](Linter& lint, const Entry& e, const std::string& path, EvalSpec& out) {
       NonEmptyText(lint, e, path, out.regex);
     }},
    {"normalize", false,
     [](Linter& lint, const Entry& e, const std::string& path, EvalSpec& out) {
       if (!e.value.IsMap()) {
         lint.Error(e.value_mark, path,
                    absl::StrCat("normalize must be a mapping, got ", Describe(e.value)));
         return;
       }
       ParseFields<evals::EvalNormalize>(lint, e.value, path, e.key_node.Mark(), kNormalizeRules,
                                         out.normalize);
     }},
    {"price", false,
     [](Linter& lint, const Entry& e, const std::string& path, EvalSpec& out) {
       if (!e.value.IsMap()) {
         lint.Error(e.value_mark, path,
                    absl::StrCat("price must be a mapping {input_per_mtok, output_per_mtok}, "
                                 "got ",
                                 Describe(e.value)));
         return;
       }
       for (const Entry& p : MappingEntries(lint, e.value, path)) {
         const std::string key = Join(path, p.key);
         if (p.key == "input_per_mtok") {
           Number(lint, p.value, p.value_mark, key, p.key, 0, 1e9, out.price_input_per_mtok);
         } else if (p.key == "output_per_mtok") {
           Number(lint, p.value, p.value_mark, key, p.key, 0, 1e9, out.price_output_per_mtok);
         } else {
           lint.Error(p.key_node.Mark(), key,
                      absl::StrCat("unknown key '", p.key,
                                   "' (allowed keys: input_per_mtok, output_per_mtok)"));
         }
       }
     }},
    {"gate", false, ParseGate},
};

}  // namespace

void WorkspacePath(Linter& lint, const Entry& e, const std::string& path, std::string& out) {
  std::string text;
  if (!ScalarText(lint, e.value, e.value_mark, path, e.key, "a path in the workspace", text)) {
    return;
  }
  if (std::string p = RelativePathProblem(e.key, text); !p.empty()) {
    lint.Error(e.value_mark, path, std::move(p));
    return;
  }
  out = std::move(text);
}

void NonEmptyText(Linter& lint, const Entry& e, const std::string& path, std::string& out) {
  if (!ScalarText(lint, e.value, e.value_mark, path, e.key, "a string", out)) return;
  if (out.empty()) lint.Error(e.value_mark, path, absl::StrCat(e.key, " must not be empty"));
}

void ParseEvalStep(Linter& lint, const Entry& e, const std::string& path, StepSpec& step) {
  EvalSpec spec;
  if (!e.value.IsMap()) {
    lint.Error(e.value_mark, path,
               absl::StrCat("eval must be a mapping with dataset (or tests) and model, got ",
                            Describe(e.value)));
    step.eval = std::move(spec);  // still an eval step: no "missing 'run'" besides
    return;
  }
  const size_t errors = lint.ErrorCount();
  ParseFields<EvalSpec>(lint, e.value, path, e.key_node.Mark(), kEvalRules, spec);
  const YAML::Mark mark = e.key_node.Mark();
  if (lint.ErrorCount() == errors && !spec.ingest_format.empty()) {
    // An ingest reads what a suite wrote: no dataset, model or metrics of its own.
    for (const char* key : {"dataset", "tests", "model", "prompt", "metrics", "regex", "repeat"}) {
      if (e.value[key]) {
        lint.Error(mark, Join(path, key),
                   absl::StrCat("an eval with ingest takes no ", key,
                                ": it reads the results a test suite wrote"));
      }
    }
    for (const EvalGate& g : spec.gates) {
      const bool ok = spec.ingest_format == "junit"
                          ? evals::JunitMetric(g.metric)
                          : g.metric.find('/') != std::string::npos && g.metric.front() != '/' &&
                                g.metric.back() != '/';
      if (!ok) {
        lint.Error(mark, Join(Join(path, "gate"), g.metric),
                   spec.ingest_format == "junit"
                       ? absl::StrCat("gate on metric '", g.metric,
                                      "': a JUnit ingest has tests, passed, failures, errors, "
                                      "skipped, pass_rate and time_s")
                       : absl::StrCat("gate on metric '", g.metric,
                                      "': an lm_eval ingest's metrics are TASK/METRIC (e.g. "
                                      "arc_easy/acc, or gsm8k/exact_match,strict-match)"));
      }
    }
    step.eval = std::move(spec);
    return;
  }
  if (!e.value["ingest"] && !e.value["model"]) {
    lint.Error(mark, Join(path, "model"), "missing required key 'model'");
  }
  if (lint.ErrorCount() == errors) {
    if (spec.dataset.empty() == spec.tests.empty()) {
      lint.Error(mark, path, "eval needs exactly one of dataset (a JSONL file) and tests");
    }
    if (!spec.regex.empty() &&
        std::find(spec.metrics.begin(), spec.metrics.end(), "regex") == spec.metrics.end()) {
      lint.Error(mark, Join(path, "regex"),
                 "regex is the pattern of the regex metric: list "
                 "regex in metrics: too");
    }
    if (spec.regex.empty() &&
        std::find(spec.metrics.begin(), spec.metrics.end(), "regex") != spec.metrics.end()) {
      lint.Error(mark, Join(path, "regex"), "the regex metric needs its pattern in regex:");
    }
    const bool judged =
        std::find(spec.metrics.begin(), spec.metrics.end(), "judge") != spec.metrics.end();
    if (judged != spec.judge.has_value()) {
      lint.Error(mark, Join(path, "judge"),
                 judged ? "the judge metric needs its endpoint and rubric in judge:"
                        : "judge: is the judge metric's endpoint: list judge in metrics: too");
    }
    const bool any_asserts =
        std::any_of(spec.tests.begin(), spec.tests.end(),
                    [](const evals::Example& x) { return !x.asserts.empty(); });
    if (any_asserts &&
        std::find(spec.metrics.begin(), spec.metrics.end(), "assertions") == spec.metrics.end()) {
      spec.metrics.push_back("assertions");  // tests with asserts are always scored
    }
    for (const EvalGate& g : spec.gates) {
      const bool computed =
          std::find(spec.metrics.begin(), spec.metrics.end(), g.metric) != spec.metrics.end() ||
          (g.metric == "assertions" && !spec.dataset.empty());
      if (!computed) {
        lint.Error(mark, Join(Join(path, "gate"), g.metric),
                   absl::StrCat("gate on metric '", g.metric,
                                "', which this eval does not compute: list it in metrics:"));
      }
    }
  }
  step.eval = std::move(spec);
}

}  // namespace assay::spec_internal
