#pragma once
// Command-line configuration shared by assay-server and assay-agent.
// Every option NAME can be given as `--NAME VALUE` / `--NAME=VALUE`, as the environment
// variable ASSAY_<NAME> (upper case, '-' -> '_'), or as `NAME = VALUE` in the file named by
// --config / ASSAY_CONFIG. Precedence: flag, then environment, then file, then default.

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace assay {

struct OptionSpec {
  std::string name;           // "http-listen"
  std::string default_value;  // "" = unset
  std::string help;
  bool required = false;
  bool is_bool = false;       // `--name` alone means true
};

class Config {
 public:
  // kInvalidArgument naming the flag, variable or file:line at fault. `--help` yields
  // kCancelled whose message is the usage text.
  static absl::StatusOr<Config> Parse(int argc, const char* const* argv,
                                      const std::vector<OptionSpec>& specs,
                                      absl::string_view program);
  static std::string Usage(const std::vector<OptionSpec>& specs, absl::string_view program);

  const std::string& Get(const std::string& name) const;  // "" when unset
  absl::StatusOr<int64_t> GetInt(const std::string& name) const;
  absl::StatusOr<absl::Duration> GetDuration(const std::string& name) const;
  bool GetBool(const std::string& name) const;
  std::vector<std::string> GetList(const std::string& name) const;  // comma-separated
  // Where each value came from ("flag", "env", "file", "default"), for --print-config.
  const std::map<std::string, std::string>& sources() const { return sources_; }

 private:
  std::map<std::string, std::string> values_;
  std::map<std::string, std::string> sources_;
};

std::string EnvNameFor(absl::string_view option);  // "http-listen" -> "ASSAY_HTTP_LISTEN"

}  // namespace assay
