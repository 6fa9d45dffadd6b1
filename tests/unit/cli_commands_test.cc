#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <deque>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "cli/cli.h"

namespace assay::cli {
namespace {

struct Request {
  std::string method;
  std::string url;
  HttpHeaders headers;
  std::string body;
};

// Records every request and answers each with the next of `queued`, else `response` (or
// `failure` when set).
struct FakeServer {
  std::vector<Request> requests;
  HttpClientResponse response{200, "{}", {}};
  std::deque<HttpClientResponse> queued;
  absl::Status failure;

  CliContext Context() {
    CliContext context;
    context.default_server = "http://127.0.0.1:9";
    context.fetch = [this](std::string_view method, std::string_view url,
                           const HttpHeaders& headers,
                           std::string_view body) -> absl::StatusOr<HttpClientResponse> {
      requests.push_back({std::string(method), std::string(url), headers, std::string(body)});
      if (!failure.ok()) return failure;
      if (!queued.empty()) {
        HttpClientResponse next = queued.front();
        queued.pop_front();
        return next;
      }
      return response;
    };
    return context;
  }
};

struct Result {
  int code;
  std::string out;
  std::string err;
};

Result RunCli(FakeServer& server, const std::vector<std::string>& args,
              const std::string& token = "",
              const std::optional<std::string>& webhook_secret_env = std::nullopt) {
  std::ostringstream out;
  std::ostringstream err;
  CliContext context = server.Context();
  context.default_token = token;
  context.webhook_secret = webhook_secret_env;
  const int code = Run(args, out, err, context);
  return {code, out.str(), err.str()};
}

const HttpHeaders kJsonHeaders = {{"Accept", "application/json"}};

TEST_CASE("repo add posts the repo and prints its id and name") {
  FakeServer server;
  server.response = {201, R"({"id": 7, "name": "demo", "provider": "github"})", {}};
  Result result = RunCli(
      server, {"repo", "add", "demo", "--clone-url", "https://git/x.git", "--provider=gitea"},
      "tok", "s3");
  CHECK(result.code == 0);
  CHECK(result.out == "created repo demo (id 7)\n");
  CHECK(result.err.empty());
  REQUIRE(server.requests.size() == 1);
  CHECK(server.requests[0].method == "POST");
  CHECK(server.requests[0].url == "http://127.0.0.1:9/api/v1/repos");
  CHECK(server.requests[0].headers ==
        HttpHeaders{{"Accept", "application/json"}, {"Authorization", "Bearer tok"}});
  CHECK(server.requests[0].body == R"({"name":"demo","clone_url":"https://git/x.git",)"
                                   R"("provider":"gitea","webhook_secret":"s3"})");
}

TEST_CASE("repo add reads --secret-file and leaves unset fields out") {
  std::string dir = (std::filesystem::temp_directory_path() / "assay-cli-XXXXXX").string();
  REQUIRE(mkdtemp(dir.data()) != nullptr);
  const std::string secret_file = dir + "/secret";
  std::ofstream(secret_file) << "from-file\n";
  FakeServer server;
  server.response = {201, R"({"repo": {"id": "r-1", "name": "demo"}})", {}};
  Result result = RunCli(server, {"repo", "add", "demo", "--clone-url", "u", "--secret-file",
                                  secret_file, "--html-url", "https://h"});
  CHECK(result.code == 0);
  CHECK(result.out == "created repo demo (id r-1)\n");
  REQUIRE(server.requests.size() == 1);
  CHECK(server.requests[0].body ==
        R"({"name":"demo","clone_url":"u","webhook_secret":"from-file","html_url":"https://h"})");
  CHECK(server.requests[0].headers == kJsonHeaders);

  // The file wins over ASSAY_WEBHOOK_SECRET.
  Result file_first =
      RunCli(server, {"repo", "add", "demo", "--clone-url", "u", "--secret-file", secret_file}, "",
             "from-env");
  CHECK(file_first.code == 0);
  REQUIRE(server.requests.size() == 2);
  CHECK(server.requests[1].body ==
        R"({"name":"demo","clone_url":"u","webhook_secret":"from-file"})");

  // --secret is refused, alone or with the others, and nothing is sent.
  const std::string refused =
      "assay: --secret would show the webhook secret in the process list; use --secret-file F "
      "or the ASSAY_WEBHOOK_SECRET environment variable\nRun 'assay --help' for usage.\n";
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"repo", "add", "demo", "--clone-url", "u", "--secret", "x"},
           {"repo", "add", "demo", "--clone-url", "u", "--secret=x"},
           {"repo", "add", "demo", "--clone-url", "u", "--secret", "x", "--secret-file",
            secret_file}}) {
    Result r = RunCli(server, args, "", "from-env");
    INFO(absl::StrJoin(args, " "));
    CHECK(r.code == 2);
    CHECK(r.out.empty());
    CHECK(r.err == refused);
  }
  Result missing =
      RunCli(server, {"repo", "add", "demo", "--clone-url", "u", "--secret-file", dir + "/none"});
  CHECK(missing.code == 2);
  CHECK(missing.err == "assay: cannot read secret file " + dir +
                           "/none: No such file or directory\nRun 'assay --help' for usage.\n");
  CHECK(server.requests.size() == 2);
  std::filesystem::remove_all(dir);
}

TEST_CASE("repo add needs a name and --clone-url") {
  FakeServer server;
  Result no_url = RunCli(server, {"repo", "add", "demo"});
  CHECK(no_url.code == 2);
  CHECK(no_url.err ==
        "assay: 'assay repo add' needs --clone-url URL\n"
        "Run 'assay --help' for usage.\n");
  Result no_name = RunCli(server, {"repo", "add", "--clone-url", "u"});
  CHECK(no_name.code == 2);
  CHECK(no_name.err ==
        "assay: 'assay repo add' needs a repository NAME\n"
        "Run 'assay --help' for usage.\n");
  Result bad_option = RunCli(server, {"repo", "add", "demo", "--clone-url", "u", "--limit", "3"});
  CHECK(bad_option.code == 2);
  CHECK(bad_option.err ==
        "assay: unknown option '--limit' for 'assay repo add'\n"
        "Run 'assay --help' for usage.\n");
  CHECK(server.requests.empty());
}

TEST_CASE("repo list prints a table") {
  FakeServer server;
  server.response = {200,
                     R"({"repos": [{"id": 1, "name": "demo", "provider": "github",
                          "clone_url": "https://github.com/o/demo.git"},
                         {"id": 12, "name": "b", "provider": null, "clone_url": "u"}]})",
                     {}};
  Result result = RunCli(server, {"repo", "list"});
  CHECK(result.code == 0);
  CHECK(result.out ==
        "ID  NAME  PROVIDER  CLONE_URL\n"
        "1   demo  github    https://github.com/o/demo.git\n"
        "12  b     -         u\n");
  REQUIRE(server.requests.size() == 1);
  CHECK(server.requests[0].method == "GET");
  CHECK(server.requests[0].url == "http://127.0.0.1:9/api/v1/repos");
  CHECK(server.requests[0].body.empty());

  server.response.body = R"({"repos": []})";
  CHECK(RunCli(server, {"repo", "list"}).out == "no repos\n");
}

TEST_CASE("pipelines builds the query and prints a table") {
  FakeServer server;
  server.response = {200,
                     R"({"pipelines": [
      {"id": 42, "repo": "demo", "ref": "refs/heads/main",
       "commit_sha": "0123456789abcdef0123", "state": "success", "message": "m",
       "created_at": "2024-05-01T10:00:00Z", "finished_at": null}]})",
                     {}};
  Result result = RunCli(
      server, {"pipelines", "--repo", "my repo&x", "--limit", "5", "--server", "http://h:1/"});
  CHECK(result.code == 0);
  CHECK(result.out ==
        "ID  STATE    REPO  REF              COMMIT        CREATED\n"
        "42  success  demo  refs/heads/main  0123456789ab  2024-05-01T10:00:00Z\n");
  REQUIRE(server.requests.size() == 1);
  CHECK(server.requests[0].url == "http://h:1/api/v1/pipelines?repo=my%20repo%26x&limit=5");

  RunCli(server, {"pipelines", "--limit=3"});
  CHECK(server.requests.back().url == "http://127.0.0.1:9/api/v1/pipelines?limit=3");
  RunCli(server, {"pipelines"});
  CHECK(server.requests.back().url == "http://127.0.0.1:9/api/v1/pipelines");

  Result bad = RunCli(server, {"pipelines", "--limit", "0"});
  CHECK(bad.code == 2);
  CHECK(bad.err ==
        "assay: --limit must be a positive integer, got '0'\n"
        "Run 'assay --help' for usage.\n");
}

TEST_CASE("pipeline shows the pipeline and its jobs") {
  FakeServer server;
  server.response = {200,
                     R"({"id": 42, "repo": "demo", "ref": "main",
      "commit_sha": "0123456789abcdef", "state": "failed", "message": "Fix it\n\nLong body",
      "created_at": "t0", "finished_at": "t9",
      "jobs": [{"id": 100, "name": "build", "state": "success", "attempt": 1, "agent": "gpu-1",
                "queued_at": "t1", "started_at": "t2", "finished_at": "t3", "exit_code": 0},
               {"id": 101, "name": "test", "state": "queued", "attempt": 0, "agent": null,
                "queued_at": "t4", "started_at": null, "finished_at": null,
                "exit_code": null}]})",
                     {}};
  Result result = RunCli(server, {"pipeline", "42"});
  CHECK(result.code == 0);
  CHECK(result.out ==
        "pipeline 42 failed  repo=demo ref=main commit=0123456789ab created=t0 finished=t9\n"
        "message: Fix it\n"
        "\n"
        "ID   NAME   STATE    ATTEMPT  AGENT  STARTED  FINISHED  EXIT\n"
        "100  build  success  1        gpu-1  t2       t3        0\n"
        "101  test   queued   0        -      -        -         -\n");
  REQUIRE(server.requests.size() == 1);
  CHECK(server.requests[0].url == "http://127.0.0.1:9/api/v1/pipelines/42");
}

TEST_CASE("logs writes the body byte for byte") {
  FakeServer server;
  static constexpr char kLog[] = "line 1\r\n\x1b[31mred\x1b[0m\n\0binary\xff no newline";
  const std::string log(kLog, sizeof kLog - 1);
  REQUIRE(log.size() == 40);
  server.response = {200, log, {{"Content-Type", "text/plain"}}};
  Result result = RunCli(server, {"logs", "100"}, "t");
  CHECK(result.code == 0);
  CHECK(result.out == log);
  CHECK(result.err.empty());
  REQUIRE(server.requests.size() == 1);
  CHECK(server.requests[0].url == "http://127.0.0.1:9/api/v1/jobs/100/log");
  CHECK(server.requests[0].headers ==
        HttpHeaders{{"Accept", "text/plain"}, {"Authorization", "Bearer t"}});
}

TEST_CASE("cancel posts to the pipeline") {
  FakeServer server;
  server.response = {202, "", {}};
  Result result = RunCli(server, {"cancel", "42"});
  CHECK(result.code == 0);
  CHECK(result.out == "cancel requested for pipeline 42\n");
  REQUIRE(server.requests.size() == 1);
  CHECK(server.requests[0].method == "POST");
  CHECK(server.requests[0].url == "http://127.0.0.1:9/api/v1/pipelines/42/cancel");
  CHECK(server.requests[0].body.empty());
}

TEST_CASE("cancel --job posts to the job, it takes no PIPELINE_ID beside it") {
  FakeServer server;
  server.response = {200, R"({"id": 7, "state": "canceled"})", {}};
  Result result = RunCli(server, {"cancel", "--job", "7"});
  CHECK(result.code == 0);
  CHECK(result.out == "cancel requested for job 7\n");
  REQUIRE(server.requests.size() == 1);
  CHECK(server.requests[0].method == "POST");
  CHECK(server.requests[0].url == "http://127.0.0.1:9/api/v1/jobs/7/cancel");
  Result both = RunCli(server, {"cancel", "--job", "7", "42"});
  CHECK(both.code == 2);
  CHECK(server.requests.size() == 1);
}

TEST_CASE("queue prints waiting jobs with their reason") {
  FakeServer server;
  server.response = {200,
                     R"j({"jobs": [
                       {"id": 12, "state": "queued", "priority": 5, "repo": "acme/app",
                        "pipeline_id": 4, "name": "train",
                        "waiting": "no agent has 2 free GPUs: 1 agent carries label gpu, most free GPUs on one agent is 1"},
                       {"id": 13, "state": "pending", "priority": 0, "repo": "acme/app",
                        "pipeline_id": 4, "name": "eval",
                        "waiting": "waiting for the jobs it needs: train (queued)"}]})j",
                     {}};
  Result result = RunCli(server, {"queue", "--limit", "50"});
  CHECK(result.code == 0);
  CHECK(server.requests.at(0).url == "http://127.0.0.1:9/api/v1/queue?limit=50");
  CHECK(result.out ==
        "JOB  STATE    PRIO  REPO      PIPELINE  NAME   WAITING\n"
        "12   queued   5     acme/app  4         train  no agent has 2 free GPUs: 1 agent carries "
        "label gpu, most free GPUs on one agent is 1\n"
        "13   pending  0     acme/app  4         eval   waiting for the jobs it needs: train "
        "(queued)\n");
  server.response = {200, R"({"jobs": []})", {}};
  CHECK(RunCli(server, {"queue"}).out == "queue is empty\n");
}

constexpr char kRepos[] = R"({"repos": [{"id": 3, "name": "acme/app"}, {"id": 12, "name": "7"}]})";

TEST_CASE("run finds the repo by name, posts branch and inputs, prints the pipeline id") {
  FakeServer server;
  server.queued = {{200, kRepos, {}}, {201, R"({"id": 55, "state": "running"})", {}}};
  Result result = RunCli(server, {"run", "acme/app", "--branch", "dev", "--input", "model=large",
                                  "--input", "note=a=b", "--input=empty="});
  CHECK(result.code == 0);
  CHECK(result.out == "55\n");
  CHECK(result.err.empty());
  REQUIRE(server.requests.size() == 2);
  CHECK(server.requests[0].method == "GET");
  CHECK(server.requests[0].url == "http://127.0.0.1:9/api/v1/repos");
  CHECK(server.requests[1].method == "POST");
  CHECK(server.requests[1].url == "http://127.0.0.1:9/api/v1/repos/3/pipelines");
  CHECK(boost::json::parse(server.requests[1].body) == boost::json::parse(R"({"branch": "dev",
                               "inputs": {"model": "large", "note": "a=b", "empty": ""}})"));

  // Without --branch the server picks the default branch; a numeric REPO that no repository
  // is named after is an id; a name wins over an id.
  server.queued = {{200, kRepos, {}}, {201, R"({"id": 56})", {}}};
  CHECK(RunCli(server, {"run", "3"}).out == "56\n");
  CHECK(server.requests.back().url == "http://127.0.0.1:9/api/v1/repos/3/pipelines");
  CHECK(boost::json::parse(server.requests.back().body) == boost::json::parse(R"({"inputs": {}})"));
  server.queued = {{200, kRepos, {}}, {201, R"({"id": 57})", {}}};
  CHECK(RunCli(server, {"run", "7"}).out == "57\n");
  CHECK(server.requests.back().url == "http://127.0.0.1:9/api/v1/repos/12/pipelines");

  server.queued = {{200, kRepos, {}}};
  Result missing = RunCli(server, {"run", "nope"});
  CHECK(missing.code == 1);
  CHECK(missing.err == "assay: no repository named 'nope'\n");

  server.queued = {
      {200, kRepos, {}},
      {400, R"({"error": {"code": "invalid_argument", "message": "input 'n' is required"}})", {}}};
  Result bad = RunCli(server, {"run", "acme/app"});
  CHECK(bad.code == 1);
  CHECK(bad.err == "assay: 400 invalid_argument: input 'n' is required\n");

  const size_t before = server.requests.size();
  Result usage = RunCli(server, {"run", "acme/app", "--input", "novalue"});
  CHECK(usage.code == 2);
  CHECK(usage.err ==
        "assay: --input must be NAME=VALUE, got 'novalue'\nRun 'assay --help' for usage.\n");
  CHECK(RunCli(server, {"run"}).err ==
        "assay: 'assay run' needs a REPO\nRun 'assay --help' for usage.\n");
  CHECK(RunCli(server, {"run", "a", "--branch", "x", "--branch", "y"}).err ==
        "assay: option --branch given more than once\nRun 'assay --help' for usage.\n");
  CHECK(server.requests.size() == before);
}

TEST_CASE("repo set patches the settings it is given") {
  FakeServer server;
  server.queued = {{200, kRepos, {}},
                   {200,
                    R"({"id": 3, "name": "acme/app", "default_branch": "trunk",
                             "cancel_superseded": true})",
                    {}}};
  Result result = RunCli(server, {"repo", "set", "acme/app", "--default-branch", "trunk",
                                  "--cancel-superseded", "true"});
  CHECK(result.code == 0);
  CHECK(result.out == "repo acme/app: default_branch=trunk cancel_superseded=true\n");
  REQUIRE(server.requests.size() == 2);
  CHECK(server.requests[1].method == "PATCH");
  CHECK(server.requests[1].url == "http://127.0.0.1:9/api/v1/repos/3");
  CHECK(boost::json::parse(server.requests[1].body) ==
        boost::json::parse(R"({"default_branch": "trunk", "cancel_superseded": true})"));

  server.queued = {{200, kRepos, {}}, {200, R"({"id": 3, "name": "acme/app"})", {}}};
  RunCli(server, {"repo", "set", "acme/app", "--cancel-superseded=false"});
  CHECK(boost::json::parse(server.requests.back().body) ==
        boost::json::parse(R"({"cancel_superseded": false})"));

  const size_t before = server.requests.size();
  CHECK(RunCli(server, {"repo", "set", "acme/app"}).err ==
        "assay: 'assay repo set' needs --default-branch or --cancel-superseded\n"
        "Run 'assay --help' for usage.\n");
  CHECK(RunCli(server, {"repo", "set", "acme/app", "--cancel-superseded", "yes"}).err ==
        "assay: --cancel-superseded must be true or false, got 'yes'\n"
        "Run 'assay --help' for usage.\n");
  CHECK(server.requests.size() == before);
}

TEST_CASE("API errors print status, code and message, exit 1") {
  FakeServer server;
  server.response = {404, R"({"error": {"code": "not_found", "message": "no pipeline 9"}})", {}};
  Result result = RunCli(server, {"pipeline", "9"});
  CHECK(result.code == 1);
  CHECK(result.out.empty());
  CHECK(result.err == "assay: 404 not_found: no pipeline 9\n");

  server.response = {502, "<html>Bad Gateway</html>\n", {}};
  result = RunCli(server, {"logs", "1"});
  CHECK(result.code == 1);
  CHECK(result.out.empty());
  CHECK(result.err == "assay: 502: <html>Bad Gateway</html>\n");

  server.response = {200, "not json", {}};
  result = RunCli(server, {"repo", "list"});
  CHECK(result.code == 1);
  CHECK(result.err.rfind("assay: unexpected response from the server: not JSON (", 0) == 0);

  server.response = {200, R"({"items": []})", {}};
  result = RunCli(server, {"pipelines"});
  CHECK(result.code == 1);
  CHECK(result.err == "assay: unexpected response from the server: no 'pipelines' list\n");
}

TEST_CASE("transport failures print the client's message, exit 1") {
  FakeServer server;
  server.failure = absl::UnavailableError(
      "GET http://127.0.0.1:9/api/v1/repos: cannot connect to 127.0.0.1:9: Connection refused");
  Result result = RunCli(server, {"repo", "list"});
  CHECK(result.code == 1);
  CHECK(result.out.empty());
  CHECK(result.err ==
        "assay: GET http://127.0.0.1:9/api/v1/repos: cannot connect to 127.0.0.1:9: Connection "
        "refused (check --server or ASSAY_SERVER)\n");
  server.failure = absl::DeadlineExceededError("GET http://127.0.0.1:9/x: timed out after 30s");
  result = RunCli(server, {"repo", "list"});
  CHECK(result.code == 1);
  CHECK(result.err == "assay: GET http://127.0.0.1:9/x: timed out after 30s\n");
  server.failure = absl::InvalidArgumentError("invalid URL 'ftp://x/api/v1/repos'");
  result = RunCli(server, {"--server", "ftp://x", "repo", "list"});
  CHECK(result.code == 1);
  CHECK(result.err ==
        "assay: invalid URL 'ftp://x/api/v1/repos' (check --server or ASSAY_SERVER)\n");
}

TEST_CASE("usage: --help, no command, unknown command and bad options exit 2") {
  FakeServer server;
  Result help = RunCli(server, {"--help"});
  CHECK(help.code == 2);
  CHECK(help.out.rfind("usage: assay [--server URL] COMMAND [ARGS]\n", 0) == 0);
  CHECK(help.err.empty());

  Result none = RunCli(server, {});
  CHECK(none.code == 2);
  CHECK(none.out.empty());
  CHECK(none.err == help.out);

  Result unknown = RunCli(server, {"pipleines"});
  CHECK(unknown.code == 2);
  CHECK(unknown.err ==
        "assay: unknown command 'pipleines' (did you mean 'pipelines'?)\n\n" + help.out);

  Result dangling = RunCli(server, {"pipelines", "--repo"});
  CHECK(dangling.code == 2);
  CHECK(dangling.err == "assay: option --repo needs a value\nRun 'assay --help' for usage.\n");

  Result short_option = RunCli(server, {"pipelines", "-x"});
  CHECK(short_option.code == 2);
  CHECK(short_option.err == "assay: unknown option '-x'\nRun 'assay --help' for usage.\n");

  Result twice = RunCli(server, {"pipelines", "--repo", "a", "--repo", "b"});
  CHECK(twice.code == 2);
  CHECK(twice.err == "assay: option --repo given more than once\nRun 'assay --help' for usage.\n");

  Result no_id = RunCli(server, {"logs"});
  CHECK(no_id.code == 2);
  CHECK(no_id.err == "assay: 'assay logs' needs a JOB_ID\nRun 'assay --help' for usage.\n");

  Result repo = RunCli(server, {"repo", "remove"});
  CHECK(repo.code == 2);
  CHECK(repo.err ==
        "assay: unknown subcommand 'repo remove' (expected add, list, set or commit-status)\n"
        "Run 'assay --help' for usage.\n");
  CHECK(server.requests.empty());
}

TEST_CASE("global options and their defaults") {
  FakeServer server;
  server.response = {200, R"({"repos": []})", {}};
  CliContext context = server.Context();
  context.default_server = "http://env-server:8080";
  context.default_token = "env-token";
  std::ostringstream out;
  std::ostringstream err;
  REQUIRE(Run({"repo", "list"}, out, err, context) == 0);
  REQUIRE(server.requests.size() == 1);
  CHECK(server.requests[0].url == "http://env-server:8080/api/v1/repos");
  CHECK(server.requests[0].headers ==
        HttpHeaders{{"Accept", "application/json"}, {"Authorization", "Bearer env-token"}});
  // Flags win over the defaults, wherever they appear; an empty token sends none.
  context.default_token = "";
  REQUIRE(Run({"repo", "--server=http://flag:1", "list"}, out, err, context) == 0);
  CHECK(server.requests[1].url == "http://flag:1/api/v1/repos");
  CHECK(server.requests[1].headers == kJsonHeaders);
}

TEST_CASE("the API token is never taken from the command line") {
  FakeServer server;
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"repo", "list", "--token", "tok"},
        std::vector<std::string>{"--token=tok", "repo", "list"}}) {
    Result result = RunCli(server, args);
    CHECK(result.code == 2);
    CHECK(result.err ==
          "assay: --token is not accepted on the command line (any local user can read a "
          "process's arguments); set ASSAY_TOKEN, or ASSAY_TOKEN_FILE to a file holding the "
          "token\nRun 'assay --help' for usage.\n");
  }
  CHECK(server.requests.empty());
}

TEST_CASE("ASSAY_TOKEN_FILE: the token from a private file, a file others can read is refused") {
  char tmpl[] = "/tmp/assay-cli-token-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string path = std::string(tmpl) + "/token";
  std::ofstream(path) << "tok\n";
  REQUIRE(chmod(path.c_str(), 0644) == 0);
  unsetenv("ASSAY_TOKEN");
  setenv("ASSAY_TOKEN_FILE", path.c_str(), 1);
  setenv("ASSAY_SERVER", "http://127.0.0.1:1", 1);  // never reached
  std::ostringstream out;
  std::ostringstream err;
  CHECK(Run({"repo", "list"}, out, err) == 2);
  CHECK(err.str() == "assay: ASSAY_TOKEN_FILE=" + path +
                         ": is accessible by other users (mode 0644); run chmod o-rwx on it "
                         "(600 is best)\n");
  unsetenv("ASSAY_TOKEN_FILE");
  unsetenv("ASSAY_SERVER");
  std::remove(path.c_str());
  rmdir(tmpl);
}

}  // namespace
}  // namespace assay::cli

namespace assay::cli {
namespace {

// Answers each request with the next of `replies`; records what was sent.
struct ScriptedServer {
  std::vector<Request> requests;
  std::vector<HttpClientResponse> replies;
  CliContext Context() {
    CliContext context;
    context.default_server = "http://127.0.0.1:9";
    context.default_token = "tok";
    context.fetch = [this](std::string_view method, std::string_view url,
                           const HttpHeaders& headers,
                           std::string_view body) -> absl::StatusOr<HttpClientResponse> {
      requests.push_back({std::string(method), std::string(url), headers, std::string(body)});
      if (requests.size() > replies.size()) return HttpClientResponse{500, "{}", {}};
      return replies[requests.size() - 1];
    };
    return context;
  }
};

constexpr char kStatusRepos[] =
    R"({"repos":[{"id":3,"name":"other/x"},{"id":7,"name":"acme/app","provider":"github"}]})";

TEST_CASE("repo commit-status finds the repo by name and PUTs the token from the file") {
  std::string dir = (std::filesystem::temp_directory_path() / "assay-cli-XXXXXX").string();
  REQUIRE(mkdtemp(dir.data()) != nullptr);
  std::ofstream(dir + "/token") << "ghp_fromfile\n";
  ScriptedServer server;
  server.replies = {{200, kStatusRepos, {}},
                    {200,
                     R"({"id":7,"name":"acme/app","commit_status":)"
                     R"({"api_url":"https://api.github.com","has_token":true,)"
                     R"("repository":"acme/app","context":"ci"}})",
                     {}}};
  std::ostringstream out, err;
  const int code = Run({"repo", "commit-status", "acme/app", "--api-url", "https://api.github.com",
                        "--token-file", dir + "/token", "--context", "ci"},
                       out, err, server.Context());
  std::filesystem::remove_all(dir);
  CHECK(code == 0);
  CHECK(err.str().empty());
  CHECK(out.str() ==
        "commit statuses for acme/app: on (https://api.github.com, repository acme/app, "
        "context ci)\n");
  REQUIRE(server.requests.size() == 2);
  CHECK(server.requests[0].method == "GET");
  CHECK(server.requests[0].url == "http://127.0.0.1:9/api/v1/repos");
  CHECK(server.requests[1].method == "PUT");
  CHECK(server.requests[1].url == "http://127.0.0.1:9/api/v1/repos/7/commit-status");
  CHECK(server.requests[1].body ==
        R"({"api_url":"https://api.github.com","token":"ghp_fromfile","context":"ci"})");
}

TEST_CASE("repo commit-status --off DELETEs, usage errors are exact") {
  ScriptedServer server;
  server.replies = {{200, kStatusRepos, {}}, {200, R"({"id":7,"commit_status":null})", {}}};
  std::ostringstream out, err;
  CHECK(Run({"repo", "commit-status", "acme/app", "--off"}, out, err, server.Context()) == 0);
  CHECK(out.str() == "commit statuses for acme/app: off\n");
  REQUIRE(server.requests.size() == 2);
  CHECK(server.requests[1].method == "DELETE");
  CHECK(server.requests[1].url == "http://127.0.0.1:9/api/v1/repos/7/commit-status");

  auto usage = [](const std::vector<std::string>& args) {
    ScriptedServer none;
    std::ostringstream o, e;
    const int code = Run(args, o, e, none.Context());
    CHECK(none.requests.empty());
    CHECK(code == 2);
    return e.str();
  };
  const std::string tail = "Run 'assay --help' for usage.\n";
  CHECK(usage({"repo", "commit-status", "acme/app", "--api-url", "https://x"}) ==
        "assay: 'assay repo commit-status' needs --api-url URL and --token-file FILE (or "
        "--off)\n" +
            tail);
  CHECK(usage({"repo", "commit-status", "acme/app", "--off", "--api-url", "https://x"}) ==
        "assay: 'assay repo commit-status --off' takes no other options\n" + tail);
  CHECK(usage({"repo", "commit-status"}) ==
        "assay: 'assay repo commit-status' needs a repository NAME\n" + tail);
  CHECK(usage({"repo", "commit-status", "acme/app", "--api-url", "https://x", "--token-file",
               "/nonexistent/token"}) ==
        "assay: cannot read secret file /nonexistent/token: No such file or directory\n" + tail);

  ScriptedServer unknown;
  unknown.replies = {{200, kStatusRepos, {}}};
  std::ostringstream o, e;
  CHECK(Run({"repo", "commit-status", "nope/x", "--off"}, o, e, unknown.Context()) == 1);
  CHECK(e.str() == "assay: no repository named 'nope/x'\n");
  CHECK(unknown.requests.size() == 1);
}

}  // namespace
}  // namespace assay::cli

namespace assay::cli {
namespace {

TEST_CASE("artifacts lists a job's files, and writes one to stdout or -o FILE") {
  FakeServer server;
  server.response = {200,
                     R"({"job_id":4,"attempt":1,"files":[{"path":"out/a b.bin","size":12,)"
                     R"("mode":"0755","sha256":"x"},{"path":"r.txt","size":0,"mode":"0644",)"
                     R"("sha256":"y"}],"bytes":12})",
                     {}};
  Result list = RunCli(server, {"artifacts", "4"}, "tok");
  CHECK(list.code == 0);
  CHECK(list.out == "0755 12 out/a b.bin\n0644 0 r.txt\n");
  CHECK(server.requests.back().url == "http://127.0.0.1:9/api/v1/jobs/4/artifacts");

  server.response = {200, std::string("bin\0ary", 7), {}};
  Result one = RunCli(server, {"artifacts", "4", "out/a b.bin"}, "tok");
  CHECK(one.code == 0);
  CHECK(one.out == std::string("bin\0ary", 7));
  CHECK(server.requests.back().url == "http://127.0.0.1:9/api/v1/jobs/4/artifacts/out/a%20b.bin");

  const std::string file =
      (std::filesystem::temp_directory_path() / ("assay-cli-art-" + std::to_string(getpid())))
          .string();
  Result saved = RunCli(server, {"artifacts", "4", "out/a b.bin", "-o", file}, "tok");
  CHECK(saved.code == 0);
  CHECK(saved.out.empty());
  std::ifstream in(file, std::ios::binary);
  std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(got == std::string("bin\0ary", 7));
  std::filesystem::remove(file);

  server.response = {
      404, R"({"error":{"code":"not_found","message":"job 4 has no artifact 'x'"}})", {}};
  Result missing = RunCli(server, {"artifacts", "4", "x"}, "tok");
  CHECK(missing.code == 1);
  CHECK(missing.err == "assay: 404 not_found: job 4 has no artifact 'x'\n");
  Result usage = RunCli(server, {"artifacts", "4", "-o", file}, "tok");
  CHECK(usage.code == 2);
}

}  // namespace
}  // namespace assay::cli
