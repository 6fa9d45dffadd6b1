// `assay models` (cli/model_commands.h) against a fake server: the exact requests it sends
// (paths, bodies, the $USER actor), what it prints, and its usage errors (exit 2).

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <deque>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cli.h"

namespace assay::cli {
namespace {

struct Sent {
  std::string method, url, body;
};

struct Fake {
  std::vector<Sent> sent;
  std::deque<HttpClientResponse> answers;
  int code = 0;
  std::string out, err;

  void Run(const std::vector<std::string>& args, const std::string& user = "") {
    CliContext context;
    context.default_server = "http://127.0.0.1:9";
    context.user = user;
    context.fetch = [this](std::string_view method, std::string_view url, const HttpHeaders&,
                           std::string_view body) -> absl::StatusOr<HttpClientResponse> {
      sent.push_back({std::string(method), std::string(url), std::string(body)});
      if (answers.empty()) return HttpClientResponse{200, "{}", {}};
      HttpClientResponse next = answers.front();
      answers.pop_front();
      return next;
    };
    std::ostringstream o, e;
    code = cli::Run(args, o, e, context);
    out = o.str();
    err = e.str();
  }
};

constexpr const char* kBase = "http://127.0.0.1:9/api/v1/models";

TEST_CASE("models register sends the job, params, metrics and tags and prints the version") {
  Fake f;
  f.answers.push_back({201, R"({"version":4,"files":3,"bytes":1200})", {}});
  f.Run({"models", "register", "support-bot", "--job", "12", "--param", "lr=0.001", "--param",
         "opt=adam", "--param", "warm=true", "--metric", "loss=0.25", "--tag", "run=n", "--parent",
         "production", "--path", "out/"});
  CHECK(f.code == 0);
  REQUIRE(f.sent.size() == 1);
  CHECK(f.sent[0].method == "POST");
  CHECK(f.sent[0].url == std::string(kBase) + "/support-bot/versions");
  CHECK(boost::json::parse(f.sent[0].body) ==
        boost::json::parse(R"({"job_id":12,"path":"out/","parent_version":"production",)"
                           R"("params":{"lr":0.001,"opt":"adam","warm":true},)"
                           R"("metrics":{"loss":0.25},"tags":{"run":"n"}})"));
  CHECK(f.out == "registered support-bot version 4 from job 12 (3 files, 1200 bytes)\n");
}

TEST_CASE("models register and alias refuse bad command lines with exit 2, sending nothing") {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"models", "register", "m"},
           {"models", "register", "m", "--job", "x"},
           {"models", "register", "m", "--job", "1", "--metric", "loss=low"},
           {"models", "register", "m", "--job", "1", "--param", "=v"},
           {"models", "alias", "m", "prod", "3"},
           {"models", "alias", "m", "prod"},
           {"models", "download", "m"},
           {"models", "frobnicate"},
           {"models"}}) {
    Fake f;
    f.Run(args);
    INFO(f.err);
    CHECK(f.code == 2);
    CHECK(f.sent.empty());
  }
  Fake f;
  f.Run({"models", "alias", "m", "prod", "3"});
  CHECK(f.err ==
        "assay: 'assay models alias' needs --reason TEXT (it goes into the audit)\n"
        "Run 'assay --help' for usage.\n");
}

TEST_CASE("models alias sends the version, the reason and $USER as the actor") {
  Fake f;
  f.answers.push_back(
      {200, R"({"alias":"prod","version":3,"previous_version":2,"changed":true})", {}});
  f.Run({"models", "alias", "bot", "prod", "3", "--reason", "eval passed"}, "alice");
  CHECK(f.code == 0);
  REQUIRE(f.sent.size() == 1);
  CHECK(f.sent[0].method == "PUT");
  CHECK(f.sent[0].url == std::string(kBase) + "/bot/aliases/prod");
  CHECK(boost::json::parse(f.sent[0].body) ==
        boost::json::parse(R"({"reason":"eval passed","version":3,"actor":"alice"})"));
  CHECK(f.out == "bot@prod: moved from version 2 to 3\n");
  Fake missing;
  missing.answers.push_back(
      {404, R"({"error":{"code":"not_found","message":"model 'bot' has no version 9"}})", {}});
  missing.Run({"models", "alias", "bot", "prod", "9", "--reason", "x"});
  CHECK(missing.code == 1);
  CHECK(missing.err == "assay: 404 not_found: model 'bot' has no version 9\n");
}

TEST_CASE("models versions and history print tables") {
  Fake f;
  f.answers.push_back(
      {200,
       R"({"versions":[{"version":2,"status":"ready","aliases":["prod","staging"],)"
       R"("source":{"job_id":7,"commit":"0123456789abcdef0123"},"created_at":"T2"},)"
       R"({"version":1,"status":"archived","aliases":[],"source":{"job_id":5,"commit":""},)"
       R"("created_at":"T1"}],"next_before":null})",
       {}});
  f.Run({"models", "versions", "bot", "--tag", "a=b"});
  CHECK(f.code == 0);
  CHECK(f.sent[0].url == std::string(kBase) + "/bot/versions?tag=a%3Db");
  CHECK(f.out ==
        "VERSION  STATUS    ALIASES       JOB  COMMIT        CREATED\n"
        "2        ready     prod,staging  7    0123456789ab  T2\n"
        "1        archived  -             5                  T1\n");
  Fake h;
  h.answers.push_back(
      {200,
       R"({"history":[{"at":"T2","from_version":1,"to_version":null,"principal":"admin",)"
       R"("client_addr":"10.0.0.1","actor":null,"reason":""},{"at":"T1","from_version":null,)"
       R"("to_version":1,"principal":"pipeline 3 job 9","client_addr":"","actor":"bob",)"
       R"("reason":"promote"}]})",
       {}});
  h.Run({"models", "history", "bot", "prod"});
  CHECK(h.code == 0);
  CHECK(h.out ==
        "WHEN  FROM  TO  BY                ACTOR  REASON\n"
        "T2    1     -   admin (10.0.0.1)  -      -\n"
        "T1    -     1   pipeline 3 job 9  bob    promote\n");
}

}  // namespace
}  // namespace assay::cli
