// End to end: `assay login` signs in with a password from stdin, makes a write-scoped API token
// with that session (which then ends), saves it 0600 under the config dir, and later commands
// use it; `--json` prints the API's answer instead of a table.

#include <sys/stat.h>

#include <boost/json.hpp>

#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "common/proc/subprocess.h"
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

TEST_CASE("cli: login saves a token that later commands use, and --json prints the API's answer",
          "[e2e][cli]") {
  Cluster c(Options({"--password-cost", "10"}));
  MUST(c.StartServer());
  MakeRepo(c);
  MUST(c.Api("POST", "/api/v1/users",
             R"({"username":"alice","password":"pw-alice-123","role":"maintainer"})"));
  const std::string home = c.dir() + "/home";
  const std::string token_file = home + "/.config/assay/token";
  // Only what the CLI needs: no ASSAY_TOKEN from this process's environment.
  const std::vector<std::string> env = {"PATH=/usr/bin:/bin", "HOME=" + home,
                                        "ASSAY_SERVER=" + c.http_url(), "USER=alice"};
  const std::string assay = std::string(ASSAY_BINARY_DIR) + "/cli/assay";
  auto run = [&](std::vector<std::string> args, const std::string& stdin_data = "") {
    args.insert(args.begin(), assay);
    return MUST(RunCommandInEnvironment(args, c.dir(), env, stdin_data, absl::Seconds(60)));
  };
  // A wrong password: refused, nothing saved.
  CommandResult wrong = run({"login"}, "not-the-password\n");
  CHECK(wrong.exit_code == 1);
  CHECK(wrong.err == "assay: login refused (401): wrong username or password\n");
  struct stat st {};
  CHECK(::stat(token_file.c_str(), &st) != 0);
  CHECK(run({"login"}).err ==
        "assay: login reads the password from stdin (one line); none was given\n");

  CommandResult ok = run({"login"}, "pw-alice-123\n");
  INFO(ok.err);
  REQUIRE(ok.exit_code == 0);
  CHECK(absl::StartsWith(ok.out, "logged in to " + c.http_url() + " as alice; token saved to " +
                                     token_file + " (expires "));
  REQUIRE(::stat(token_file.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(::stat((home + "/.config/assay").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  std::string token;
  std::getline(std::ifstream(token_file), token);
  CHECK(token.size() == 74);
  CHECK(absl::StartsWith(token, "assay_pat_"));
  // The token is alice's, write-scoped; the session used to make it has ended.
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM api_tokens t JOIN users u ON u.id = t.user_id "
                        "WHERE u.username = 'alice' AND t.scope = 'write'")) == 1);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM sessions")) == 0);

  // Later commands use it; --json prints the answer as the API gave it.
  CommandResult repos = run({"repo", "list", "--json"});
  INFO(repos.err);
  REQUIRE(repos.exit_code == 0);
  boost::json::value v = boost::json::parse(repos.out);
  CHECK(v.at("repos").as_array().size() == 1);
  CommandResult pipelines = run({"--json", "pipelines"});
  REQUIRE(pipelines.exit_code == 0);
  CHECK(pipelines.out == "{\"pipelines\":[],\"next_cursor\":null}\n");
  CHECK(run({"pipelines"}).out == "no pipelines\n");
  CHECK(run({"lint", "--json"}).exit_code == 2);
  // A token file others can read is refused, as ASSAY_TOKEN_FILE's would be.
  ::chmod(token_file.c_str(), 0644);
  CommandResult loose = run({"pipelines"});
  CHECK(loose.exit_code == 2);
  CHECK(absl::StrContains(loose.err, token_file));
}

}  // namespace
}  // namespace assay::e2e
