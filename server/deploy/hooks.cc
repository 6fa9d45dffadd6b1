#include "server/deploy/hooks.h"

#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace assay::deploy {
namespace {

constexpr size_t kMaxOutput = 64 * 1024;

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

void Cut(std::string* s) {
  if (s->size() > kMaxOutput) s->resize(kMaxOutput);
}

}  // namespace

absl::StatusOr<std::string> Hooks::Resolve(std::string_view name) const {
  if (dir_.empty()) {
    return absl::FailedPreconditionError(
        "the server has no deploy hooks directory: its operator must start it with "
        "--deploy-hooks DIR holding the program");
  }
  if (!ValidHookName(name)) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", AV(name), "' is not a deploy hook's name"));
  }
  std::string path = absl::StrCat(dir_, "/", AV(name));
  struct stat st {};
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || access(path.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("no executable program '", AV(name),
                                                      "' in the server's deploy hooks directory"));
  }
  return path;
}

absl::StatusOr<CommandResult> Hooks::Run(
    const std::vector<std::string>& command,
    const std::vector<std::pair<std::string, std::string>>& env, std::string_view input,
    absl::Duration timeout) const {
  if (command.empty()) return absl::InvalidArgumentError("a deploy hook needs a program");
  auto path = Resolve(command[0]);
  if (!path.ok()) return path.status();
  std::vector<std::string> argv = command;
  argv[0] = *path;
  std::vector<std::string> envp = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8",
                                   "HOME=/nonexistent"};
  for (const auto& [k, v] : env) envp.push_back(absl::StrCat(k, "=", v));
  auto r = RunCommandInEnvironment(argv, dir_, std::move(envp), input,
                                   std::min(timeout, kMaxHookTimeout));
  if (!r.ok()) {
    if (r.status().code() == absl::StatusCode::kDeadlineExceeded) {
      return absl::DeadlineExceededError(
          absl::StrCat("deploy hook '", command[0], "' did not finish within ",
                       absl::FormatDuration(std::min(timeout, kMaxHookTimeout))));
    }
    return absl::Status(r.status().code(),
                        absl::StrCat("deploy hook '", command[0], "': ", r.status().message()));
  }
  Cut(&r->out);
  Cut(&r->err);
  return r;
}

std::string DescribeHookFailure(const CommandResult& r) {
  std::string said;
  for (const std::string* text : {&r.err, &r.out}) {
    for (absl::string_view line : absl::StrSplit(*text, '\n')) {
      line = absl::StripAsciiWhitespace(line);
      if (!line.empty()) said = std::string(line);
    }
    if (!said.empty()) break;
  }
  std::string out = r.term_signal != 0 ? absl::StrCat("killed by signal ", r.term_signal)
                                       : absl::StrCat("exit ", r.exit_code);
  if (!said.empty()) absl::StrAppend(&out, ": ", said);
  if (out.size() > 300) out.resize(300);
  // What a program printed goes into events and messages (text columns): printable ASCII only,
  // so that no byte sequence it wrote can make them fail to store.
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  }
  return out;
}

}  // namespace assay::deploy
