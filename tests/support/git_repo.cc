#include "tests/support/git_repo.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/proc/subprocess.h"

namespace assay::testing {
namespace {

const std::vector<std::pair<std::string, std::string>>& GitEnv() {
  static const auto* env = new std::vector<std::pair<std::string, std::string>>{
      {"GIT_CONFIG_NOSYSTEM", "1"},
      {"GIT_CONFIG_GLOBAL", "/dev/null"},
      {"GIT_TERMINAL_PROMPT", "0"},
      {"GIT_AUTHOR_NAME", "Assay Test"},
      {"GIT_AUTHOR_EMAIL", "test@assay.invalid"},
      {"GIT_COMMITTER_NAME", "Assay Test"},
      {"GIT_COMMITTER_EMAIL", "test@assay.invalid"},
      {"LC_ALL", "C"},
  };
  return *env;
}

}  // namespace

absl::StatusOr<GitRepo> GitRepo::Init(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  GitRepo repo(dir);
  auto r = repo.Git({"init", "--quiet", "--initial-branch=main"});
  if (!r.ok()) return r.status();
  return repo;
}

absl::StatusOr<std::string> GitRepo::Git(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"git", "-C", dir_};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = RunCommand(argv, "", GitEnv(), "", absl::Seconds(60));
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    return absl::InternalError(
        absl::StrCat(DescribeCommand(argv), " exited with code ", r->exit_code, ": ", r->err));
  }
  return r->out;
}

absl::StatusOr<std::string> GitRepo::Commit(
    const std::vector<std::pair<std::string, std::string>>& files,
    const std::vector<std::string>& remove, const std::string& message) {
  for (const auto& [path, content] : files) {
    std::filesystem::path p = std::filesystem::path(dir_) / path;
    std::error_code ec;
    std::filesystem::create_directories(p.parent_path(), ec);
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", p.string()));
  }
  for (const auto& path : remove) {
    std::error_code ec;
    std::filesystem::remove(std::filesystem::path(dir_) / path, ec);
  }
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"add", "--all"},
        std::vector<std::string>{"commit", "--quiet", "--allow-empty", "-m", message}}) {
    auto r = Git(args);
    if (!r.ok()) return r.status();
  }
  auto sha = Git({"rev-parse", "HEAD"});
  if (!sha.ok()) return sha.status();
  return std::string(absl::StripTrailingAsciiWhitespace(*sha));
}

absl::StatusOr<std::string> GitRepo::CommitOnRef(
    const std::string& ref, const std::vector<std::pair<std::string, std::string>>& files) {
  auto current = Git({"symbolic-ref", "--short", "HEAD"});
  if (!current.ok()) return current.status();
  const std::string back(absl::StripTrailingAsciiWhitespace(*current));
  const std::string temp = "assay-test-ref-branch";
  if (auto r = Git({"checkout", "--quiet", "-b", temp}); !r.ok()) return r.status();
  auto sha = Commit(files, {}, "commit on " + ref);
  if (!sha.ok()) return sha.status();
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"update-ref", ref, *sha},
        std::vector<std::string>{"checkout", "--quiet", back},
        std::vector<std::string>{"branch", "--quiet", "-D", temp}}) {
    if (auto r = Git(args); !r.ok()) return r.status();
  }
  return sha;
}

}  // namespace assay::testing
