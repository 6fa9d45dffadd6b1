// JobSecrets (agent/job_secrets.h): environment variables, 0400 files in a 0500 directory,
// withheld notices, masking of what the job prints, refusal of bad names and values, removal.

#include "agent/job_secrets.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace assay {
namespace {

using Env = std::vector<std::pair<std::string, std::string>>;

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/assay-job-secrets-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

v1::JobSecret Secret(std::string name, std::string value, bool as_file = false,
                     std::string withheld = "") {
  v1::JobSecret s;
  s.set_name(std::move(name));
  s.set_value(std::move(value));
  s.set_as_file(as_file);
  s.set_withheld(std::move(withheld));
  return s;
}

TEST_CASE("job secrets: env, files, notices, masking and removal", "[unit][secrets]") {
  TempDir tmp;
  const std::string dir = tmp.path + "/job-1-1.secrets";
  v1::Assignment a;
  *a.add_secrets() = Secret("API_KEY", "api-key-value");
  *a.add_secrets() = Secret("CERT", "cert\nbody", true);
  *a.add_secrets() = Secret("FORK", "", false, "untrusted");
  std::string log;
  JobLogFn fn = [&](std::string_view s) { log.append(s); };
  Env env = {{"CI", "true"}};
  {
    JobSecrets js;
    REQUIRE(js.Prepare(a, dir, nullptr, &env, fn).ok());
    CHECK(env == Env{{"CI", "true"}, {"API_KEY", "api-key-value"}, {"CERT_FILE", dir + "/CERT"}});
    CHECK(log == "assay: secret FORK withheld: untrusted\n");
    struct stat st {};
    REQUIRE(stat((dir + "/CERT").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0400);
    REQUIRE(stat(dir.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0500);
    std::ifstream f(dir + "/CERT");
    std::stringstream ss;
    ss << f.rdbuf();
    CHECK(ss.str() == "cert\nbody");
    log.clear();
    js.Output("x api-key-", fn);
    js.Output("value y cert\nbody\n", fn);
    js.Flush(fn);
    CHECK(log == "x *** y ***\n");
  }
  CHECK(!std::filesystem::exists(dir));  // removed by the destructor

  // What an agent that died left behind is removed at the next start; workspaces are not.
  std::filesystem::create_directories(tmp.path + "/job-2-1.secrets");
  std::filesystem::create_directories(tmp.path + "/job-2-1");
  { std::ofstream(tmp.path + "/job-2-1.secrets/KEY") << "value"; }
  chmod((tmp.path + "/job-2-1.secrets").c_str(), 0500);
  CHECK(JobSecrets::RemoveStale(tmp.path) == 1);
  CHECK(!std::filesystem::exists(tmp.path + "/job-2-1.secrets"));
  CHECK(std::filesystem::exists(tmp.path + "/job-2-1"));
}

TEST_CASE("job secrets: bad names and values are refused, nothing is left", "[unit][secrets]") {
  TempDir tmp;
  const std::string dir = tmp.path + "/s";
  JobLogFn fn = [](std::string_view) {};
  for (const v1::JobSecret& bad :
       {Secret("A=B", "value"), Secret(std::string("A\0B", 3), "value"), Secret("PATH", "value"),
        Secret("OK", "abc"), Secret("OK", std::string("ab\0cd", 5)),
        Secret("OK", std::string(64 * 1024 + 1, 'x'))}) {
    v1::Assignment a;
    *a.add_secrets() = Secret("GOOD", "good-value", true);
    *a.add_secrets() = bad;
    Env env;
    JobSecrets js;
    absl::Status s = js.Prepare(a, dir, nullptr, &env, fn);
    INFO(s.ToString());
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    CHECK(!std::filesystem::exists(dir));
  }
  v1::Assignment many;
  for (int i = 0; i < 101; ++i) *many.add_secrets() = Secret("S" + std::to_string(i), "value");
  Env env;
  JobSecrets js;
  CHECK(js.Prepare(many, dir, nullptr, &env, fn).message() ==
        "secrets: the assignment holds 101, more than the limit of 100");
}

}  // namespace
}  // namespace assay
