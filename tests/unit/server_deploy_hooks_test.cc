// The operator's deploy hooks (server/deploy/hooks.h): a command target and a job metric run
// real programs from a real directory, with nothing of the server's environment, under a time
// limit; their failures are described in a few printable words.
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <fstream>
#include <iterator>
#include <string>

#include <boost/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/deploy/analysis.h"
#include "server/deploy/hooks.h"
#include "server/deploy/target.h"

namespace assay::deploy {
namespace {

namespace json = boost::json;

struct HookDir {
  HookDir() {
    char tmpl[] = "/tmp/assay-hooks-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~HookDir() { (void)system(absl::StrCat("rm -rf '", path, "'").c_str()); }
  void Write(const std::string& name, const std::string& body, mode_t mode = 0755) const {
    const std::string p = path + "/" + name;
    std::ofstream(p) << "#!/bin/sh\n" << body;
    REQUIRE(chmod(p.c_str(), mode) == 0);
  }
  std::string Read(const std::string& name) const {
    std::ifstream in(path + "/" + name);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::string path;
};

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST_CASE("deploy hooks: programs are found by name in the operator's directory only", "[deploy]") {
  HookDir d;
  d.Write("ok", "exit 0\n");
  d.Write("plain", "exit 0\n", 0644);
  REQUIRE(mkdir((d.path + "/subdir").c_str(), 0755) == 0);
  REQUIRE(symlink("/bin/sh", (d.path + "/sh-link").c_str()) == 0);
  Hooks hooks(d.path);
  CHECK(*hooks.Resolve("ok") == d.path + "/ok");
  // A link the operator put there is the operator's choice; it is followed.
  CHECK(*hooks.Resolve("sh-link") == d.path + "/sh-link");
  CHECK(Message(hooks.Resolve("plain").status()) ==
        "no executable program 'plain' in the server's deploy hooks directory");
  CHECK(Message(hooks.Resolve("subdir").status()) ==
        "no executable program 'subdir' in the server's deploy hooks directory");
  CHECK(Message(hooks.Resolve("missing").status()) ==
        "no executable program 'missing' in the server's deploy hooks directory");
  CHECK(Message(hooks.Resolve("../ok").status()) == "'../ok' is not a deploy hook's name");
  CHECK(Message(hooks.Resolve("/bin/sh").status()) == "'/bin/sh' is not a deploy hook's name");
  CHECK(Message(hooks.Resolve("..").status()) == "'..' is not a deploy hook's name");
  CHECK(Message(Hooks().Resolve("ok").status()) ==
        "the server has no deploy hooks directory: its operator must start it with "
        "--deploy-hooks DIR holding the program");
}

TEST_CASE("deploy hooks: a program gets a fixed environment, its input, and a time limit",
          "[deploy]") {
  HookDir d;
  d.Write("env", "cat > input; env | sort > env.txt; pwd > cwd.txt\n");
  d.Write("slow", "sleep 30\n");
  d.Write("loud",
          "head -c 200000 /dev/zero | tr '\\0' x; printf 'bad \\001\\377 bytes\\n' >&2; "
          "exit 4\n");
  Hooks hooks(d.path);
  setenv("ASSAY_SECRET_FOR_TEST", "must-not-leak", 1);
  auto r = hooks.Run({"env"}, {{"ASSAY_DEPLOY_ACTION", "apply"}}, "{\"a\":1}", absl::Seconds(10));
  unsetenv("ASSAY_SECRET_FOR_TEST");
  REQUIRE(r.ok());
  CHECK(r->exit_code == 0);
  CHECK(d.Read("input") == "{\"a\":1}");
  CHECK(d.Read("env.txt") ==
        "ASSAY_DEPLOY_ACTION=apply\nHOME=/nonexistent\nLANG=C.UTF-8\nPATH=/usr/local/bin:/usr/bin:"
        "/bin\nPWD=" +
            d.path + "\n");
  CHECK(d.Read("cwd.txt") == d.path + "\n");

  auto slow = hooks.Run({"slow"}, {}, {}, absl::Milliseconds(300));
  CHECK(slow.status().code() == absl::StatusCode::kDeadlineExceeded);
  CHECK(Message(slow.status()) == "deploy hook 'slow' did not finish within 300ms");

  auto loud = hooks.Run({"loud"}, {}, {}, absl::Seconds(10));
  REQUIRE(loud.ok());
  CHECK(loud->exit_code == 4);
  CHECK(loud->out.size() == 64 * 1024);  // output is cut
  CHECK(DescribeHookFailure(*loud) == "exit 4: bad ?? bytes");
}

TEST_CASE("deploy hooks: a command target tells its program what to do and reads its exit",
          "[deploy]") {
  HookDir d;
  d.Write("t",
          "cat > last.json; echo \"$* $ASSAY_DEPLOY_ACTION $ASSAY_DEPLOY_WEIGHT "
          "$ASSAY_DEPLOY_ROLLING [$ASSAY_DEPLOY_NEW] [$ASSAY_DEPLOY_OLD] $ASSAY_ENVIRONMENT "
          "$ASSAY_DEPLOYMENT $ASSAY_VERSION $ASSAY_PREVIOUS_VERSION\" >> calls\n"
          "[ -e busy ] && exit 75\n[ -e broken ] && { echo 'backend down' >&2; exit 2; }\n"
          "exit 0\n");
  Hooks hooks(d.path);
  Placeholders p{"7", "6", "staging", "41"};
  CommandTarget target(&hooks, {"t", "--env", "{{environment}}", "v{{version}}"}, &p,
                       absl::Seconds(10));
  CHECK(target.Describe() == "command target 't'");
  CHECK(target.Present()->empty());
  const std::vector<TargetServer> fresh{{"n1", "10.0.0.1:80"}, {"n2", "10.0.0.2:80"}};
  const std::vector<TargetServer> old{{"o1", "10.0.0.9:80"}};
  REQUIRE(target.Apply(25, fresh, old, true).ok());
  CHECK(d.Read("calls") ==
        "--env staging v7 apply 25 1 [10.0.0.1:80 10.0.0.2:80] [10.0.0.9:80] staging 41 7 6\n");
  json::value input = json::parse(d.Read("last.json"));
  CHECK(input == json::parse(R"({"action": "apply", "weight": 25, "rolling": true,
      "new": [{"name": "n1", "address": "10.0.0.1:80"}, {"name": "n2", "address": "10.0.0.2:80"}],
      "old": [{"name": "o1", "address": "10.0.0.9:80"}], "environment": "staging",
      "deployment": "41", "version": "7", "previous_version": "6"})"));

  CHECK(*target.Retire(old) == true);
  CHECK(absl::EndsWith(d.Read("calls"), "retire 0 0 [] [10.0.0.9:80] staging 41 7 6\n"));
  const std::string before = d.Read("calls");
  CHECK(*target.Retire({}) == true);
  CHECK(d.Read("calls") == before);  // nothing to retire: no call
  std::ofstream(d.path + "/busy") << "";
  CHECK(*target.Retire(old) == false);  // 75: not yet, ask again
  CHECK(Message(target.Apply(50, fresh, old, false)) ==
        "command target 't' (apply 50%): exit 75 is for a retire only");
  unlink((d.path + "/busy").c_str());
  std::ofstream(d.path + "/broken") << "";
  absl::Status s = target.Apply(50, fresh, old, false);
  CHECK(s.code() == absl::StatusCode::kUnavailable);
  CHECK(Message(s) == "command target 't' (apply 50%): exit 2: backend down");

  CommandTarget missing(&hooks, {"gone"}, &p, absl::Seconds(10));
  CHECK(Message(missing.Apply(50, fresh, old, false)) ==
        "command target 'gone': no executable program 'gone' in the server's deploy hooks "
        "directory");
}

TEST_CASE("deploy hooks: a job metric is 1 when its program exits 0, else 0", "[deploy]") {
  HookDir d;
  d.Write("check",
          "[ \"$1\" = v7 ] && [ \"$ASSAY_ENVIRONMENT\" = staging ] && exit 0\n"
          "echo \"wrong version $1\" >&2; exit 1\n");
  Hooks hooks(d.path);
  MetricSpec m;
  m.name = "smoke";
  m.provider = ProviderKind::kJob;
  m.command = {"check", "v{{version}}"};
  m.success = *Condition::Parse("result == 1");
  Providers providers;
  providers.hooks = &hooks;
  Measurement good = Measure(m, Placeholders{"7", "6", "staging", "41"}, providers);
  CHECK(good.phase == Phase::kSuccessful);
  CHECK(good.values == std::vector<double>{1});
  CHECK(good.detail == "job 'check' exit 0");
  Measurement bad = Measure(m, Placeholders{"8", "7", "staging", "42"}, providers);
  CHECK(bad.phase == Phase::kFailed);
  CHECK(bad.values == std::vector<double>{0});
  CHECK(bad.detail == "job 'check' exit 1: wrong version v8");
  CHECK(absl::StrContains(bad.message, "(job 'check' exit 1: wrong version v8)"));

  m.command = {"absent"};
  Measurement error = Measure(m, Placeholders{"8", "7", "staging", "42"}, providers);
  CHECK(error.phase == Phase::kError);
  CHECK(error.message == "no executable program 'absent' in the server's deploy hooks directory");
  providers.hooks = nullptr;
  CHECK(Measure(m, {}, providers).message == "job metrics need the server's deploy hooks");
}

}  // namespace
}  // namespace assay::deploy
