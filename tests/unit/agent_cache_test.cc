// Caches on the agent (issue 9): hashFiles and the evaluated key, and the local chunk copy
// (hash-checked reads, least-recently-used eviction beyond the budget, pins).

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "agent/cache.h"
#include "common/crypto/crypto.h"
#include "tests/unit/artifact_test_util.h"

namespace assay {
namespace {

using testing::TempDir;
using testing::WriteFile;

std::string Hex(const std::string& s) { return HexEncode(Sha256(s)); }

TEST_CASE("hashFiles: sorted paths and contents, empty when nothing matches") {
  TempDir ws;
  WriteFile(ws.path + "/requirements.txt", "numpy\n");
  WriteFile(ws.path + "/lock/b.lock", "b");
  WriteFile(ws.path + "/lock/a.lock", "a");
  const std::string nul(1, '\0');
  auto h = HashFiles(ws.path, {"requirements.txt"}, std::nullopt);
  REQUIRE(h.ok());
  CHECK(*h == Hex("requirements.txt" + nul + Hex("numpy\n") + "\n"));
  h = HashFiles(ws.path, {"lock/**", "requirements.txt"}, std::nullopt);
  REQUIRE(h.ok());
  CHECK(*h == Hex("lock/a.lock" + nul + Hex("a") + "\n" + "lock/b.lock" + nul + Hex("b") + "\n" +
                  "requirements.txt" + nul + Hex("numpy\n") + "\n"));
  h = HashFiles(ws.path, {"nothing/*"}, std::nullopt);
  REQUIRE(h.ok());
  CHECK(*h == "");
  // A symlink out of the workspace is not followed (its target's bytes do not count).
  std::filesystem::create_symlink("/etc/hostname", ws.path + "/lock/out.lock");
  auto again = HashFiles(ws.path, {"lock/**"}, std::nullopt);
  REQUIRE(again.ok());
  CHECK(*again ==
        Hex("lock/a.lock" + nul + Hex("a") + "\n" + "lock/b.lock" + nul + Hex("b") + "\n"));
}

TEST_CASE("cache key: evaluated after the checkout, checked after evaluation") {
  TempDir ws;
  WriteFile(ws.path + "/r.txt", "x");
  const std::string h = Hex("r.txt" + std::string(1, '\0') + Hex("x") + "\n");
  auto k = EvaluateCacheKey(ws.path, "pip-${{ hashFiles('r.txt') }}-1", std::nullopt);
  REQUIRE(k.ok());
  CHECK(*k == "pip-" + h + "-1");
  k = EvaluateCacheKey(ws.path, "pip-${{ hashFiles('none') }}", std::nullopt);
  REQUIRE(k.ok());
  CHECK(*k == "pip-");
  CHECK(EvaluateCacheKey(ws.path, "${{ hashFiles('none') }}", std::nullopt).status().message() ==
        "cache.key '${{ hashFiles(\\'none\\') }}': a cache key must not be empty (evaluated: '')");
  CHECK(EvaluateCacheKey(ws.path, "${{ md5('r.txt') }}", std::nullopt).status().message() ==
        "cache.key '${{ md5(\\'r.txt\\') }}': unknown function 'md5'");
  CHECK(EvaluateCacheKey(ws.path, "${{ hashFiles('../x') }}", std::nullopt).status().message() ==
        "cache.key '${{ hashFiles(\\'../x\\') }}': hashFiles glob '../x': must not leave the "
        "workspace ('..')");
  const std::string long_text = std::string(500, 'k') + "${{ hashFiles('r.txt') }}";
  CHECK(EvaluateCacheKey(ws.path, long_text, std::nullopt).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("cache key: DVC's pointer files in a key follow the data's version") {
  // A repository using DVC (docs/large-files.md): data/train.jsonl.dvc and dvc.lock name the
  // data by md5; a key over them changes when the data's version does, and not otherwise.
  TempDir ws;
  const std::string v1 = "outs:\n- md5: 3f1c\n  size: 1048576\n  path: train.jsonl\n";
  WriteFile(ws.path + "/data/train.jsonl.dvc", v1);
  WriteFile(ws.path + "/data/eval.jsonl.dvc", "outs:\n- md5: 77aa\n  path: eval.jsonl\n");
  WriteFile(ws.path + "/dvc.lock", "schema: '2.0'\n");
  WriteFile(ws.path + "/src/train.py", "print(1)\n");
  const std::string text = "dvc-${{ hashFiles('**/*.dvc', 'dvc.lock') }}";
  const std::string nul(1, '\0');
  auto k1 = EvaluateCacheKey(ws.path, text, std::nullopt);
  REQUIRE(k1.ok());
  CHECK(*k1 ==
        "dvc-" + Hex("data/eval.jsonl.dvc" + nul + Hex("outs:\n- md5: 77aa\n  path: eval.jsonl\n") +
                     "\n" + "data/train.jsonl.dvc" + nul + Hex(v1) + "\n" + "dvc.lock" + nul +
                     Hex("schema: '2.0'\n") + "\n"));
  WriteFile(ws.path + "/src/train.py", "print(2)\n");  // code, not data: same key
  CHECK(*EvaluateCacheKey(ws.path, text, std::nullopt) == *k1);
  WriteFile(ws.path + "/data/train.jsonl.dvc",
            "outs:\n- md5: 9e02\n  size: 1048576\n  path: train.jsonl\n");
  auto k2 = EvaluateCacheKey(ws.path, text, std::nullopt);
  REQUIRE(k2.ok());
  CHECK(*k2 != *k1);
}

TEST_CASE("local chunks: checked reads, least recently used evicted beyond the budget") {
  TempDir dir;
  auto cache = LocalChunkCache::Open(dir.path + "/chunks", 10);
  REQUIRE(cache.ok());
  LocalChunkCache& c = **cache;
  const std::string a = "aaaa", b = "bbbb", d = "dddd";
  REQUIRE(c.Put(Hex(a), a).ok());
  REQUIRE(c.Put(Hex(b), b).ok());
  CHECK(c.Get(Hex(a)) == a);
  CHECK(c.Has(Hex(b)));
  CHECK_FALSE(c.Has(Hex(d)));
  CHECK(c.Evict() == 0);  // 8 bytes, within 10
  // Make a the least recently used: b used later.
  const std::string pa = dir.path + "/chunks/" + Hex(a).substr(0, 2) + "/" + Hex(a);
  struct timespec old[2] = {{1000, 0}, {1000, 0}};
  REQUIRE(::utimensat(AT_FDCWD, pa.c_str(), old, 0) == 0);
  REQUIRE(c.Put(Hex(d), d).ok());
  {
    LocalChunkCache::Pin pin(&c);
    CHECK(c.Evict() == 0);  // pinned: a restore is reading
  }
  CHECK(c.Evict() == 1);
  CHECK_FALSE(c.Get(Hex(a)).has_value());
  CHECK(c.Get(Hex(b)) == b);
  CHECK(c.Get(Hex(d)) == d);
  CHECK(c.TotalBytes() == 8);
  // A damaged copy is dropped, not returned.
  const std::string pb = dir.path + "/chunks/" + Hex(b).substr(0, 2) + "/" + Hex(b);
  WriteFile(pb, "evil");
  CHECK_FALSE(c.Get(Hex(b)).has_value());
  CHECK_FALSE(std::filesystem::exists(pb));
  // Names that are not hashes never reach the file system.
  CHECK_FALSE(c.Get("../../etc/passwd").has_value());
  CHECK(c.Put("../x", "x").code() == absl::StatusCode::kInvalidArgument);
  // Budget 0: everything goes.
  auto none = LocalChunkCache::Open(dir.path + "/none", 0);
  REQUIRE(none.ok());
  REQUIRE((*none)->Put(Hex(a), a).ok());
  CHECK((*none)->Evict() == 1);
  CHECK((*none)->TotalBytes() == 0);
}

TEST_CASE("cache restore from the local copy: files checked whole, a damaged chunk dropped") {
  TempDir dir;
  auto cache = LocalChunkCache::Open(dir.path + "/chunks", 1 << 20);
  REQUIRE(cache.ok());
  LocalChunkCache& c = **cache;
  const std::string one = "first chunk", two = "second";
  REQUIRE(c.Put(Hex(one), one).ok());
  REQUIRE(c.Put(Hex(two), two).ok());
  google::protobuf::RepeatedPtrField<v1::ArtifactFile> files;
  v1::ArtifactFile* f = files.Add();
  f->set_path("venv/lib/a.py");
  f->set_size(one.size() + two.size());
  f->set_mode(0755);
  f->set_sha256(Hex(one + two));
  f->add_chunks(Hex(one));
  f->add_chunks(Hex(two));
  TempDir ws;
  auto writer = ArtifactWriter::Open(ws.path, std::nullopt);
  REQUIRE(writer.ok());
  CancelFlag cancel;
  auto bytes = WriteCacheFiles(files, c, *writer, cancel);
  REQUIRE(bytes.ok());
  CHECK(*bytes == one.size() + two.size());
  CHECK(testing::ReadFile(ws.path + "/venv/lib/a.py") == one + two);
  struct stat st;
  REQUIRE(::stat((ws.path + "/venv/lib/a.py").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0755);
  // A chunk damaged on disk: the file does not match, nothing is renamed into place, and its
  // chunks leave the local copy (the next restore downloads them).
  WriteFile(dir.path + "/chunks/" + Hex(two).substr(0, 2) + "/" + Hex(two), "SECOND");
  f->set_path("venv/lib/b.py");
  bytes = WriteCacheFiles(files, c, *writer, cancel);
  CHECK(bytes.status().code() == absl::StatusCode::kDataLoss);
  CHECK(bytes.status().message() == "venv/lib/b.py: the file does not match its size and sha256");
  CHECK_FALSE(std::filesystem::exists(ws.path + "/venv/lib/b.py"));
  CHECK_FALSE(c.Has(Hex(two)));
  CHECK_FALSE(c.Has(Hex(one)));
  // A symlink in the workspace: refused, nothing written through it.
  TempDir outside;
  std::filesystem::create_directory_symlink(outside.path, ws.path + "/link");
  f->set_path("link/x.py");
  REQUIRE(c.Put(Hex(one), one).ok());
  REQUIRE(c.Put(Hex(two), two).ok());
  bytes = WriteCacheFiles(files, c, *writer, cancel);
  CHECK(bytes.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::filesystem::is_empty(outside.path));
}

}  // namespace
}  // namespace assay
