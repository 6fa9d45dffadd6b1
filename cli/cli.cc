#include "cli/cli.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <variant>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli/agents_commands.h"
#include "cli/api_client.h"
#include "cli/api_commands.h"
#include "cli/cache_commands.h"
#include "cli/deploy_commands.h"
#include "cli/eval_commands.h"
#include "cli/http_download.h"
#include "cli/lint_command.h"
#include "cli/log_follow.h"
#include "cli/model_commands.h"
#include "cli/secret_commands.h"
#include "cli/train_commands.h"
#include "common/base/config.h"
#include "common/pipeline/edit_distance.h"

namespace assay::cli {
namespace {

constexpr std::string_view kUsage =
    R"(usage: assay [--server URL] COMMAND [ARGS]

Commands:
  lint [FILE]                 check a pipeline file offline (default .assay.yml)
  repo add NAME --clone-url URL [--provider P] [--secret-file F] [--html-url U]
                              register a repository (its webhook secret: the contents of F,
                              else $ASSAY_WEBHOOK_SECRET; never on the command line)
  repo list                   list repositories
  repo set NAME [--default-branch B] [--cancel-superseded true|false]
                              change a repository's settings
  run REPO [--branch B] [--input NAME=VALUE]...
                              start a manual pipeline (on.manual); prints its id
  repo commit-status NAME --api-url URL --token-file F [--repository R]
           [--context C]      report pipeline results to the forge as commit statuses
  repo commit-status NAME --off
                              stop reporting commit statuses
  pipelines [--repo NAME] [--limit N]
                              list recent pipelines
  pipeline ID                 show a pipeline and its jobs
  logs JOB_ID [--timestamps] [-f|--follow]
                              print a job's log (--timestamps: each line with the time the
                              agent read it; -f: follow it live until the job ends)
  artifacts JOB_ID [PATH] [-o FILE]
                              list a job's artifacts, or write one to stdout or FILE
  cancel PIPELINE_ID          cancel a pipeline
  cancel --job JOB_ID         cancel one job (its dependents are skipped)
  retry JOB_ID                run a finished job again (the jobs it blocked run after it)
  retry --pipeline ID         run every failed or canceled job of a finished pipeline again
  rerun PIPELINE_ID           start a new pipeline of the same commit, ref, event and inputs
  queue [--limit N]           list waiting jobs and why each one waits
  secret set REPO NAME [--environment E] [--from-file F]
                              set a repository secret; its value is read from stdin (one
                              trailing newline dropped) or F (exact bytes), never argv
  secret rm REPO NAME [--environment E]
                              remove a secret
  secret list REPO            list a repository's secrets (names and dates, never values)
  cache list REPO             list a repository's cache entries, newest first
  cache rm REPO ENTRY_ID      remove a cache entry
  evals list [--repo NAME] [--job ID] [--name EVAL] [--branch B]
                              eval runs, newest first (docs/evals.md)
  evals show ID [--examples failed|all|none]
                              an eval's metrics, gate verdicts and examples
  evals diff ID [--against ID|BRANCH]
                              examples that regressed, got fixed or stayed wrong
  train JOB_ID [--series NAME]
                              a job's train steps: metric series, attempts and resumes, the
                              registered version; --series: every point (docs/train.md)
  sweep PIPELINE_ID           a pipeline's sweeps: each trial's params, state and metric, the
                              best (*) and those stopped early, the version registered
  models list [--name GLOB] [--tag K=V]...
                              list registered models (docs/models.md)
  models show NAME[@VERSION|@ALIAS]
                              show a model, or one of its versions
  models versions NAME [--alias A] [--tag K=V]...
                              list a model's versions, newest first
  models register NAME --job ID [--path model/] [--param K=V]... [--metric K=V]...
           [--parent N] [--tag K=V]... [--description TEXT]
                              register the job's files under --path as a new version
  models alias NAME ALIAS VERSION --reason TEXT
                              point an alias at a version (audited, actor $USER)
  models alias-rm NAME ALIAS [--reason TEXT]
                              remove an alias (audited)
  models history NAME ALIAS   every change of an alias: when, from, to, who, why
  models tag NAME[@VERSION] KEY=VALUE...  /  models untag NAME[@VERSION] KEY...
                              set or remove tags on a model or a version
  models download NAME@VERSION|NAME@ALIAS [-o DIR]
                              write a version's files into DIR (default NAME-vN)
  deploy ENV --repo ID --model NAME@VERSION|--image NAME@sha256:HEX [--endpoint ADDRESS...]
         --strategy JSON|@FILE [--ref BRANCH] [--supersede]
                              start a deployment (docs/deployments.md); --endpoint: the new
                              version's servers (none for a kubernetes environment)
  deployments list [--repo ID] [--environment ENV] [--state S]
                              deployments, newest first
  deployments show ID         a deployment and its history: steps, measurements, traffic
  deployments wait ID [--timeout 10m]
                              until promoted (exit 0) or ended otherwise or paused (exit 1)
  deployments approve ID  /  deployments pause|resume|abort ID [--reason TEXT]
  deployments promote ID [--full] [--reason TEXT]
                              skip the current step (--full: every step)
  environments list|show ENV --repo ID
  environments set ENV --repo ID --config JSON|@FILE
                              target, protection (branches, approvals), analysis, watch
  environments rollback ENV --repo ID --to DEPLOYMENT
                              deploy an earlier promoted deployment's version again
  agents list                 list agents (ACCESS: enrolled, shared-token, disabled, revoked)
  agents token create [--name NAME] [--labels a,b] [--expires 1h]
                              make a one-time enrollment token (printed once, alone on stdout)
  agents revoke NAME          delete the agent's credential and close its stream
  agents disable NAME         refuse the agent (stream closed) until `agents enable NAME`
  agents enable NAME          accept a disabled agent again
  agents drain NAME [--reason TEXT] [--timeout 30m]
                              no new jobs for the agent; running ones finish (or are canceled
                              after --timeout); it stays connected and idle until resumed
  agents resume NAME          lift a drain: the agent takes jobs again

  login [--username NAME] [--expires-days N]
                              sign in with a password read from stdin, create an API token
                              (scope write, 90 days) and save it for later commands

Global options (anywhere on the line):
  --server URL   server address (default: $ASSAY_SERVER, else http://127.0.0.1:8080)
  --json         print the API's JSON answer instead of a table (commands that call the API)
  --help         show this text

The API token is sent as a bearer token: $ASSAY_TOKEN, or the first line of the file named by
$ASSAY_TOKEN_FILE (not readable by others), or the token `assay login` saved
($XDG_CONFIG_HOME/assay/token, else ~/.config/assay/token). Never on the command line, where
any local user can read it.

Exit status: 0 success, 1 failure (lint errors, API errors), 2 usage error.
)";

constexpr std::string_view kCommands[] = {
    "lint",   "repo",   "pipelines", "pipeline", "logs",        "cancel",      "run",   "queue",
    "agents", "secret", "artifacts", "cache",    "models",      "evals",       "train", "sweep",
    "login",  "retry",  "rerun",     "deploy",   "deployments", "environments"};

// A usage error: message for stderr, exit 2.
struct UsageError {
  std::string message;
  bool show_usage = false;  // Print the whole usage text rather than a pointer to it.
};

struct CommandLine {
  std::vector<std::string> positional;
  std::vector<std::pair<std::string, std::string>> options;  // "--name" -> value, in order.
  std::optional<std::string> server;
  std::optional<std::string> token;
  bool help = false;
  bool json = false;  // --json
};

// Splits `args` into positionals and "--name value" / "--name=value" options. Every
// option but --help takes a value; "--" ends the options.
std::optional<UsageError> ParseCommandLine(const std::vector<std::string>& args,
                                           CommandLine& line) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      line.positional.insert(line.positional.end(), args.begin() + i + 1, args.end());
      break;
    }
    if (arg == "--help" || arg == "-h") {
      line.help = true;
      continue;
    }
    if (arg == "--json") {
      line.json = true;
      continue;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      line.positional.push_back(arg);
      continue;
    }
    if (arg == "-f") {  // logs -f
      line.options.emplace_back("--follow", "");
      continue;
    }
    if (arg == "-o") {  // artifacts -o: --output
      if (i + 1 >= args.size()) return UsageError{"option -o needs a value"};
      line.options.emplace_back("--output", args[++i]);
      continue;
    }
    if (arg[1] != '-') return UsageError{absl::StrCat("unknown option '", arg, "'")};
    if (arg == "--off" || arg == "--follow" || arg == "--timestamps" || arg == "--supersede" ||
        arg == "--full") {  // options without value
      line.options.emplace_back(arg, "");
      continue;
    }
    std::string name = arg;
    std::string value;
    if (const size_t equals = arg.find('='); equals != std::string::npos) {
      name = arg.substr(0, equals);
      value = arg.substr(equals + 1);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return UsageError{absl::StrCat("option ", name, " needs a value")};
    }
    if (name == "--server") {
      line.server = value;
    } else if (name == "--token") {
      // Why refuse: by now the token has been in /proc/PID/cmdline for every local user.
      return UsageError{
          "--token is not accepted on the command line (any local user can read a process's "
          "arguments); set ASSAY_TOKEN, or ASSAY_TOKEN_FILE to a file holding the token"};
    } else {
      line.options.emplace_back(name, value);
    }
  }
  return std::nullopt;
}

// The options of one command, checked against what it allows.
class Options {
 public:
  static std::optional<UsageError> Check(const CommandLine& line, std::string_view command,
                                         std::set<std::string_view> allowed, Options& out) {
    for (const auto& [name, value] : line.options) {
      if (!allowed.contains(name)) {
        return UsageError{
            absl::StrCat("unknown option '", name, "' for 'assay ", std::string(command), "'")};
      }
      if (!out.values_.emplace(name, value).second) {
        return UsageError{absl::StrCat("option ", name, " given more than once")};
      }
    }
    return std::nullopt;
  }

  std::optional<std::string> Get(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end()) return std::nullopt;
    return it->second;
  }

 private:
  std::map<std::string, std::string, std::less<>> values_;
};

// Reads option `name` (when given) into `value`: a positive decimal integer, else a usage error.
std::optional<UsageError> PositiveIntOption(const Options& options, const std::string& name,
                                            std::optional<int>& value) {
  std::optional<std::string> text = options.Get(name);
  if (!text) return std::nullopt;
  int parsed = 0;
  const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), parsed);
  if (ec != std::errc() || end != text->data() + text->size() || parsed <= 0) {
    return UsageError{absl::StrCat(name, " must be a positive integer, got '", *text, "'")};
  }
  value = parsed;
  return std::nullopt;
}

std::optional<UsageError> ExpectPositionals(const CommandLine& line, std::string_view command,
                                            size_t first, size_t min, size_t max,
                                            std::string_view missing) {
  const size_t count = line.positional.size() - first;
  if (count < min)
    return UsageError{
        absl::StrCat("'assay ", std::string(command), "' needs ", std::string(missing))};
  if (count > max) {
    return UsageError{absl::StrCat("unexpected argument '", line.positional[first + max],
                                   "' for 'assay ", std::string(command), "'")};
  }
  return std::nullopt;
}

// Reads a secret from a file, dropping trailing line breaks.
std::optional<UsageError> ReadSecretFile(const std::string& path, std::string& secret) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return UsageError{absl::StrCat("cannot read secret file ", path, ": ", std::strerror(errno))};
  }
  secret.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  if (file.bad()) return UsageError{absl::StrCat("cannot read secret file ", path)};
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.empty()) return UsageError{absl::StrCat("secret file ", path, " is empty")};
  return std::nullopt;
}

// `assay cache list|rm` (issue 9; cli/cache_commands.h).
std::variant<int, UsageError> CacheCommand(const CommandLine& line, const ApiClient& api,
                                           std::ostream& out, std::ostream& err) {
  const std::string sub = line.positional.size() > 1 ? line.positional[1] : "";
  Options options;
  if (sub == "list") {
    if (auto error = Options::Check(line, "cache list", {}, options)) return *error;
    if (auto error = ExpectPositionals(line, "cache list", 2, 1, 1, "a REPO")) return *error;
    return CacheList(api, line.positional[2], out, err);
  }
  if (sub == "rm") {
    if (auto error = Options::Check(line, "cache rm", {}, options)) return *error;
    if (auto error = ExpectPositionals(line, "cache rm", 2, 2, 2, "a REPO and an ENTRY_ID")) {
      return *error;
    }
    return CacheRemove(api, line.positional[2], line.positional[3], out, err);
  }
  return UsageError{
      sub.empty() ? "'assay cache' needs a subcommand: list or rm"
                  : absl::StrCat("unknown subcommand 'cache ", sub, "' (expected list or rm)")};
}

// `assay secret set|rm|list` (issue 9; cli/secret_commands.h).
std::variant<int, UsageError> SecretCommand(const CommandLine& line, const CliContext& context,
                                            const ApiClient& api, std::ostream& out,
                                            std::ostream& err) {
  const std::string sub = line.positional.size() > 1 ? line.positional[1] : "";
  Options options;
  if (sub == "list") {
    if (auto error = Options::Check(line, "secret list", {}, options)) return *error;
    if (auto error = ExpectPositionals(line, "secret list", 2, 1, 1, "a REPO")) return *error;
    return SecretList(api, line.positional[2], out, err);
  }
  if (sub == "rm") {
    if (auto error = Options::Check(line, "secret rm", {"--environment"}, options)) return *error;
    if (auto error = ExpectPositionals(line, "secret rm", 2, 2, 2, "a REPO and a NAME")) {
      return *error;
    }
    return SecretRemove(api, line.positional[2], line.positional[3],
                        options.Get("--environment").value_or(""), out, err);
  }
  if (sub != "set") {
    return UsageError{sub.empty() ? "'assay secret' needs a subcommand: set, rm or list"
                                  : absl::StrCat("unknown subcommand 'secret ", sub,
                                                 "' (expected set, rm or list)")};
  }
  if (auto error = Options::Check(line, "secret set", {"--environment", "--from-file", "--value"},
                                  options)) {
    return *error;
  }
  if (options.Get("--value")) {
    return UsageError{
        "--value would show the secret in the process list; pipe it to stdin or use "
        "--from-file F"};
  }
  if (auto error = ExpectPositionals(line, "secret set", 2, 2, 2, "a REPO and a NAME")) {
    return *error;
  }
  SecretSetOptions set;
  set.repo = line.positional[2];
  set.name = line.positional[3];
  set.environment = options.Get("--environment").value_or("");
  if (std::optional<std::string> file = options.Get("--from-file")) {
    std::ifstream in(*file, std::ios::binary);
    if (!in) return UsageError{absl::StrCat("cannot read ", *file, ": ", std::strerror(errno))};
    set.value.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (in.bad()) return UsageError{absl::StrCat("cannot read ", *file)};
  } else {
    if (context.in == nullptr) return UsageError{"no value: pipe it to stdin or use --from-file F"};
    set.value.assign(std::istreambuf_iterator<char>(*context.in), std::istreambuf_iterator<char>());
    // Why one newline: `echo VALUE |` adds it; a value's own line breaks are kept.
    if (set.value.size() >= 1 && set.value.back() == '\n') set.value.pop_back();
    if (set.value.size() >= 1 && set.value.back() == '\r') set.value.pop_back();
  }
  return SecretSet(api, set, out, err);
}

}  // namespace

absl::Status SaveToken(const std::string& path, const std::string& token) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) {
    return absl::InvalidArgumentError(absl::StrCat("bad token path '", path, "'"));
  }
  const std::string dir = path.substr(0, slash);
  // mkdir -p: every prefix ending before a '/', then the directory itself; each new one 0700.
  for (size_t at = dir.find('/', 1);; at = dir.find('/', at + 1)) {
    const std::string part = at == std::string::npos ? dir : dir.substr(0, at);
    if (::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::InternalError(absl::StrCat("cannot create ", part, ": ", std::strerror(errno)));
    }
    if (at == std::string::npos) break;
  }
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return absl::InternalError(absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno)));
  const std::string line = token + "\n";
  const bool ok = ::fchmod(fd, 0600) == 0 &&
                  ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

namespace {

namespace json = boost::json;

// assay login: the password from stdin; a session, then an API token made with it (the
// session ends at once), saved to context.token_path.
int Login(const CliContext& context, const std::string& server, const std::string& username,
          int64_t days, std::ostream& out, std::ostream& err) {
  if (context.token_path.empty()) {
    err << "assay: no place to save the token (set HOME or XDG_CONFIG_HOME)\n";
    return kExitFailure;
  }
  std::string password;
  if (context.in != nullptr) std::getline(*context.in, password);
  if (!password.empty() && password.back() == '\r') password.pop_back();
  if (password.empty()) {
    err << "assay: login reads the password from stdin (one line); none was given\n";
    return kExitFailure;
  }
  std::string base = server;
  while (!base.empty() && base.back() == '/') base.pop_back();
  json::object creds{{"username", username}, {"password", password}};
  auto r = context.fetch("POST", base + "/api/v1/session", {{"Content-Type", "application/json"}},
                         json::serialize(creds));
  if (!r.ok()) {
    err << "assay: " << r.status().message() << " (check --server or ASSAY_SERVER)\n";
    return kExitFailure;
  }
  auto message = [](const HttpClientResponse& resp) {
    boost::system::error_code ec;
    json::value v = json::parse(resp.body, ec);
    if (!ec && v.is_object() && v.as_object().contains("error")) {
      return std::string(v.at("error").at("message").as_string());
    }
    return resp.body.substr(0, 200);
  };
  if (r->status != 200) {
    err << "assay: login refused (" << r->status << "): " << message(*r) << "\n";
    return kExitFailure;
  }
  std::string cookie, csrf;
  for (const auto& [k, v] : r->headers) {
    if (absl::EqualsIgnoreCase(k, "set-cookie") && absl::StartsWith(v, "assay_session=")) {
      cookie = v.substr(0, v.find(';'));
    }
  }
  boost::system::error_code ec;
  json::value body = json::parse(r->body, ec);
  if (!ec && body.is_object()) {
    if (const auto* t = body.as_object().if_contains("csrf_token"); t && t->is_string()) {
      csrf = std::string(t->as_string());
    }
  }
  if (cookie.empty() || csrf.empty()) {
    err << "assay: the server's login answer has no session\n";
    return kExitFailure;
  }
  const HttpHeaders session = {
      {"Cookie", cookie}, {"X-Assay-CSRF", csrf}, {"Content-Type", "application/json"}};
  char host[256] = "";
  ::gethostname(host, sizeof host - 1);
  // Named for where and when it was made: "cli HOST 20261201-101500" (host names are letters,
  // digits, '-' and '.', all allowed in a token's name).
  std::string where = host;
  for (char& ch : where) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '.') ch = '-';
  }
  json::object want{
      {"name", absl::StrCat("cli ", where.substr(0, 60), " ",
                            absl::FormatTime("%Y%m%d-%H%M%S", absl::Now(), absl::UTCTimeZone()))},
      {"scope", "write"},
      {"expires_in_days", days}};
  auto made = context.fetch("POST", base + "/api/v1/tokens", session, json::serialize(want));
  // The session was only for this: end it whatever happened.
  (void)context.fetch("DELETE", base + "/api/v1/session", session, "");
  if (!made.ok() || made->status != 201) {
    err << "assay: cannot create an API token: "
        << (made.ok() ? message(*made) : std::string(made.status().message())) << "\n";
    return kExitFailure;
  }
  json::value token = json::parse(made->body, ec);
  if (ec || !token.is_object() || !token.as_object().contains("token")) {
    err << "assay: unexpected answer to the token request\n";
    return kExitFailure;
  }
  if (absl::Status s = SaveToken(context.token_path, std::string(token.at("token").as_string()));
      !s.ok()) {
    err << "assay: " << s.message() << "\n";
    return kExitFailure;
  }
  out << "logged in to " << base << " as " << username << "; token saved to " << context.token_path
      << " (expires " << Field(&token.as_object(), "expires_at") << ")\n";
  return kExitOk;
}

std::variant<int, UsageError> DispatchCommand(const CommandLine& line, const CliContext& context,
                                              const ApiClient& api, std::ostream& out,
                                              std::ostream& err);

// Runs the command in `line`; returns the exit code, or a usage error. With --json, the
// command's tables are dropped and the last API answer's JSON is printed instead.
std::variant<int, UsageError> Dispatch(const CommandLine& line, const CliContext& context,
                                       std::ostream& out, std::ostream& err) {
  const ApiClient api(context.fetch, line.server.value_or(context.default_server),
                      line.token.value_or(context.default_token), &context.download);
  if (!line.json) return DispatchCommand(line, context, api, out, err);
  const std::string& command = line.positional[0];
  if (command == "lint" || command == "logs" || command == "artifacts" || command == "login") {
    return UsageError{absl::StrCat("--json is for commands that print what the API answers, not '",
                                   command, "'")};
  }
  std::ostream discard(nullptr);
  std::variant<int, UsageError> result = DispatchCommand(line, context, api, discard, err);
  if (const int* code = std::get_if<int>(&result); code != nullptr && *code == kExitOk) {
    if (api.last_body()) out << *api.last_body() << "\n";
  }
  return result;
}

std::variant<int, UsageError> DispatchCommand(const CommandLine& line, const CliContext& context,
                                              const ApiClient& api, std::ostream& out,
                                              std::ostream& err) {
  const std::string& command = line.positional[0];
  Options options;
  auto check = [&](std::string_view name, std::set<std::string_view> allowed, size_t first,
                   size_t min, size_t max, std::string_view missing) -> std::optional<UsageError> {
    if (auto error = Options::Check(line, name, std::move(allowed), options)) return error;
    return ExpectPositionals(line, name, first, min, max, missing);
  };

  if (command == "login") {
    if (auto error = check("login", {"--username", "--expires-days"}, 1, 0, 0, "")) return *error;
    int64_t days = 90;
    if (auto d = options.Get("--expires-days")) {
      if (!absl::SimpleAtoi(*d, &days) || days < 1 || days > 366) {
        return UsageError{"--expires-days must be 1 to 366"};
      }
    }
    std::string username = options.Get("--username").value_or(context.user);
    if (username.empty()) return UsageError{"--username is needed ($USER is not set)"};
    return Login(context, line.server.value_or(context.default_server), username, days, out, err);
  }
  if (command == "lint") {
    if (auto error = check("lint", {}, 1, 0, 1, "")) return *error;
    return LintCommand(line.positional.size() > 1 ? line.positional[1] : ".assay.yml", out, err);
  }
  if (command == "repo") {
    const std::string sub = line.positional.size() > 1 ? line.positional[1] : "";
    if (sub == "list") {
      if (auto error = check("repo list", {}, 2, 0, 0, "")) return *error;
      return RepoList(api, out, err);
    }
    if (sub == "set") {
      if (auto error = check("repo set", {"--default-branch", "--cancel-superseded"}, 2, 1, 1,
                             "a repository NAME")) {
        return *error;
      }
      RepoSetOptions set;
      set.repo = line.positional[2];
      set.default_branch = options.Get("--default-branch");
      if (std::optional<std::string> cancel = options.Get("--cancel-superseded")) {
        if (*cancel != "true" && *cancel != "false") {
          return UsageError{
              absl::StrCat("--cancel-superseded must be true or false, got '", *cancel, "'")};
        }
        set.cancel_superseded = *cancel == "true";
      }
      if (!set.default_branch && !set.cancel_superseded) {
        return UsageError{"'assay repo set' needs --default-branch or --cancel-superseded"};
      }
      return RepoSet(api, set, out, err);
    }
    if (sub == "commit-status") {
      if (auto error = check("repo commit-status",
                             {"--api-url", "--token-file", "--repository", "--context", "--off"}, 2,
                             1, 1, "a repository NAME")) {
        return *error;
      }
      RepoCommitStatusOptions cs;
      cs.name = line.positional[2];
      cs.off = options.Get("--off").has_value();
      std::optional<std::string> api_url = options.Get("--api-url");
      std::optional<std::string> token_file = options.Get("--token-file");
      cs.repository = options.Get("--repository");
      cs.context = options.Get("--context");
      if (cs.off) {
        if (api_url || token_file || cs.repository || cs.context) {
          return UsageError{"'assay repo commit-status --off' takes no other options"};
        }
        return RepoCommitStatus(api, cs, out, err);
      }
      if (!api_url || !token_file) {
        return UsageError{
            "'assay repo commit-status' needs --api-url URL and --token-file FILE (or --off)"};
      }
      cs.api_url = *api_url;
      if (auto error = ReadSecretFile(*token_file, cs.token)) return *error;
      return RepoCommitStatus(api, cs, out, err);
    }
    if (sub != "add") {
      return UsageError{sub.empty()
                            ? "'assay repo' needs a subcommand: add, list, set or commit-status"
                            : absl::StrCat("unknown subcommand 'repo ", sub,
                                           "' (expected add, list, set or commit-status)")};
    }
    if (auto error = check("repo add",
                           {"--clone-url", "--provider", "--secret", "--secret-file", "--html-url"},
                           2, 1, 1, "a repository NAME")) {
      return *error;
    }
    RepoAddOptions add;
    add.name = line.positional[2];
    std::optional<std::string> clone_url = options.Get("--clone-url");
    if (!clone_url) return UsageError{"'assay repo add' needs --clone-url URL"};
    add.clone_url = *clone_url;
    add.provider = options.Get("--provider");
    add.html_url = options.Get("--html-url");
    // Never on the command line, where every local user (and job) reads it in
    // /proc/*/cmdline. --secret is still known, to say so rather than "unknown option".
    if (options.Get("--secret")) {
      return UsageError{
          "--secret would show the webhook secret in the process list; use --secret-file F "
          "or the ASSAY_WEBHOOK_SECRET environment variable"};
    }
    if (std::optional<std::string> file = options.Get("--secret-file")) {
      add.webhook_secret.emplace();
      if (auto error = ReadSecretFile(*file, *add.webhook_secret)) return *error;
    } else {
      add.webhook_secret = context.webhook_secret;
    }
    return RepoAdd(api, add, out, err);
  }
  if (command == "pipelines") {
    if (auto error = check("pipelines", {"--repo", "--limit"}, 1, 0, 0, "")) return *error;
    std::optional<int> limit;
    if (auto error = PositiveIntOption(options, "--limit", limit)) return *error;
    return ListPipelines(api, options.Get("--repo"), limit, out, err);
  }
  if (command == "pipeline") {
    if (auto error = check("pipeline", {}, 1, 1, 1, "a pipeline ID")) return *error;
    return ShowPipeline(api, line.positional[1], out, err);
  }
  if (command == "logs") {
    if (auto error = check("logs", {"--follow", "--timestamps"}, 1, 1, 1, "a JOB_ID")) {
      return *error;
    }
    const bool timestamps = options.Get("--timestamps").has_value();
    if (!options.Get("--follow").has_value()) {
      return ShowLog(api, line.positional[1], out, err, timestamps);
    }
    FollowRequest follow;
    follow.server = line.server.value_or(context.default_server);
    follow.token = line.token.value_or(context.default_token);
    follow.job_id = UrlEscape(line.positional[1]);
    follow.timestamps = timestamps;
    follow.job_live = [&api, &err, id = follow.job_id] {
      auto job = api.CallJson("GET", absl::StrCat("/api/v1/jobs/", id), "", err);
      if (!job || !job->is_object()) return false;
      const std::string state = Field(&job->as_object(), "state");
      return state == "pending" || state == "queued" || state == "assigned" || state == "running";
    };
    return FollowLog(follow, out, err);
  }
  if (command == "artifacts") {
    if (auto error = check("artifacts", {"--output"}, 1, 1, 2, "a JOB_ID")) return *error;
    const std::string path = line.positional.size() > 2 ? line.positional[2] : "";
    const std::string output = options.Get("--output").value_or("");
    if (path.empty() && !output.empty()) {
      return UsageError{"'assay artifacts' takes -o only with a PATH"};
    }
    return Artifacts(api, line.positional[1], path, output, out, err);
  }
  if (command == "run") {
    // --input may repeat: take those out before the once-only check of the other options.
    RunOptions run;
    CommandLine rest = line;
    rest.options.clear();
    for (const auto& [name, value] : line.options) {
      if (name != "--input") {
        rest.options.emplace_back(name, value);
        continue;
      }
      const size_t equals = value.find('=');
      if (equals == std::string::npos || equals == 0) {
        return UsageError{absl::StrCat("--input must be NAME=VALUE, got '", value, "'")};
      }
      run.inputs.emplace_back(value.substr(0, equals), value.substr(equals + 1));
    }
    if (auto error = Options::Check(rest, "run", {"--branch"}, options)) return *error;
    if (auto error = ExpectPositionals(rest, "run", 1, 1, 1, "a REPO")) return *error;
    run.repo = line.positional[1];
    run.branch = options.Get("--branch");
    return RunPipeline(api, run, out, err);
  }
  if (command == "cancel") {
    if (auto error = Options::Check(line, "cancel", {"--job"}, options)) return *error;
    if (std::optional<std::string> job = options.Get("--job")) {
      if (auto error = ExpectPositionals(line, "cancel", 1, 0, 0, "")) return *error;
      return CancelJob(api, *job, out, err);
    }
    if (auto error = ExpectPositionals(line, "cancel", 1, 1, 1, "a PIPELINE_ID")) return *error;
    return CancelPipeline(api, line.positional[1], out, err);
  }
  if (command == "retry") {
    if (auto error = Options::Check(line, "retry", {"--pipeline"}, options)) return *error;
    if (std::optional<std::string> pipeline = options.Get("--pipeline")) {
      if (auto error = ExpectPositionals(line, "retry", 1, 0, 0, "")) return *error;
      return RetryPipeline(api, *pipeline, out, err);
    }
    if (auto error = ExpectPositionals(line, "retry", 1, 1, 1, "a JOB_ID")) return *error;
    return RetryJob(api, line.positional[1], out, err);
  }
  if (command == "rerun") {
    if (auto error = check("rerun", {}, 1, 1, 1, "a PIPELINE_ID")) return *error;
    return RerunPipeline(api, line.positional[1], out, err);
  }
  if (command == "queue") {
    if (auto error = check("queue", {"--limit"}, 1, 0, 0, "")) return *error;
    std::optional<int> limit;
    if (auto error = PositiveIntOption(options, "--limit", limit)) return *error;
    return ListQueue(api, limit, out, err);
  }
  if (command == "agents") {
    const std::string sub = line.positional.size() > 1 ? line.positional[1] : "";
    if (sub == "list") {
      if (auto error = check("agents list", {}, 2, 0, 0, "")) return *error;
      return AgentList(api, out, err);
    }
    if (sub == "token") {
      const std::string verb = line.positional.size() > 2 ? line.positional[2] : "";
      if (verb != "create") return UsageError{"expected 'assay agents token create'"};
      if (auto error =
              check("agents token create", {"--name", "--labels", "--expires"}, 3, 0, 0, "")) {
        return *error;
      }
      TokenCreateOptions t;
      t.name = options.Get("--name");
      t.expires = options.Get("--expires");
      if (std::optional<std::string> labels = options.Get("--labels")) {
        for (absl::string_view l : absl::StrSplit(*labels, ',', absl::SkipEmpty())) {
          t.labels.emplace_back(std::string(l));
        }
      }
      return AgentTokenCreate(api, t, out, err);
    }
    if (sub == "revoke" || sub == "disable" || sub == "enable") {
      if (auto error = check(absl::StrCat("agents ", sub), {}, 2, 1, 1, "an agent NAME")) {
        return *error;
      }
      return AgentChangeAccess(api, line.positional[2], sub, out, err);
    }
    if (sub == "drain") {
      if (auto error = check("agents drain", {"--reason", "--timeout"}, 2, 1, 1, "an agent NAME")) {
        return *error;
      }
      return AgentDrain(api, line.positional[2], options.Get("--reason"), options.Get("--timeout"),
                        out, err);
    }
    if (sub == "resume") {
      if (auto error = check("agents resume", {}, 2, 1, 1, "an agent NAME")) return *error;
      return AgentResume(api, line.positional[2], out, err);
    }
    return UsageError{
        "'assay agents' needs a subcommand: list, token create, revoke, disable, enable, drain "
        "or resume"};
  }
  if (command == "secret") return SecretCommand(line, context, api, out, err);
  if (command == "cache") return CacheCommand(line, api, out, err);
  if (command == "evals") {
    EvalsArgs evals{{line.positional.begin() + 1, line.positional.end()}, line.options};
    std::variant<int, std::string> r = EvalsCommand(evals, api, out, err);
    if (const std::string* usage = std::get_if<std::string>(&r)) return UsageError{*usage};
    return std::get<int>(r);
  }
  if (command == "train") {
    TrainArgs train{{line.positional.begin() + 1, line.positional.end()}, line.options};
    std::variant<int, std::string> r = TrainCommand(train, api, out, err);
    if (const std::string* usage = std::get_if<std::string>(&r)) return UsageError{*usage};
    return std::get<int>(r);
  }
  if (command == "sweep") {
    TrainArgs sweep{{line.positional.begin() + 1, line.positional.end()}, line.options};
    std::variant<int, std::string> r = SweepCommand(sweep, api, out, err);
    if (const std::string* usage = std::get_if<std::string>(&r)) return UsageError{*usage};
    return std::get<int>(r);
  }
  if (command == "deploy" || command == "deployments" || command == "environments") {
    DeployArgs deploy{
        command,
        {line.positional.begin() + 1, line.positional.end()},
        line.options,
        [](const std::string& path) -> absl::StatusOr<std::string> {
          std::ifstream file(path, std::ios::binary);
          if (!file) {
            return absl::NotFoundError(
                absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
          }
          std::string text((std::istreambuf_iterator<char>(file)),
                           std::istreambuf_iterator<char>());
          if (text.size() > (1 << 20)) {
            return absl::InvalidArgumentError(absl::StrCat(path, " is larger than 1 MiB"));
          }
          return text;
        },
        [](absl::Duration d) { absl::SleepFor(d); }};
    std::variant<int, std::string> r = DeployCommand(deploy, api, out, err);
    if (const std::string* usage = std::get_if<std::string>(&r)) return UsageError{*usage};
    return std::get<int>(r);
  }
  if (command == "models") {
    ModelsArgs models{
        {line.positional.begin() + 1, line.positional.end()}, line.options, context.user};
    std::variant<int, std::string> r = ModelsCommand(models, api, out, err);
    if (const std::string* usage = std::get_if<std::string>(&r)) return UsageError{*usage};
    return std::get<int>(r);
  }
  const std::string suggestion = ClosestMatch(command, kCommands);
  return UsageError{
      absl::StrCat("unknown command '", command, "'",
                   suggestion.empty() ? "" : absl::StrCat(" (did you mean '", suggestion, "'?)")),
      /*show_usage=*/true};
}

}  // namespace

int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        const CliContext& context) {
  CommandLine line;
  std::optional<UsageError> parse_error = ParseCommandLine(args, line);
  if (line.help || (!parse_error && line.positional.empty()) ||
      (!line.positional.empty() && line.positional[0] == "help")) {
    // Why exit 2 for --help too: the command did nothing a script could rely on.
    (line.help || !line.positional.empty() ? out : err) << kUsage;
    return kExitUsage;
  }
  if (parse_error) {
    err << "assay: " << parse_error->message << "\nRun 'assay --help' for usage.\n";
    return kExitUsage;
  }
  std::variant<int, UsageError> result = Dispatch(line, context, out, err);
  if (const UsageError* error = std::get_if<UsageError>(&result)) {
    err << "assay: " << error->message << "\n";
    if (error->show_usage) {
      err << "\n" << kUsage;
    } else {
      err << "Run 'assay --help' for usage.\n";
    }
    return kExitUsage;
  }
  return std::get<int>(result);
}

int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CliContext context;
  if (const char* server = std::getenv("ASSAY_SERVER"); server != nullptr && *server != '\0') {
    context.default_server = server;
  }
  if (const char* token = std::getenv("ASSAY_TOKEN"); token != nullptr) {
    context.default_token = token;
  } else if (const char* file = std::getenv("ASSAY_TOKEN_FILE"); file != nullptr && *file) {
    absl::StatusOr<std::string> secret =
        LoadSecretFile(file, absl::StrCat("ASSAY_TOKEN_FILE=", file));
    if (!secret.ok()) {
      err << "assay: " << secret.status().message() << "\n";
      return kExitUsage;
    }
    context.default_token = *std::move(secret);
  }
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && *xdg == '/') {
    context.token_path = absl::StrCat(xdg, "/assay/token");
  } else if (const char* home = std::getenv("HOME"); home != nullptr && *home == '/') {
    context.token_path = absl::StrCat(home, "/.config/assay/token");
  }
  // The token `assay login` saved, when the environment names none.
  if (std::getenv("ASSAY_TOKEN") == nullptr && std::getenv("ASSAY_TOKEN_FILE") == nullptr &&
      !context.token_path.empty() && ::access(context.token_path.c_str(), F_OK) == 0) {
    absl::StatusOr<std::string> secret = LoadSecretFile(context.token_path, context.token_path);
    if (!secret.ok()) {
      err << "assay: " << secret.status().message() << "\n";
      return kExitUsage;
    }
    context.default_token = *std::move(secret);
  }
  if (const char* secret = std::getenv("ASSAY_WEBHOOK_SECRET"); secret != nullptr && *secret) {
    context.webhook_secret = secret;
  }
  context.in = &std::cin;
  if (const char* user = std::getenv("USER"); user != nullptr) context.user = user;
  context.fetch = [](std::string_view method, std::string_view url, const HttpHeaders& headers,
                     std::string_view body) { return HttpFetch(method, url, headers, body); };
  context.download = [](std::string_view url, const HttpHeaders& headers,
                        const std::function<bool(std::string_view)>& sink) {
    return HttpDownload(url, headers, sink);
  };
  return Run(args, out, err, context);
}

int Run(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  const int code = Run(args, std::cout, std::cerr);
  std::cout.flush();
  return code;
}

}  // namespace assay::cli
