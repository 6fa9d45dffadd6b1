// The `.assay.yml` keys of the container executor (issue 9): `image:` and `services:`.
// Rows for them live in kJobRules (spec.cc); docs/executors.md describes them.
//
// Why strict character sets: every value here ends up as an argument of the container
// runtime's command line. A name starting with '-' would be read as an option, and whitespace
// or control characters have no place in an image reference, a user or a DNS name.

#include "common/pipeline/duration.h"
#include "common/pipeline/spec_internal.h"

namespace assay::spec_internal {
namespace {

bool InSet(char c, std::string_view extra) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         extra.find(c) != std::string_view::npos;
}

}  // namespace

// "" when `name` is a usable image reference, else the problem.
std::string ImageNameProblem(const std::string& name) {
  if (name.empty()) return "image name must not be empty";
  if (JobImageRef(name, nullptr)) return "";  // build_image (spec_build_image.cc)
  if (name.size() > kMaxImageNameBytes) {
    return absl::StrCat("image name is longer than ", kMaxImageNameBytes, " bytes");
  }
  if (!InSet(name[0], "")) {
    return absl::StrCat("invalid image name '", name, "': must start with a letter or digit");
  }
  for (char c : name) {
    if (!InSet(c, "._-/:@")) {
      return absl::StrCat("invalid image name '", name,
                          "': use letters, digits and . _ - / : @ only");
    }
  }
  return "";
}

namespace {

std::string UserProblem(const std::string& user) {
  if (user.empty() || user.size() > 64 || !InSet(user[0], "_")) {
    return absl::StrCat("invalid user '", user,
                        "': use name or name:group (letters, digits, . _ -; 1 to 64 bytes)");
  }
  size_t colons = 0;
  for (size_t i = 0; i < user.size(); ++i) {
    const char c = user[i];
    if (c == ':') {
      ++colons;
      if (i + 1 == user.size() || !InSet(user[i + 1], "_")) colons = 2;
    } else if (!InSet(c, "._-")) {
      colons = 2;
    }
  }
  if (colons > 1) {
    return absl::StrCat("invalid user '", user,
                        "': use name or name:group (letters, digits, . _ -; 1 to 64 bytes)");
  }
  return "";
}

std::string EntrypointProblem(const std::string& path) {
  if (path.empty() || path[0] != '/' || path.size() > 255) {
    return absl::StrCat("entrypoint must be an absolute path to a shell in the image, got '", path,
                        "'");
  }
  for (char c : path) {
    if (!InSet(c, "._-/+")) {
      return absl::StrCat("invalid entrypoint '", path,
                          "': use letters, digits and . _ - / + only");
    }
  }
  return "";
}

bool IsServiceName(const std::string& name) {
  if (name.empty() || name.size() > 63 || name.front() == '-' || name.back() == '-') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

bool IsVariableName(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return InSet(c, "_"); });
}

// A scalar checked by `problem`; reports at the value.
template <typename Check>
bool CheckedText(Linter& lint, const Entry& e, const std::string& path, std::string_view expected,
                 Check problem, std::string& out) {
  std::string text;
  if (!ScalarText(lint, e.value, e.value_mark, path, e.key, expected, text)) return false;
  if (std::string p = problem(text); !p.empty()) {
    lint.Error(e.value_mark, path, std::move(p));
    return false;
  }
  out = std::move(text);
  return true;
}

constexpr FieldRule<ImageSpec> kImageRules[] = {
    {"name", true,
     [](Linter& lint, const Entry& e, const std::string& path, ImageSpec& out) {
       CheckedText(lint, e, path, "a string", ImageNameProblem, out.name);
     }},
    {"pull", false,
     [](Linter& lint, const Entry& e, const std::string& path, ImageSpec& out) {
       CheckedText(
           lint, e, path, "a string",
           [](const std::string& p) -> std::string {
             if (p == "never" || p == "if_missing" || p == "always") return "";
             return absl::StrCat("unknown pull policy '", p,
                                 "' (allowed: never, if_missing, always)");
           },
           out.pull);
     }},
    {"user", false,
     [](Linter& lint, const Entry& e, const std::string& path, ImageSpec& out) {
       CheckedText(lint, e, path, "a string", UserProblem, out.user);
     }},
    {"entrypoint", false,
     [](Linter& lint, const Entry& e, const std::string& path, ImageSpec& out) {
       CheckedText(lint, e, path, "a string", EntrypointProblem, out.entrypoint);
     }},
};

// `image:` as a string or a mapping.
bool ParseImageValue(Linter& lint, const Entry& e, const std::string& path, ImageSpec& out) {
  if (e.value.IsScalar()) {
    return CheckedText(lint, e, path, "a string", ImageNameProblem, out.name);
  }
  if (!e.value.IsMap()) {
    lint.Error(
        e.value_mark, path,
        absl::StrCat(e.key, " must be a string or a mapping with 'name', got ", Describe(e.value)));
    return false;
  }
  ParseFields<ImageSpec>(lint, e.value, path, e.key_node.Mark(), kImageRules, out);
  return true;
}

bool ParseSeconds(Linter& lint, const Entry& e, const std::string& path, int64_t max_s,
                  int64_t& out) {
  std::string text;
  if (!ScalarText(lint, e.value, e.value_mark, path, e.key, "a duration such as 1s or 2m", text)) {
    return false;
  }
  absl::StatusOr<int64_t> s = ParseDurationSeconds(text);
  if (!s.ok()) {
    lint.Error(e.value_mark, path, std::string(s.status().message()));
    return false;
  }
  if (*s > max_s) {
    lint.Error(e.value_mark, path, absl::StrCat(e.key, " must be at most ", max_s, "s"));
    return false;
  }
  out = *s;
  return true;
}

constexpr FieldRule<HealthSpec> kHealthRules[] = {
    {"cmd", true,
     [](Linter& lint, const Entry& e, const std::string& path, HealthSpec& out) {
       if (!ScalarText(lint, e.value, e.value_mark, path, "cmd", "a string", out.cmd)) return;
       if (out.cmd.empty() || out.cmd.size() > kMaxServiceTextBytes) {
         lint.Error(e.value_mark, path,
                    absl::StrCat("cmd must be 1 to ", kMaxServiceTextBytes, " bytes"));
       }
     }},
    {"interval", false,
     [](Linter& lint, const Entry& e, const std::string& path, HealthSpec& out) {
       ParseSeconds(lint, e, path, 600, out.interval_s);
     }},
    {"timeout", false,
     [](Linter& lint, const Entry& e, const std::string& path, HealthSpec& out) {
       ParseSeconds(lint, e, path, 600, out.timeout_s);
     }},
    {"retries", false,
     [](Linter& lint, const Entry& e, const std::string& path, HealthSpec& out) {
       const std::string& s = e.value.Scalar();
       const bool number =
           Describe(e.value) == "a number" && !s.empty() && s.size() <= 4 &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
       const int value = number ? std::stoi(s) : 0;
       if (!number || value < 1 || value > 1000) {
         lint.Error(e.value_mark, path,
                    absl::StrCat("retries must be an integer from 1 to 1000, got ",
                                 Describe(e.value) == "a number" ? s : Describe(e.value)));
         return;
       }
       out.retries = value;
     }},
};

constexpr FieldRule<ServiceSpec> kServiceRules[] = {
    {"name", true,
     [](Linter& lint, const Entry& e, const std::string& path, ServiceSpec& out) {
       CheckedText(
           lint, e, path, "a string",
           [](const std::string& n) -> std::string {
             if (IsServiceName(n)) return "";
             return absl::StrCat("invalid service name '", n,
                                 "': a DNS label (a-z, 0-9 and '-', 1 to 63 bytes, not starting "
                                 "or ending with '-')");
           },
           out.name);
     }},
    {"image", true,
     [](Linter& lint, const Entry& e, const std::string& path, ServiceSpec& out) {
       ParseImageValue(lint, e, path, out.image);
     }},
    {"env", false,
     [](Linter& lint, const Entry& e, const std::string& path, ServiceSpec& out) {
       if (!e.value.IsMap()) {
         lint.Error(
             e.value_mark, path,
             absl::StrCat("env must be a mapping of names to values, got ", Describe(e.value)));
         return;
       }
       for (const Entry& var : MappingEntries(lint, e.value, path)) {
         const std::string var_path = Join(path, var.key);
         if (!IsVariableName(var.key)) {
           lint.Error(var.key_node.Mark(), var_path,
                      absl::StrCat("invalid environment variable name '", var.key,
                                   "': use letters, digits and '_', not starting with a digit"));
           continue;
         }
         if (out.env.size() == kMaxServiceEnv) {
           lint.Error(var.key_node.Mark(), var_path,
                      absl::StrCat("a service has at most ", kMaxServiceEnv, " variables"));
           return;
         }
         std::string value;
         if (ScalarText(lint, var.value, var.value_mark, var_path, "env values",
                        "strings, numbers or booleans", value)) {
           out.env.emplace_back(var.key, std::move(value));
         }
       }
     }},
    {"command", false,
     [](Linter& lint, const Entry& e, const std::string& path, ServiceSpec& out) {
       auto add = [&](const YAML::Node& n, const YAML::Mark& mark, const std::string& key) {
         std::string text;
         if (!ScalarText(lint, n, mark, key, "command entries", "strings", text)) return;
         if (text.size() > kMaxServiceTextBytes) {
           lint.Error(
               mark, key,
               absl::StrCat("command entries must be at most ", kMaxServiceTextBytes, " bytes"));
           return;
         }
         out.command.push_back(std::move(text));
       };
       if (e.value.IsScalar()) {
         add(e.value, e.value_mark, path);
         return;
       }
       if (!e.value.IsSequence() || e.value.size() == 0 ||
           e.value.size() > kMaxServiceCommandArgs) {
         lint.Error(e.value_mark, path,
                    absl::StrCat("command must be a string or a list of 1 to ",
                                 kMaxServiceCommandArgs, " strings, got ",
                                 e.value.IsSequence() ? absl::StrCat("a list of ", e.value.size())
                                                      : Describe(e.value)));
         return;
       }
       for (size_t i = 0; i < e.value.size(); ++i) {
         add(e.value[i], MarkOr(e.value[i], e.value.Mark()), Index(path, i));
       }
     }},
    {"health", false,
     [](Linter& lint, const Entry& e, const std::string& path, ServiceSpec& out) {
       if (!e.value.IsMap()) {
         lint.Error(e.value_mark, path,
                    absl::StrCat("health must be a mapping with 'cmd', got ", Describe(e.value)));
         return;
       }
       ParseFields<HealthSpec>(lint, e.value, path, e.key_node.Mark(), kHealthRules, out.health);
     }},
};

}  // namespace

void ParseImage(Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
  ImageSpec image;
  if (ParseImageValue(lint, e, path, image)) job.spec.image = std::move(image);
  job.image_seen = true;
  job.image_mark = e.value_mark;
}

void ParseServices(Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
  job.services_mark = e.key_node.Mark();
  job.services_seen = true;
  if (!e.value.IsSequence()) {
    lint.Error(e.value_mark, path,
               absl::StrCat("services must be a list of mappings, got ", Describe(e.value)));
    return;
  }
  if (e.value.size() > kMaxServices) {
    lint.Error(e.value_mark, path,
               absl::StrCat("a job has at most ", kMaxServices, " services, got ", e.value.size()));
    return;
  }
  for (size_t i = 0; i < e.value.size(); ++i) {
    const YAML::Node item = e.value[i];
    const std::string item_path = Index(path, i);
    const YAML::Mark mark = MarkOr(item, e.value.Mark());
    if (!item.IsMap()) {
      lint.Error(mark, item_path,
                 absl::StrCat("a service must be a mapping with 'name' and 'image', got ",
                              Describe(item)));
      continue;
    }
    ServiceSpec service;
    ParseFields<ServiceSpec>(lint, item, item_path, mark, kServiceRules, service);
    if (JobImageRef(service.image.name, nullptr)) {
      lint.Error(mark, Join(item_path, "image"),
                 absl::StrCat("'", service.image.name,
                              "' is allowed only in a job's image:, not in a service's"));
      continue;
    }
    const bool taken = std::any_of(job.spec.services.begin(), job.spec.services.end(),
                                   [&](const ServiceSpec& s) { return s.name == service.name; });
    if (taken && !service.name.empty()) {
      lint.Error(mark, Join(item_path, "name"),
                 absl::StrCat("service name '", service.name, "' is used twice"));
      continue;
    }
    job.spec.services.push_back(std::move(service));
  }
}

void CheckContainerKeys(Linter& lint, const std::string& job_path, const JobDraft& job) {
  if (job.services_seen && !job.image_seen) {
    lint.Error(job.services_mark, Join(job_path, "services"),
               "services need 'image': only a job that runs in a container has a network "
               "on which its services can be reached");
  }
  if (job.services_seen && job.spec.network == "none") {
    lint.Error(job.services_mark, Join(job_path, "services"),
               "services cannot be used with network: none (they are reached over the job's "
               "network)");
  }
}

}  // namespace assay::spec_internal
