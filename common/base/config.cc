#include "common/base/config.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace assay {
namespace {

const OptionSpec* Find(const std::vector<OptionSpec>& specs, absl::string_view name) {
  for (const auto& s : specs) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

}  // namespace

std::string EnvNameFor(absl::string_view option) {
  std::string out = "ASSAY_";
  for (char c : option) out += c == '-' ? '_' : absl::ascii_toupper(c);
  return out;
}

std::string Config::Usage(const std::vector<OptionSpec>& specs, absl::string_view program) {
  std::string out = absl::StrCat("usage: ", program, " [--OPTION VALUE]...\n\nOptions (also ",
                                 "ASSAY_<OPTION> in the environment, or OPTION = VALUE in the "
                                 "--config file):\n");
  for (const auto& s : specs) {
    absl::StrAppend(&out, "  --", s.name, s.is_bool ? "" : " VALUE", "\n      ", s.help,
                    s.required ? " (required)" : "",
                    s.default_value.empty() ? "" : absl::StrCat(" [default: ", s.default_value, "]"),
                    "\n");
  }
  absl::StrAppend(&out, "  --config FILE\n      read options from FILE\n");
  return out;
}

absl::StatusOr<Config> Config::Parse(int argc, const char* const* argv,
                                     const std::vector<OptionSpec>& specs,
                                     absl::string_view program) {
  Config cfg;
  std::map<std::string, std::string> flags;
  std::string config_file;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      return absl::CancelledError(Usage(specs, program));
    }
    if (!absl::ConsumePrefix(&arg, "--")) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
    }
    std::string name(arg), value;
    bool has_value = false;
    if (auto eq = arg.find('='); eq != absl::string_view::npos) {
      name = std::string(arg.substr(0, eq));
      value = std::string(arg.substr(eq + 1));
      has_value = true;
    }
    const OptionSpec* spec = Find(specs, name);
    if (name != "config" && spec == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown option --", name, " (see --help)"));
    }
    if (!has_value) {
      if (spec != nullptr && spec->is_bool) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("option --", name, " needs a value"));
      }
    }
    if (name == "config") {
      config_file = value;
    } else {
      flags[name] = value;
    }
  }
  if (config_file.empty()) {
    if (const char* e = std::getenv("ASSAY_CONFIG")) config_file = e;
  }
  std::map<std::string, std::string> file_values;
  if (!config_file.empty()) {
    std::ifstream in(config_file);
    if (!in) {
      return absl::InvalidArgumentError(absl::StrCat("cannot read config file ", config_file));
    }
    std::string line;
    int lineno = 0;
    while (std::getline(in, line)) {
      ++lineno;
      absl::string_view l = absl::StripAsciiWhitespace(line);
      if (l.empty() || l[0] == '#') continue;
      auto eq = l.find('=');
      if (eq == absl::string_view::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat(config_file, ":", lineno, ": expected 'name = value'"));
      }
      std::string key(absl::StripAsciiWhitespace(l.substr(0, eq)));
      if (Find(specs, key) == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat(config_file, ":", lineno, ": unknown option '", key, "'"));
      }
      absl::string_view v = absl::StripAsciiWhitespace(l.substr(eq + 1));
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      file_values[key] = std::string(v);
    }
  }
  for (const auto& s : specs) {
    if (auto it = flags.find(s.name); it != flags.end()) {
      cfg.values_[s.name] = it->second;
      cfg.sources_[s.name] = "flag";
    } else if (const char* e = std::getenv(EnvNameFor(s.name).c_str())) {
      cfg.values_[s.name] = e;
      cfg.sources_[s.name] = "env";
    } else if (auto f = file_values.find(s.name); f != file_values.end()) {
      cfg.values_[s.name] = f->second;
      cfg.sources_[s.name] = "file";
    } else {
      cfg.values_[s.name] = s.default_value;
      cfg.sources_[s.name] = "default";
    }
    if (s.required && cfg.values_[s.name].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("option --", s.name, " is required (or set ",
                                                     EnvNameFor(s.name), ")"));
    }
  }
  return cfg;
}

const std::string& Config::Get(const std::string& name) const {
  static const std::string kEmpty;
  auto it = values_.find(name);
  return it == values_.end() ? kEmpty : it->second;
}

absl::StatusOr<int64_t> Config::GetInt(const std::string& name) const {
  int64_t v = 0;
  if (!absl::SimpleAtoi(Get(name), &v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("option --", name, ": '", Get(name), "' is not an integer"));
  }
  return v;
}

absl::StatusOr<absl::Duration> Config::GetDuration(const std::string& name) const {
  absl::Duration d;
  if (!absl::ParseDuration(Get(name), &d) || d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("option --", name, ": '", Get(name),
                                                   "' is not a duration like 500ms, 30s or 5m"));
  }
  return d;
}

bool Config::GetBool(const std::string& name) const {
  const std::string& v = Get(name);
  return v == "true" || v == "1" || v == "yes";
}

std::vector<std::string> Config::GetList(const std::string& name) const {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(Get(name), ',', absl::SkipWhitespace())) {
    out.emplace_back(absl::StripAsciiWhitespace(part));
  }
  return out;
}

}  // namespace assay
