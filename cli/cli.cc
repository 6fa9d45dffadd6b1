#include "cli/cli.h"

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

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/agents_commands.h"
#include "cli/api_client.h"
#include "cli/api_commands.h"
#include "cli/cache_commands.h"
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

Global options (anywhere on the line):
  --server URL   server address (default: $ASSAY_SERVER, else http://127.0.0.1:8080)
  --help         show this text

The API token is sent as a bearer token: $ASSAY_TOKEN, or the first line of the file named by
$ASSAY_TOKEN_FILE (not readable by others). Never on the command line, where any local user
can read it.

Exit status: 0 success, 1 failure (lint errors, API errors), 2 usage error.
)";

constexpr std::string_view kCommands[] = {
    "lint",   "repo",   "pipelines", "pipeline", "logs",   "cancel", "run",   "queue",
    "agents", "secret", "artifacts", "cache",    "models", "evals",  "train", "sweep"};

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
    if (arg == "--off" || arg == "--follow" || arg == "--timestamps") {  // options without value
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

// Runs the command in `line`; returns the exit code, or a usage error.
std::variant<int, UsageError> Dispatch(const CommandLine& line, const CliContext& context,
                                       std::ostream& out, std::ostream& err) {
  const std::string& command = line.positional[0];
  const ApiClient api(context.fetch, line.server.value_or(context.default_server),
                      line.token.value_or(context.default_token), &context.download);
  Options options;
  auto check = [&](std::string_view name, std::set<std::string_view> allowed, size_t first,
                   size_t min, size_t max, std::string_view missing) -> std::optional<UsageError> {
    if (auto error = Options::Check(line, name, std::move(allowed), options)) return error;
    return ExpectPositionals(line, name, first, min, max, missing);
  };

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
