#include <unistd.h>

#include <catch2/catch.hpp>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cli.h"

namespace assay::cli {
namespace {

// A fresh directory under the system temp dir, removed at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "assay-lint-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }

  std::string Write(const std::string& name, const std::string& content) const {
    const std::string file = (path_ / name).string();
    std::ofstream(file, std::ios::binary) << content;
    return file;
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

struct Result {
  int code;
  std::string out;
  std::string err;
};

Result RunCli(const std::vector<std::string>& args) {
  CliContext context;
  context.fetch = [](std::string_view, std::string_view, const HttpHeaders&,
                     std::string_view) -> absl::StatusOr<HttpClientResponse> {
    FAIL("lint must not use the network");
    return absl::InternalError("unreachable");
  };
  std::ostringstream out;
  std::ostringstream err;
  const int code = Run(args, out, err, context);
  return {code, out.str(), err.str()};
}

TEST_CASE("lint: a valid file prints ok and the job count, exit 0") {
  TempDir dir;
  const std::string file =
      dir.Write("p.yml", "jobs:\n  a: {steps: [x]}\n  b: {needs: a, steps: [y]}\n");
  Result result = RunCli({"lint", file});
  CHECK(result.code == 0);
  CHECK(result.out == file + ": ok (2 jobs)\n");
  CHECK(result.err.empty());

  const std::string single = dir.Write("one.yml", "jobs:\n  a: {steps: [x]}\n");
  CHECK(RunCli({"lint", single}).out == single + ": ok (1 job)\n");
}

// The project's own pipeline (its `images` job also runs in tests/e2e/images_test.cc).
TEST_CASE("lint: the project's own .assay.yml is valid") {
  const std::string file = std::string(ASSAY_SOURCE_DIR) + "/.assay.yml";
  Result result = RunCli({"lint", file});
  INFO(result.err);
  CHECK(result.code == 0);
  CHECK(result.out == file + ": ok (2 jobs)\n");
}

TEST_CASE("lint: each error on its own line, exit 1") {
  TempDir dir;
  const std::string file = dir.Write("p.yml",
                                     "jobs:\n"
                                     "  build:\n"
                                     "    needs: [tset]\n"
                                     "    timout: 10m\n"
                                     "    steps: []\n"
                                     "  test: {steps: [x]}\n");
  Result result = RunCli({"lint", file});
  CHECK(result.code == 1);
  CHECK(result.out ==
        file + ":3:13: jobs.build.needs[0]: needs unknown job 'tset' (did you mean 'test'?)\n" +
            file + ":4:5: jobs.build.timout: unknown key 'timout' (did you mean 'timeout'?)\n" +
            file + ":5:12: jobs.build.steps: steps must not be empty\n");
  CHECK(result.err.empty());
}

TEST_CASE("lint: a typo'd required key leads, before the missing key it causes") {
  TempDir dir;
  const std::string file = dir.Write("p.yml",
                                     "jobs:\n"
                                     "  build:\n"
                                     "    timeout: 10x\n"
                                     "    stepz:\n"
                                     "      - run: make\n");
  Result result = RunCli({"lint", file});
  CHECK(result.code == 1);
  CHECK(result.out ==
        file + ":4:5: jobs.build.stepz: unknown key 'stepz' (did you mean 'steps'?)\n" + file +
            ":2:3: jobs.build.steps: missing required key 'steps'\n" + file +
            ":3:14: jobs.build.timeout: invalid duration \"10x\": expected a number followed by "
            "s, m or h (e.g. 30s, 10m, 1h30m)\n");
  CHECK(result.err.empty());
}

TEST_CASE("lint: YAML syntax errors and empty files, exit 1") {
  TempDir dir;
  const std::string broken = dir.Write("broken.yml", "jobs:\n  a: {steps: [x}\n");
  Result result = RunCli({"lint", broken});
  CHECK(result.code == 1);
  CHECK(result.out == broken + ":2:16: invalid YAML: illegal flow end\n");

  const std::string empty = dir.Write("empty.yml", "");
  result = RunCli({"lint", empty});
  CHECK(result.code == 1);
  CHECK(result.out == empty + ":1:1: file is empty; expected a mapping with a 'jobs' key\n");
}

TEST_CASE("lint: an unreadable file is exit 2 with the reason") {
  TempDir dir;
  const std::string missing = (dir.path() / "nope.yml").string();
  Result result = RunCli({"lint", missing});
  CHECK(result.code == 2);
  CHECK(result.out.empty());
  CHECK(result.err == "assay: cannot read " + missing + ": No such file or directory\n");

  result = RunCli({"lint", dir.path().string()});
  CHECK(result.code == 2);
  CHECK(result.err == "assay: cannot read " + dir.path().string() + ": Is a directory\n");
}

TEST_CASE("lint: the default file is .assay.yml in the working directory") {
  TempDir dir;
  dir.Write(".assay.yml", "jobs:\n  a: {steps: [x]}\n");
  char previous[PATH_MAX];
  REQUIRE(getcwd(previous, sizeof previous) != nullptr);
  REQUIRE(chdir(dir.path().c_str()) == 0);
  Result result = RunCli({"lint"});
  Result with_global = RunCli({"--server", "http://x:1", "lint"});
  REQUIRE(chdir(previous) == 0);
  CHECK(result.code == 0);
  CHECK(result.out == ".assay.yml: ok (1 job)\n");
  CHECK(with_global.out == ".assay.yml: ok (1 job)\n");
}

TEST_CASE("lint: too many arguments is a usage error") {
  Result result = RunCli({"lint", "a.yml", "b.yml"});
  CHECK(result.code == 2);
  CHECK(result.out.empty());
  CHECK(result.err ==
        "assay: unexpected argument 'b.yml' for 'assay lint'\nRun 'assay --help' for usage.\n");
}

}  // namespace
}  // namespace assay::cli
