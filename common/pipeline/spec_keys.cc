// The `.assay.yml` keys of issue 3: `on:` and the job keys if, retry, allow_failure,
// concurrency, priority, strategy and runs_on. Rows for them live in the rule tables of
// pipeline_spec.cc; messages follow the same "<key> must be <expected>, got <kind>" form.

#include "common/pipeline/cron.h"
#include "common/pipeline/expr.h"
#include "common/pipeline/glob.h"
#include "common/pipeline/spec_internal.h"

namespace assay::spec_internal {
namespace {

bool IsBool(const YAML::Node& n) { return Describe(n) == "a boolean"; }

bool ParseBool(Linter& lint, const Entry& e, const std::string& path, bool& out) {
  if (!IsBool(e.value)) {
    lint.Error(e.value_mark, path,
               absl::StrCat(e.key, " must be a boolean, got ", Describe(e.value)));
    return false;
  }
  const std::string& s = e.value.Scalar();
  out = s == "true" || s == "True" || s == "TRUE";
  return true;
}

// A list of strings (a single string is a list of one); each checked by `check`.
template <typename Check>
bool ParseStringList(Linter& lint, const Entry& e, const std::string& path,
                     std::vector<std::string>& out, Check check) {
  out.clear();
  auto add = [&](const YAML::Node& node, const YAML::Mark& mark, const std::string& key) {
    std::string text;
    if (!ScalarText(lint, node, mark, key, absl::StrCat(e.key, " entries"), "strings", text)) {
      return;
    }
    std::string problem = check(text);
    if (!problem.empty()) {
      lint.Error(mark, key, problem);
      return;
    }
    out.push_back(std::move(text));
  };
  if (e.value.IsScalar()) {
    add(e.value, e.value_mark, path);
    return true;
  }
  if (!e.value.IsSequence()) {
    lint.Error(e.value_mark, path,
               absl::StrCat(e.key, " must be a list of strings, got ", Describe(e.value)));
    return false;
  }
  for (size_t i = 0; i < e.value.size(); ++i) {
    add(e.value[i], MarkOr(e.value[i], e.value.Mark()), Index(path, i));
  }
  return true;
}

std::string GlobProblem(const std::string& text) {
  std::string_view glob = text;
  if (!glob.empty() && glob[0] == '!') glob.remove_prefix(1);
  absl::Status s = ValidateGlob(glob);
  return s.ok() ? "" : std::string(s.message());
}

std::string NoProblem(const std::string&) { return ""; }

template <typename T>
using Rules = std::span<const FieldRule<T>>;

// ---- on.push ----

#define ASSAY_GLOB_LIST(Type, field)                                     \
  [](Linter& lint, const Entry& e, const std::string& path, Type& out) { \
    ParseStringList(lint, e, path, out.field, GlobProblem);              \
  }

constexpr FieldRule<PushTrigger> kPushRules[] = {
    {"branches", false, ASSAY_GLOB_LIST(PushTrigger, branches)},
    {"tags", false, ASSAY_GLOB_LIST(PushTrigger, tags)},
    {"paths", false, ASSAY_GLOB_LIST(PushTrigger, paths)},
    {"paths_ignore", false, ASSAY_GLOB_LIST(PushTrigger, paths_ignore)},
};

std::string PrTypeProblem(const std::string& t) {
  if (t == "opened" || t == "synchronize" || t == "reopened" || t == "closed") return "";
  return absl::StrCat("unknown pull_request type '", t,
                      "' (allowed: opened, synchronize, reopened, closed)");
}

constexpr FieldRule<PullRequestTrigger> kPullRequestRules[] = {
    {"branches", false, ASSAY_GLOB_LIST(PullRequestTrigger, branches)},
    {"types", false,
     [](Linter& lint, const Entry& e, const std::string& path, PullRequestTrigger& out) {
       ParseStringList(lint, e, path, out.types, PrTypeProblem);
     }},
};

constexpr FieldRule<ScheduleTrigger> kScheduleRules[] = {
    {"cron", true,
     [](Linter& lint, const Entry& e, const std::string& path, ScheduleTrigger& out) {
       std::string text;
       if (!ScalarText(lint, e.value, e.value_mark, path, "cron", "a string", text)) return;
       absl::StatusOr<CronSchedule> cron = CronSchedule::Parse(text);
       if (!cron.ok()) {
         lint.Error(e.value_mark, path, std::string(cron.status().message()));
         return;
       }
       out.cron = cron->text();
     }},
    {"branch", false,
     [](Linter& lint, const Entry& e, const std::string& path, ScheduleTrigger& out) {
       ScalarText(lint, e.value, e.value_mark, path, "branch", "a string", out.branch);
     }},
};

constexpr FieldRule<ManualInput> kInputRules[] = {
    {"type", false,
     [](Linter& lint, const Entry& e, const std::string& path, ManualInput& in) {
       if (!ScalarText(lint, e.value, e.value_mark, path, "type", "a string", in.type)) return;
       if (in.type != "string" && in.type != "number" && in.type != "boolean" &&
           in.type != "choice") {
         lint.Error(e.value_mark, path,
                    absl::StrCat("unknown input type '", in.type,
                                 "' (allowed: string, number, boolean, choice)"));
         in.type = "string";
       }
     }},
    {"default", false,
     [](Linter& lint, const Entry& e, const std::string& path, ManualInput& in) {
       in.has_default = ScalarText(lint, e.value, e.value_mark, path, "default",
                                   "a string, number or boolean", in.default_value);
     }},
    {"options", false,
     [](Linter& lint, const Entry& e, const std::string& path, ManualInput& in) {
       ParseStringList(lint, e, path, in.options, NoProblem);
     }},
    {"required", false,
     [](Linter& lint, const Entry& e, const std::string& path, ManualInput& in) {
       ParseBool(lint, e, path, in.required);
     }},
    {"description", false,
     [](Linter& lint, const Entry& e, const std::string& path, ManualInput& in) {
       ScalarText(lint, e.value, e.value_mark, path, "description", "a string", in.description);
     }},
};

void CheckInput(Linter& lint, const YAML::Mark& mark, const std::string& path,
                const ManualInput& in) {
  if (in.type == "choice" && in.options.empty()) {
    lint.Error(mark, path, "a choice input needs a non-empty 'options' list");
  }
  if (in.type != "choice" && !in.options.empty()) {
    lint.Error(mark, path, "'options' is only allowed for type choice");
  }
  if (!in.has_default) return;
  const std::string& d = in.default_value;
  if (in.type == "boolean" && d != "true" && d != "false") {
    lint.Error(mark, path, absl::StrCat("default '", d, "' is not a boolean (true or false)"));
  } else if (in.type == "number" && !LooksLikeNumber(d)) {
    lint.Error(mark, path, absl::StrCat("default '", d, "' is not a number"));
  } else if (in.type == "choice" && !in.options.empty() &&
             std::find(in.options.begin(), in.options.end(), d) == in.options.end()) {
    lint.Error(mark, path, absl::StrCat("default '", d, "' is not one of the options"));
  }
}

constexpr FieldRule<ManualTrigger> kManualRules[] = {
    {"inputs", false,
     [](Linter& lint, const Entry& e, const std::string& path, ManualTrigger& out) {
       if (!e.value.IsMap()) {
         lint.Error(
             e.value_mark, path,
             absl::StrCat("inputs must be a mapping of names to inputs, got ", Describe(e.value)));
         return;
       }
       for (const Entry& item : MappingEntries(lint, e.value, path)) {
         const std::string item_path = Join(path, item.key);
         ManualInput in;
         in.name = item.key;
         if (item.value.IsNull()) {
           // `NAME:` alone: a string input.
         } else if (!item.value.IsMap()) {
           lint.Error(item.value_mark, item_path,
                      absl::StrCat("input '", item.key, "' must be a mapping, got ",
                                   Describe(item.value)));
           continue;
         } else {
           ParseFields<ManualInput>(lint, item.value, item_path, item.key_node.Mark(), kInputRules,
                                    in);
         }
         CheckInput(lint, item.key_node.Mark(), item_path, in);
         out.inputs.push_back(std::move(in));
       }
     }},
};

// A trigger whose value is a mapping, or null/{} for "no filters".
template <typename T>
void ParseTrigger(Linter& lint, const Entry& e, const std::string& path, Rules<T> rules,
                  std::optional<T>& out) {
  out = T{};
  if (e.value.IsNull()) return;
  if (!e.value.IsMap()) {
    lint.Error(e.value_mark, path,
               absl::StrCat(e.key, " must be a mapping, got ", Describe(e.value)));
    return;
  }
  ParseFields<T>(lint, e.value, path, e.key_node.Mark(), rules, *out);
}

constexpr FieldRule<TriggerSpec> kOnRules[] = {
    {"push", false,
     [](Linter& lint, const Entry& e, const std::string& path, TriggerSpec& on) {
       ParseTrigger<PushTrigger>(lint, e, path, kPushRules, on.push);
     }},
    {"pull_request", false,
     [](Linter& lint, const Entry& e, const std::string& path, TriggerSpec& on) {
       ParseTrigger<PullRequestTrigger>(lint, e, path, kPullRequestRules, on.pull_request);
     }},
    {"schedule", false,
     [](Linter& lint, const Entry& e, const std::string& path, TriggerSpec& on) {
       if (!e.value.IsSequence() || e.value.size() == 0) {
         lint.Error(e.value_mark, path,
                    absl::StrCat("schedule must be a non-empty list of {cron, branch}, got ",
                                 e.value.IsSequence() ? "an empty list" : Describe(e.value)));
         return;
       }
       for (size_t i = 0; i < e.value.size(); ++i) {
         const YAML::Node item = e.value[i];
         const YAML::Mark mark = MarkOr(item, e.value.Mark());
         if (!item.IsMap()) {
           lint.Error(mark, Index(path, i),
                      absl::StrCat("a schedule entry must be a mapping with 'cron', got ",
                                   Describe(item)));
           continue;
         }
         ScheduleTrigger s;
         ParseFields<ScheduleTrigger>(lint, item, Index(path, i), mark, kScheduleRules, s);
         on.schedule.push_back(std::move(s));
       }
     }},
    {"manual", false,
     [](Linter& lint, const Entry& e, const std::string& path, TriggerSpec& on) {
       ParseTrigger<ManualTrigger>(lint, e, path, kManualRules, on.manual);
     }},
};

}  // namespace

void ParseOn(Linter& lint, const Entry& entry, const std::string& path, PipelineDraft& draft) {
  draft.on.push.reset();
  if (!entry.value.IsMap() || entry.value.size() == 0) {
    lint.Error(entry.value_mark, path,
               absl::StrCat("on must be a mapping of events (push, pull_request, schedule, "
                            "manual), got ",
                            entry.value.IsMap() ? "an empty mapping" : Describe(entry.value)));
    return;
  }
  ParseFields<TriggerSpec>(lint, entry.value, path, entry.key_node.Mark(), kOnRules, draft.on);
}

}  // namespace assay::spec_internal
