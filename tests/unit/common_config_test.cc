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

}  // namespace
}  // namespace assay
