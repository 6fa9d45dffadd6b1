// The keys of issue 9's artifacts: `artifacts: {paths, expire_in, when, if_no_files}` and
// `needs` entries written as `{job: NAME, artifacts: true}`. See docs/artifacts.md.

#include "common/pipeline/duration.h"
#include "common/pipeline/glob.h"
#include "common/pipeline/spec_internal.h"

namespace assay::spec_internal {
namespace {

// A path glob of `artifacts.paths`: a valid glob (glob.h), relative to the workspace, with
// no '..' segment and no NUL. Why refuse '..' here: the agent never reads outside the
// workspace, so such a pattern could only match nothing; saying so early is kinder.
absl::Status CheckArtifactGlob(std::string_view pattern) {
  std::string_view body = pattern;
  if (!body.empty() && body[0] == '!') body.remove_prefix(1);
  if (absl::Status s = ValidateGlob(body); !s.ok()) return s;
  if (body.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError("pattern must not contain NUL");
  }
  if (body[0] == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("pattern '", std::string(pattern), "' must be relative to the workspace"));
  }
  size_t start = 0;
  while (start <= body.size()) {
    size_t end = body.find('/', start);
    if (end == std::string_view::npos) end = body.size();
    if (body.substr(start, end - start) == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("pattern '", std::string(pattern), "' must not leave the workspace ('..')"));
    }
    start = end + 1;
  }
  return absl::OkStatus();
}

void ParsePaths(Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
  std::vector<std::string>& out = job.spec.artifacts->paths;
  auto add = [&](const YAML::Node& n, const YAML::Mark& mark, const std::string& key) {
    std::string text;
    if (!ScalarText(lint, n, mark, key, "paths entries", "glob strings", text)) return;
    if (absl::Status s = CheckArtifactGlob(text); !s.ok()) {
      lint.Error(mark, key, std::string(s.message()));
      return;
    }
    job.placeholders.push_back({text, key, mark});
    out.push_back(std::move(text));
  };
  if (e.value.IsScalar()) {
    add(e.value, e.value_mark, path);
  } else if (!e.value.IsSequence()) {
    lint.Error(e.value_mark, path,
               absl::StrCat("paths must be a list of globs, got ", Describe(e.value)));
    return;
  } else if (e.value.size() == 0) {
    lint.Error(e.value_mark, path, "paths must not be empty");
    return;
  } else if (e.value.size() > kMaxArtifactPaths) {
    lint.Error(e.value_mark, path,
               absl::StrCat("paths has ", e.value.size(), " entries, more than the limit of ",
                            kMaxArtifactPaths));
    return;
  } else {
    for (size_t i = 0; i < e.value.size(); ++i) {
      add(e.value[i], MarkOr(e.value[i], e.value.Mark()), Index(path, i));
    }
  }
  const bool any_positive =
      std::any_of(out.begin(), out.end(), [](const std::string& p) { return p[0] != '!'; });
  if (!out.empty() && !any_positive) {
    lint.Error(e.value_mark, path,
               "paths must have a pattern that is not an exclusion ('!'): it would match "
               "nothing");
  }
}

// A scalar that must be one of `allowed`.
void ParseChoice(Linter& lint, const Entry& e, const std::string& path,
                 std::initializer_list<std::string_view> allowed, std::string& out) {
  std::vector<std::string_view> names(allowed);
  const std::string expected = absl::StrCat("one of ", JoinViews(names, ", "));
  std::string text;
  if (!ScalarText(lint, e.value, e.value_mark, path, e.key, expected, text)) return;
  if (std::find(names.begin(), names.end(), text) == names.end()) {
    lint.Error(e.value_mark, path,
               absl::StrCat(e.key, " must be ", expected, ", got '", text, "'"));
    return;
  }
  out = std::move(text);
}

constexpr FieldRule<JobDraft> kArtifactRules[] = {
    {"paths", true, ParsePaths},
    {"expire_in", false,
     [](Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
       std::string text;
       if (!ScalarText(lint, e.value, e.value_mark, path, "expire_in",
                       "a duration such as 12h or 720h", text)) {
         return;
       }
       absl::StatusOr<int64_t> seconds = ParseDurationSeconds(text);
       if (!seconds.ok()) {
         lint.Error(e.value_mark, path, std::string(seconds.status().message()));
         return;
       }
       job.spec.artifacts->expire_in_s = *seconds;
     }},
    {"when", false,
     [](Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
       ParseChoice(lint, e, path, {"on_success", "always"}, job.spec.artifacts->when);
     }},
    {"if_no_files", false,
     [](Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
       ParseChoice(lint, e, path, {"warn", "error"}, job.spec.artifacts->if_no_files);
     }},
};

struct NeedDraft {
  NeedRef* need;
  bool has_job = false;
};

constexpr FieldRule<NeedDraft> kNeedRules[] = {
    {"job", true,
     [](Linter& lint, const Entry& e, const std::string& path, NeedDraft& d) {
       if (ScalarText(lint, e.value, e.value_mark, path, "job", "a job name", d.need->name)) {
         d.has_job = true;
       }
     }},
    {"artifacts", false,
     [](Linter& lint, const Entry& e, const std::string& path, NeedDraft& d) {
       if (Describe(e.value) != "a boolean") {
         lint.Error(e.value_mark, path,
                    absl::StrCat("artifacts must be a boolean, got ", Describe(e.value)));
         return;
       }
       const std::string& s = e.value.Scalar();
       d.need->artifacts = s == "true" || s == "True" || s == "TRUE";
     }},
};

}  // namespace

void ParseArtifacts(Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
  job.spec.artifacts = ArtifactsSpec{};
  if (!e.value.IsMap()) {
    lint.Error(e.value_mark, path,
               absl::StrCat("artifacts must be a mapping with 'paths', got ", Describe(e.value)));
    return;
  }
  ParseFields<JobDraft>(lint, e.value, path, e.key_node.Mark(), kArtifactRules, job);
}

bool ParseNeedMapping(Linter& lint, const YAML::Node& node, const YAML::Mark& mark,
                      const std::string& key, NeedRef& out) {
  NeedDraft d{&out};
  const size_t before = lint.ErrorCount();
  ParseFields<NeedDraft>(lint, node, key, mark, kNeedRules, d);
  return d.has_job && lint.ErrorCount() == before;
}

void CheckArtifactNeeds(Linter& lint, PipelineDraft& draft) {
  absl::flat_hash_map<std::string, const JobDraft*> by_name;
  for (const JobDraft& job : draft.jobs) by_name.emplace(job.spec.name, &job);
  for (const JobDraft& job : draft.jobs) {
    for (const NeedRef& need : job.needs) {
      if (!need.artifacts) continue;
      auto it = by_name.find(need.name);
      if (it == by_name.end() || it->second == &job) continue;  // CheckNeeds reports these
      if (!it->second->spec.artifacts.has_value()) {
        lint.Error(need.mark, Join(need.key, "artifacts"),
                   absl::StrCat("job '", need.name,
                                "' has no 'artifacts:' key, so there is nothing to download"));
      }
    }
  }
}

}  // namespace assay::spec_internal
