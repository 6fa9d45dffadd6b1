#include <stdlib.h>
#include <sys/stat.h>
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

// --- secret options (issue 8, item 1) -------------------------------------------------------

const std::vector<OptionSpec> kSecretSpecs = {
    {"name", "", "a name"},
    {"token", "", "a token", true, false, {}, /*secret=*/true},
};

absl::StatusOr<Config> ParseSecret(std::vector<const char*> args) {
  args.insert(args.begin(), "prog");
  return Config::Parse(static_cast<int>(args.size()), args.data(), kSecretSpecs, "prog");
}

std::string SecretFile(const std::string& text, mode_t mode) {
  std::string path = TempFile(text);
  REQUIRE(chmod(path.c_str(), mode) == 0);
  return path;
}

TEST_CASE("config: a secret is refused on the command line, with the alternatives", "[config]") {
  unsetenv("ASSAY_TOKEN");
  unsetenv("ASSAY_TOKEN_FILE");
  const std::string refused =
      "option --token is secret and is not accepted on the command line (any local user can "
      "read a process's arguments): set ASSAY_TOKEN, put 'token = VALUE' in the --config file, "
      "or pass --token-file PATH (a file readable only by this user)";
  CHECK(ParseSecret({"--token", "abc"}).status().message() == refused);
  CHECK(ParseSecret({"--token=abc"}).status().message() == refused);
  // Even with the value also in the environment: the flag is the mistake.
  setenv("ASSAY_TOKEN", "from-env", 1);
  CHECK(ParseSecret({"--token", "abc"}).status().message() == refused);
  auto env = ParseSecret({});
  REQUIRE(env.ok());
  CHECK(env->Get("token") == "from-env");
  CHECK(env->sources().at("token") == "env");
  unsetenv("ASSAY_TOKEN");
  CHECK(ParseSecret({}).status().message() ==
        "option --token is required: set ASSAY_TOKEN, put 'token = VALUE' in the --config file, "
        "or pass --token-file PATH (a file readable only by this user)");
  // Not a secret: still a flag.
  const std::string usage = Config::Usage(kSecretSpecs, "prog");
  CHECK(usage.find("--token-file PATH") != std::string::npos);
  CHECK(usage.find("--token VALUE") == std::string::npos);
}

TEST_CASE("config: --NAME-file, ASSAY_NAME_FILE and NAME-file read a secret from a file",
          "[config]") {
  unsetenv("ASSAY_TOKEN");
  unsetenv("ASSAY_TOKEN_FILE");
  std::string path = SecretFile("s3cr3t\n", 0600);
  auto flag = ParseSecret({"--token-file", path.c_str()});
  REQUIRE(flag.ok());
  CHECK(flag->Get("token") == "s3cr3t");
  CHECK(flag->sources().at("token") == "secret-file");
  setenv("ASSAY_TOKEN_FILE", path.c_str(), 1);
  auto env = ParseSecret({});
  REQUIRE(env.ok());
  CHECK(env->Get("token") == "s3cr3t");
  // UnsetSecretEnvironment leaves nothing for children to inherit.
  setenv("ASSAY_TOKEN", "x", 1);
  UnsetSecretEnvironment(kSecretSpecs);
  CHECK(getenv("ASSAY_TOKEN") == nullptr);
  CHECK(getenv("ASSAY_TOKEN_FILE") == nullptr);
  std::string conf = TempFile("token-file = " + path + "\n");
  auto file = ParseSecret({"--config", conf.c_str()});
  REQUIRE(file.ok());
  CHECK(file->Get("token") == "s3cr3t");
  // A group-readable file is the operator's choice.
  REQUIRE(chmod(path.c_str(), 0640) == 0);
  CHECK(ParseSecret({"--token-file", path.c_str()}).ok());
  // --name-file is not an option: name is not secret.
  CHECK(
      ParseSecret({"--token-file", path.c_str(), "--name-file", path.c_str()}).status().message() ==
      "unknown option --name-file (see --help)");
  unlink(conf.c_str());
  unlink(path.c_str());
}

TEST_CASE("config: hostile secret files are refused with what is wrong", "[config]") {
  unsetenv("ASSAY_TOKEN");
  unsetenv("ASSAY_TOKEN_FILE");
  auto message = [](const std::string& path) {
    return std::string(ParseSecret({"--token-file", path.c_str()}).status().message());
  };
  const std::string open = SecretFile("tok\n", 0644);
  CHECK(message(open) == "--token-file " + open +
                             ": is accessible by other users (mode 0644); run chmod o-rwx on it "
                             "(600 is best)");
  const std::string writable = SecretFile("tok\n", 0602);
  CHECK(message(writable) == "--token-file " + writable +
                                 ": is accessible by other users (mode 0602); run chmod o-rwx on "
                                 "it (600 is best)");
  const std::string huge = SecretFile(std::string(kMaxSecretFileBytes + 1, 'a'), 0600);
  CHECK(message(huge) == "--token-file " + huge + ": is larger than 65536 bytes");
  const std::string empty = SecretFile("\n \n", 0600);
  CHECK(message(empty) == "--token-file " + empty + ": is empty");
  const std::string two = SecretFile("a\nb\n", 0600);
  CHECK(message(two) == "--token-file " + two + ": holds more than one line (or a NUL byte)");
  const std::string nul = SecretFile(std::string("a\0b", 3), 0600);
  CHECK(message(nul) == "--token-file " + nul + ": holds more than one line (or a NUL byte)");
  CHECK(message("/nonexistent/token") ==
        "--token-file /nonexistent/token: cannot open: No such file or directory");
  CHECK(message("/tmp") == "--token-file /tmp: not a regular file");
  char fifo[] = "/tmp/assay-fifo-XXXXXX";
  REQUIRE(mkdtemp(fifo) != nullptr);
  const std::string fifo_path = std::string(fifo) + "/f";
  REQUIRE(mkfifo(fifo_path.c_str(), 0600) == 0);
  CHECK(message(fifo_path) == "--token-file " + fifo_path + ": not a regular file");  // no hang
  setenv("ASSAY_TOKEN_FILE", open.c_str(), 1);
  CHECK(std::string(ParseSecret({}).status().message()) ==
        "ASSAY_TOKEN_FILE=" + open +
            ": is accessible by other users (mode 0644); run chmod o-rwx on it (600 is best)");
  unsetenv("ASSAY_TOKEN_FILE");
  for (const std::string& p : {open, writable, huge, empty, two, nul, fifo_path}) unlink(p.c_str());
  rmdir(fifo);
}

}  // namespace
}  // namespace assay
