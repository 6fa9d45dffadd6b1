// assay-bench-cache: restoring a 500 MiB cache on the agent (the chunks in its local copy, as
// after an earlier restore or save: agent/cache.h WriteCacheFiles, the same code a restore
// runs, with every chunk and file checked against its SHA-256) against `tar -xf` of the same
// tree from a tar file on the same disk. Both end with syncfs, so each figure is durable. The
// protocol is in bench/README.md. Figures are printed, never asserted.
//
//   assay-bench-cache [DIR]        (default: a new directory under /tmp, removed at the end)
// Environment: BENCH_LARGE_FILES (4), BENCH_LARGE_MIB (120), BENCH_SMALL_FILES (2000),
// BENCH_SMALL_KIB (10), BENCH_ROUNDS (3).

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/cache.h"

namespace {

using assay::ArtifactWriter;
using assay::LocalChunkCache;
namespace fs = std::filesystem;

int EnvInt(const char* name, int def) {
  const char* v = std::getenv(name);
  return v != nullptr && std::atoi(v) > 0 ? std::atoi(v) : def;
}

void Die(const std::string& what) {
  std::fprintf(stderr, "assay-bench-cache: %s\n", what.c_str());
  std::exit(1);
}

// Runs argv, bounded by `timeout_s` (timeout(1)); dies unless it exits 0.
void RunOrDie(std::vector<std::string> argv, int timeout_s = 600) {
  argv.insert(argv.begin(), {"timeout", std::to_string(timeout_s)});
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) Die("command failed: " + argv[2]);
}

void SyncFs(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ::syncfs(fd) != 0) Die("syncfs " + dir);
  ::close(fd);
}

void WriteFile(const std::string& path, const std::string& data) {
  fs::create_directories(fs::path(path).parent_path());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr || std::fwrite(data.data(), 1, data.size(), f) != data.size()) {
    Die("write " + path);
  }
  std::fclose(f);
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

int main(int argc, char** argv) {
  const int large_files = EnvInt("BENCH_LARGE_FILES", 4);
  const int large_mib = EnvInt("BENCH_LARGE_MIB", 120);
  const int small_files = EnvInt("BENCH_SMALL_FILES", 2000);
  const int small_kib = EnvInt("BENCH_SMALL_KIB", 10);
  const int rounds = EnvInt("BENCH_ROUNDS", 3);
  std::string dir;
  bool remove_dir = false;
  if (argc > 1) {
    dir = argv[1];
    fs::create_directories(dir);
  } else {
    char tmpl[] = "/tmp/assay-bench-cache-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) Die("mkdtemp");
    dir = tmpl;
    remove_dir = true;
  }
  // 1. The tree: large random files (weights) and many small ones (a virtualenv).
  std::mt19937_64 rng(42);
  uint64_t total = 0;
  for (int i = 0; i < large_files; ++i) {
    std::string data(static_cast<size_t>(large_mib) << 20, '\0');
    for (size_t k = 0; k + 8 <= data.size(); k += 8) {
      const uint64_t v = rng();
      std::memcpy(&data[k], &v, 8);
    }
    WriteFile(absl::StrCat(dir, "/src/models/m", i, ".bin"), data);
    total += data.size();
  }
  for (int i = 0; i < small_files; ++i) {
    std::string data(static_cast<size_t>(small_kib) << 10, static_cast<char>('a' + i % 26));
    data.replace(0, 16, absl::StrFormat("%016d", i));
    WriteFile(absl::StrCat(dir, "/src/venv/lib/p", i / 100, "/f", i, ".py"), data);
    total += data.size();
  }
  // 2. The same tree as a cache entry in the agent's local copy, and as a tar file.
  auto local = LocalChunkCache::Open(dir + "/chunks", uint64_t{1} << 50);
  if (!local.ok()) Die(std::string(local.status().message()));
  google::protobuf::RepeatedPtrField<assay::v1::ArtifactFile> files;
  auto collected = assay::CollectArtifactFiles(dir + "/src", {"models", "venv"});
  if (!collected.ok()) Die(std::string(collected.status().message()));
  for (const auto& c : collected->files) {
    const std::string path = dir + "/src/" + c.path;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    std::string sha;
    uint64_t size = 0;
    auto chunks = assay::ChunkFile(fd, &sha, &size);
    if (!chunks.ok()) Die("chunk " + path);
    assay::v1::ArtifactFile* f = files.Add();
    f->set_path(c.path);
    f->set_size(size);
    f->set_mode(0644);
    f->set_sha256(sha);
    for (const auto& ref : *chunks) {
      std::string piece(ref.size, '\0');
      if (::pread(fd, piece.data(), ref.size, static_cast<off_t>(ref.offset)) !=
          static_cast<ssize_t>(ref.size)) {
        Die("read " + path);
      }
      if (!(*local)->Put(ref.sha256, piece).ok()) Die("put");
      f->add_chunks(ref.sha256);
    }
    ::close(fd);
  }
  RunOrDie({"tar", "-cf", dir + "/tree.tar", "-C", dir + "/src", "."});
  SyncFs(dir);
  std::printf("tree: %d files, %.1f MiB (%d x %d MiB random, %d x %d KiB)\n",
              static_cast<int>(files.size()), static_cast<double>(total) / (1 << 20), large_files,
              large_mib, small_files, small_kib);
  // 3. Rounds, alternating: restore with Assay's writer, then tar -xf; each into a fresh
  // directory, then syncfs.
  std::vector<double> assay_s, tar_s;
  assay::CancelFlag cancel;
  for (int r = 0; r < rounds; ++r) {
    const std::string out_a = absl::StrCat(dir, "/out-assay-", r);
    const std::string out_t = absl::StrCat(dir, "/out-tar-", r);
    fs::create_directories(out_a);
    fs::create_directories(out_t);
    auto t0 = std::chrono::steady_clock::now();
    auto writer = ArtifactWriter::Open(out_a, std::nullopt);
    if (!writer.ok()) Die(std::string(writer.status().message()));
    auto bytes = assay::WriteCacheFiles(files, **local, *writer, cancel);
    if (!bytes.ok() || *bytes != total) Die("restore failed");
    SyncFs(out_a);
    assay_s.push_back(Seconds(t0));
    t0 = std::chrono::steady_clock::now();
    RunOrDie({"tar", "-xf", dir + "/tree.tar", "-C", out_t});
    SyncFs(out_t);
    tar_s.push_back(Seconds(t0));
    std::printf("round %d: assay %.3f s, tar %.3f s\n", r + 1, assay_s.back(), tar_s.back());
    fs::remove_all(out_a);
    fs::remove_all(out_t);
  }
  std::sort(assay_s.begin(), assay_s.end());
  std::sort(tar_s.begin(), tar_s.end());
  const double a = assay_s[assay_s.size() / 2], t = tar_s[tar_s.size() / 2];
  const double mib = static_cast<double>(total) / (1 << 20);
  std::printf(
      "median: assay restore %.3f s (%.0f MiB/s), tar -xf %.3f s (%.0f MiB/s), "
      "ratio assay/tar %.2f\n",
      a, mib / a, t, mib / t, a / t);
  if (remove_dir) fs::remove_all(dir);
  return 0;
}
