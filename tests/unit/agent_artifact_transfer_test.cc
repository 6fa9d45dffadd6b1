// The agent's artifact client against a real gRPC server in this process (an in-process
// channel: real gRPC framing and status codes, no sockets) that implements only the artifact
// RPCs over a map of chunks: upload that resumes after the stream is cut at 50 %, download
// that resumes, hostile manifests and chunks, and the job-level policy (when, if_no_files).

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "agent/artifacts.h"
#include "common/crypto/crypto.h"
#include "tests/unit/artifact_test_util.h"

namespace assay {
namespace {

using testing::ListTree;
using testing::Pattern;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;
using Strings = std::vector<std::string>;

constexpr char kBearer[] = "test-bearer";
constexpr char kToken[] = "attempt-token";

// The artifact half of AgentService over memory. Every call must carry the bearer and the
// attempt token (UNAUTHENTICATED / PERMISSION_DENIED otherwise, as the real server).
class FakeArtifactServer final : public v1::AgentService::Service {
 public:
  absl::Mutex mu;
  std::map<std::string, std::string> chunks ABSL_GUARDED_BY(mu);
  std::vector<v1::ArtifactFile> committed ABSL_GUARDED_BY(mu);
  v1::ArtifactManifest manifest ABSL_GUARDED_BY(mu);  // what GetArtifactManifest answers
  // Faults, each used once: cut the upload stream when this many chunks arrived in it; cut
  // a download stream after sending this many chunks; corrupt the n-th chunk sent (1-based).
  int cut_upload_at ABSL_GUARDED_BY(mu) = 0;
  int cut_download_after ABSL_GUARDED_BY(mu) = 0;
  int corrupt_download ABSL_GUARDED_BY(mu) = 0;
  grpc::StatusCode refuse_missing ABSL_GUARDED_BY(mu) = grpc::StatusCode::OK;
  int refuse_missing_times ABSL_GUARDED_BY(mu) = 0;  // -1: always
  std::string refuse_message ABSL_GUARDED_BY(mu) = "refused by the test";
  // What happened: per UploadChunks call, the chunks received; per DownloadChunks call, asked.
  std::vector<int> upload_calls ABSL_GUARDED_BY(mu);
  std::vector<int> download_asks ABSL_GUARDED_BY(mu);
  int missing_calls ABSL_GUARDED_BY(mu) = 0;
  int manifest_chunks ABSL_GUARDED_BY(mu) = 0;           // of the last commit
  std::function<void()> on_missing ABSL_GUARDED_BY(mu);  // run once, at the next ChunksMissing
  std::string pretend_mismatch ABSL_GUARDED_BY(mu);      // a chunk refused as if its bytes differed

  grpc::Status ArtifactChunksMissing(grpc::ServerContext* ctx, const v1::ChunksMissingRequest* r,
                                     v1::ChunksMissingResponse* out) override {
    if (auto s = Check(ctx, r->attempt_token()); !s.ok()) return s;
    std::function<void()> hook;
    {
      absl::MutexLock l(&mu);
      hook = std::exchange(on_missing, nullptr);
    }
    if (hook) hook();
    absl::MutexLock l(&mu);
    ++missing_calls;
    if (refuse_missing_times != 0) {
      if (refuse_missing_times > 0) --refuse_missing_times;
      return grpc::Status(refuse_missing, refuse_message);
    }
    for (const std::string& c : r->chunks()) {
      if (!chunks.contains(c)) out->add_missing(c);
    }
    return grpc::Status::OK;
  }

  grpc::Status UploadChunks(grpc::ServerContext* ctx, grpc::ServerReader<v1::ChunkUpload>* reader,
                            v1::UploadChunksResponse* out) override {
    v1::ChunkUpload m;
    int n = 0;
    size_t me = 0;  // this call's entry: streams may run at once
    {
      absl::MutexLock l(&mu);
      me = upload_calls.size();
      upload_calls.push_back(0);
    }
    while (reader->Read(&m)) {
      if (n == 0) {
        if (auto s = Check(ctx, m.attempt_token()); !s.ok()) return s;
      }
      ++n;
      absl::MutexLock l(&mu);
      upload_calls[me] = n;
      if (cut_upload_at > 0 && n == cut_upload_at) {
        cut_upload_at = 0;
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection cut by the test");
      }
      if (const std::string got = HexEncode(Sha256(m.data()));
          got != m.sha256() || got == pretend_mismatch) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "chunk " + m.sha256() + " does not match its data (SHA-256 " + got +
                                ")");  // as the server says it
      }
      chunks[m.sha256()] = m.data();
      out->set_stored(out->stored() + 1);
    }
    return grpc::Status::OK;
  }

  grpc::Status CommitArtifacts(grpc::ServerContext* ctx, const v1::CommitArtifactsRequest* r,
                               v1::CommitArtifactsResponse* out) override {
    if (auto s = Check(ctx, r->attempt_token()); !s.ok()) return s;
    absl::MutexLock l(&mu);
    // As the server: a manifest too big for one message comes as chunks of its own.
    v1::ArtifactFileList list;
    std::string bytes;
    for (const auto& c : r->manifest_chunks()) {
      if (!chunks.contains(c)) return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, c);
      bytes += chunks[c];
    }
    if (!list.ParseFromString(bytes)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "not a list");
    }
    const auto& files = r->manifest_chunks().empty() ? r->files() : list.files();
    for (const auto& f : files) {
      for (const auto& c : f.chunks()) {
        if (!chunks.contains(c)) return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, c);
      }
    }
    committed.assign(files.begin(), files.end());
    manifest_chunks = r->manifest_chunks_size();
    out->set_files(files.size());
    return grpc::Status::OK;
  }

  grpc::Status GetArtifactManifest(grpc::ServerContext* ctx, const v1::ArtifactManifestRequest* r,
                                   v1::ArtifactManifest* out) override {
    if (auto s = Check(ctx, r->attempt_token()); !s.ok()) return s;
    absl::MutexLock l(&mu);
    *out = manifest;
    return grpc::Status::OK;
  }

  grpc::Status DownloadChunks(grpc::ServerContext* ctx, const v1::DownloadChunksRequest* r,
                              grpc::ServerWriter<v1::ChunkData>* writer) override {
    if (auto s = Check(ctx, r->attempt_token()); !s.ok()) return s;
    int sent = 0;
    {
      absl::MutexLock l(&mu);
      download_asks.push_back(r->chunks_size());
    }
    for (const std::string& c : r->chunks()) {
      v1::ChunkData d;
      {
        absl::MutexLock l(&mu);
        if (cut_download_after > 0 && sent == cut_download_after) {
          cut_download_after = 0;
          return grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection cut by the test");
        }
        auto it = chunks.find(c);
        if (it == chunks.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, c);
        d.set_sha256(c);
        d.set_data(it->second);
        if (corrupt_download > 0 && --corrupt_download == 0) (*d.mutable_data())[0] ^= 1;
      }
      if (!writer->Write(d)) return grpc::Status::CANCELLED;
      ++sent;
    }
    return grpc::Status::OK;
  }

 private:
  static grpc::Status Check(grpc::ServerContext* ctx, const std::string& token) {
    auto it = ctx->client_metadata().find("authorization");
    if (it == ctx->client_metadata().end() ||
        std::string(it->second.data(), it->second.size()) != std::string("Bearer ") + kBearer) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no bearer");
    }
    if (token != kToken) return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "stale attempt");
    return grpc::Status::OK;
  }
};

struct World {
  World() {
    grpc::ServerBuilder builder;
    builder.RegisterService(&service);
    builder.SetMaxReceiveMessageSize(8 << 20);
    server = builder.BuildAndStart();
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(8 << 20);
    stub = v1::AgentService::NewStub(server->InProcessChannel(args));
  }
  ~World() { server->Shutdown(); }
  ArtifactClient Client(int64_t job_id = 1, size_t upload_streams = 1) {
    ArtifactTransferOptions o;
    o.upload_streams = upload_streams;
    o.backoff_min = absl::Milliseconds(1);
    o.backoff_max = absl::Milliseconds(5);
    o.chunks_per_download = 8;
    return ArtifactClient(stub.get(), kBearer, job_id, kToken, o);
  }
  ArtifactLog Log() {
    return [this](std::string_view s) { log.append(s.data(), s.size()); };
  }

  FakeArtifactServer service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<v1::AgentService::Stub> stub;
  std::string log;
  CancelFlag cancel;
};

// A 16 MiB model of four distinct 4 MiB chunks, a small file, and a copy of the small file.
struct BuildOutput {
  explicit BuildOutput(const std::string& ws) {
    model = Pattern(4 << 20, 1) + Pattern(4 << 20, 2) + Pattern(4 << 20, 3) + Pattern(4 << 20, 4);
    WriteFile(ws + "/out/model.bin", model);
    WriteFile(ws + "/out/sub/a.txt", "hello artifacts\n");
    WriteFile(ws + "/out/sub/copy.txt", "hello artifacts\n");
    REQUIRE(chmod((ws + "/out/sub/a.txt").c_str(), 0755) == 0);
  }
  std::string model;
};

TEST_CASE("upload: a stream cut at 50 % resumes with only the chunks the server lacks") {
  World w;
  TempDir ws;
  BuildOutput out(ws.path);
  {
    absl::MutexLock l(&w.service.mu);
    w.service.cut_upload_at = 3;  // of 5 distinct chunks: 2 stored, the 3rd lost in flight
  }
  auto files = CollectArtifactFiles(ws.path, {"out/**"});
  REQUIRE(files.ok());
  ArtifactClient client = w.Client();
  auto up = client.Upload(ws.path, files->files, std::nullopt, w.cancel, w.Log());
  REQUIRE(up.ok());
  CHECK(up->files == 3);
  CHECK(up->bytes == (16u << 20) + 32);
  CHECK(up->new_bytes == (16u << 20) + 16);  // the two small files share one chunk
  CHECK(up->attempts == 2);
  CHECK(w.log ==
        "assay: artifacts: UploadChunks: connection cut by the test; resuming (attempt 2)\n");
  absl::MutexLock l(&w.service.mu);
  CHECK(w.service.upload_calls == std::vector<int>{3, 3});
  CHECK(w.service.chunks.size() == 5);
  REQUIRE(w.service.committed.size() == 3);
  const v1::ArtifactFile& model = w.service.committed[0];
  CHECK(model.path() == "out/model.bin");
  CHECK(model.size() == 16u << 20);
  CHECK(model.mode() == 0644);
  CHECK(model.chunks_size() == 4);
  CHECK(model.sha256() == HexEncode(Sha256(out.model)));
  CHECK(w.service.committed[1].path() == "out/sub/a.txt");
  CHECK(w.service.committed[1].mode() == 0755);
  CHECK(w.service.committed[2].path() == "out/sub/copy.txt");
  CHECK(w.service.committed[2].chunks(0) == w.service.committed[1].chunks(0));

  w.service.upload_calls.clear();
}

TEST_CASE("upload: a manifest of 100,000 files goes as chunks of its own, past 8 MiB") {
  World w;
  TempDir ws;
  WriteFile(ws.path + "/out/x", "x");
  // 100,000 manifest entries (about 17 MiB of manifest), each read from the same small file.
  std::vector<CollectedFile> files;
  for (int i = 0; i < 100'000; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "out/some/longer/directory/file-%06d.txt", i);
    files.push_back({name, "out/x", 0644});
  }
  ArtifactClient client = w.Client();
  auto up = client.Upload(ws.path, files, std::nullopt, w.cancel, w.Log());
  REQUIRE(up.ok());
  CHECK(up->files == 100'000);
  CHECK(up->bytes == 100'000);
  CHECK(up->new_bytes == 1);  // the manifest's own chunks are not counted as artifact bytes
  CHECK(w.log.empty());
  absl::MutexLock l(&w.service.mu);
  CHECK(w.service.manifest_chunks == 5);
  REQUIRE(w.service.committed.size() == 100'000);
  CHECK(w.service.committed[99'999].path() == "out/some/longer/directory/file-099999.txt");
  CHECK(w.service.committed[99'999].chunks(0) == HexEncode(Sha256("x")));
  CHECK(w.service.chunks.size() == 1 + 5);
}

TEST_CASE("upload: a manifest over 64 MiB is refused before any chunk is sent") {
  World w;
  TempDir ws;
  WriteFile(ws.path + "/out/x", "x");
  std::vector<CollectedFile> files;
  const std::string dir = "out/" + std::string(700, 'd') + "/";
  for (int i = 0; i < 100'000; ++i) files.push_back({dir + std::to_string(i), "out/x", 0644});
  ArtifactClient client = w.Client();
  auto up = client.Upload(ws.path, files, std::nullopt, w.cancel, w.Log());
  REQUIRE(!up.ok());
  CHECK(up.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(up.status().message() ==
        "the manifest of 100000 files is 81.3 MiB, more than 64 MiB (shorter paths or fewer "
        "files)");
  absl::MutexLock l(&w.service.mu);
  CHECK(w.service.missing_calls == 0);
}

TEST_CASE("upload: parallel streams each send a contiguous share, every chunk once") {
  World w;
  TempDir ws;
  BuildOutput out(ws.path);
  auto files = CollectArtifactFiles(ws.path, {"out/**"});
  REQUIRE(files.ok());
  ArtifactClient client = w.Client(1, 4);
  auto up = client.Upload(ws.path, files->files, std::nullopt, w.cancel, w.Log());
  REQUIRE(up.ok());
  CHECK(up->new_bytes == (16u << 20) + 16);
  CHECK(up->attempts == 1);
  absl::MutexLock l(&w.service.mu);
  // 5 distinct chunks over 4 streams: shares of 1, 1, 1 and 2 (in any order of arrival).
  std::vector<int> calls = w.service.upload_calls;
  std::sort(calls.begin(), calls.end());
  CHECK(calls == std::vector<int>{1, 1, 1, 2});
  CHECK(w.service.chunks.size() == 5);
  REQUIRE(w.service.committed.size() == 3);
  CHECK(w.service.committed[0].sha256() == HexEncode(Sha256(out.model)));
}

TEST_CASE("upload: a file changed after it was hashed fails the upload, never sent as is") {
  World w;
  TempDir ws;
  const std::string path = ws.path + "/out/a.bin";
  WriteFile(path, Pattern(6 << 20, 1));
  auto files = CollectArtifactFiles(ws.path, {"out"});
  REQUIRE(files.ok());
  SECTION("rewritten (its times change): caught before its chunks are sent") {
    {
      absl::MutexLock l(&w.service.mu);
      w.service.on_missing = [&] { WriteFile(path, Pattern(6 << 20, 2)); };
    }
    auto up = w.Client().Upload(ws.path, files->files, std::nullopt, w.cancel, w.Log());
    REQUIRE(!up.ok());
    CHECK(up.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(up.status().message() == "out/a.bin changed while it was uploaded");
    absl::MutexLock l(&w.service.mu);
    CHECK(w.service.chunks.empty());
  }
  SECTION("changed between the check and the read: the server's hash check names it") {
    // What the server answers when the bytes it got are not those of the chunk's name.
    {
      absl::MutexLock l(&w.service.mu);
      w.service.pretend_mismatch = HexEncode(Sha256(Pattern(6 << 20, 1).substr(4 << 20)));
    }
    auto up = w.Client().Upload(ws.path, files->files, std::nullopt, w.cancel, w.Log());
    REQUIRE(!up.ok());
    CHECK(up.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(up.status().message() == "out/a.bin changed while it was uploaded");
    CHECK(w.log.empty());  // not retried
  }
}

TEST_CASE("upload: a second upload of the same files sends no chunk at all") {
  World w;
  TempDir ws;
  BuildOutput out(ws.path);
  auto files = CollectArtifactFiles(ws.path, {"out/**"});
  REQUIRE(files.ok());
  ArtifactClient client = w.Client();
  REQUIRE(client.Upload(ws.path, files->files, std::nullopt, w.cancel, w.Log()).ok());
  auto again = client.Upload(ws.path, files->files, std::nullopt, w.cancel, w.Log());
  REQUIRE(again.ok());
  CHECK(again->new_bytes == 0);
  CHECK(again->bytes == (16u << 20) + 32);
  absl::MutexLock l(&w.service.mu);
  CHECK(w.service.upload_calls == std::vector<int>{5});
}

TEST_CASE("upload: retries are bounded, and a refusal is not retried") {
  World w;
  TempDir ws;
  WriteFile(ws.path + "/out/a", "a");
  auto files = CollectArtifactFiles(ws.path, {"out"});
  REQUIRE(files.ok());
  {
    absl::MutexLock l(&w.service.mu);
    w.service.refuse_missing = grpc::StatusCode::UNAVAILABLE;
    w.service.refuse_missing_times = -1;
  }
  ArtifactClient client = w.Client();
  auto up = client.Upload(ws.path, files->files, std::nullopt, w.cancel, w.Log());
  CHECK(up.status().code() == absl::StatusCode::kUnavailable);
  CHECK(up.status().message() == "ArtifactChunksMissing: refused by the test");
  {
    absl::MutexLock l(&w.service.mu);
    CHECK(w.service.missing_calls == 6);  // max_attempts
    w.service.refuse_missing = grpc::StatusCode::PERMISSION_DENIED;
    w.service.missing_calls = 0;
  }
  auto denied = client.Upload(ws.path, files->files, std::nullopt, w.cancel, w.Log());
  CHECK(denied.status().code() == absl::StatusCode::kPermissionDenied);
  absl::MutexLock l(&w.service.mu);
  CHECK(w.service.missing_calls == 1);
}

// Uploads BuildOutput as job 1 and offers it to job 2 as the artifacts of job "build".
void UploadBuild(World& w, const std::string& ws) {
  auto files = CollectArtifactFiles(ws, {"out/**"});
  REQUIRE(files.ok());
  ArtifactClient client = w.Client(1);
  REQUIRE(client.Upload(ws, files->files, std::nullopt, w.cancel, w.Log()).ok());
  absl::MutexLock l(&w.service.mu);
  v1::JobArtifacts* job = w.service.manifest.add_jobs();
  job->set_job_id(1);
  job->set_job_name("build");
  for (const auto& f : w.service.committed) *job->add_files() = f;
  w.service.upload_calls.clear();
  w.log.clear();
}

// The three files of BuildOutput as a download wrote them into `ws`: their bytes, a.txt's mode.
void CheckBuildFiles(const std::string& ws, const BuildOutput& out) {
  CHECK(ReadFile(ws + "/out/model.bin") == out.model);
  CHECK(ReadFile(ws + "/out/sub/a.txt") == "hello artifacts\n");
  CHECK(ReadFile(ws + "/out/sub/copy.txt") == "hello artifacts\n");
  struct stat st;
  REQUIRE(stat((ws + "/out/sub/a.txt").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0755);
}

TEST_CASE("download: identical bytes and modes, resumed after a cut in the middle of a file") {
  World w;
  TempDir src;
  BuildOutput out(src.path);
  UploadBuild(w, src.path);
  {
    absl::MutexLock l(&w.service.mu);
    w.service.cut_download_after = 2;  // inside out/model.bin
  }
  TempDir ws;
  WriteFile(ws.path + "/src/main.c", "checked out");
  auto writer = ArtifactWriter::Open(ws.path, std::nullopt);
  REQUIRE(writer.ok());
  ArtifactClient client = w.Client(2);
  absl::Status s = client.Download(*writer, w.cancel, w.Log());
  REQUIRE(s.ok());
  CheckBuildFiles(ws.path, out);
  struct stat st;
  REQUIRE(stat((ws.path + "/out/model.bin").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0644);
  CHECK(ListTree(ws.path) == Strings{"out", "out/model.bin", "out/sub", "out/sub/a.txt",
                                     "out/sub/copy.txt", "src", "src/main.c"});
  CHECK(w.log ==
        "assay: artifacts: DownloadChunks: connection cut by the test; resuming (attempt 2)\n"
        "assay: downloaded 3 files, 16.0 MiB from job 'build'\n");
  absl::MutexLock l(&w.service.mu);
  CHECK(w.service.download_asks == std::vector<int>{6, 4});  // the rest, not all again
}

TEST_CASE("download: a file the agent holds as a Git LFS object is copied, not downloaded") {
  World w;
  TempDir src;
  BuildOutput out(src.path);
  UploadBuild(w, src.path);
  TempDir lfs;  // the agent's LFS objects: the model's bytes under their SHA-256
  const std::string model_sha = HexEncode(Sha256(out.model));
  WriteFile(lfs.path + "/" + model_sha, out.model);
  std::vector<std::string> asked;
  ArtifactClient::LocalObjectFn local = [&](const std::string& sha256, uint64_t size) {
    asked.push_back(sha256 + " " + std::to_string(size));
    if (sha256 != model_sha) return std::optional<std::string>();
    return std::optional<std::string>(lfs.path + "/" + sha256);
  };
  TempDir ws;
  auto writer = ArtifactWriter::Open(ws.path, std::nullopt);
  REQUIRE(writer.ok());
  ArtifactClient client = w.Client(2);
  REQUIRE(client.Download(*writer, w.cancel, w.Log(), local).ok());
  CheckBuildFiles(ws.path, out);
  CHECK(ListTree(ws.path) ==
        Strings{"out", "out/model.bin", "out/sub", "out/sub/a.txt", "out/sub/copy.txt"});
  const std::string small_sha = HexEncode(Sha256("hello artifacts\n"));
  CHECK(asked == Strings{model_sha + " 16777216", small_sha + " 16", small_sha + " 16"});
  CHECK(w.log ==
        "assay: 1 artifact file, 16.0 MiB, copied from this agent's Git LFS objects (not "
        "downloaded)\n"
        "assay: downloaded 3 files, 16.0 MiB from job 'build'\n");
  absl::MutexLock l(&w.service.mu);
  CHECK(w.service.download_asks == std::vector<int>{2});  // the small files' chunks only
}

TEST_CASE("download: a local object that does not match is downloaded after all") {
  World w;
  TempDir src;
  BuildOutput out(src.path);
  UploadBuild(w, src.path);
  TempDir lfs;
  const std::string model_sha = HexEncode(Sha256(out.model));
  std::string damaged = out.model;
  damaged[12345] ^= 1;  // same size, other bytes
  WriteFile(lfs.path + "/damaged", damaged);
  WriteFile(lfs.path + "/short", out.model.substr(1));
  ::symlink((lfs.path + "/damaged").c_str(), (lfs.path + "/link").c_str());
  for (const std::string name : {"damaged", "short", "link", "absent"}) {
    INFO(name);
    ArtifactClient::LocalObjectFn local = [&](const std::string& sha256, uint64_t) {
      return sha256 == model_sha ? std::optional<std::string>(lfs.path + "/" + name) : std::nullopt;
    };
    TempDir ws;
    auto writer = ArtifactWriter::Open(ws.path, std::nullopt);
    REQUIRE(writer.ok());
    w.log.clear();
    {
      absl::MutexLock l(&w.service.mu);
      w.service.download_asks.clear();
    }
    ArtifactClient client = w.Client(2);
    REQUIRE(client.Download(*writer, w.cancel, w.Log(), local).ok());
    CHECK(ReadFile(ws.path + "/out/model.bin") == out.model);
    CHECK(ListTree(ws.path) ==
          Strings{"out", "out/model.bin", "out/sub", "out/sub/a.txt", "out/sub/copy.txt"});
    CHECK(w.log == "assay: downloaded 3 files, 16.0 MiB from job 'build'\n");
    absl::MutexLock l(&w.service.mu);
    CHECK(w.service.download_asks == std::vector<int>{6});  // everything, as without it
  }
}

TEST_CASE("download: a chunk that does not match its hash fails naming the file") {
  World w;
  TempDir src;
  BuildOutput out(src.path);
  UploadBuild(w, src.path);
  {
    absl::MutexLock l(&w.service.mu);
    w.service.corrupt_download = 2;
  }
  TempDir ws;
  auto writer = ArtifactWriter::Open(ws.path, std::nullopt);
  REQUIRE(writer.ok());
  ArtifactClient client = w.Client(2);
  absl::Status s = client.Download(*writer, w.cancel, w.Log());
  CHECK(s.code() == absl::StatusCode::kDataLoss);
  CHECK(s.message() == "artifact out/model.bin of job 'build': chunk 2 does not match its hash");
  CHECK(ListTree(ws.path) == Strings{"out"});  // no partial file, no temporary file
}

TEST_CASE("download: a bad manifest entry fails before anything is written") {
  World w;
  TempDir src;
  BuildOutput out(src.path);
  UploadBuild(w, src.path);
  auto message_for = [&](const std::string& path) {
    {
      absl::MutexLock l(&w.service.mu);
      v1::JobArtifacts* job = w.service.manifest.mutable_jobs(0);
      job->mutable_files(2)->set_path(path);
    }
    TempDir ws;
    auto writer = ArtifactWriter::Open(ws.path, std::nullopt);
    REQUIRE(writer.ok());
    ArtifactClient client = w.Client(2);
    absl::Status s = client.Download(*writer, w.cancel, w.Log());
    CHECK(ListTree(ws.path).empty());
    CHECK((s.ok() || s.code() == absl::StatusCode::kInvalidArgument));
    return std::string(s.message());
  };
  const std::string head = "bad artifact manifest: job 'build': path '";
  CHECK(message_for("../../etc/cron.d/x") == head + "../../etc/cron.d/x': '..' segment");
  CHECK(message_for("/etc/passwd") == head + "/etc/passwd': absolute path");
  CHECK(message_for("out//x") == head + "out//x': empty segment");
  CHECK(message_for(std::string("out/a\0b", 7)) == head + "out/a\\000b': NUL byte");
  CHECK(message_for(".git/hooks/post-checkout") ==
        head + ".git/hooks/post-checkout': inside the workspace's .git");
  CHECK(message_for(std::string(5000, 'a')) ==
        head + std::string(200, 'a') + "...': longer than 4096 bytes");
  CHECK(message_for("out/sub/a.txt") == head + "out/sub/a.txt': listed twice");
  {
    absl::MutexLock l(&w.service.mu);
    v1::ArtifactFile* f = w.service.manifest.mutable_jobs(0)->mutable_files(2);
    f->set_path("out/sub/c.txt");
    f->set_size(1 << 30);  // one chunk cannot hold 1 GiB
  }
  CHECK(message_for("out/sub/c.txt") ==
        head + "out/sub/c.txt': 1 chunks cannot hold 1073741824 bytes");
}

TEST_CASE("download: a symlink planted in the workspace is never written through") {
  World w;
  TempDir src;
  BuildOutput out(src.path);
  UploadBuild(w, src.path);
  TempDir outside;
  TempDir ws;
  REQUIRE(symlink(outside.path.c_str(), (ws.path + "/out").c_str()) == 0);
  auto writer = ArtifactWriter::Open(ws.path, std::nullopt);
  REQUIRE(writer.ok());
  ArtifactClient client = w.Client(2);
  absl::Status s = client.Download(*writer, w.cancel, w.Log());
  CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(s.message() == "refusing to write out/model.bin: out is a symlink or not a directory");
  CHECK(ListTree(outside.path).empty());
}

v1::Assignment WithRules(const std::string& when, bool fail_if_no_files, Strings paths) {
  v1::Assignment a;
  a.set_job_id(1);
  a.set_attempt_token(kToken);
  a.mutable_artifacts()->set_when(when);
  a.mutable_artifacts()->set_fail_if_no_files(fail_if_no_files);
  for (const auto& p : paths) a.mutable_artifacts()->add_paths(p);
  return a;
}

TEST_CASE("job policy: when, if_no_files and a failed upload decide the job's outcome") {
  World w;
  TempDir ws;
  WriteFile(ws.path + "/out/a", "a");
  ArtifactClient client = w.Client();
  auto run = [&](const v1::Assignment& a, JobRunOutcome outcome) {
    JobRunResult r;
    r.outcome = outcome;
    r.message = outcome == JobRunOutcome::kSucceeded ? "" : "step \"x\" exited with code 1";
    r.exit_code = outcome == JobRunOutcome::kSucceeded ? 0 : 1;
    w.log.clear();
    UploadJobArtifacts(client, a, ws.path, std::nullopt, w.cancel, w.Log(), &r);
    return r;
  };
  auto committed = [&] {
    absl::MutexLock l(&w.service.mu);
    std::vector<std::string> out;
    for (const auto& f : w.service.committed) out.push_back(f.path());
    w.service.committed.clear();
    return out;
  };

  JobRunResult ok = run(WithRules("on_success", false, {"out"}), JobRunOutcome::kSucceeded);
  CHECK(ok.outcome == JobRunOutcome::kSucceeded);
  CHECK(w.log == "assay: uploaded 1 file, 0.0 MiB (0.0 MiB new)\n");
  CHECK(committed() == Strings{"out/a"});

  JobRunResult failed = run(WithRules("on_success", false, {"out"}), JobRunOutcome::kFailed);
  CHECK(failed.outcome == JobRunOutcome::kFailed);
  CHECK(w.log == "");
  CHECK(committed().empty());

  JobRunResult always = run(WithRules("always", false, {"out"}), JobRunOutcome::kFailed);
  CHECK(always.outcome == JobRunOutcome::kFailed);
  CHECK(always.message == "step \"x\" exited with code 1");
  CHECK(w.log == "assay: uploaded 1 file, 0.0 MiB (0.0 MiB new)\n");
  CHECK(committed() == Strings{"out/a"});

  JobRunResult none =
      run(WithRules("on_success", true, {"dist/**", "x"}), JobRunOutcome::kSucceeded);
  CHECK(none.outcome == JobRunOutcome::kFailed);
  CHECK(none.message == "artifacts.paths matched no file (dist/**, x), and if_no_files is error");
  CHECK(w.log == "assay: artifacts.paths matched no file (dist/**, x), and if_no_files is error\n");

  JobRunResult warned = run(WithRules("on_success", false, {"dist/**"}), JobRunOutcome::kSucceeded);
  CHECK(warned.outcome == JobRunOutcome::kSucceeded);
  CHECK(w.log ==
        "assay: warning: artifacts.paths matched no file (dist/**)\n"
        "assay: uploaded 0 files, 0.0 MiB (0.0 MiB new)\n");

  {
    absl::MutexLock l(&w.service.mu);
    w.service.refuse_missing = grpc::StatusCode::PERMISSION_DENIED;
    w.service.refuse_missing_times = -1;
  }
  JobRunResult refused = run(WithRules("on_success", false, {"out"}), JobRunOutcome::kSucceeded);
  CHECK(refused.outcome == JobRunOutcome::kError);
  CHECK(refused.exit_code == -1);
  CHECK(refused.message == "artifacts upload failed: ArtifactChunksMissing: refused by the test");
  CHECK(w.log == "assay: artifacts upload failed: ArtifactChunksMissing: refused by the test\n");
  {
    absl::MutexLock l(&w.service.mu);
    w.service.refuse_missing = grpc::StatusCode::UNIMPLEMENTED;  // a server without artifacts
    w.service.refuse_message = "";
  }
  JobRunResult old_server = run(WithRules("on_success", false, {"out"}), JobRunOutcome::kSucceeded);
  CHECK(old_server.outcome == JobRunOutcome::kError);
  CHECK(old_server.message == "artifacts upload failed: ArtifactChunksMissing: UNIMPLEMENTED");

  w.cancel.Cancel();
  JobRunResult canceled = run(WithRules("always", false, {"out"}), JobRunOutcome::kSucceeded);
  CHECK(canceled.outcome == JobRunOutcome::kCanceled);
  CHECK(canceled.message == "job canceled before its artifacts were uploaded");
  CHECK(w.log == "");
  JobRunResult canceled_failed = run(WithRules("always", false, {"out"}), JobRunOutcome::kFailed);
  CHECK(canceled_failed.outcome == JobRunOutcome::kFailed);
}

TEST_CASE("job policy: no needs with artifacts means no download call at all") {
  World w;
  TempDir ws;
  v1::Assignment a;
  a.set_job_id(2);
  a.set_attempt_token(kToken);
  ArtifactClient client = w.Client(2);
  CHECK(DownloadJobArtifacts(client, a, ws.path, std::nullopt, w.cancel, w.Log()).ok());
  a.add_artifact_needs("build");
  {
    absl::MutexLock l(&w.service.mu);
    v1::ArtifactFile* f = w.service.manifest.add_jobs()->add_files();
    f->set_path("../x");
    w.service.manifest.mutable_jobs(0)->set_job_name("build");
  }
  absl::Status s = DownloadJobArtifacts(client, a, ws.path, std::nullopt, w.cancel, w.Log());
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(s.message() ==
        "downloading the artifacts of build failed: bad artifact manifest: job "
        "'build': path '../x': '..' segment");
}

}  // namespace
}  // namespace assay

namespace assay {
namespace {

TEST_CASE("manifest: hashes, chunk counts and file counts are checked exactly") {
  const std::string h(64, 'a');
  auto check = [&](auto edit) {
    v1::ArtifactManifest m;
    v1::JobArtifacts* job = m.add_jobs();
    job->set_job_name("b\n");
    v1::ArtifactFile* f = job->add_files();
    f->set_path("out/x");
    f->set_size(5);
    f->add_chunks(h);
    f->set_sha256(h);
    edit(*job, *f);
    absl::Status s = ValidateArtifactManifest(m);
    return s.ok() ? std::string("ok") : std::string(s.message());
  };
  const std::string head = "bad artifact manifest: job 'b\\n': path 'out/x': ";
  CHECK(check([](auto&, auto&) {}) == "ok");
  CHECK(check([](auto&, auto& f) { f.set_sha256("AA"); }) == head + "malformed sha256");
  CHECK(check([&](auto&, auto& f) { f.set_sha256(std::string(64, 'A')); }) ==
        head + "malformed sha256");
  CHECK(check([](auto&, auto& f) { f.set_chunks(0, "xyz"); }) == head + "malformed chunk hash");
  CHECK(check([](auto&, auto& f) { f.set_size(0); }) == head + "1 chunks cannot hold 0 bytes");
  CHECK(check([&](auto&, auto& f) { f.set_size((4u << 20) + 1); }) ==
        head + "1 chunks cannot hold 4194305 bytes");
  CHECK(check([&](auto&, auto& f) {
          f.clear_chunks();
          f.set_size(0);
        }) == "ok");
  CHECK(check([&](auto& job, auto&) {
          for (int i = 0; i < 100'000; ++i) job.add_files();
        }) == "bad artifact manifest: job 'b\\n' has 100001 files, more than 100000");
}

}  // namespace
}  // namespace assay
