// Artifact paths on the agent (issue 9): validation, glob selection, collection from a
// workspace (symlinks in and out, FIFOs, owners, limits), chunking, and the writer that never
// leaves the workspace.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "agent/artifact_paths.h"
#include "agent/artifacts.h"
#include "tests/unit/artifact_test_util.h"

namespace assay {
namespace {

using testing::ListTree;
using testing::Pattern;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;
using Strings = std::vector<std::string>;

std::string Why(std::string_view path) {
  absl::Status s = ValidateArtifactPath(path);
  return s.ok() ? "ok" : std::string(s.message());
}

TEST_CASE("artifact paths: each escape is refused with its reason") {
  CHECK(Why("out/model.bin") == "ok");
  CHECK(Why("a") == "ok");
  CHECK(Why("out/.git/x") == "ok");  // only the workspace's own .git is off limits
  CHECK(Why("") == "empty path");
  CHECK(Why("/etc/passwd") == "absolute path");
  CHECK(Why("..") == "'..' segment");
  CHECK(Why("../x") == "'..' segment");
  CHECK(Why("out/../../x") == "'..' segment");
  CHECK(Why("out/./x") == "'.' segment");
  CHECK(Why("out//x") == "empty segment");
  CHECK(Why("out/") == "empty segment");
  CHECK(Why(std::string("out/a\0b", 7)) == "NUL byte");
  CHECK(Why(".git/hooks/pre-commit") == "inside the workspace's .git");
  CHECK(Why(".git") == "inside the workspace's .git");
  CHECK(Why(std::string(256, 'a')) == "a segment longer than 255 bytes");
  std::string long_path;
  while (long_path.size() <= 4096) long_path += "abcdefgh/";
  long_path += "x";
  CHECK(Why(long_path) == "longer than 4096 bytes");
  CHECK(ValidateArtifactPath("../x").code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("artifact globs: the last matching entry decides, a directory takes its tree") {
  const Strings globs = {"out/**", "!out/**/*.tmp", "dist", "logs/", "!logs/debug"};
  CHECK(ArtifactSelected(globs, "out/model.bin"));
  CHECK(ArtifactSelected(globs, "out/sub/a.txt"));
  CHECK_FALSE(ArtifactSelected(globs, "out/sub/a.tmp"));
  CHECK(ArtifactSelected(globs, "dist/app/bin"));
  CHECK(ArtifactSelected(globs, "logs/x.log"));
  CHECK_FALSE(ArtifactSelected(globs, "logs/debug/x.log"));
  CHECK_FALSE(ArtifactSelected(globs, "distx"));
  CHECK_FALSE(ArtifactSelected(globs, "src/main.c"));
  CHECK(ArtifactSelected({"**/*.bin"}, "a/b/c.bin"));
  CHECK(ArtifactSelected({"*.bin"}, "c.bin"));
  CHECK_FALSE(ArtifactSelected({"*.bin"}, "a/c.bin"));
}

Strings Paths(const CollectResult& r) {
  Strings out;
  for (const CollectedFile& f : r.files) out.push_back(f.path);
  return out;
}

TEST_CASE("collect: the selected regular files, sorted, modes 0644/0755, never .git") {
  TempDir ws;
  WriteFile(ws.path + "/out/model.bin", "model");
  WriteFile(ws.path + "/out/sub/a.txt", "a");
  WriteFile(ws.path + "/out/sub/b.tmp", "tmp");
  WriteFile(ws.path + "/out/run.sh", "#!/bin/sh\n");
  REQUIRE(chmod((ws.path + "/out/run.sh").c_str(), 0750) == 0);
  WriteFile(ws.path + "/src/main.c", "int main;");
  WriteFile(ws.path + "/.git/config", "[core]");
  WriteFile(ws.path + "/top.txt", "top");

  auto r = CollectArtifactFiles(ws.path, {"out/**", "!out/**/*.tmp"});
  REQUIRE(r.ok());
  CHECK(Paths(*r) == Strings{"out/model.bin", "out/run.sh", "out/sub/a.txt"});
  CHECK(r->files[0].source == "out/model.bin");
  CHECK(r->files[0].mode == 0644);
  CHECK(r->files[1].mode == 0755);
  CHECK(r->notes.empty());

  auto all = CollectArtifactFiles(ws.path, {"**"});
  REQUIRE(all.ok());
  CHECK(Paths(*all) == Strings{"out/model.bin", "out/run.sh", "out/sub/a.txt", "out/sub/b.tmp",
                               "src/main.c", "top.txt"});
  auto dir = CollectArtifactFiles(ws.path, {"out/sub"});
  REQUIRE(dir.ok());
  CHECK(Paths(*dir) == Strings{"out/sub/a.txt", "out/sub/b.tmp"});
  auto none = CollectArtifactFiles(ws.path, {"nothing/**"});
  REQUIRE(none.ok());
  CHECK(none->files.empty());
}

TEST_CASE("collect: a symlink out of the workspace is refused and named, one inside is read") {
  TempDir outside;
  WriteFile(outside.path + "/secret", "secret");
  TempDir ws;
  WriteFile(ws.path + "/src/main.c", "int main;");
  WriteFile(ws.path + "/.git/config", "[core]");
  std::filesystem::create_directories(ws.path + "/out");
  auto link = [&](const std::string& target, const std::string& name) {
    REQUIRE(symlink(target.c_str(), (ws.path + "/out/" + name).c_str()) == 0);
  };
  link(outside.path + "/secret", "abs_out");
  link("../../../../../../../../../.." + outside.path + "/secret", "rel_out");
  link(outside.path, "dir_out");
  link(ws.path + "/src/main.c", "abs_in");
  link("../src/main.c", "rel_in");
  link("rel_in", "chain_in");
  link("../src", "dir_in");
  link("missing", "dangling");
  link("loop_b", "loop_a");
  link("loop_a", "loop_b");
  link("../.git/config", "into_git");
  REQUIRE(mkfifo((ws.path + "/out/fifo").c_str(), 0644) == 0);

  auto r = CollectArtifactFiles(ws.path, {"out/**"});
  REQUIRE(r.ok());
  CHECK(Paths(*r) == Strings{"out/abs_in", "out/chain_in", "out/rel_in"});
  for (const CollectedFile& f : r->files) CHECK(f.source == "src/main.c");
  CHECK(r->notes ==
        Strings{
            "refused out/abs_out: a symlink to " + outside.path + "/secret, outside the workspace",
            "skipped out/dangling: a symlink to nothing",
            "skipped out/dir_in: a symlink to a directory (not followed)",
            "refused out/dir_out: a symlink to " + outside.path + ", outside the workspace",
            "skipped out/fifo: not a regular file", "refused out/into_git: a symlink into .git",
            "skipped out/loop_a: a symlink loop", "skipped out/loop_b: a symlink loop",
            "refused out/rel_out: a symlink to a place above the workspace, outside the "
            "workspace"});
}

TEST_CASE("collect: files of another owner are refused when a job user is set") {
  TempDir ws;
  WriteFile(ws.path + "/out/a", "a");
  CollectOptions o;
  o.owner = geteuid() + 1;
  auto r = CollectArtifactFiles(ws.path, {"out"}, o);
  REQUIRE(r.ok());
  CHECK(r->files.empty());
  CHECK(r->notes ==
        Strings{"refused out/a: owned by uid " + std::to_string(geteuid()) + ", not the job user"});
  o.owner = geteuid();
  CHECK(Paths(*CollectArtifactFiles(ws.path, {"out"}, o)) == Strings{"out/a"});
}

TEST_CASE("collect: too many files, entries or levels are refused, unreachable dirs unread") {
  TempDir ws;
  for (int i = 0; i < 3; ++i) WriteFile(ws.path + "/out/f" + std::to_string(i), "x");
  for (int i = 0; i < 50; ++i) WriteFile(ws.path + "/node_modules/m" + std::to_string(i), "x");
  CollectOptions o;
  o.max_files = 2;
  auto r = CollectArtifactFiles(ws.path, {"out/*"}, o);
  CHECK(r.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(r.status().message() == "artifacts.paths select more than 2 files");
  CollectOptions e;
  e.max_entries = 10;  // node_modules (50 entries) is never listed for out/*
  CHECK(Paths(*CollectArtifactFiles(ws.path, {"out/*"}, e)) ==
        Strings{"out/f0", "out/f1", "out/f2"});
  auto many = CollectArtifactFiles(ws.path, {"**/*"}, e);
  CHECK(many.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(many.status().message() == "the workspace has more than 10 entries under artifacts.paths");
  WriteFile(ws.path + "/d/d/d/d/x", "x");
  CollectOptions d;
  d.max_depth = 2;
  auto deep = CollectArtifactFiles(ws.path, {"d"}, d);
  CHECK(deep.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(deep.status().message() == "d/d/d is nested deeper than 2 directories");
}

TEST_CASE("chunks: 4 MiB pieces with their exact SHA-256, and the whole file's") {
  TempDir dir;
  const std::string data = Pattern((4 << 20) + 1);
  WriteFile(dir.path + "/f", data);
  UniqueFd fd(open((dir.path + "/f").c_str(), O_RDONLY | O_CLOEXEC));
  std::string sha;
  uint64_t size = 0;
  auto chunks = ChunkFile(fd.get(), &sha, &size);
  REQUIRE(chunks.ok());
  REQUIRE(chunks->size() == 2);
  CHECK((*chunks)[0].offset == 0);
  CHECK((*chunks)[0].size == 4u << 20);
  CHECK((*chunks)[0].sha256 == "a117210941a0b00dcb2d8577e680d84b6fa0eaf760d2afc654c953b9859d54fa");
  CHECK((*chunks)[1].offset == 4u << 20);
  CHECK((*chunks)[1].size == 1);
  CHECK((*chunks)[1].sha256 == "74cd9ef9c7e15f57bdad73c511462ca65cb674c46c49639c60f1b44650fa1dcb");
  CHECK(sha == "f4711f6bc42a8dc6520e30e306743855a82c7bdecd6e7d3edfb04b6f4524f7bd");
  CHECK(size == (4u << 20) + 1);

  WriteFile(dir.path + "/exact", data.substr(0, 4 << 20));
  UniqueFd exact(open((dir.path + "/exact").c_str(), O_RDONLY | O_CLOEXEC));
  auto one = ChunkFile(exact.get(), &sha, &size);
  REQUIRE(one.ok());
  REQUIRE(one->size() == 1);
  CHECK(sha == "a117210941a0b00dcb2d8577e680d84b6fa0eaf760d2afc654c953b9859d54fa");

  WriteFile(dir.path + "/empty", "");
  UniqueFd empty(open((dir.path + "/empty").c_str(), O_RDONLY | O_CLOEXEC));
  auto none = ChunkFile(empty.get(), &sha, &size);
  REQUIRE(none.ok());
  CHECK(none->empty());
  CHECK(size == 0);
  CHECK(sha == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(FormatMiB(3 << 20) == "3.0");
  CHECK(FormatMiB((5 << 20) + (1 << 19)) == "5.5");
}

TEST_CASE("source files open only as regular files, never through a symlink") {
  TempDir outside;
  WriteFile(outside.path + "/secret", "secret");
  TempDir ws;
  WriteFile(ws.path + "/out/a", "a");
  REQUIRE(symlink(outside.path.c_str(), (ws.path + "/link").c_str()) == 0);
  REQUIRE(symlink((outside.path + "/secret").c_str(), (ws.path + "/out/s").c_str()) == 0);
  UniqueFd root(open(ws.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  CHECK(OpenArtifactSource(root.get(), "out/a").ok());
  CHECK(OpenArtifactSource(root.get(), "link/secret").status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(OpenArtifactSource(root.get(), "out/s").status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(OpenArtifactSource(root.get(), "out").status().message() == "out is not a regular file");
  CHECK(OpenArtifactSource(root.get(), "out/gone").status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("writer: files land in place with their mode, parents are made") {
  TempDir ws;
  auto w = ArtifactWriter::Open(ws.path, std::nullopt);
  REQUIRE(w.ok());
  REQUIRE(w->Begin("out/sub/a.txt").ok());
  REQUIRE(w->Append("hello ").ok());
  REQUIRE(w->Append("world").ok());
  REQUIRE(w->Commit(0644).ok());
  REQUIRE(w->Begin("run.sh").ok());
  REQUIRE(w->Append("#!/bin/sh").ok());
  REQUIRE(w->Commit(04777).ok());  // only 0755 or 0644 are ever given
  CHECK(ReadFile(ws.path + "/out/sub/a.txt") == "hello world");
  struct stat st;
  REQUIRE(stat((ws.path + "/out/sub/a.txt").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0644);
  REQUIRE(stat((ws.path + "/run.sh").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0755);
  REQUIRE(stat((ws.path + "/out/sub").c_str(), &st) == 0);
  CHECK(S_ISDIR(st.st_mode));
  CHECK(ListTree(ws.path) == Strings{"out", "out/sub", "out/sub/a.txt", "run.sh"});
  // Aborted: nothing is left, not even the temporary file.
  REQUIRE(w->Begin("out/partial").ok());
  REQUIRE(w->Append("half").ok());
  w->Abort();
  CHECK(ListTree(ws.path) == Strings{"out", "out/sub", "out/sub/a.txt", "run.sh"});
}

TEST_CASE("writer: bad paths and paths through a planted symlink are refused, nothing leaks") {
  TempDir outside;
  TempDir ws;
  REQUIRE(symlink(outside.path.c_str(), (ws.path + "/out").c_str()) == 0);
  WriteFile(outside.path + "/victim", "original");
  REQUIRE(symlink((outside.path + "/victim").c_str(), (ws.path + "/file_link").c_str()) == 0);
  WriteFile(ws.path + "/plain", "x");
  auto w = ArtifactWriter::Open(ws.path, std::nullopt);
  REQUIRE(w.ok());
  absl::Status through = w->Begin("out/model.bin");
  CHECK(through.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(through.message() ==
        "refusing to write out/model.bin: out is a symlink or not a directory");
  absl::Status under_file = w->Begin("plain/x");
  CHECK(under_file.message() == "refusing to write plain/x: plain is a symlink or not a directory");
  const Strings bad_paths = {"../x", "/tmp/x", "a//b", std::string("a\0b", 3), ".git/x"};
  for (const std::string& bad : bad_paths) {
    CHECK(w->Begin(bad).code() == absl::StatusCode::kInvalidArgument);
  }
  // A symlink at the file's own place is replaced; its target is untouched.
  REQUIRE(w->Begin("file_link").ok());
  REQUIRE(w->Append("new").ok());
  REQUIRE(w->Commit(0644).ok());
  CHECK(ReadFile(outside.path + "/victim") == "original");
  struct stat st;
  REQUIRE(lstat((ws.path + "/file_link").c_str(), &st) == 0);
  CHECK(S_ISREG(st.st_mode));
  CHECK(ListTree(outside.path) == Strings{"victim"});
  CHECK(ListTree(ws.path) == Strings{"file_link", "out", "plain"});
}

TEST_CASE("writer: with an owner, made directories and files belong to the job user") {
  if (geteuid() != 0) {
    WARN("not root: chown cannot be tested");
    return;
  }
  TempDir ws;
  auto w = ArtifactWriter::Open(ws.path, ArtifactWriter::Owner{65534, 65533});
  REQUIRE(w.ok());
  REQUIRE(w->Begin("out/sub/a.txt").ok());
  REQUIRE(w->Append("a").ok());
  REQUIRE(w->Commit(0755).ok());
  for (const std::string& p : Strings{"/out", "/out/sub", "/out/sub/a.txt"}) {
    struct stat st;
    REQUIRE(lstat((ws.path + p).c_str(), &st) == 0);
    CHECK(st.st_uid == 65534u);
    CHECK(st.st_gid == 65533u);
  }
}

}  // namespace
}  // namespace assay
