#include "common/base/config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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

std::string Quoted(absl::string_view v) { return absl::StrCat("'", v, "'"); }

std::string DurationText(absl::Duration d) {
  return d == absl::ZeroDuration() ? "0s" : absl::FormatDuration(d);  // not Abseil's "0"
}

// "from 1s to 1h" or "of at least 1s".
std::string DurationRange(const ValueRule& r) {
  if (r.max_duration == absl::InfiniteDuration()) {
    return absl::StrCat("of at least ", DurationText(r.min_duration));
  }
  return absl::StrCat("from ", DurationText(r.min_duration), " to ", DurationText(r.max_duration));
}

// The secret option whose `--NAME-file` pseudo-option `name` is, or nullptr.
const OptionSpec* SecretForFileOption(const std::vector<OptionSpec>& specs,
                                      absl::string_view name) {
  if (!absl::ConsumeSuffix(&name, "-file")) return nullptr;
  const OptionSpec* spec = Find(specs, name);
  return spec != nullptr && spec->secret ? spec : nullptr;
}

std::string SecretAlternatives(const OptionSpec& s) {
  return absl::StrCat("set ", EnvNameFor(s.name), ", put '", s.name,
                      " = VALUE' in the --config file, or pass --", s.name,
                      "-file PATH (a file readable only by this user)");
}

bool IsPort(absl::string_view s) {
  int port = 0;
  return !s.empty() && s.size() <= 5 && absl::c_all_of(s, absl::ascii_isdigit) &&
         absl::SimpleAtoi(s, &port) && port <= 65535;
}

}  // namespace

ValueRule IntIn(int64_t min, int64_t max) {
  ValueRule r;
  r.kind = ValueRule::Kind::kInt;
  r.min_int = min;
  r.max_int = max;
  return r;
}

ValueRule NumberIn(double min, double max) {
  ValueRule r;
  r.kind = ValueRule::Kind::kNumber;
  r.min_number = min;
  r.max_number = max;
  return r;
}

ValueRule DurationIn(absl::Duration min, absl::Duration max) {
  ValueRule r;
  r.kind = ValueRule::Kind::kDuration;
  r.min_duration = min;
  r.max_duration = max;
  return r;
}

ValueRule OneOf(std::vector<std::string> values) {
  ValueRule r;
  r.kind = ValueRule::Kind::kOneOf;
  r.values = std::move(values);
  return r;
}

ValueRule HostPort() {
  ValueRule r;
  r.kind = ValueRule::Kind::kHostPort;
  return r;
}

ValueRule BoolValue() {
  ValueRule r;
  r.kind = ValueRule::Kind::kBool;
  return r;
}

std::string CheckValue(const ValueRule& rule, absl::string_view value) {
  const std::string got = absl::StrCat(", got ", Quoted(value));
  switch (rule.kind) {
    case ValueRule::Kind::kText: return "";
    case ValueRule::Kind::kInt: {
      int64_t v = 0;
      // Why not SimpleAtoi alone: it also takes surrounding spaces and a leading '+'.
      const bool digits = !value.empty() && absl::ascii_isdigit(value.back()) &&
                          (absl::ascii_isdigit(value.front()) || value.front() == '-');
      if (digits && absl::SimpleAtoi(value, &v) && v >= rule.min_int && v <= rule.max_int) {
        return "";
      }
      return absl::StrCat("must be an integer from ", rule.min_int, " to ", rule.max_int, got);
    }
    case ValueRule::Kind::kNumber: {
      double v = 0;
      // NaN fails both comparisons, so it is refused too.
      if (absl::SimpleAtod(value, &v) && v >= rule.min_number && v <= rule.max_number) {
        return "";
      }
      return absl::StrCat("must be a number from ", rule.min_number, " to ", rule.max_number, got);
    }
    case ValueRule::Kind::kDuration: {
      absl::Duration d;
      if (absl::ParseDuration(value, &d) && d != absl::InfiniteDuration() &&
          d >= rule.min_duration && d <= rule.max_duration) {
        return "";
      }
      return absl::StrCat("must be a duration ", DurationRange(rule), ", like 500ms, 30s or 5m",
                          got);
    }
    case ValueRule::Kind::kBool:
      for (const char* ok : {"true", "false", "1", "0", "yes", "no"}) {
        if (value == ok) return "";
      }
      return absl::StrCat("must be true or false", got);
    case ValueRule::Kind::kOneOf:
      for (const auto& v : rule.values) {
        if (value == v) return "";
      }
      return absl::StrCat("must be one of ", absl::StrJoin(rule.values, ", "), got);
    case ValueRule::Kind::kHostPort: {
      const size_t colon = value.rfind(':');
      if (colon != absl::string_view::npos && colon > 0 && IsPort(value.substr(colon + 1))) {
        absl::string_view host = value.substr(0, colon);
        const bool bracketed = host.front() == '[';
        if (bracketed ? host.size() > 2 && host.back() == ']'
                      : host.find_first_of("[]:/ ") == absl::string_view::npos) {
          return "";
        }
      }
      return absl::StrCat("must be HOST:PORT with a port from 0 to 65535", got);
    }
  }
  return "";
}

absl::StatusOr<std::string> LoadSecretFile(const std::string& path, absl::string_view what) {
  auto fail = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", why));
  };
  // Why O_NONBLOCK: a FIFO planted at the path must not hang the start; it is refused below.
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return fail(absl::StrCat("cannot open: ", strerror(errno)));
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  struct stat st;
  if (fstat(fd, &st) != 0) return fail(absl::StrCat("cannot stat: ", strerror(errno)));
  if (!S_ISREG(st.st_mode)) return fail("not a regular file");
  if ((st.st_mode & S_IRWXO) != 0) {
    char mode[8];
    snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return fail(absl::StrCat("is accessible by other users (mode ", mode,
                             "); run chmod o-rwx on it (600 is best)"));
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxSecretFileBytes) {
    return fail(absl::StrCat("is larger than ", kMaxSecretFileBytes, " bytes"));
  }
  std::string value;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(absl::StrCat("cannot read: ", strerror(errno)));
    if (n == 0) break;
    value.append(buf, static_cast<size_t>(n));
    // The file may grow after fstat.
    if (value.size() > kMaxSecretFileBytes) {
      return fail(absl::StrCat("is larger than ", kMaxSecretFileBytes, " bytes"));
    }
  }
  while (!value.empty() && absl::ascii_isspace(static_cast<unsigned char>(value.back()))) {
    value.pop_back();
  }
  if (value.empty()) return fail("is empty");
  if (value.find_first_of(std::string("\0\n\r", 3)) != std::string::npos) {
    return fail("holds more than one line (or a NUL byte)");
  }
  return value;
}

std::string EnvNameFor(absl::string_view option) {
  std::string out = "ASSAY_";
  for (char c : option) out += c == '-' ? '_' : absl::ascii_toupper(c);
  return out;
}

void UnsetSecretEnvironment(const std::vector<OptionSpec>& specs) {
  for (const auto& s : specs) {
    if (!s.secret) continue;
    unsetenv(EnvNameFor(s.name).c_str());
    unsetenv(EnvNameFor(absl::StrCat(s.name, "-file")).c_str());
  }
}

std::string Config::Usage(const std::vector<OptionSpec>& specs, absl::string_view program) {
  std::string out = absl::StrCat("usage: ", program, " [--OPTION VALUE]...\n\nOptions (also ",
                                 "ASSAY_<OPTION> in the environment, or OPTION = VALUE in the "
                                 "--config file):\n");
  for (const auto& s : specs) {
    if (s.secret) {
      absl::StrAppend(&out, "  --", s.name, "-file PATH\n      ", s.help,
                      s.required ? " (required)" : "", "; secret: ", EnvNameFor(s.name),
                      ", the config file or this file, never a flag\n");
      continue;
    }
    absl::StrAppend(
        &out, "  --", s.name, s.is_bool ? "" : " VALUE", "\n      ", s.help,
        s.required ? " (required)" : "",
        s.default_value.empty() ? "" : absl::StrCat(" [default: ", s.default_value, "]"), "\n");
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
    if (spec != nullptr && spec->secret) {
      // Why refuse rather than warn: by the time we could warn, the value has been in
      // /proc/PID/cmdline (and maybe a shell history) for every local user to read.
      return absl::InvalidArgumentError(absl::StrCat(
          "option --", name, " is secret and is not accepted on the command line ",
          "(any local user can read a process's arguments): ", SecretAlternatives(*spec)));
    }
    const OptionSpec* secret_file = SecretForFileOption(specs, name);
    if (name != "config" && spec == nullptr && secret_file == nullptr) {
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
  std::map<std::string, int> file_lines;  // option -> its line in the config file
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
      if (Find(specs, key) == nullptr && SecretForFileOption(specs, key) == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat(config_file, ":", lineno, ": unknown option '", key, "'"));
      }
      absl::string_view v = absl::StripAsciiWhitespace(l.substr(eq + 1));
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      file_values[key] = std::string(v);
      file_lines[key] = lineno;
    }
  }
  for (const auto& s : specs) {
    // For a secret: the path of the file holding it, and how that path was given.
    std::string secret_path, secret_what;
    const std::string file_option = absl::StrCat(s.name, "-file");
    if (auto it = flags.find(s.name); it != flags.end()) {
      cfg.values_[s.name] = it->second;
      cfg.sources_[s.name] = "flag";
    } else if (auto sf = flags.find(file_option); s.secret && sf != flags.end()) {
      secret_path = sf->second;
      secret_what = absl::StrCat("--", file_option, " ", sf->second);
    } else if (const char* e = std::getenv(EnvNameFor(s.name).c_str())) {
      cfg.values_[s.name] = e;
      cfg.sources_[s.name] = "env";
    } else if (const char* ef = std::getenv(EnvNameFor(file_option).c_str()); s.secret && ef) {
      secret_path = ef;
      secret_what = absl::StrCat(EnvNameFor(file_option), "=", ef);
    } else if (auto f = file_values.find(s.name); f != file_values.end()) {
      cfg.values_[s.name] = f->second;
      cfg.sources_[s.name] = "file";
    } else if (auto ff = file_values.find(file_option); s.secret && ff != file_values.end()) {
      secret_path = ff->second;
      secret_what = absl::StrCat(config_file, ":", file_lines[file_option], ": ", file_option, " ",
                                 ff->second);
    } else {
      cfg.values_[s.name] = s.default_value;
      cfg.sources_[s.name] = "default";
    }
    if (!secret_what.empty()) {
      absl::StatusOr<std::string> secret = LoadSecretFile(secret_path, secret_what);
      if (!secret.ok()) return secret.status();
      cfg.values_[s.name] = *std::move(secret);
      cfg.sources_[s.name] = "secret-file";
    }
    const std::string& value = cfg.values_[s.name];
    if (s.required && value.empty()) {
      if (s.secret) {
        return absl::InvalidArgumentError(
            absl::StrCat("option --", s.name, " is required: ", SecretAlternatives(s)));
      }
      return absl::InvalidArgumentError(
          absl::StrCat("option --", s.name, " is required (or set ", EnvNameFor(s.name), ")"));
    }
    if (value.empty() && s.default_value.empty()) continue;  // unset
    const std::string wrong = CheckValue(s.is_bool ? BoolValue() : s.rule, value);
    if (wrong.empty()) continue;
    const std::string& source = cfg.sources_[s.name];
    if (source == "env") {
      return absl::InvalidArgumentError(
          absl::StrCat(EnvNameFor(s.name), " (option --", s.name, ") ", wrong));
    }
    if (source == "file") {
      return absl::InvalidArgumentError(
          absl::StrCat(config_file, ":", file_lines[s.name], ": ", s.name, " ", wrong));
    }
    // A bad default is a bug in the program's option table; it reads the same as a flag.
    return absl::InvalidArgumentError(absl::StrCat("option --", s.name, " ", wrong));
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
