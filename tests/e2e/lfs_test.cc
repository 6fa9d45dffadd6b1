// Issue 9, "Large files": a repository using Git LFS gets the real files in the workspace, not
// pointer files; objects are fetched once per agent (its cache) and checked against their
// SHA-256; `lfs: false` leaves the pointers; a fork's .lfsconfig cannot send the agent to
// another host. The LFS endpoint is tests/support/lfs_server.py (a forge's LFS service
// stand-in that records each request).
#include <stdlib.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"
#include "common/git/git.h"
#include "common/git/lfs.h"
#include "tests/e2e/e2e.h"
#include "tests/support/lfs_server.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;
using testing::LfsPointerText;
using testing::LfsServer;

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(gen() & 0xff);
  return s;
}

// A fresh directory, removed with everything in it at the end of the test.
struct TempDir {
  explicit TempDir(const std::string& name) {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / absl::StrCat("assay-", name, "-XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) FAIL("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string path;
};

std::string Slurp(const std::string& path) { return testing::ReadFileOrEmpty(path); }

size_t Batches(const LfsServer& s) {
  size_t n = 0;
  for (const json::object& r : s.Requests()) n += JsonString(r, "method") == "POST" ? 1 : 0;
  return n;
}

constexpr char kAttributes[] = "*.bin filter=lfs diff=lfs merge=lfs -text\n";

TEST_CASE("CheckoutLfs: real bytes in place of pointers, fetched once, then from the cache",
          "[e2e][lfs]") {
  TempDir tmp("lfs-checkout");
  const std::string& dir = tmp.path;
  std::unique_ptr<LfsServer> lfs = MUST(LfsServer::Start(dir + "/lfs"));
  const std::string weights = RandomBytes(3 << 20, 1);
  const std::string data = RandomBytes(1000, 2);
  GitRepo repo = MUST(GitRepo::Init(dir + "/repo"));
  const std::string sha = MUST(repo.Commit({
      {".gitattributes", kAttributes},
      {".lfsconfig", absl::StrCat("[lfs]\n\turl = ", lfs->url(), "\n")},
      {"models/w.bin", MUST(lfs->AddObject(weights))},
      {"data/d.bin", MUST(lfs->AddObject(data))},
      {"README", "not lfs\n"},
  }));
  GitMirror::Options mo;
  mo.allow_local = true;
  GitMirror mirror(dir + "/cache.git", repo.clone_url(), mo);
  MUST(mirror.EnsureCommit(sha));

  for (int round = 1; round <= 2; ++round) {
    const std::string ws = absl::StrCat(dir, "/ws", round);
    MUST(mirror.AddWorktree(sha, ws));
    LfsCheckoutStats stats =
        MUST(CheckoutLfs(mirror, sha, ws, "", /*allow_local=*/true, absl::Seconds(60)));
    CHECK(stats.files == 2);
    CHECK(stats.bytes == weights.size() + data.size());
    CHECK(stats.fetched == (round == 1 ? 2u : 0u));  // the second checkout fetches nothing
    CHECK(Slurp(ws + "/models/w.bin") == weights);
    CHECK(Slurp(ws + "/data/d.bin") == data);
    CHECK(Slurp(ws + "/README") == "not lfs\n");
    CHECK(Batches(*lfs) == 1);
  }
  // Exactly one batch, for both objects, as a download.
  json::object batch = lfs->Requests().front();
  CHECK(JsonString(batch, "path") == "/repo.git/info/lfs/objects/batch");
  CHECK(JsonString(batch.at("body").as_object(), "operation") == "download");
  CHECK(batch.at("body").as_object().at("objects").as_array().size() == 2);
}

TEST_CASE("CheckoutLfs refuses a cached object whose bytes do not match its pointer",
          "[e2e][lfs][security]") {
  TempDir tmp("lfs-poisoned");
  const std::string& dir = tmp.path;
  std::unique_ptr<LfsServer> lfs = MUST(LfsServer::Start(dir + "/lfs"));
  const std::string real = RandomBytes(5000, 3);
  GitRepo repo = MUST(GitRepo::Init(dir + "/repo"));
  const std::string sha = MUST(repo.Commit({
      {".gitattributes", kAttributes},
      {".lfsconfig", absl::StrCat("[lfs]\n\turl = ", lfs->url(), "\n")},
      {"w.bin", MUST(lfs->AddObject(real))},
  }));
  GitMirror::Options mo;
  mo.allow_local = true;
  GitMirror mirror(dir + "/cache.git", repo.clone_url(), mo);
  MUST(mirror.EnsureCommit(sha));
  // Another job (or a disk error) left other bytes of the same size under the object's name.
  const std::string oid = HexEncode(Sha256(real));
  const std::string object = mirror.LfsObjectPath(oid);
  std::filesystem::create_directories(std::filesystem::path(object).parent_path());
  {
    std::ofstream f(object, std::ios::binary);
    f << RandomBytes(5000, 4);
  }
  MUST(mirror.AddWorktree(sha, dir + "/ws"));
  absl::StatusOr<LfsCheckoutStats> stats =
      CheckoutLfs(mirror, sha, dir + "/ws", "", true, absl::Seconds(60));
  REQUIRE(stats.status().code() == absl::StatusCode::kDataLoss);
  CHECK(absl::StartsWith(stats.status().message(),
                         absl::StrCat("LFS object ", oid, " of w.bin has SHA-256 ")));
  CHECK(Slurp(dir + "/ws/w.bin") ==
        LfsPointerText(real));  // the pointer stays, nothing half-written
  CHECK(!std::filesystem::exists(dir + "/ws/.w.bin.assay-lfs"));
}

TEST_CASE("CheckoutLfs: an object the server lacks, and a .lfsconfig on another host",
          "[e2e][lfs][security]") {
  TempDir tmp("lfs-missing");
  const std::string& dir = tmp.path;
  std::unique_ptr<LfsServer> lfs = MUST(LfsServer::Start(dir + "/lfs"));
  GitRepo repo = MUST(GitRepo::Init(dir + "/repo"));
  const std::string absent = RandomBytes(100, 5);
  std::string sha = MUST(repo.Commit({
      {".gitattributes", kAttributes},
      {".lfsconfig", absl::StrCat("[lfs]\n\turl = ", lfs->url(), "\n")},
      {"w.bin", LfsPointerText(absent)},  // never uploaded
  }));
  GitMirror::Options mo;
  mo.allow_local = true;
  GitMirror mirror(dir + "/cache.git", repo.clone_url(), mo);
  MUST(mirror.EnsureCommit(sha));
  MUST(mirror.AddWorktree(sha, dir + "/ws1"));
  absl::StatusOr<LfsCheckoutStats> stats =
      CheckoutLfs(mirror, sha, dir + "/ws1", "", true, absl::Seconds(60));
  CHECK(stats.status().code() == absl::StatusCode::kUnavailable);
  CHECK(absl::StartsWith(stats.status().message(), "git lfs fetch failed: "));
  CHECK(Slurp(dir + "/ws1/w.bin") == LfsPointerText(absent));

  // A fork's .lfsconfig naming another host: refused before any request is made.
  const size_t before = lfs->Requests().size();
  sha = MUST(repo.Commit({{".lfsconfig", "[lfs]\n\turl = https://attacker.example/x\n"}}));
  MUST(mirror.EnsureCommit(sha));
  MUST(mirror.AddWorktree(sha, dir + "/ws2"));
  stats = CheckoutLfs(mirror, sha, dir + "/ws2", "", true, absl::Seconds(60));
  CHECK(stats.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(stats.status().message() ==
        ".lfsconfig: lfs.url https://attacker.example/x: is on host attacker.example, not on the "
        "repository's host (a local path)");
  CHECK(lfs->Requests().size() == before);
}

// Pushes `pipeline_file` with model.bin as an LFS pointer to `weights` (served by `lfs`, named
// in .lfsconfig), waits for the pipeline and checks that it succeeded; the pipeline.
json::object RunWithLfsModel(Cluster& c, GitRepo& repo, LfsServer& lfs,
                             const std::string& pipeline_file, const std::string& weights) {
  int64_t pipeline_id = PushFiles(c, repo,
                                  {{".assay.yml", pipeline_file},
                                   {".gitattributes", kAttributes},
                                   {".lfsconfig", absl::StrCat("[lfs]\n\turl = ", lfs.url(), "\n")},
                                   {"model.bin", MUST(lfs.AddObject(weights))}});
  json::object p = MUST(c.WaitForPipelineDone(pipeline_id));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  CHECK(JsonString(p, "state") == "succeeded");
  return p;
}

TEST_CASE("a job gets its LFS files' real bytes, and lfs: false keeps the pointers", "[e2e][lfs]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  std::unique_ptr<LfsServer> lfs = MUST(LfsServer::Start(c.dir() + "/lfs"));
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const std::string weights = RandomBytes(1 << 20, 6);
  const std::string pipeline_file = R"yml(jobs:
  with_lfs:
    steps:
      - run: sha256sum model.bin && git status --porcelain && echo clean
  without:
    lfs: false
    steps:
      - run: cat model.bin
)yml";
  json::object p = RunWithLfsModel(c, repo, *lfs, pipeline_file, weights);
  INFO(json::serialize(p) << "\n" << c.LogTails());
  const std::string log = MUST(c.JobLog(JobId(p, "with_lfs")));
  CHECK(log ==
        absl::StrCat("assay: Git LFS: 1 file, 1.0 MiB (1 fetched, the rest from the cache)\n",
                     HexEncode(Sha256(weights)), "  model.bin\nclean\n"));
  CHECK(MUST(c.JobLog(JobId(p, "without"))) == LfsPointerText(weights));
}

TEST_CASE("an artifact that is an LFS object the agent holds is copied from it, not downloaded",
          "[e2e][lfs]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  std::unique_ptr<LfsServer> lfs = MUST(LfsServer::Start(c.dir() + "/lfs"));
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const std::string weights = RandomBytes(3 << 20, 7);
  // train gets the weights through LFS and passes them on as an artifact (as a fine-tune passes
  // on its base model); use needs them, without LFS of its own, on the same agent.
  const std::string pipeline_file = R"yml(jobs:
  train:
    steps:
      - run: mkdir out && cp model.bin out/model.bin && echo notes > out/notes.txt
    artifacts: { paths: ["out/**"] }
  use:
    needs: [{ job: train, artifacts: true }]
    lfs: false
    steps:
      - run: sha256sum out/model.bin && cat out/notes.txt
)yml";
  json::object p = RunWithLfsModel(c, repo, *lfs, pipeline_file, weights);
  INFO(json::serialize(p) << "\n" << c.LogTails());
  CHECK(MUST(c.JobLog(JobId(p, "use"))) ==
        absl::StrCat("assay: 1 artifact file, 3.0 MiB, copied from this agent's Git LFS objects "
                     "(not downloaded)\n"
                     "assay: downloaded 2 files, 3.0 MiB from job 'train'\n",
                     HexEncode(Sha256(weights)), "  out/model.bin\nnotes\n"));
  CHECK(Batches(*lfs) == 1);  // fetched once, by train
}

}  // namespace
}  // namespace assay::e2e
