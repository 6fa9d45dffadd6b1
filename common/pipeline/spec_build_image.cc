// The `build_image:` step (issue 9, docs/images.md) and the `image: ${{ jobs.NAME.image }}`
// form of a job's image that runs what an earlier job of the pipeline pushed.
//
// Why strict: context, file and tags end up as arguments of buildah/podman on the agent's
// machine, outside any sandbox; a path that leaves the workspace would build from (and so
// disclose) the agent's own files.

#include "common/pipeline/spec_internal.h"

namespace assay::spec_internal {

bool ParseBoolValue(Linter& lint, const Entry& e, const std::string& path, bool& out) {
  if (Describe(e.value) != "a boolean") {
    lint.Error(e.value_mark, path,
               absl::StrCat(e.key, " must be a boolean, got ", Describe(e.value)));
    return false;
  }
  const std::string& s = e.value.Scalar();
  out = s == "true" || s == "True" || s == "TRUE";
  return true;
}

// "" when `path` is a usable path relative to the workspace, else the problem.
std::string RelativePathProblem(std::string_view key, const std::string& path) {
  if (path.empty()) return absl::StrCat(std::string(key), " must not be empty");
  if (path.size() > kMaxBuildImagePathBytes) {
    return absl::StrCat(std::string(key), " is longer than ", kMaxBuildImagePathBytes, " bytes");
  }
  if (path[0] == '/') {
    return absl::StrCat(std::string(key), " '", path,
                        "' must be relative to the workspace, not absolute");
  }
  for (char c : path) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::StrCat(std::string(key), " must not hold control characters");
    }
  }
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (path.compare(start, end - start, "..") == 0) {
      return absl::StrCat(std::string(key), " '", path,
                          "' escapes the workspace ('..' is not allowed)");
    }
    start = end + 1;
  }
  return "";
}

namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// The registry part of a reference ("" when it names none: the runtime's default registry).
std::string RegistryOf(const std::string& ref) {
  const size_t slash = ref.find('/');
  if (slash == std::string::npos) return "";
  const std::string first = ref.substr(0, slash);
  if (first.find_first_of(".:") != std::string::npos || first == "localhost") return first;
  return "";
}

}  // namespace

std::string BuildImageTagProblem(const std::string& ref) {
  if (std::string p = ImageNameProblem(ref); !p.empty()) return p;
  if (ref.find('@') != std::string::npos) {
    return absl::StrCat("invalid tag '", ref,
                        "': a digest cannot be built to; name a repository and an optional tag");
  }
  // [registry/]path[:tag]: the tag follows the last ':' after the last '/'.
  const size_t slash = ref.rfind('/');
  const size_t colon = ref.rfind(':');
  std::string repo = ref;
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    const std::string tag = ref.substr(colon + 1);
    repo = ref.substr(0, colon);
    const bool tag_ok =
        !tag.empty() && tag.size() <= 128 && tag[0] != '.' && tag[0] != '-' &&
        std::all_of(tag.begin(), tag.end(), [](char c) {
          return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z') || c == '_' || c == '.' || c == '-';
        });
    if (!tag_ok) {
      return absl::StrCat("invalid tag '", ref,
                          "': the tag after ':' must be 1 to 128 of A-Z a-z 0-9 _ . - "
                          "(not starting with . or -)");
    }
  }
  const std::string registry = RegistryOf(repo);
  const std::string path = registry.empty() ? repo : repo.substr(registry.size() + 1);
  // Path components: lowercase letters and digits, separated by '.', '_', '__' or '-'.
  bool ok = !path.empty();
  size_t start = 0;
  while (ok && start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    const std::string part = path.substr(start, end - start);
    ok = !part.empty() && IsLowerAlnum(part.front()) && IsLowerAlnum(part.back()) &&
         std::all_of(part.begin(), part.end(),
                     [](char c) { return IsLowerAlnum(c) || c == '.' || c == '_' || c == '-'; });
    start = end + 1;
  }
  if (!ok) {
    return absl::StrCat("invalid tag '", ref,
                        "': repository path components are lowercase letters and digits "
                        "separated by . _ or -");
  }
  return "";
}

}  // namespace assay::spec_internal

namespace assay {

bool JobImageRef(std::string_view text, std::string* job) {
  if (text.size() < 6 || text.substr(0, 3) != "${{" || text.substr(text.size() - 2) != "}}") {
    return false;
  }
  std::string_view inner = text.substr(3, text.size() - 5);
  while (!inner.empty() && inner.front() == ' ') inner.remove_prefix(1);
  while (!inner.empty() && inner.back() == ' ') inner.remove_suffix(1);
  constexpr std::string_view kPrefix = "jobs.", kSuffix = ".image";
  if (inner.size() <= kPrefix.size() + kSuffix.size() || inner.substr(0, 5) != kPrefix ||
      inner.substr(inner.size() - kSuffix.size()) != kSuffix) {
    return false;
  }
  const std::string_view name =
      inner.substr(kPrefix.size(), inner.size() - kPrefix.size() - kSuffix.size());
  if (name.empty() || name.size() > 64 || !std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
               c == '_' || c == '.' || c == '-';
      })) {
    return false;
  }
  if (job != nullptr) *job = std::string(name);
  return true;
}

}  // namespace assay

namespace assay::spec_internal {
namespace {

constexpr FieldRule<BuildImageSpec> kBuildImageRules[] = {
    {"context", false,
     [](Linter& lint, const Entry& e, const std::string& path, BuildImageSpec& out) {
       std::string text;
       if (!ScalarText(lint, e.value, e.value_mark, path, "context", "a string", text)) return;
       if (std::string p = RelativePathProblem("context", text); !p.empty()) {
         lint.Error(e.value_mark, path, std::move(p));
         return;
       }
       out.context = std::move(text);
     }},
    {"file", false,
     [](Linter& lint, const Entry& e, const std::string& path, BuildImageSpec& out) {
       std::string text;
       if (!ScalarText(lint, e.value, e.value_mark, path, "file", "a string", text)) return;
       if (std::string p = RelativePathProblem("file", text); !p.empty()) {
         lint.Error(e.value_mark, path, std::move(p));
         return;
       }
       out.file = std::move(text);
     }},
    {"tags", true,
     [](Linter& lint, const Entry& e, const std::string& path, BuildImageSpec& out) {
       auto add = [&](const YAML::Node& n, const YAML::Mark& mark, const std::string& key) {
         std::string ref;
         if (!ScalarText(lint, n, mark, key, "tags entries", "image references", ref)) return;
         if (std::string p = BuildImageTagProblem(ref); !p.empty()) {
           lint.Error(mark, key, std::move(p));
           return;
         }
         if (std::find(out.tags.begin(), out.tags.end(), ref) != out.tags.end()) {
           lint.Error(mark, key, absl::StrCat("tag '", ref, "' is listed more than once"));
           return;
         }
         out.tags.push_back(std::move(ref));
       };
       if (e.value.IsScalar()) {
         add(e.value, e.value_mark, path);
         return;
       }
       if (!e.value.IsSequence() || e.value.size() == 0 || e.value.size() > kMaxBuildImageTags) {
         lint.Error(e.value_mark, path,
                    absl::StrCat("tags must be a list of 1 to ", kMaxBuildImageTags,
                                 " image references, got ",
                                 e.value.IsSequence() ? absl::StrCat("a list of ", e.value.size())
                                                      : Describe(e.value)));
         return;
       }
       for (size_t i = 0; i < e.value.size(); ++i) {
         add(e.value[i], MarkOr(e.value[i], e.value.Mark()), Index(path, i));
       }
     }},
    {"push", false,
     [](Linter& lint, const Entry& e, const std::string& path, BuildImageSpec& out) {
       ParseBoolValue(lint, e, path, out.push);
     }},
    {"registry_secret", false,
     [](Linter& lint, const Entry& e, const std::string& path, BuildImageSpec& out) {
       ScalarText(lint, e.value, e.value_mark, path, "registry_secret", "a secret name",
                  out.registry_secret);
     }},
};

}  // namespace

void ParseBuildImageStep(Linter& lint, const Entry& e, const std::string& path, StepSpec& step) {
  if (!e.value.IsMap()) {
    lint.Error(e.value_mark, path,
               absl::StrCat("build_image must be a mapping with 'tags', got ", Describe(e.value)));
    step.build_image = BuildImageSpec{};  // still a build step: no "missing 'run'" besides
    return;
  }
  BuildImageSpec spec;
  const size_t errors = lint.ErrorCount();
  ParseFields<BuildImageSpec>(lint, e.value, path, e.key_node.Mark(), kBuildImageRules, spec);
  if (lint.ErrorCount() == errors && spec.push) {
    const YAML::Mark mark = e.key_node.Mark();
    if (spec.registry_secret.empty()) {
      lint.Error(mark, Join(path, "registry_secret"),
                 "push: true needs registry_secret (a secret listed in the job's secrets: whose "
                 "value is user:password)");
    }
    const std::string registry = RegistryOf(spec.tags[0]);
    for (size_t i = 0; i < spec.tags.size(); ++i) {
      const std::string r = RegistryOf(spec.tags[i]);
      if (r.empty()) {
        lint.Error(mark, Index(Join(path, "tags"), i),
                   absl::StrCat("tag '", spec.tags[i],
                                "' names no registry: with push: true every tag starts with "
                                "its registry (host[:port]/...)"));
      } else if (r != registry) {
        lint.Error(mark, Index(Join(path, "tags"), i),
                   absl::StrCat("tag '", spec.tags[i], "' is on registry '", r, "', tags[0] on '",
                                registry, "': one build_image pushes to one registry"));
      }
    }
  }
  step.build_image = std::move(spec);
}

void CheckBuildImageSecrets(Linter& lint, const JobDraft& job) {
  for (const PlaceholderRef& ref : job.registry_secrets) {
    const bool listed = std::any_of(job.spec.secrets.begin(), job.spec.secrets.end(),
                                    [&](const SecretUse& s) { return s.name == ref.text; });
    if (!listed) {
      lint.Error(ref.mark, ref.key,
                 absl::StrCat("registry_secret '", ref.text,
                              "' is not in the job's secrets: (list it there: the job is given "
                              "only the secrets it lists)"));
    }
  }
}

void CheckJobImageRefs(Linter& lint, const PipelineDraft& draft) {
  for (const JobDraft& job : draft.jobs) {
    std::string target;
    if (!job.spec.image.has_value() || !JobImageRef(job.spec.image->name, &target)) continue;
    const std::string& text = job.spec.image->name;
    const std::string key = Join(Join("jobs", job.spec.name), "image");
    if (std::find(job.spec.needs.begin(), job.spec.needs.end(), target) == job.spec.needs.end()) {
      lint.Error(job.image_mark, key,
                 absl::StrCat("'", text, "' names job '", target,
                              "', which is not in this job's needs: (a job can run only an "
                              "image pushed by a job it needs)"));
      continue;
    }
    auto it = std::find_if(draft.jobs.begin(), draft.jobs.end(),
                           [&](const JobDraft& j) { return j.spec.name == target; });
    if (it == draft.jobs.end()) continue;  // reported by CheckNeeds
    if (it->spec.matrix.has_value()) {
      lint.Error(job.image_mark, key,
                 absl::StrCat("'", text, "' names job '", target,
                              "', which has a matrix: it has no single image"));
      continue;
    }
    const bool pushes = std::any_of(it->spec.steps.begin(), it->spec.steps.end(), [](auto& s) {
      return s.build_image.has_value() && s.build_image->push;
    });
    if (!pushes) {
      lint.Error(job.image_mark, key,
                 absl::StrCat("'", text, "' names job '", target,
                              "', which has no build_image step with push: true"));
    }
  }
}

}  // namespace assay::spec_internal
