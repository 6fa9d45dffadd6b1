#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "common/base/config.h"

namespace assay {
namespace {

const std::vector<OptionSpec> kSpecs = {
    {"http-listen", "127.0.0.1:8080", "HTTP address"},
    {"database-url", "", "PostgreSQL", true},
    {"lease", "30s", "lease"},
    {"verbose", "", "more output", false, true},
};

absl::StatusOr<Config> ParseArgs(std::vector<const char*> args) {
  args.insert(args.begin(), "prog");
  return Config::Parse(static_cast<int>(args.size()), args.data(), kSpecs, "prog");
}

std::string TempFile(const std::string& text) {
  char tmpl[] = "/tmp/assay-config-XXXXXX";
  int fd = mkstemp(tmpl);
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(tmpl) << text;
  return tmpl;
}

TEST_CASE("config: flag beats environment beats file beats default", "[config]") {
  std::string file = TempFile("# comment\nhttp-listen = 0.0.0.0:1\ndatabase-url = \"file-dsn\"\n");
  setenv("ASSAY_DATABASE_URL", "env-dsn", 1);
  auto c = ParseArgs({"--config", file.c_str(), "--lease=5s"});
  REQUIRE(c.ok());
  CHECK(c->Get("http-listen") == "0.0.0.0:1");
  CHECK(c->sources().at("http-listen") == "file");
  CHECK(c->Get("database-url") == "env-dsn");
  CHECK(c->sources().at("database-url") == "env");
  CHECK(c->Get("lease") == "5s");
  CHECK(*c->GetDuration("lease") == absl::Seconds(5));
  CHECK(!c->GetBool("verbose"));
  auto flag = ParseArgs({"--config", file.c_str(), "--database-url", "flag-dsn", "--verbose"});
  REQUIRE(flag.ok());
  CHECK(flag->Get("database-url") == "flag-dsn");
  CHECK(flag->GetBool("verbose"));
  unsetenv("ASSAY_DATABASE_URL");
  unlink(file.c_str());
}

TEST_CASE("config: errors name the flag, variable or file line", "[config]") {
  unsetenv("ASSAY_DATABASE_URL");
  auto missing = ParseArgs({});
  CHECK(missing.status().message() ==
        "option --database-url is required (or set ASSAY_DATABASE_URL)");
  auto unknown = ParseArgs({"--database-url", "x", "--nope", "1"});
  CHECK(unknown.status().message() == "unknown option --nope (see --help)");
  auto no_value = ParseArgs({"--database-url"});
  CHECK(no_value.status().message() == "option --database-url needs a value");
  std::string bad = TempFile("database-url = x\nlisten 1\n");
  auto bad_file = ParseArgs({"--config", bad.c_str()});
  CHECK(bad_file.status().message() == bad + ":2: expected 'name = value'");
  std::string unknown_key = TempFile("database-url = x\n\ntypo = 1\n");
  auto bad_key = ParseArgs({"--config", unknown_key.c_str()});
  CHECK(bad_key.status().message() == unknown_key + ":3: unknown option 'typo'");
  auto bad_duration = ParseArgs({"--database-url", "x", "--lease", "soon"});
  REQUIRE(bad_duration.ok());
  CHECK(bad_duration->GetDuration("lease").status().message() ==
        "option --lease: 'soon' is not a duration like 500ms, 30s or 5m");
  auto help = ParseArgs({"--help"});
  CHECK(help.status().code() == absl::StatusCode::kCancelled);
  unlink(bad.c_str());
  unlink(unknown_key.c_str());
}

// A server-like table with a rule of every kind.
const std::vector<OptionSpec> kChecked = {
    {"listen", "127.0.0.1:8080", "address", false, false, HostPort()},
    {"body-limit-mb", "25", "MiB", false, false, IntIn(1, 4096)},
    {"memory-gb", "", "GB", false, false, NumberIn(0, 100000)},
    {"lease", "25s", "lease", false, false, DurationIn(absl::Seconds(1), absl::Hours(24))},
    {"grace", "5s", "grace", false, false, DurationIn(absl::ZeroDuration())},
    {"log-level", "info", "level", false, false, OneOf({"debug", "info", "warn", "error"})},
    {"print", "", "print and exit", false, true},
};

// Parse's error message for `args` (with ASSAY_* variables as the caller left them); "ok"
// when it parses.
std::string Checked(std::vector<const char*> args) {
  args.insert(args.begin(), "prog");
  auto c = Config::Parse(static_cast<int>(args.size()), args.data(), kChecked, "prog");
  return c.ok() ? "ok" : std::string(c.status().message());
}

TEST_CASE("config: every value is checked against its option's rule, for each source", "[config]") {
  // Defaults pass, and so do values at both ends of each range.
  CHECK(Checked({}) == "ok");
  CHECK(Checked({"--body-limit-mb", "1", "--lease", "1s", "--grace", "0", "--memory-gb", "0",
                 "--listen", "[::1]:0", "--log-level", "error", "--print"}) == "ok");
  CHECK(Checked({"--body-limit-mb=4096", "--lease=24h", "--memory-gb=100000", "--print=no"}) ==
        "ok");

  // Integers: negative (which used to wrap around as a size), zero where not allowed, out of
  // range, not a number.
  CHECK(Checked({"--body-limit-mb", "-1"}) ==
        "option --body-limit-mb must be an integer from 1 to 4096, got '-1'");
  CHECK(Checked({"--body-limit-mb", "0"}) ==
        "option --body-limit-mb must be an integer from 1 to 4096, got '0'");
  CHECK(Checked({"--body-limit-mb", "4097"}) ==
        "option --body-limit-mb must be an integer from 1 to 4096, got '4097'");
  CHECK(Checked({"--body-limit-mb", "25MB"}) ==
        "option --body-limit-mb must be an integer from 1 to 4096, got '25MB'");
  CHECK(Checked({"--body-limit-mb", " 25"}) ==
        "option --body-limit-mb must be an integer from 1 to 4096, got ' 25'");
  CHECK(Checked({"--body-limit-mb", ""}) ==
        "option --body-limit-mb must be an integer from 1 to 4096, got ''");
  // Numbers.
  CHECK(Checked({"--memory-gb", "-0.5"}) ==
        "option --memory-gb must be a number from 0 to 100000, got '-0.5'");
  CHECK(Checked({"--memory-gb", "nan"}) ==
        "option --memory-gb must be a number from 0 to 100000, got 'nan'");
  CHECK(Checked({"--memory-gb", "lots"}) ==
        "option --memory-gb must be a number from 0 to 100000, got 'lots'");
  // Durations: not a duration, negative, zero where not allowed, too long.
  CHECK(Checked({"--lease", "soon"}) ==
        "option --lease must be a duration from 1s to 24h, like 500ms, 30s or 5m, got 'soon'");
  CHECK(Checked({"--lease", "30"}) ==
        "option --lease must be a duration from 1s to 24h, like 500ms, 30s or 5m, got '30'");
  CHECK(Checked({"--lease", "0s"}) ==
        "option --lease must be a duration from 1s to 24h, like 500ms, 30s or 5m, got '0s'");
  CHECK(Checked({"--lease", "25h"}) ==
        "option --lease must be a duration from 1s to 24h, like 500ms, 30s or 5m, got '25h'");
  CHECK(Checked({"--grace", "-5s"}) ==
        "option --grace must be a duration of at least 0s, like 500ms, 30s or 5m, got '-5s'");
  CHECK(Checked({"--grace", "inf"}) ==
        "option --grace must be a duration of at least 0s, like 500ms, 30s or 5m, got 'inf'");
  // Enumerations, which used to fall back to a default silently.
  CHECK(Checked({"--log-level", "verbose"}) ==
        "option --log-level must be one of debug, info, warn, error, got 'verbose'");
  CHECK(Checked({"--log-level", "INFO"}) ==
        "option --log-level must be one of debug, info, warn, error, got 'INFO'");
  // Booleans and addresses.
  CHECK(Checked({"--print=maybe"}) == "option --print must be true or false, got 'maybe'");
  CHECK(Checked({"--listen", "8080"}) ==
        "option --listen must be HOST:PORT with a port from 0 to 65535, got '8080'");
  CHECK(Checked({"--listen", "h:65536"}) ==
        "option --listen must be HOST:PORT with a port from 0 to 65535, got 'h:65536'");
  CHECK(Checked({"--listen", "http://h:1"}) ==
        "option --listen must be HOST:PORT with a port from 0 to 65535, got 'http://h:1'");

  // The environment: the variable is named, with its option.
  setenv("ASSAY_BODY_LIMIT_MB", "-1", 1);
  CHECK(Checked({}) ==
        "ASSAY_BODY_LIMIT_MB (option --body-limit-mb) must be an integer from 1 to 4096, "
        "got '-1'");
  CHECK(Checked({"--body-limit-mb", "2"}) == "ok");  // a flag overrides it
  unsetenv("ASSAY_BODY_LIMIT_MB");
  setenv("ASSAY_LOG_LEVEL", "loud", 1);
  CHECK(Checked({}) ==
        "ASSAY_LOG_LEVEL (option --log-level) must be one of debug, info, warn, error, "
        "got 'loud'");
  unsetenv("ASSAY_LOG_LEVEL");

  // The config file: its name and line.
  std::string file = TempFile("# limits\nbody-limit-mb = 2\n\nlease = \"0s\"\n");
  CHECK(Checked({"--config", file.c_str()}) ==
        file + ":4: lease must be a duration from 1s to 24h, like 500ms, 30s or 5m, got '0s'");
  CHECK(Checked({"--config", file.c_str(), "--lease", "2s"}) == "ok");
  unlink(file.c_str());
}

}  // namespace
}  // namespace assay
