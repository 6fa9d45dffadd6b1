#pragma once
// Command-line configuration shared by assay-server and assay-agent.
// Every option NAME can be given as `--NAME VALUE` / `--NAME=VALUE`, as the environment
// variable ASSAY_<NAME> (upper case, '-' -> '_'), or as `NAME = VALUE` in the file named by
// --config / ASSAY_CONFIG. Precedence: flag, then environment, then file, then default.
//
// A secret option (OptionSpec::secret: tokens, credentials) is never taken from the command
// line, where every local user can read it in /proc/PID/cmdline: `--NAME VALUE` is refused
// with a message naming the alternatives. It is given as ASSAY_<NAME>, as `NAME = VALUE` in
// the config file, or as a path to a file holding the value: `--NAME-file PATH`,
// ASSAY_<NAME>_FILE or `NAME-file = PATH`. Such a file must be a regular file of at most
// kMaxSecretFileBytes, not readable or writable by others (group access is the operator's
// choice); its value is its text without trailing whitespace (a final newline) and must not
// be empty.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace assay {

// What an option's value must be. Config::Parse checks every value against its option's
// rule, whether it came from a flag, the environment or the config file, so that a bad
// value stops the program at start with the option's name and what it accepts, instead of
// wrapping around or silently becoming a default.
struct ValueRule {
  enum class Kind { kText, kInt, kNumber, kDuration, kBool, kOneOf, kHostPort };
  Kind kind = Kind::kText;                                 // kText: anything
  int64_t min_int = 0, max_int = 0;                        // kInt, inclusive
  double min_number = 0, max_number = 0;                   // kNumber, inclusive
  absl::Duration min_duration = absl::ZeroDuration();      // kDuration, inclusive; the max may
  absl::Duration max_duration = absl::InfiniteDuration();  // be infinite (no upper bound)
  std::vector<std::string> values;                         // kOneOf
};

ValueRule IntIn(int64_t min, int64_t max);
ValueRule NumberIn(double min, double max);
ValueRule DurationIn(absl::Duration min, absl::Duration max = absl::InfiniteDuration());
ValueRule OneOf(std::vector<std::string> values);
ValueRule HostPort();   // HOST:PORT, port 0-65535 ([v6]:PORT too)
ValueRule BoolValue();  // true, false, 1, 0, yes, no

// "" when `value` satisfies `rule`, else what is wrong, as the end of a sentence naming the
// option: "must be an integer from 1 to 4096, got '-1'".
std::string CheckValue(const ValueRule& rule, absl::string_view value);

struct OptionSpec {
  std::string name;           // "http-listen"
  std::string default_value;  // "" = unset
  std::string help;
  bool required = false;
  bool is_bool = false;  // `--name` alone means true; the rule is then BoolValue()
  ValueRule rule;        // checked unless the value is "" and so is the default
  bool secret = false;   // never from argv; also `--NAME-file PATH` (see above)
};

inline constexpr size_t kMaxSecretFileBytes = 64 * 1024;

// Reads a secret from `path` under the rules above. kInvalidArgument naming `what` (e.g.
// "--token-file /etc/assay/token") and what is wrong: not a regular file, readable by
// others, too large, empty, or unreadable.
absl::StatusOr<std::string> LoadSecretFile(const std::string& path, absl::string_view what);

class Config {
 public:
  // kInvalidArgument naming the flag, variable or file:line at fault: an unknown option, a
  // missing value, or a value its rule refuses, e.g.
  //   option --body-limit-mb must be an integer from 1 to 4096, got '-1'
  //   ASSAY_LOG_LEVEL (option --log-level) must be one of debug, info, warn, error, got 'x'
  //   /etc/assay.conf:3: lease must be a duration of at least 1s, like 500ms, 30s or 5m, ...
  // `--help` yields kCancelled whose message is the usage text.
  static absl::StatusOr<Config> Parse(int argc, const char* const* argv,
                                      const std::vector<OptionSpec>& specs,
                                      absl::string_view program);
  static std::string Usage(const std::vector<OptionSpec>& specs, absl::string_view program);

  const std::string& Get(const std::string& name) const;  // "" when unset
  absl::StatusOr<int64_t> GetInt(const std::string& name) const;
  absl::StatusOr<absl::Duration> GetDuration(const std::string& name) const;
  bool GetBool(const std::string& name) const;
  std::vector<std::string> GetList(const std::string& name) const;  // comma-separated
  // Where each value came from ("flag", "env", "file", "default", "secret-file"), for
  // --print-config.
  const std::map<std::string, std::string>& sources() const { return sources_; }

 private:
  std::map<std::string, std::string> values_;
  std::map<std::string, std::string> sources_;
};

std::string EnvNameFor(absl::string_view option);  // "http-listen" -> "ASSAY_HTTP_LISTEN"

// Removes ASSAY_<NAME> and ASSAY_<NAME>_FILE of every secret option from this process's
// environment, so that no child (git, a hook, a job step) inherits them. Call after
// Config::Parse and before any thread starts (unsetenv is not thread-safe).
void UnsetSecretEnvironment(const std::vector<OptionSpec>& specs);

}  // namespace assay
