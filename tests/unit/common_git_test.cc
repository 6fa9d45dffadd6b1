#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "common/git/git.h"
#include "common/pipeline/spec.h"
#include "common/proc/subprocess.h"

namespace assay {
namespace {
namespace fs = std::filesystem;

// The tests fetch from file:// repositories, which the clone-URL policy allows only so.
const GitMirror::Options kLocal{.allow_local = true};

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/assay-git-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path_ = fs::canonical(tmpl).string();
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs git in `dir` with a fixed identity and no user config; returns trimmed stdout.
std::string Git(const std::string& dir, std::vector<std::string> args) {
  args.insert(args.begin(), "git");
  auto result = RunCommand(args, dir,
                           {{"GIT_CONFIG_GLOBAL", "/dev/null"},
                            {"GIT_CONFIG_NOSYSTEM", "1"},
                            {"GIT_AUTHOR_NAME", "Test"},
                            {"GIT_AUTHOR_EMAIL", "test@example.com"},
                            {"GIT_COMMITTER_NAME", "Test"},
                            {"GIT_COMMITTER_EMAIL", "test@example.com"}});
  REQUIRE(result.ok());
  INFO(result->err);
  REQUIRE(result->exit_code == 0);
  return std::string(absl::StripTrailingAsciiWhitespace(result->out));
}

void WriteFile(const std::string& path, const std::string& content) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out << content;
}

std::string ReadLocalFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A source repository with one commit on main; returns its sha.
struct SourceRepo {
  TempDir tmp;
  std::string dir = tmp.path() + "/src";
  std::string url = "file://" + dir;
  static constexpr char kConfig[] = "on: push\n\0binary\xff tail";
  const std::string config = std::string(kConfig, sizeof(kConfig) - 1);

  std::string Commit(const std::string& message) {
    Git(dir, {"add", "-A"});
    Git(dir, {"commit", "-q", "-m", message});
    return Git(dir, {"rev-parse", "HEAD"});
  }

  std::string Init() {
    fs::create_directories(dir);
    Git(dir, {"init", "-q", "-b", "main"});
    WriteFile(dir + "/.assay.yml", config);
    WriteFile(dir + "/ci/nested.txt", "nested\n");
    return Commit("first");
  }
};

TEST_CASE("GitMirror::ReadFile refuses a blob over the caller's limit from its size alone",
          "[git]") {
  SourceRepo src;
  src.Init();
  // 2 MiB of .assay.yml (a hostile commit's), and a file exactly at the limit.
  WriteFile(src.dir + "/.assay.yml", "on: push\n" + std::string(2 * 1024 * 1024 - 9, '#'));
  WriteFile(src.dir + "/fits.yml", std::string(kMaxSpecBytes, '#'));
  const std::string sha = src.Commit("big");
  GitMirror mirror(src.tmp.path() + "/mirrors/src.git", src.url, kLocal);
  REQUIRE(mirror.EnsureCommit(sha).ok());

  auto big = mirror.ReadFile(sha, ".assay.yml", kMaxSpecBytes);
  CHECK(big.status().code() == absl::StatusCode::kOutOfRange);
  CHECK(big.status().message() == "file is 2097152 bytes, more than the limit of 1048576");
  CHECK(mirror.ReadFile(sha, "fits.yml", kMaxSpecBytes).value().size() == kMaxSpecBytes);
  CHECK(mirror.ReadFile(sha, "fits.yml", kMaxSpecBytes - 1).status().message() ==
        "file is 1048576 bytes, more than the limit of 1048575");
  // Without a limit, the whole blob (as before).
  CHECK(mirror.ReadFile(sha, ".assay.yml").value().size() == 2 * 1024 * 1024);
  // The limit counts only blobs; the other answers are the usual ones, and the validation
  // still comes first.
  auto missing = mirror.ReadFile(sha, "nope.yml", 1);
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK(missing.status().message() == "nope.yml does not exist at commit " + sha);
  CHECK(mirror.ReadFile(sha, "ci", 1).status().message() ==
        "ci at commit " + sha + " is a tree, not a file");
  CHECK(mirror.ReadFile(sha, "../x", 1).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(mirror.ReadFile(sha, "-x", 1).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(mirror.ReadFile("HEAD", ".assay.yml", 1).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("IsHexSha", "[git]") {
  CHECK(IsHexSha(std::string(40, 'a')));
  CHECK(IsHexSha(std::string(64, '0')));
  CHECK_FALSE(IsHexSha(std::string(40, 'A')));
  CHECK_FALSE(IsHexSha(std::string(39, 'a')));
  CHECK_FALSE(IsHexSha("-" + std::string(39, 'a')));
  CHECK_FALSE(IsHexSha("HEAD"));
}

TEST_CASE("GitMirror fetches a commit and reads files at it", "[git]") {
  SourceRepo src;
  const std::string sha = src.Init();
  GitMirror mirror(src.tmp.path() + "/mirrors/src.git", src.url, kLocal);
  REQUIRE(mirror.Ensure().ok());
  CHECK(fs::exists(mirror.dir() + "/HEAD"));
  CHECK(mirror.Ensure().ok());  // idempotent

  CHECK(mirror.HasCommit(sha).value() == false);
  REQUIRE(mirror.EnsureCommit(sha).ok());
  CHECK(mirror.HasCommit(sha).value() == true);
  CHECK(Git(mirror.dir(), {"rev-parse", "refs/heads/main"}) == sha);

  CHECK(mirror.ReadFile(sha, ".assay.yml").value() == src.config);
  CHECK(mirror.ReadFile(sha, "ci/nested.txt").value() == "nested\n");

  auto missing = mirror.ReadFile(sha, "nope.yml");
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK(missing.status().message() == "nope.yml does not exist at commit " + sha);

  auto directory = mirror.ReadFile(sha, "ci");
  CHECK(directory.status().code() == absl::StatusCode::kNotFound);
  CHECK(directory.status().message() == "ci at commit " + sha + " is a tree, not a file");

  const std::string unknown(40, 'e');
  auto no_commit = mirror.ReadFile(unknown, ".assay.yml");
  CHECK(no_commit.status().code() == absl::StatusCode::kNotFound);
  CHECK(no_commit.status().message() ==
        "commit " + unknown + " not found in mirror " + mirror.dir());
  CHECK(mirror.HasCommit(unknown).value() == false);

  // A later commit: the running cat-file child must see what the next fetch brings.
  WriteFile(src.dir + "/.assay.yml", "second\n");
  const std::string sha2 = src.Commit("second");
  CHECK(mirror.HasCommit(sha2).value() == false);
  REQUIRE(mirror.EnsureCommit(sha2).ok());
  CHECK(mirror.ReadFile(sha2, ".assay.yml").value() == "second\n");
  CHECK(mirror.ReadFile(sha, ".assay.yml").value() == src.config);
}

TEST_CASE("GitMirror keeps each fetch as a pack, never as loose objects", "[git]") {
  SourceRepo src;
  const std::string sha = src.Init();
  GitMirror mirror(src.tmp.path() + "/mirrors/src.git", src.url, kLocal);
  REQUIRE(mirror.EnsureCommit(sha).ok());
  WriteFile(src.dir + "/.assay.yml", "second\n");
  REQUIRE(mirror.EnsureCommit(src.Commit("second")).ok());
  int loose_dirs = 0, packs = 0;
  for (const auto& e : fs::directory_iterator(mirror.dir() + "/objects")) {
    if (e.path().filename().string().size() == 2) ++loose_dirs;
  }
  for (const auto& e : fs::directory_iterator(mirror.dir() + "/objects/pack")) {
    if (e.path().extension() == ".pack") ++packs;
  }
  CHECK(loose_dirs == 0);
  CHECK(packs == 2);
}

TEST_CASE("GitMirror: a commit whose tree is missing is unavailable, not a missing file", "[git]") {
  SourceRepo src;
  const std::string sha = src.Init();
  GitMirror mirror(src.tmp.path() + "/mirrors/src.git", src.url, kLocal);
  REQUIRE(mirror.Ensure().ok());
  // What a fetch cut short by a full disk could leave: the commit object alone.
  WriteFile(src.tmp.path() + "/commit", Git(src.dir, {"cat-file", "commit", sha}) + "\n");
  CHECK(Git(mirror.dir(), {"hash-object", "-t", "commit", "-w", src.tmp.path() + "/commit"}) ==
        sha);
  CHECK(mirror.HasCommit(sha).value() == true);
  auto read = mirror.ReadFile(sha, ".assay.yml");
  CHECK(read.status().code() == absl::StatusCode::kUnavailable);
  CHECK(read.status().message() ==
        "the tree of commit " + sha + " is missing from mirror " + mirror.dir());
  // The next EnsureCommit does not take the lone commit as fetched: it fetches, and mends it.
  CHECK(mirror.HasCommitAndTree(sha).value() == false);
  REQUIRE(mirror.EnsureCommit(sha).ok());
  CHECK(mirror.ReadFile(sha, ".assay.yml").value() == src.config);
}

TEST_CASE("GitMirror fetches a commit that is on no branch", "[git]") {
  SourceRepo src;
  const std::string base = src.Init();
  const std::string tree = Git(src.dir, {"rev-parse", "HEAD^{tree}"});
  const std::string dangling = Git(src.dir, {"commit-tree", tree, "-p", base, "-m", "pr head"});
  Git(src.dir, {"update-ref", "refs/pull/1/head", dangling});

  GitMirror mirror(src.tmp.path() + "/mirror.git", src.url, kLocal);
  REQUIRE(mirror.EnsureCommit(dangling).ok());  // EnsureCommit creates the mirror
  CHECK(mirror.HasCommit(dangling).value() == true);
  CHECK(mirror.ReadFile(dangling, "ci/nested.txt").value() == "nested\n");
}

TEST_CASE("GitMirror reports a commit the remote does not have", "[git]") {
  SourceRepo src;
  src.Init();
  GitMirror mirror(src.tmp.path() + "/mirror.git", src.url, kLocal);
  const std::string unknown(40, 'd');
  auto status = mirror.EnsureCommit(unknown);
  CHECK(status.code() == absl::StatusCode::kNotFound);
  CHECK(absl::StartsWith(status.message(),
                         "commit " + unknown + " not found in " + src.url +
                             " (fetched all branches and tags, then the commit itself"));
}

TEST_CASE("GitMirror reports an unreachable remote as unavailable", "[git]") {
  TempDir tmp;
  GitMirror mirror(tmp.path() + "/mirror.git", "file://" + tmp.path() + "/absent", kLocal);
  auto status = mirror.EnsureCommit(std::string(40, 'a'));
  CHECK(status.code() == absl::StatusCode::kUnavailable);
  CHECK(absl::StartsWith(status.message(), "git fetch from file://" + tmp.path() + "/absent into " +
                                               mirror.dir() + " failed: "));
}

TEST_CASE("GitMirror validates its inputs", "[git]") {
  SourceRepo src;
  const std::string sha = src.Init();
  GitMirror mirror(src.tmp.path() + "/mirror.git", src.url, kLocal);
  CHECK(mirror.HasCommit(sha).status().code() == absl::StatusCode::kFailedPrecondition);
  REQUIRE(mirror.EnsureCommit(sha).ok());

  CHECK(mirror.HasCommit("HEAD").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(mirror.EnsureCommit("--upload-pack=touch").code() == absl::StatusCode::kInvalidArgument);
  for (const char* bad :
       {"", "-x", "/etc/passwd", "../x", "ci/../x", "a//b", "ci/", "./ci", "a\nb"}) {
    INFO(bad);
    CHECK(mirror.ReadFile(sha, bad).status().code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(mirror.ReadFile(sha, "x\0y").status().code() == absl::StatusCode::kNotFound);
  CHECK(mirror.ReadFile(sha, std::string("x\0y", 3)).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(mirror.AddWorktree(sha, "relative/dir").code() == absl::StatusCode::kInvalidArgument);
  CHECK(mirror.AddWorktree(sha, "/").code() == absl::StatusCode::kInvalidArgument);
  auto overlap = mirror.AddWorktree(sha, src.tmp.path());
  CHECK(overlap.code() == absl::StatusCode::kInvalidArgument);
  CHECK(overlap.message() ==
        "worktree path " + src.tmp.path() + " overlaps the mirror " + mirror.dir());
  CHECK(mirror.RemoveWorktree(mirror.dir() + "/objects").code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(fs::exists(mirror.dir() + "/objects"));

  TempDir other;
  WriteFile(other.path() + "/not-git/file", "x");
  GitMirror not_git(other.path() + "/not-git", src.url, kLocal);
  auto status = not_git.Ensure();
  CHECK(status.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(status.message() ==
        "git mirror directory " + other.path() + "/not-git exists but is not a git repository");
}

TEST_CASE("GitMirror adds, removes and re-adds worktrees", "[git]") {
  SourceRepo src;
  const std::string sha = src.Init();
  WriteFile(src.dir + "/ci/nested.txt", "changed\n");
  const std::string sha2 = src.Commit("second");
  GitMirror mirror(src.tmp.path() + "/mirror.git", src.url, kLocal);
  REQUIRE(mirror.EnsureCommit(sha).ok());

  const std::string ws = src.tmp.path() + "/ws/job1";
  REQUIRE(mirror.AddWorktree(sha, ws).ok());
  CHECK(ReadLocalFile(ws + "/.assay.yml") == src.config);
  CHECK(ReadLocalFile(ws + "/ci/nested.txt") == "nested\n");
  CHECK(Git(ws, {"rev-parse", "HEAD"}) == sha);
  CHECK(fs::exists(mirror.dir() + "/worktrees/job1"));

  REQUIRE(mirror.RemoveWorktree(ws).ok());
  CHECK_FALSE(fs::exists(ws));
  CHECK_FALSE(fs::exists(mirror.dir() + "/worktrees/job1"));
  CHECK(mirror.RemoveWorktree(ws).ok());  // removing twice is fine

  REQUIRE(mirror.AddWorktree(sha2, ws).ok());
  CHECK(Git(ws, {"rev-parse", "HEAD"}) == sha2);
  CHECK(ReadLocalFile(ws + "/ci/nested.txt") == "changed\n");

  // Adding over a live worktree or a leftover directory replaces it.
  REQUIRE(mirror.AddWorktree(sha, ws).ok());
  CHECK(Git(ws, {"rev-parse", "HEAD"}) == sha);
  REQUIRE(mirror.RemoveWorktree(ws).ok());
  WriteFile(ws + "/junk.txt", "junk");
  REQUIRE(mirror.AddWorktree(sha, ws).ok());
  CHECK_FALSE(fs::exists(ws + "/junk.txt"));
  CHECK(Git(ws, {"rev-parse", "HEAD"}) == sha);

  // Two worktrees with the same basename get distinct registrations; removing one keeps the other.
  const std::string ws_other = src.tmp.path() + "/other/job1";
  REQUIRE(mirror.AddWorktree(sha2, ws_other).ok());
  REQUIRE(mirror.RemoveWorktree(ws_other).ok());
  CHECK(Git(ws, {"rev-parse", "HEAD"}) == sha);
  CHECK(Git(ws, {"status", "--porcelain"}).empty());

  auto unknown = mirror.AddWorktree(std::string(40, 'b'), ws);
  CHECK(unknown.code() == absl::StatusCode::kNotFound);
  CHECK(unknown.message() ==
        "commit " + std::string(40, 'b') + " not found in mirror " + mirror.dir());
}

TEST_CASE("GitMirror serves concurrent reads", "[git]") {
  SourceRepo src;
  const std::string sha = src.Init();
  GitMirror mirror(src.tmp.path() + "/mirror.git", src.url, kLocal);
  REQUIRE(mirror.EnsureCommit(sha).ok());
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        auto content = mirror.ReadFile(sha, (i % 2) ? ".assay.yml" : "ci/nested.txt");
        if (!content.ok() || *content != ((i % 2) ? src.config : "nested\n")) ++failures[t];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(failures == std::vector<int>(4, 0));
}

TEST_CASE("GitMirror::ReadCommit gives the author and the message, made safe to store", "[git]") {
  SourceRepo src;
  const std::string first = src.Init();
  // A commit object written by hand (git commit would re-encode its message): a message in
  // no particular encoding, with valid UTF-8, a stray byte, a cut sequence and an overlong form
  // (git's fetch refuses a NUL in a commit), then 5,000 bytes, more than the message limit.
  const std::string tree = Git(src.dir, {"rev-parse", "HEAD^{tree}"});
  const std::string raw = "tree " + tree + "\nparent " + first +
                          "\nauthor Zo\xc3\xab \xff <z@example.com> 1700000000 +0100\n"
                          "committer C <c@example.com> 1700000000 +0100\n\n"
                          "fix: caf\xc3\xa9 \xff end \xe2\x82 \xc0\xaf!\n\nbody\n" +
                          std::string(5000, 'x');
  WriteFile(src.tmp.path() + "/raw", raw);
  const std::string sha =
      Git(src.dir, {"hash-object", "-t", "commit", "-w", "--literally", src.tmp.path() + "/raw"});
  Git(src.dir, {"update-ref", "refs/heads/raw", sha});
  GitMirror mirror(src.tmp.path() + "/mirror.git", src.url, kLocal);
  REQUIRE(mirror.EnsureCommit(sha).ok());

  auto one = mirror.ReadCommit(first);
  REQUIRE(one.ok());
  CHECK(one->author == "Test <test@example.com>");
  CHECK(one->message == "first");

  auto two = mirror.ReadCommit(sha);
  REQUIRE(two.ok());
  CHECK(two->author == "Zo\xc3\xab \xef\xbf\xbd <z@example.com>");
  // Each bad byte is U+FFFD (3 bytes).
  const std::string head =
      "fix: caf\xc3\xa9 \xef\xbf\xbd end \xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd"
      "\xef\xbf\xbd!\n\nbody\n";
  CHECK(two->message.substr(0, head.size()) == head);
  // Cut at 4,096 bytes of the original message: its 5 bad bytes grew by 2 each.
  CHECK(two->message.size() == GitMirror::kMaxCommitMessage + 5 * 2);

  // A commit object over the caller's limit is refused from its size alone.
  auto big = mirror.ReadCommit(sha, 100);
  CHECK(big.status().code() == absl::StatusCode::kOutOfRange);
  // Not a commit: a tree, an unknown sha, not a sha.
  CHECK(mirror.ReadCommit(tree).status().code() == absl::StatusCode::kNotFound);
  CHECK(mirror.ReadCommit(std::string(40, 'a')).status().code() == absl::StatusCode::kNotFound);
  CHECK(mirror.ReadCommit("HEAD").status().code() == absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace assay

namespace assay {
namespace {

TEST_CASE("GitMirror worktrees are exact checkouts that git sees as clean", "[git]") {
  TempDir src, cache, work;
  Git(src.path(), {"init", "-q", "-b", "main"});
  WriteFile(src.path() + "/README", "top\n");
  WriteFile(src.path() + "/a/b/deep.txt", "deep\n");
  WriteFile(src.path() + "/a/zz.txt", "zz\n");
  WriteFile(src.path() + "/a-b.txt", "sorts between a and a/ in the index\n");
  WriteFile(src.path() + "/bin/run.sh", "#!/bin/sh\necho run\n");
  fs::permissions(src.path() + "/bin/run.sh", fs::perms::owner_all | fs::perms::group_read |
                                                  fs::perms::group_exec | fs::perms::others_read |
                                                  fs::perms::others_exec);
  fs::create_symlink("README", src.path() + "/link");
  Git(src.path(), {"add", "-A"});
  Git(src.path(), {"commit", "-q", "-m", "tree"});
  const std::string sha = Git(src.path(), {"rev-parse", "HEAD"});

  GitMirror mirror(cache.path() + "/m.git", "file://" + src.path(), kLocal);
  REQUIRE(mirror.EnsureCommit(sha).ok());
  const std::string ws = work.path() + "/job-1-1";
  REQUIRE(mirror.AddWorktree(sha, ws).ok());

  CHECK(ReadLocalFile(ws + "/a/b/deep.txt") == "deep\n");
  CHECK(ReadLocalFile(ws + "/a-b.txt") == "sorts between a and a/ in the index\n");
  CHECK(fs::read_symlink(ws + "/link") == "README");
  CHECK((fs::status(ws + "/bin/run.sh").permissions() & fs::perms::owner_exec) != fs::perms::none);
  CHECK((fs::status(ws + "/README").permissions() & fs::perms::owner_exec) == fs::perms::none);
  CHECK(Git(ws, {"rev-parse", "HEAD"}) == sha);
  // The index we wrote matches the tree and the files: nothing staged, modified or untracked.
  CHECK(Git(ws, {"status", "--porcelain", "--untracked-files=all"}).empty());
  CHECK(Git(ws, {"ls-files", "-s"}) == Git(src.path(), {"ls-files", "-s"}));
  Git(ws, {"diff", "--quiet", "HEAD"});
  WriteFile(ws + "/a/zz.txt", "changed\n");
  CHECK(Git(ws, {"status", "--porcelain"}) == " M a/zz.txt");
}

}  // namespace
}  // namespace assay
