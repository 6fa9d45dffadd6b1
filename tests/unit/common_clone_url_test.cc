// The clone-URL policy (common/git/clone_url.h) and how GitMirror applies it: which remotes git
// may fetch from, and that a credential in the URL never reaches a message or the mirror's
// config. Issue 8, item 6.

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "common/git/clone_url.h"
#include "common/git/git.h"
#include "common/proc/subprocess.h"

namespace assay {
namespace {
namespace fs = std::filesystem;

std::string Reason(std::string_view url, bool allow_local = false) {
  auto parsed = ParseCloneUrl(url, allow_local);
  if (parsed.ok()) return "OK";
  CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(parsed.status().message());
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Tmp {
  Tmp() {
    char t[] = "/tmp/assay-url-XXXXXX";
    REQUIRE(mkdtemp(t) != nullptr);
    path = t;
  }
  ~Tmp() { fs::remove_all(path); }
  std::string path;
};

void RunGit(const std::string& dir, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"git", "-C", dir};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = RunCommand(argv, {},
                      {{"GIT_CONFIG_GLOBAL", "/dev/null"},
                       {"GIT_CONFIG_NOSYSTEM", "1"},
                       {"GIT_AUTHOR_NAME", "T"},
                       {"GIT_AUTHOR_EMAIL", "t@example.com"},
                       {"GIT_COMMITTER_NAME", "T"},
                       {"GIT_COMMITTER_EMAIL", "t@example.com"}});
  REQUIRE(r.ok());
  INFO(r->err);
  REQUIRE(r->exit_code == 0);
}

TEST_CASE("ParseCloneUrl accepts https and ssh remotes", "[git][security]") {
  for (const char* ok :
       {"https://github.com/acme/app.git", "https://git.example:8443/a/b",
        "https://[2001:db8::1]/a.git", "ssh://git@github.com/acme/app.git",
        "ssh://git@host:2222/a.git", "git@github.com:acme/app.git", "host.example:repo.git"}) {
    INFO(ok);
    CHECK(Reason(ok) == "OK");
  }
  auto ssh = ParseCloneUrl("git@github.com:acme/app.git", false);
  REQUIRE(ssh.ok());
  CHECK(ssh->kind == CloneUrl::Kind::kSsh);
  CHECK(ssh->url == "git@github.com:acme/app.git");
}

TEST_CASE("ParseCloneUrl splits the credential off an https URL", "[git][security]") {
  auto p = ParseCloneUrl("https://x-access-token:s3cr%40t@github.com/acme/app.git", false);
  REQUIRE(p.ok());
  CHECK(p->kind == CloneUrl::Kind::kHttps);
  CHECK(p->url == "https://github.com/acme/app.git");
  CHECK(p->username == "x-access-token");
  CHECK(p->password == "s3cr@t");
  auto token_only = ParseCloneUrl("https://ghp_TOKEN@github.com/a/b", false);
  REQUIRE(token_only.ok());
  CHECK(token_only->url == "https://github.com/a/b");
  CHECK(token_only->username == "ghp_TOKEN");
  CHECK(Reason("https://u:p%0Aq@h/x") == "has a NUL or newline in its credentials");
  CHECK(Reason("https://u:p%zz@h/x") == "has a malformed percent-escape in its credentials");
  CHECK(RedactCloneUrl("https://u:pw@h/x") == "https://***@h/x");
}

TEST_CASE("ParseCloneUrl refuses local repositories, transport helpers and others",
          "[git][security]") {
  const std::string local =
      "is a local repository (file:// or a path), refused unless the server runs with "
      "--allow-local-repos";
  CHECK(Reason("file:///srv/assay/mirrors/1.git") == local);
  CHECK(Reason("/srv/assay/mirrors/1.git") == local);
  CHECK(Reason("file:///srv/x.git", true) == "OK");
  CHECK(Reason("/srv/x.git", true) == "OK");
  CHECK(Reason("file://relative", true) == "must be file:///absolute/path");
  const std::string only = "(only https://, ssh:// and user@host:path are allowed)";
  CHECK(Reason("ext::sh%-c%touch%/tmp/pwned") == "must not use the ext:: transport " + only);
  CHECK(Reason("fd::17") == "must not use the fd:: transport " + only);
  CHECK(Reason("ext::sh", true) == "must not use the ext:: transport " + only);
  CHECK(Reason("git://host/x") == "must not use the git:// scheme " + only);
  CHECK(Reason("ftp://host/x") == "must not use the ftp:// scheme " + only);
  CHECK(Reason("http://github.com/a/b") ==
        "must use https://, not http:// (code and credentials would travel in clear)");
  CHECK(Reason("relative/path") == "must be an https:// or ssh:// URL or user@host:path " + only);
  CHECK(Reason("./x", true) ==
        "must be an https:// or ssh:// URL, user@host:path or an "
        "absolute path");
  CHECK(Reason("-uhost:x") == "must not start with '-'");
  CHECK(Reason("ssh://-oProxyCommand=x/y") ==
        "must have a valid host (letters, digits, '.', '-', not starting with '-')");
  CHECK(Reason("ssh://u:pw@host/x") ==
        "must not carry a password in an ssh:// URL (use a key); the user is letters, digits, "
        "'.', '_', '-'");
  CHECK(Reason("https://host") == "must name a repository path after the host");
  CHECK(Reason("https://h/a b") == "must not contain spaces or control characters");
  CHECK(Reason(std::string("https://h/a\0b", 13)) ==
        "must not contain spaces or control characters");
  CHECK(Reason("https://h/" + std::string(3000, 'a')) == "must be at most 2048 bytes");
  CHECK(Reason("") == "must not be empty");
  CHECK(Reason("https://h:99999/x") ==
        "must have a valid host (letters, digits, '.', '-', not starting with '-')");
}

TEST_CASE("GitMirror refuses a local remote without allow_local, also at fetch time",
          "[git][security]") {
  Tmp tmp;
  const std::string src = tmp.path + "/src";
  fs::create_directories(src);
  RunGit(src, {"init", "-q", "-b", "main"});
  RunGit(src, {"commit", "-q", "--allow-empty", "-m", "x"});
  const std::string url = "file://" + src;
  GitMirror refused(tmp.path + "/m1.git", url);
  absl::Status s = refused.EnsureCommit(std::string(40, 'a'));
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(s.message() == "clone URL " + url +
                           " refused: is a local repository (file:// or a path), refused unless "
                           "the server runs with --allow-local-repos");
  CHECK_FALSE(fs::exists(tmp.path + "/m1.git"));

  // A mirror made while local remotes were allowed is not fetched into once they are not.
  GitMirror allowed(tmp.path + "/m2.git", url, {.allow_local = true});
  REQUIRE(allowed.Ensure().ok());
  GitMirror later(tmp.path + "/m2.git", url);
  CHECK(later.FetchBranchHead("main").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(later.Ensure().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("GitMirror runs git without this process's GIT_* variables", "[git][security]") {
  Tmp tmp;
  const std::string src = tmp.path + "/src";
  fs::create_directories(src);
  RunGit(src, {"init", "-q", "-b", "main"});
  RunGit(src, {"commit", "-q", "--allow-empty", "-m", "x"});
  const std::string trace = tmp.path + "/trace";
  // GIT_TRACE makes git write to that file; GIT_CONFIG_PARAMETERS would undo protocol.allow.
  REQUIRE(setenv("GIT_TRACE", trace.c_str(), 1) == 0);
  REQUIRE(setenv("GIT_CONFIG_PARAMETERS", "'protocol.ext.allow'='always'", 1) == 0);
  GitMirror mirror(tmp.path + "/m.git", "file://" + src, {.allow_local = true});
  auto head = mirror.FetchBranchHead("main");
  unsetenv("GIT_TRACE");
  unsetenv("GIT_CONFIG_PARAMETERS");
  REQUIRE(head.ok());
  CHECK_FALSE(fs::exists(trace));
}

TEST_CASE("GitMirror keeps an https credential out of messages and the mirror's config",
          "[git][security]") {
  Tmp tmp;
  // Port 1 on loopback: the fetch fails at once, after the mirror has been made.
  GitMirror mirror(tmp.path + "/m.git", "https://alice:pa55w0rd-XYZ@127.0.0.1:1/acme/app.git");
  absl::Status s = mirror.EnsureCommit(std::string(40, 'a'));
  CHECK(s.code() == absl::StatusCode::kUnavailable);
  CHECK_FALSE(absl::StrContains(s.message(), "pa55w0rd"));
  CHECK(absl::StartsWith(s.message(), "git fetch from https://127.0.0.1:1/acme/app.git into "));
  const std::string config = ReadAll(tmp.path + "/m.git/config");
  CHECK(absl::StrContains(config, "url = https://127.0.0.1:1/acme/app.git"));
  CHECK_FALSE(absl::StrContains(config, "pa55w0rd"));
  CHECK_FALSE(absl::StrContains(config, "alice"));

  // A mirror made before credentials were split off has its remote URL rewritten.
  RunGit(tmp.path + "/m.git",
         {"config", "remote.origin.url", "https://alice:pa55w0rd-XYZ@127.0.0.1:1/acme/app.git"});
  GitMirror reopened(tmp.path + "/m.git", "https://alice:pa55w0rd-XYZ@127.0.0.1:1/acme/app.git");
  REQUIRE(reopened.Ensure().ok());
  CHECK_FALSE(absl::StrContains(ReadAll(tmp.path + "/m.git/config"), "pa55w0rd"));
}

TEST_CASE("The credential helper answers from the git child's environment only",
          "[git][security]") {
  const std::string config =
      std::string("credential.https://forge.example.helper=") + kGitCredentialHelper;
  const std::vector<std::pair<std::string, std::string>> env = {
      {"GIT_CONFIG_GLOBAL", "/dev/null"},
      {"GIT_CONFIG_NOSYSTEM", "1"},
      {"GIT_TERMINAL_PROMPT", "0"},
      {"ASSAY_GIT_USERNAME", "alice"},
      {"ASSAY_GIT_PASSWORD", "p w$x'\"y"}};
  auto fill = RunCommand({"git", "-c", "credential.helper=", "-c", config, "credential", "fill"},
                         {}, env, "protocol=https\nhost=forge.example\npath=a/b.git\n\n");
  REQUIRE(fill.ok());
  CHECK(fill->exit_code == 0);
  CHECK(fill->out == "protocol=https\nhost=forge.example\nusername=alice\npassword=p w$x'\"y\n");
  // Another host (e.g. where a redirect leads) gets nothing.
  auto other = RunCommand({"git", "-c", "credential.helper=", "-c", config, "credential", "fill"},
                          {}, env, "protocol=https\nhost=evil.example\n\n");
  REQUIRE(other.ok());
  CHECK(other->exit_code != 0);
  CHECK_FALSE(absl::StrContains(other->out, "p w$x"));
}

TEST_CASE("GitMirror refuses objects that fsck rejects", "[git][security]") {
  Tmp tmp;
  const std::string src = tmp.path + "/src";
  fs::create_directories(src);
  RunGit(src, {"init", "-q", "-b", "main"});
  // A tree with a ".." entry: git mktree writes it; fsck (hasDotdot) refuses it.
  auto blob = RunCommand({"git", "-C", src, "hash-object", "-w", "--stdin"}, {}, {}, "x\n");
  REQUIRE(blob.ok());
  std::string b(blob->out.substr(0, 40));
  auto tree = RunCommand({"git", "-C", src, "mktree"}, {}, {}, "100644 blob " + b + "\t..\n");
  REQUIRE(tree.ok());
  REQUIRE(tree->exit_code == 0);
  auto commit =
      RunCommand({"git", "-C", src, "commit-tree", tree->out.substr(0, 40), "-m", "x"}, {},
                 {{"GIT_AUTHOR_NAME", "T"},
                  {"GIT_AUTHOR_EMAIL", "t@e"},
                  {"GIT_COMMITTER_NAME", "T"},
                  {"GIT_COMMITTER_EMAIL", "t@e"}});
  REQUIRE(commit.ok());
  REQUIRE(commit->exit_code == 0);
  const std::string sha = commit->out.substr(0, 40);
  RunGit(src, {"update-ref", "refs/heads/main", sha});
  GitMirror mirror(tmp.path + "/m.git", "file://" + src, {.allow_local = true});
  absl::Status s = mirror.EnsureCommit(sha);
  CHECK(s.code() == absl::StatusCode::kUnavailable);
  CHECK(absl::StrContains(s.message(), "hasDotdot"));
  CHECK_FALSE(mirror.HasCommit(sha).value_or(true));
}

}  // namespace
}  // namespace assay
