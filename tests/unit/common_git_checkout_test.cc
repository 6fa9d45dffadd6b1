// Checking out hostile trees (issue 8, item 7): objects planted straight into the mirror (as a
// writable object cache or a forge that skips fsck would deliver them), built with real git
// (`git mktree`, `git hash-object --literally`). Each must be refused with a clear error, and
// nothing may appear outside the worktree.

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/git/git.h"
#include "common/git/tree.h"
#include "common/proc/subprocess.h"

namespace assay {
namespace {
namespace fs = std::filesystem;

struct Tmp {
  Tmp() {
    char t[] = "/tmp/assay-co-XXXXXX";
    REQUIRE(mkdtemp(t) != nullptr);
    path = fs::canonical(t).string();
  }
  ~Tmp() { fs::remove_all(path); }
  std::string path;
};

const std::vector<std::pair<std::string, std::string>> kEnv = {
    {"GIT_CONFIG_GLOBAL", "/dev/null"}, {"GIT_CONFIG_NOSYSTEM", "1"},
    {"GIT_AUTHOR_NAME", "T"},           {"GIT_AUTHOR_EMAIL", "t@example.com"},
    {"GIT_COMMITTER_NAME", "T"},        {"GIT_COMMITTER_EMAIL", "t@example.com"}};

// `git --git-dir=DIR ARGS` with `input` on stdin; its trimmed stdout.
std::string G(const std::string& dir, std::vector<std::string> args,
              const std::string& input = {}) {
  args.insert(args.begin(), {"git", "--git-dir=" + dir});
  auto r = RunCommand(args, {}, kEnv, input);
  REQUIRE(r.ok());
  INFO(r->err);
  REQUIRE(r->exit_code == 0);
  std::string out = r->out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string Unhex(const std::string& hex) {
  std::string raw;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    raw += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  }
  return raw;
}

// A mirror of a one-commit repository, ready to have hostile objects written into it.
struct Fixture {
  Tmp tmp;
  std::string mirror_dir = tmp.path + "/m.git";
  std::string outside = tmp.path + "/outside";
  std::unique_ptr<GitMirror> mirror;

  Fixture() {
    const std::string src = tmp.path + "/src";
    fs::create_directories(src);
    RunCommand({"git", "init", "-q", "-b", "main", src}, {}, kEnv).IgnoreError();
    G(src + "/.git", {"commit", "-q", "--allow-empty", "-m", "x"});
    fs::create_directories(outside);
    mirror = std::make_unique<GitMirror>(mirror_dir, "file://" + src,
                                         GitMirror::Options{.allow_local = true});
    auto head = mirror->FetchBranchHead("main");
    REQUIRE(head.ok());
  }
  std::string Blob(const std::string& content) {
    return G(mirror_dir, {"hash-object", "-w", "--stdin"}, content);
  }
  std::string Tree(const std::string& mktree_input) {
    return G(mirror_dir, {"mktree"}, mktree_input);
  }
  // A tree object written byte for byte: entries (mode, name, hex sha) in the given order.
  std::string RawTree(const std::vector<std::tuple<std::string, std::string, std::string>>& es) {
    std::string content;
    for (const auto& [mode, name, sha] : es) content += mode + " " + name + '\0' + Unhex(sha);
    return G(mirror_dir, {"hash-object", "-t", "tree", "-w", "--literally", "--stdin"}, content);
  }
  std::string Commit(const std::string& tree) {
    return G(mirror_dir, {"commit-tree", tree, "-m", "hostile"});
  }
  absl::Status Checkout(const std::string& commit) {
    return mirror->AddWorktree(commit, tmp.path + "/ws");
  }
};

TEST_CASE("Checkout refuses a symlink and a directory under one name", "[git][security]") {
  Fixture f;
  const std::string link = f.Blob(f.outside);
  const std::string file = f.Blob("pwned\n");
  const std::string sub = f.Tree("100644 blob " + file + "\tpwned\n");
  // Sorted as git sorts: the symlink "a" first, then the directory "a".
  const std::string tree = f.Tree("120000 blob " + link + "\ta\n040000 tree " + sub + "\ta\n");
  absl::Status s = f.Checkout(f.Commit(tree));
  CHECK(s.code() == absl::StatusCode::kDataLoss);
  CHECK(absl::StrContains(s.message(), "two entries are named \"a\""));
  CHECK_FALSE(fs::exists(f.outside + "/pwned"));

  // One level down, the same trick through a nested directory.
  const std::string nested = f.Tree("040000 tree " + tree + "\td\n");
  s = f.Checkout(f.Commit(nested));
  CHECK(s.code() == absl::StatusCode::kDataLoss);
  CHECK(absl::StrContains(s.message(), "(d): two entries are named \"a\""));
  CHECK_FALSE(fs::exists(f.outside + "/pwned"));
}

TEST_CASE("Checkout refuses '..', '.', '.git' in any case, and names with '/'", "[git][security]") {
  Fixture f;
  const std::string file = f.Blob("pwned\n");
  const std::string sub = f.Tree("100644 blob " + file + "\tpwned\n");
  const std::string hook = f.Tree("100755 blob " + file + "\tpost-checkout\n");
  struct Case {
    std::string tree, name;
  };
  std::vector<Case> cases = {
      {f.Tree("040000 tree " + sub + "\t..\n"), ".."},
      {f.Tree("040000 tree " + sub + "\t.\n"), "."},
      {f.Tree("040000 tree " + hook + "\t.git\n"), ".git"},
      {f.Tree("040000 tree " + hook + "\t.GiT\n"), ".GiT"},
      {f.RawTree({{"100644", "../outside/pwned", file}}), "../outside/pwned"},
      {f.RawTree({{"100644", "/tmp/x", file}}), "/tmp/x"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    const std::string commit = f.Commit(c.tree);
    absl::Status s = f.Checkout(commit);
    CHECK(s.code() == absl::StatusCode::kDataLoss);
    CHECK(s.message() == absl::StrCat("refusing to check out ", commit, ": the root tree: entry \"",
                                      c.name,
                                      "\" is not a safe file name (empty, '.', '..', '.git' in "
                                      "any case, or with '/' or NUL)"));
  }
  CHECK_FALSE(fs::exists(f.outside + "/pwned"));
  CHECK_FALSE(fs::exists(f.tmp.path + "/pwned"));
}

TEST_CASE("Checkout never follows a symlink made by an earlier entry", "[git][security]") {
  // A symlink "a" and a directory "b" are fine; but no path through "a" is ever written even
  // if a tree lists "a" as a directory again under another case-distinct or duplicate name.
  Fixture f;
  const std::string link = f.Blob(f.outside);
  const std::string file = f.Blob("ok\n");
  const std::string sub = f.Tree("100644 blob " + file + "\tfile\n");
  const std::string tree = f.Tree("120000 blob " + link + "\ta\n040000 tree " + sub + "\tb\n");
  REQUIRE(f.Checkout(f.Commit(tree)).ok());
  CHECK(fs::is_symlink(f.tmp.path + "/ws/a"));
  CHECK(fs::exists(f.tmp.path + "/ws/b/file"));
  CHECK(fs::is_empty(f.outside));
}

TEST_CASE("Checkout refuses a tree nested deeper than 256 directories", "[git][security]") {
  Fixture f;
  std::string tree = f.Tree("100644 blob " + f.Blob("deep\n") + "\tf\n");
  for (int i = 0; i < 257; ++i) tree = f.Tree("040000 tree " + tree + "\td\n");
  const std::string commit = f.Commit(tree);
  absl::Status s = f.Checkout(commit);
  CHECK(s.code() == absl::StatusCode::kDataLoss);
  std::string deep = "d";
  for (int i = 1; i < 257; ++i) deep += "/d";
  CHECK(s.message() == absl::StrCat("refusing to check out ", commit, ": ", deep,
                                    " is nested deeper than 256 directories"));
}

TEST_CASE("CheckTreeEntries", "[git][security]") {
  const std::string sha(20, '\1');
  CHECK(CheckTreeEntries({{0100644, "a", sha}, {040000, "b", sha}}).ok());
  CHECK(CheckTreeEntries({{0100644, "a", sha}, {040000, "a", sha}}).message() ==
        "two entries are named \"a\"");
  CHECK(CheckTreeEntries({{0100644, "", sha}}).code() == absl::StatusCode::kDataLoss);
  CHECK(CheckTreeEntries({{0100644, std::string("a\0b", 3), sha}}).message() ==
        "entry \"a\\000b\" is not a safe file name (empty, '.', '..', '.git' in any case, or "
        "with '/' or NUL)");
  for (const char* bad : {".", "..", ".git", ".GIT", ".Git", "a/b", "/"}) {
    INFO(bad);
    CHECK_FALSE(IsSafeEntryName(bad));
  }
  for (const char* good : {"a", ".gitignore", "..a", "git", ".github", "...", ".git2"}) {
    INFO(good);
    CHECK(IsSafeEntryName(good));
  }
}

}  // namespace
}  // namespace assay
