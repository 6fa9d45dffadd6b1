// Artifacts (issue 9), server side: the RPCs over a real in-process gRPC server and the
// fixture's database — upload, resume after a cut stream, commit, manifest and download —
// every hostile input with its exact status, the REST listing and ranged download, and
// retention (the sweeper and disk use).

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "assay/v1/agent.grpc.pb.h"
#include "common/crypto/crypto.h"
#include "common/net/http_client.h"
#include "server/agents/agent_service.h"
#include "server/api/api.h"
#include "server/artifacts/artifact_service.h"
#include "server/artifacts/blob_store.h"
#include "server/artifacts/sweeper.h"
#include "server/http/http_server.h"
#include "server/metrics/metrics.h"
#include "server/scheduler/dispatcher.h"
#include "server/store/artifacts.h"
#include "tests/db/db_fixture.h"

namespace assay::dbtest {
namespace {

std::string S(int64_t v) { return std::to_string(v); }
std::string Hex(const std::string& data) { return HexEncode(Sha256(data)); }

std::string Bytes(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((seed * 131 + i * 7 + i / 251) & 0xff);
  return s;
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/assay-artifacts-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// The artifact service and the agent service on a local port over the fixture's stores.
struct Rig {
  static constexpr const char* kToken = "agent-token-for-tests";
  DbFixture& f;
  TempDir dir;
  std::unique_ptr<artifacts::DirBlobStore> blobs;
  store::ArtifactStore store{&f.db};
  std::unique_ptr<artifacts::ArtifactService> service;
  Metrics metrics;
  Dispatcher dispatcher;
  std::unique_ptr<AgentServiceImpl> impl;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<v1::AgentService::Stub> stub;

  explicit Rig(DbFixture& fx)
      : f(fx), dispatcher(&f.jobs, &metrics, &f.clock, DispatcherOptions{absl::Seconds(25)}) {
    blobs = std::move(artifacts::DirBlobStore::Open(dir.path + "/artifacts").value());
    service = std::make_unique<artifacts::ArtifactService>(&store, blobs.get(), &f.clock);
    AgentServiceDeps deps{&f.agents, &f.jobs, &dispatcher, &metrics, kToken};
    deps.artifacts = service.get();
    impl = std::make_unique<AgentServiceImpl>(deps);
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(impl.get());
    builder.SetMaxReceiveMessageSize(8 << 20);  // as server.cc
    server = builder.BuildAndStart();
    REQUIRE(server != nullptr);
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(8 << 20);
    args.SetMaxSendMessageSize(8 << 20);
    stub = v1::AgentService::NewStub(grpc::CreateCustomChannel(
        "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials(), args));
  }
  ~Rig() {
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server.reset();
    impl.reset();
  }

  void Prepare(grpc::ClientContext* ctx, const std::string& token = kToken) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    ctx->AddMetadata("authorization", "Bearer " + token);
  }

  grpc::Status Missing(int64_t job, const std::string& attempt, const std::vector<std::string>& c,
                       std::vector<std::string>* out, const std::string& token = kToken) {
    grpc::ClientContext ctx;
    Prepare(&ctx, token);
    v1::ChunksMissingRequest req;
    req.set_job_id(job);
    req.set_attempt_token(attempt);
    for (const auto& h : c) req.add_chunks(h);
    v1::ChunksMissingResponse res;
    grpc::Status st = stub->ArtifactChunksMissing(&ctx, req, &res);
    if (out != nullptr) out->assign(res.missing().begin(), res.missing().end());
    return st;
  }

  // One stream with the given (sha256, data) chunks.
  grpc::Status Upload(int64_t job, const std::string& attempt,
                      const std::vector<std::pair<std::string, std::string>>& chunks,
                      v1::UploadChunksResponse* res, const std::string& token = kToken) {
    grpc::ClientContext ctx;
    Prepare(&ctx, token);
    auto w = stub->UploadChunks(&ctx, res);
    bool first = true;
    for (const auto& [h, data] : chunks) {
      v1::ChunkUpload m;
      if (first) {
        m.set_job_id(job);
        m.set_attempt_token(attempt);
      }
      first = false;
      m.set_sha256(h);
      m.set_data(data);
      if (!w->Write(m)) break;
    }
    w->WritesDone();
    return w->Finish();
  }

  grpc::Status Commit(int64_t job, const std::string& attempt,
                      const std::vector<v1::ArtifactFile>& files,
                      v1::CommitArtifactsResponse* res) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::CommitArtifactsRequest req;
    req.set_job_id(job);
    req.set_attempt_token(attempt);
    for (const auto& f : files) *req.add_files() = f;
    return stub->CommitArtifacts(&ctx, req, res);
  }

  grpc::Status Manifest(int64_t job, const std::string& attempt, v1::ArtifactManifest* res) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::ArtifactManifestRequest req;
    req.set_job_id(job);
    req.set_attempt_token(attempt);
    return stub->GetArtifactManifest(&ctx, req, res);
  }

  grpc::Status Download(int64_t job, const std::string& attempt,
                        const std::vector<std::string>& chunks, std::vector<v1::ChunkData>* out) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::DownloadChunksRequest req;
    req.set_job_id(job);
    req.set_attempt_token(attempt);
    for (const auto& h : chunks) req.add_chunks(h);
    auto r = stub->DownloadChunks(&ctx, req);
    v1::ChunkData d;
    while (r->Read(&d)) out->push_back(d);
    return r->Finish();
  }
};

// A file cut into chunks of at most `chunk` bytes.
v1::ArtifactFile FileOf(const std::string& path, const std::string& data, size_t chunk,
                        std::vector<std::pair<std::string, std::string>>* chunks,
                        uint32_t mode = 0644) {
  v1::ArtifactFile f;
  f.set_path(path);
  f.set_size(data.size());
  f.set_mode(mode);
  f.set_sha256(Hex(data));
  for (size_t off = 0; off < data.size(); off += chunk) {
    std::string piece = data.substr(off, chunk);
    f.add_chunks(Hex(piece));
    if (chunks != nullptr) chunks->push_back({Hex(piece), piece});
  }
  return f;
}

store::NewJob JobWithSpec(const std::string& name, const std::string& spec,
                          std::vector<std::string> needs = {}) {
  store::NewJob j = Job(name, std::move(needs));
  j.spec_json = spec;
  return j;
}

constexpr const char* kBuildSpec =
    R"({"steps":[{"name":"s","run":"true"}],"env":{},"timeout_s":60,)"
    R"("artifacts":{"paths":["out/**"],"expire_in_s":3600,"when":"on_success",)"
    R"("if_no_files":"warn"}})";
constexpr const char* kTestSpec = R"({"steps":[{"name":"s","run":"true"}],"env":{},"timeout_s":60,)"
                                  R"("artifact_needs":["build"]})";

TEST_CASE("artifacts: upload, commit and replay, then a dependent job's manifest and download",
          "[db]") {
  DbFixture f;
  Rig rig(f);
  f.CreatePipeline({JobWithSpec("build", kBuildSpec), JobWithSpec("test", kTestSpec, {"build"}),
                    Job("other", {"build"})});
  auto build = f.ClaimOne(f.Agent("agent-1"));
  std::vector<std::pair<std::string, std::string>> chunks;
  const std::string big = Bytes(2500, 1), small = "hello\n";
  std::vector<v1::ArtifactFile> files = {FileOf("out/model.bin", big, 1000, &chunks, 0700),
                                         FileOf("out/readme.txt", small, 1000, &chunks),
                                         FileOf("out/empty", "", 1000, &chunks)};
  REQUIRE(chunks.size() == 4);
  std::vector<std::string> names;
  for (const auto& c : chunks) names.push_back(c.first);
  std::vector<std::string> missing;
  REQUIRE(rig.Missing(build.job_id, build.attempt_token, names, &missing).ok());
  CHECK(missing == names);

  // Commit before the chunks: refused, nothing written.
  v1::CommitArtifactsResponse cres;
  grpc::Status early = rig.Commit(build.job_id, build.attempt_token, files, &cres);
  CHECK(early.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(early.error_message() == "chunk " + names[0] +
                                     " of 'out/model.bin' is not stored; upload it first "
                                     "(ArtifactChunksMissing)");
  CHECK(f.Count("SELECT count(*) FROM artifacts") == 0);

  v1::UploadChunksResponse up;
  REQUIRE(rig.Upload(build.job_id, build.attempt_token, chunks, &up).ok());
  CHECK(up.stored() == 4);
  CHECK(up.already_present() == 0);
  // The same chunks again: present, nothing written.
  v1::UploadChunksResponse again;
  REQUIRE(rig.Upload(build.job_id, build.attempt_token, {chunks[0]}, &again).ok());
  CHECK(again.stored() == 0);
  CHECK(again.already_present() == 1);
  REQUIRE(rig.Missing(build.job_id, build.attempt_token, names, &missing).ok());
  CHECK(missing.empty());
  CHECK(std::filesystem::file_size(rig.blobs->PathOf(names[0])) == 1000);
  CHECK(rig.blobs->PathOf(names[0]) ==
        rig.dir.path + "/artifacts/sha256/" + names[0].substr(0, 2) + "/" + names[0].substr(2));

  REQUIRE(rig.Commit(build.job_id, build.attempt_token, files, &cres).ok());
  CHECK(cres.files() == 3);
  CHECK(cres.bytes() == 2506);
  const std::string expire = f.One("SELECT (extract(epoch from expire_at))::bigint FROM artifacts");
  CHECK(expire == S(absl::ToUnixSeconds(kT0) + 3600));  // the job's expire_in_s
  CHECK(f.Query("SELECT path, size, mode, array_length(chunks, 1) FROM artifact_files "
                "ORDER BY path") == Rows{{"out/empty", "0", "420", "NULL"},
                                         {"out/model.bin", "2500", "493", "3"},
                                         {"out/readme.txt", "6", "420", "1"}});
  // A replay by the same attempt: the same answer, nothing changed.
  v1::CommitArtifactsResponse replay;
  REQUIRE(rig.Commit(build.job_id, build.attempt_token, {files[0]}, &replay).ok());
  CHECK(replay.files() == 3);
  CHECK(replay.bytes() == 2506);
  CHECK(f.Count("SELECT count(*) FROM artifact_files") == 3);
  CHECK(f.Count("SELECT count(*) FROM artifact_chunk_refs") == 4);

  REQUIRE(f.FinishJob(build, "succeeded", 0).fence == store::Fence::kOk);
  // The attempt is over: its token no longer opens anything.
  grpc::Status stale = rig.Missing(build.job_id, build.attempt_token, names, &missing);
  CHECK(stale.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(stale.error_message() == "attempt token is not the live attempt of job " + S(build.job_id));

  auto test = f.ClaimOne(f.Agent("agent-2"));
  auto other = f.ClaimOne(f.Agent("agent-3"));
  REQUIRE(f.JobState(test.job_id) == "assigned");
  v1::ArtifactManifest m;
  REQUIRE(rig.Manifest(test.job_id, test.attempt_token, &m).ok());
  REQUIRE(m.jobs_size() == 1);
  CHECK(m.jobs(0).job_id() == build.job_id);
  CHECK(m.jobs(0).job_name() == "build");
  REQUIRE(m.jobs(0).files_size() == 3);
  CHECK(m.jobs(0).files(0).path() == "out/empty");
  CHECK(m.jobs(0).files(1).path() == "out/model.bin");
  CHECK(m.jobs(0).files(1).mode() == 0755);
  CHECK(m.jobs(0).files(1).sha256() == Hex(big));
  std::vector<v1::ChunkData> got;
  REQUIRE(rig.Download(test.job_id, test.attempt_token, {names[2], names[0], names[1]}, &got).ok());
  REQUIRE(got.size() == 3);
  CHECK(got[0].sha256() == names[2]);
  CHECK(got[0].data() + got[1].data() + got[2].data() ==
        big.substr(2000) + big.substr(0, 1000) + big.substr(1000, 1000));

  // A blob gone from the disk mid-call (a damaged store): the chunks before it arrive in order,
  // then UNAVAILABLE naming it; the read ahead of it never sends a later chunk.
  const std::string gone = rig.blobs->PathOf(names[1]);
  std::filesystem::rename(gone, gone + ".aside");
  std::vector<v1::ChunkData> part;
  grpc::Status broken = rig.Download(test.job_id, test.attempt_token,
                                     {names[0], names[2], names[1], names[3]}, &part);
  CHECK(broken.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(broken.error_message() == "cannot read chunk " + names[1] + "; try again");
  REQUIRE(part.size() == 2);
  CHECK(part[0].sha256() == names[0]);
  CHECK(part[1].sha256() == names[2]);
  std::filesystem::rename(gone + ".aside", gone);

  // A job that does not need build's artifacts gets an empty manifest and no chunk.
  v1::ArtifactManifest none;
  REQUIRE(rig.Manifest(other.job_id, other.attempt_token, &none).ok());
  CHECK(none.jobs_size() == 0);
  std::vector<v1::ChunkData> refused;
  grpc::Status denied = rig.Download(other.job_id, other.attempt_token, {names[0]}, &refused);
  CHECK(denied.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(denied.error_message() == "chunk " + names[0] +
                                      " is not in the artifacts of a job that job " +
                                      S(other.job_id) + " needs with artifacts: true");
  CHECK(refused.empty());
}

TEST_CASE("artifacts: hostile uploads and commits get exact errors and store nothing", "[db]") {
  DbFixture f;
  Rig rig(f);
  f.CreatePipeline({JobWithSpec("build", kBuildSpec)});
  auto a = f.ClaimOne(f.Agent("agent-1"));
  const std::string data = "payload";
  v1::UploadChunksResponse up;

  SECTION("a chunk whose data does not match its hash") {
    grpc::Status st = rig.Upload(a.job_id, a.attempt_token, {{Hex("other"), data}}, &up);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(st.error_message() ==
          "chunk " + Hex("other") + " does not match its data (SHA-256 " + Hex(data) + ")");
  }
  SECTION("a chunk over 4 MiB") {
    const std::string big(4 * 1024 * 1024 + 1, 'x');
    grpc::Status st = rig.Upload(a.job_id, a.attempt_token, {{Hex(big), big}}, &up);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(st.error_message() ==
          "chunk " + Hex(big) + " has 4194305 bytes; a chunk has 1 to 4194304");
  }
  SECTION("an empty chunk and a malformed name") {
    grpc::Status st = rig.Upload(a.job_id, a.attempt_token, {{Hex(""), ""}}, &up);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(st.error_message() == "chunk " + Hex("") + " has 0 bytes; a chunk has 1 to 4194304");
    st = rig.Upload(a.job_id, a.attempt_token, {{"../../etc/passwd", data}}, &up);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(st.error_message() == "chunk sha256 is not 64 lowercase hex digits");
  }
  SECTION("a forged attempt token, another job's token, a bad agent token") {
    grpc::Status st = rig.Upload(a.job_id, "forged-token", {{Hex(data), data}}, &up);
    CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(st.error_message() == "attempt token is not the live attempt of job " + S(a.job_id));
    st = rig.Upload(a.job_id + 1000, a.attempt_token, {{Hex(data), data}}, &up);
    CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    st = rig.Upload(a.job_id, a.attempt_token, {{Hex(data), data}}, &up, "wrong");
    CHECK(st.error_code() == grpc::StatusCode::UNAUTHENTICATED);
    std::vector<std::string> missing;
    st = rig.Missing(a.job_id, "forged-token", {Hex(data)}, &missing);
    CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    v1::ArtifactManifest m;
    st = rig.Manifest(a.job_id, "forged-token", &m);
    CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }
  SECTION("a later message of the stream names another job") {
    grpc::ClientContext ctx;
    rig.Prepare(&ctx);
    auto w = rig.stub->UploadChunks(&ctx, &up);
    v1::ChunkUpload m;
    m.set_job_id(a.job_id);
    m.set_attempt_token(a.attempt_token);
    m.set_sha256(Hex(data));
    m.set_data(data);
    REQUIRE(w->Write(m));
    m.set_job_id(a.job_id + 1);
    m.set_attempt_token("");
    w->Write(m);
    w->WritesDone();
    grpc::Status st = w->Finish();
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(st.error_message() == "all chunks of one UploadChunks stream belong to its first job");
    CHECK(f.Count("SELECT count(*) FROM artifact_chunks") == 1);  // the first one is kept
    return;
  }
  SECTION("too many names in one call") {
    std::vector<std::string> names(10001, Hex(data));
    std::vector<std::string> missing;
    grpc::Status st = rig.Missing(a.job_id, a.attempt_token, names, &missing);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(st.error_message() ==
          "ArtifactChunksMissing: 10001 chunk names, more than 10000 per call");
    names.pop_back();
    CHECK(rig.Missing(a.job_id, a.attempt_token, names, &missing).ok());
    CHECK(missing.size() == 10000);
  }
  SECTION("paths that escape or are malformed") {
    REQUIRE(rig.Upload(a.job_id, a.attempt_token, {{Hex(data), data}}, &up).ok());
    struct Case {
      std::string path, message;
    };
    const std::string nul("a\0b", 3);
    for (const Case& c : {Case{"../x", "artifact path '../x': has a '..' segment"},
                          Case{"out/../../x", "artifact path 'out/../../x': has a '..' segment"},
                          Case{"/etc/passwd", "artifact path '/etc/passwd': is absolute"},
                          Case{"a//b", "artifact path 'a//b': has an empty segment"},
                          Case{"a/", "artifact path 'a/': has an empty segment"},
                          Case{"./a", "artifact path './a': has a '.' segment"},
                          Case{"", "artifact path '': is empty"},
                          Case{nul, "artifact path 'a\\x00\\x62': contains a NUL byte"}}) {
      INFO(c.message);
      v1::CommitArtifactsResponse res;
      v1::ArtifactFile file = FileOf("x", data, 1000, nullptr);
      file.set_path(c.path);
      grpc::Status st = rig.Commit(a.job_id, a.attempt_token, {file}, &res);
      CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
      CHECK(st.error_message() == c.message);
    }
    v1::CommitArtifactsResponse res;
    v1::ArtifactFile file = FileOf(std::string(4097, 'a'), data, 1000, nullptr);
    grpc::Status st = rig.Commit(a.job_id, a.attempt_token, {file}, &res);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(st.error_message() ==
          "artifact path '" + std::string(200, 'a') + "...': is 4097 bytes, more than 4096");
    // Twice the same path.
    v1::ArtifactFile ok = FileOf("a", data, 1000, nullptr);
    st = rig.Commit(a.job_id, a.attempt_token, {ok, ok}, &res);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(st.error_message() == "artifact path 'a' appears twice");
    // A size its chunks cannot hold.
    ok.set_size(5 * 1024 * 1024);
    st = rig.Commit(a.job_id, a.attempt_token, {ok}, &res);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(st.error_message() == "artifact 'a': size 5242880 does not fit its 1 chunks");
  }
  SECTION("too many files in one commit") {
    v1::CommitArtifactsResponse res;
    std::vector<v1::ArtifactFile> many;
    for (int i = 0; i <= 100000; ++i) {
      v1::ArtifactFile e;
      e.set_path("f" + S(i));
      e.set_sha256(Hex(""));
      many.push_back(e);
    }
    grpc::Status st = rig.Commit(a.job_id, a.attempt_token, many, &res);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(st.error_message() == "CommitArtifacts: 100001 files, more than 100000");
  }
  CHECK(f.Count("SELECT count(*) FROM artifacts") == 0);
  CHECK(f.Count("SELECT count(*) FROM artifact_files") == 0);
}

TEST_CASE("artifacts: a cut upload stream loses only the chunk in flight, and resumes", "[db]") {
  DbFixture f;
  Rig rig(f);
  f.CreatePipeline({JobWithSpec("build", kBuildSpec)});
  auto a = f.ClaimOne(f.Agent("agent-1"));
  std::vector<std::pair<std::string, std::string>> chunks;
  const std::string data = Bytes(4 * 4096, 7);
  v1::ArtifactFile file = FileOf("model.bin", data, 4096, &chunks);
  REQUIRE(chunks.size() == 4);
  {
    grpc::ClientContext ctx;
    rig.Prepare(&ctx);
    v1::UploadChunksResponse up;
    auto w = rig.stub->UploadChunks(&ctx, &up);
    for (int i = 0; i < 2; ++i) {
      v1::ChunkUpload m;
      m.set_job_id(a.job_id);
      m.set_attempt_token(a.attempt_token);
      m.set_sha256(chunks[i].first);
      m.set_data(chunks[i].second);
      REQUIRE(w->Write(m));
    }
    // Wait (bounded) until the server holds both, then cut the stream without WritesDone.
    std::vector<std::string> missing;
    for (int i = 0; i < 1000; ++i) {
      REQUIRE(rig.Missing(a.job_id, a.attempt_token, {chunks[0].first, chunks[1].first}, &missing)
                  .ok());
      if (missing.empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(missing.empty());
    ctx.TryCancel();
    CHECK(w->Finish().error_code() == grpc::StatusCode::CANCELLED);
  }
  std::vector<std::string> names, missing;
  for (const auto& c : chunks) names.push_back(c.first);
  REQUIRE(rig.Missing(a.job_id, a.attempt_token, names, &missing).ok());
  CHECK(missing == std::vector<std::string>{names[2], names[3]});
  v1::UploadChunksResponse up;
  REQUIRE(rig.Upload(a.job_id, a.attempt_token, {chunks[2], chunks[3]}, &up).ok());
  CHECK(up.stored() == 2);
  v1::CommitArtifactsResponse res;
  REQUIRE(rig.Commit(a.job_id, a.attempt_token, {file}, &res).ok());
  CHECK(res.bytes() == data.size());
  CHECK(f.Count("SELECT count(*) FROM artifact_chunks") == 4);
}

TEST_CASE("artifacts: the REST listing and download, whole and ranged, with exact headers",
          "[db]") {
  DbFixture f;
  Rig rig(f);
  f.CreatePipeline({JobWithSpec("build", kBuildSpec)});
  auto a = f.ClaimOne(f.Agent("agent-1"));
  std::vector<std::pair<std::string, std::string>> chunks;
  const std::string data = Bytes(3000, 3);
  // Two files: one small, one larger than the whole-body limit (streamed).
  const std::string large = Bytes(5 * 1024 * 1024 + 17, 4);
  std::vector<v1::ArtifactFile> files = {FileOf("dist/app.tar", data, 1024, &chunks),
                                         FileOf("dist/weights.bin", large, 4 << 20, &chunks)};
  v1::UploadChunksResponse up;
  REQUIRE(rig.Upload(a.job_id, a.attempt_token, chunks, &up).ok());
  v1::CommitArtifactsResponse res;
  REQUIRE(rig.Commit(a.job_id, a.attempt_token, files, &res).ok());

  ApiDeps deps{
      &f.repos,     &f.deliveries,        &f.pipelines,        &f.jobs, &f.agents, nullptr, nullptr,
      &rig.metrics, std::string(40, 'a'), std::string(32, 'k')};
  deps.artifacts = &rig.store;
  deps.blobs = rig.blobs.get();
  http::Router router;
  RegisterApi(router, deps);
  http::Server server(
      {}, [&router](http::Request& req) { return router.Dispatch(req); },
      [&router](http::Request& req) { return router.Admit(req); });
  REQUIRE(server.Start().ok());
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/api/v1/jobs/" +
                          S(a.job_id) + "/artifacts";
  using H = std::vector<std::pair<std::string, std::string>>;
  const H auth = {{"Authorization", "Bearer " + std::string(40, 'a')}};
  auto with = [&auth](const std::string& k, const std::string& v) {
    H h = auth;
    h.push_back({k, v});
    return h;
  };

  auto list = HttpFetch("GET", url, auth);
  REQUIRE(list.ok());
  CHECK(list->status == 200);
  CHECK(list->body ==
        R"({"job_id":)" + S(a.job_id) +
            R"(,"attempt":1,"files":[{"path":"dist/app.tar","size":3000,"mode":"0644","sha256":")" +
            Hex(data) + R"("},{"path":"dist/weights.bin","size":5242897,"mode":"0644","sha256":")" +
            Hex(large) +
            R"("}],"bytes":5245897,"created_at":"2023-11-14T22:13:20.000Z",)"
            R"("expire_at":"2023-11-14T23:13:20.000Z"})");

  auto whole = HttpFetch("GET", url + "/dist/app.tar", auth);
  REQUIRE(whole.ok());
  CHECK(whole->status == 200);
  CHECK(whole->body == data);
  CHECK(whole->Header("Content-Length") == "3000");
  CHECK(whole->Header("ETag") == "\"" + Hex(data) + "\"");
  CHECK(whole->Header("Accept-Ranges") == "bytes");

  auto part = HttpFetch("GET", url + "/dist/app.tar", with("Range", "bytes=1000-2047"));
  REQUIRE(part.ok());
  CHECK(part->status == 206);
  CHECK(part->body == data.substr(1000, 1048));
  CHECK(part->Header("Content-Range") == "bytes 1000-2047/3000");
  auto suffix = HttpFetch("GET", url + "/dist/app.tar", with("Range", "bytes=-10"));
  REQUIRE(suffix.ok());
  CHECK(suffix->status == 206);
  CHECK(suffix->body == data.substr(2990));
  CHECK(suffix->Header("Content-Range") == "bytes 2990-2999/3000");
  auto past = HttpFetch("GET", url + "/dist/app.tar", with("Range", "bytes=3000-"));
  REQUIRE(past.ok());
  CHECK(past->status == 416);
  CHECK(past->Header("Content-Range") == "bytes */3000");
  // An If-Range for another version: the whole file.
  H stale = with("Range", "bytes=0-9");
  stale.push_back({"If-Range", "\"0000\""});
  auto full = HttpFetch("GET", url + "/dist/app.tar", stale);
  REQUIRE(full.ok());
  CHECK(full->status == 200);
  CHECK(full->body == data);

  auto streamed = HttpFetch("GET", url + "/dist/weights.bin", auth);
  REQUIRE(streamed.ok());
  CHECK(streamed->status == 200);
  CHECK(streamed->body == large);
  // Streamed bodies carry their exact length too, never chunked encoding.
  CHECK(streamed->Header("Content-Length") == "5242897");
  CHECK(streamed->Header("Transfer-Encoding") == "");
  CHECK(streamed->Header("ETag") == "\"" + Hex(large) + "\"");
  auto tail = HttpFetch("GET", url + "/dist/weights.bin", with("Range", "bytes=4194300-"));
  REQUIRE(tail.ok());
  CHECK(tail->status == 206);
  CHECK(tail->body == large.substr(4194300));
  CHECK(tail->Header("Content-Length") == "1048597");
  CHECK(tail->Header("Content-Range") == "bytes 4194300-5242896/5242897");
  auto big_range = HttpFetch("GET", url + "/dist/weights.bin", with("Range", "bytes=1-"));
  REQUIRE(big_range.ok());
  CHECK(big_range->status == 206);
  CHECK(big_range->body == large.substr(1));
  CHECK(big_range->Header("Content-Length") == "5242896");
  CHECK(big_range->Header("Transfer-Encoding") == "");
  CHECK(big_range->Header("Content-Range") == "bytes 1-5242896/5242897");
  CHECK(part->Header("Content-Length") == "1048");

  auto missing = HttpFetch("GET", url + "/dist/nope", auth);
  REQUIRE(missing.ok());
  CHECK(missing->status == 404);
  auto escape = HttpFetch("GET", url + "/dist/%2E%2E/x", auth);
  REQUIRE(escape.ok());
  CHECK(escape->status == 400);
  CHECK(escape->body ==
        R"({"error":{"code":"invalid_argument","message":"artifact path 'dist/../x': has a )"
        R"('..' segment"}})");
  // A NUL byte and an absolute path, percent-encoded: refused before any lookup.
  auto nul = HttpFetch("GET", url + "/dist/%00x", auth);
  REQUIRE(nul.ok());
  CHECK(nul->status == 400);
  CHECK(nul->body ==
        R"({"error":{"code":"invalid_argument","message":"artifact path 'dist/\\x00x': )"
        R"(contains a NUL byte"}})");
  auto absolute = HttpFetch("GET", url + "/%2Fetc%2Fpasswd", auth);
  REQUIRE(absolute.ok());
  CHECK(absolute->status == 400);
  CHECK(absolute->body ==
        R"({"error":{"code":"invalid_argument","message":"artifact path '/etc/passwd': )"
        R"(is absolute"}})");
  auto noauth = HttpFetch("GET", url + "/dist/app.tar");
  REQUIRE(noauth.ok());
  CHECK(noauth->status == 401);
  auto usage = HttpFetch(
      "GET", "http://127.0.0.1:" + std::to_string(server.port()) + "/api/v1/artifacts/usage", auth);
  REQUIRE(usage.ok());
  CHECK(usage->body == R"({"repos":[{"repo_id":)" + S(f.repo_id) +
                           R"(,"repo":"acme/app","artifact_bytes":5245897,)"
                           R"("jobs_with_artifacts":1}]})");
  auto metrics = HttpFetch("GET", "http://127.0.0.1:" + std::to_string(server.port()) + "/metrics");
  REQUIRE(metrics.ok());
  CHECK(metrics->body.find("assay_artifact_bytes{repo=\"acme/app\"} 5245897\n") !=
        std::string::npos);
  server.Stop();
}

TEST_CASE("artifacts: the sweeper deletes expired manifests, then chunks nothing references",
          "[db]") {
  DbFixture f;
  Rig rig(f);
  f.CreatePipeline({JobWithSpec("a", kBuildSpec), Job("b")});
  auto a = f.ClaimOne(f.Agent("agent-1"));
  auto b = f.ClaimOne(f.Agent("agent-2"));
  const std::string shared = "shared bytes", only_a = "a's bytes", loose = "never committed";
  for (const auto& [job, token, chunks] :
       {std::tuple{a.job_id, a.attempt_token, std::vector<std::string>{shared, only_a}},
        std::tuple{b.job_id, b.attempt_token, std::vector<std::string>{shared}}}) {
    std::vector<std::pair<std::string, std::string>> up;
    std::vector<v1::ArtifactFile> files;
    for (size_t i = 0; i < chunks.size(); ++i) {
      files.push_back(FileOf("f" + S(static_cast<int64_t>(i)), chunks[i], 1000, &up));
    }
    v1::UploadChunksResponse ur;
    REQUIRE(rig.Upload(job, token, up, &ur).ok());
    v1::CommitArtifactsResponse cr;
    REQUIRE(rig.Commit(job, token, files, &cr).ok());
  }
  v1::UploadChunksResponse ur;
  REQUIRE(rig.Upload(a.job_id, a.attempt_token, {{Hex(loose), loose}}, &ur).ok());
  CHECK(f.Count("SELECT count(*) FROM artifact_chunks") == 3);

  artifacts::SweeperOptions so;
  so.batch = 1;  // several batches per round
  so.chunk_grace = absl::Hours(1);
  artifacts::Sweeper sweeper(&rig.store, rig.blobs.get(), &f.clock, so);
  // Nothing expired, the loose chunk is within its grace.
  auto n = sweeper.RunOnce();
  REQUIRE(n.ok());
  CHECK(n->manifests == 0);
  CHECK(n->chunks == 0);
  // a expires after its 3600 s; b after the default 30 days. The loose chunk's grace is over.
  f.clock.Advance(absl::Seconds(3601));
  n = sweeper.RunOnce();
  REQUIRE(n.ok());
  CHECK(n->manifests == 1);
  CHECK(n->chunks == 2);  // a's own chunk and the loose one; the shared one stays for b
  CHECK(f.Query("SELECT job_id FROM artifacts") == Rows{{S(b.job_id)}});
  CHECK(f.Query("SELECT sha256 FROM artifact_chunks") == Rows{{Hex(shared)}});
  CHECK(rig.blobs->Has(Hex(shared)).value());
  CHECK_FALSE(rig.blobs->Has(Hex(only_a)).value());
  CHECK_FALSE(rig.blobs->Has(Hex(loose)).value());
  CHECK(f.Count("SELECT count(*) FROM artifact_files") == 1);
  f.clock.Advance(absl::Hours(24 * 30));
  n = sweeper.RunOnce();
  REQUIRE(n.ok());
  CHECK(n->manifests == 1);
  CHECK(n->chunks == 1);
  CHECK(f.Count("SELECT count(*) FROM artifact_chunks") == 0);
  CHECK_FALSE(rig.blobs->Has(Hex(shared)).value());

  // Another replica holding the sweep lock: this one does nothing this round.
  pqxx::connection other(f.tdb.dsn());
  pqxx::work tx(other);
  tx.exec("SELECT pg_advisory_xact_lock(7013, 0)");
  auto blocked = rig.store.DeleteExpired(f.clock.Now() + absl::Hours(1), 10);
  REQUIRE(blocked.ok());
  CHECK(*blocked == 0);
}

TEST_CASE("artifacts: a later attempt replaces an earlier attempt's manifest", "[db]") {
  DbFixture f;
  Rig rig(f);
  f.CreatePipeline({JobWithSpec("a", kBuildSpec)});
  auto first = f.ClaimOne(f.Agent("agent-1"), absl::Seconds(5));
  std::vector<std::pair<std::string, std::string>> up;
  v1::ArtifactFile one = FileOf("one", "1", 1000, &up), two = FileOf("two", "22", 1000, &up);
  v1::UploadChunksResponse ur;
  REQUIRE(rig.Upload(first.job_id, first.attempt_token, up, &ur).ok());
  v1::CommitArtifactsResponse cr;
  REQUIRE(rig.Commit(first.job_id, first.attempt_token, {one}, &cr).ok());
  // The lease runs out; the job is queued again and claimed by another agent.
  f.clock.Advance(absl::Seconds(6));
  REQUIRE(f.jobs.ExpireLeases().ok());
  auto second = f.ClaimOne(f.Agent("agent-2"));
  REQUIRE(second.job_id == first.job_id);
  // The first attempt is fenced off.
  const std::string fenced = "attempt token is not the live attempt of job " + S(first.job_id);
  grpc::Status st = rig.Commit(first.job_id, first.attempt_token, {two}, &cr);
  CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(st.error_message() == fenced);
  // Every other call replayed with the earlier attempt's token is refused the same way.
  const std::string extra = "extra chunk";
  st = rig.Upload(first.job_id, first.attempt_token, {{Hex(extra), extra}}, &ur);
  CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(st.error_message() == fenced);
  std::vector<std::string> missing;
  st = rig.Missing(first.job_id, first.attempt_token, {Hex(extra)}, &missing);
  CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(st.error_message() == fenced);
  v1::ArtifactManifest m;
  st = rig.Manifest(first.job_id, first.attempt_token, &m);
  CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(st.error_message() == fenced);
  std::vector<v1::ChunkData> got;
  st = rig.Download(first.job_id, first.attempt_token, {up[0].first}, &got);
  CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(st.error_message() == fenced);
  CHECK(got.empty());
  CHECK(f.Count("SELECT count(*) FROM artifact_chunks WHERE sha256 = '" + Hex(extra) + "'") == 0);
  REQUIRE(rig.Commit(second.job_id, second.attempt_token, {two}, &cr).ok());
  CHECK(f.Query("SELECT attempt, files, bytes FROM artifacts") == Rows{{"2", "1", "2"}});
  CHECK(f.Query("SELECT path FROM artifact_files") == Rows{{"two"}});
}

// The file list of a commit cut into 4 MiB chunks (CommitArtifactsRequest.manifest_chunks).
std::vector<std::pair<std::string, std::string>> ManifestChunks(
    const std::vector<v1::ArtifactFile>& files) {
  v1::ArtifactFileList list;
  for (const auto& f : files) *list.add_files() = f;
  const std::string bytes = list.SerializeAsString();
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t off = 0; off < bytes.size(); off += 4 << 20) {
    out.push_back({Hex(bytes.substr(off, 4 << 20)), bytes.substr(off, 4 << 20)});
  }
  return out;
}

grpc::Status CommitChunks(Rig& rig, int64_t job, const std::string& attempt,
                          const std::vector<std::string>& names,
                          const std::vector<v1::ArtifactFile>& inline_files,
                          v1::CommitArtifactsResponse* res) {
  grpc::ClientContext ctx;
  rig.Prepare(&ctx);
  v1::CommitArtifactsRequest req;
  req.set_job_id(job);
  req.set_attempt_token(attempt);
  for (const auto& n : names) req.add_manifest_chunks(n);
  for (const auto& f : inline_files) *req.add_files() = f;
  return rig.stub->CommitArtifacts(&ctx, req, res);
}

TEST_CASE("artifacts: a commit of 100,000 files is refused inline past 8 MiB, taken as chunks",
          "[db]") {
  DbFixture f;
  Rig rig(f);
  f.CreatePipeline({JobWithSpec("build", kBuildSpec)});
  auto a = f.ClaimOne(f.Agent("agent-1"));
  std::vector<std::pair<std::string, std::string>> data_chunks;
  std::vector<v1::ArtifactFile> files;
  for (int i = 0; i < 100'000; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "out/some/longer/directory/file-%06d.txt", i);
    files.push_back(FileOf(name, "x", 1000, i == 0 ? &data_chunks : nullptr));
  }
  v1::UploadChunksResponse up;
  REQUIRE(rig.Upload(a.job_id, a.attempt_token, data_chunks, &up).ok());
  v1::CommitArtifactsResponse res;
  // Inline, the message is over the server's 8 MiB: gRPC refuses it before any handler runs.
  grpc::Status st = rig.Commit(a.job_id, a.attempt_token, files, &res);
  CHECK(st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  const auto manifest = ManifestChunks(files);
  REQUIRE(manifest.size() == 5);
  std::vector<std::string> names;
  for (const auto& m : manifest) names.push_back(m.first);
  // Before its chunks are stored: the first missing one is named.
  st = CommitChunks(rig, a.job_id, a.attempt_token, names, {}, &res);
  CHECK(st.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(st.error_message() == "CommitArtifacts: manifest chunk " + names[0] + " is not stored");
  REQUIRE(rig.Upload(a.job_id, a.attempt_token, manifest, &up).ok());
  st = CommitChunks(rig, a.job_id, a.attempt_token, names, {}, &res);
  REQUIRE(st.ok());
  CHECK(res.files() == 100'000);
  CHECK(res.bytes() == 100'000);
  CHECK(f.Count("SELECT count(*) FROM artifact_files") == 100'000);
  CHECK(f.Query("SELECT path, size FROM artifact_files ORDER BY path DESC LIMIT 1") ==
        Rows{{"out/some/longer/directory/file-099999.txt", "1"}});
  v1::ArtifactManifest m;
  REQUIRE(rig.Manifest(a.job_id, a.attempt_token, &m).ok());
}

TEST_CASE("artifacts: hostile manifest chunks get exact errors and store nothing", "[db]") {
  DbFixture f;
  Rig rig(f);
  f.CreatePipeline({JobWithSpec("build", kBuildSpec)});
  auto a = f.ClaimOne(f.Agent("agent-1"));
  std::vector<std::pair<std::string, std::string>> chunks;
  v1::ArtifactFile file = FileOf("out/a", "payload", 1000, &chunks);
  const auto manifest = ManifestChunks({file});
  chunks.insert(chunks.end(), manifest.begin(), manifest.end());
  const std::string junk = "\xff\xff\xff\xff not a file list";
  chunks.push_back({Hex(junk), junk});
  v1::UploadChunksResponse up;
  REQUIRE(rig.Upload(a.job_id, a.attempt_token, chunks, &up).ok());
  v1::CommitArtifactsResponse res;

  grpc::Status st = CommitChunks(rig, a.job_id, a.attempt_token, {manifest[0].first}, {file}, &res);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(st.error_message() == "CommitArtifacts: files and manifest_chunks are exclusive");
  st = CommitChunks(rig, a.job_id, a.attempt_token, std::vector<std::string>(17, manifest[0].first),
                    {}, &res);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(st.error_message() == "CommitArtifacts: a manifest of 17 chunks, more than 16 (64 MiB)");
  st = CommitChunks(rig, a.job_id, a.attempt_token, {Hex(junk)}, {}, &res);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(st.error_message() == "CommitArtifacts: the manifest chunks are not an ArtifactFileList");
  st = CommitChunks(rig, a.job_id, a.attempt_token, {"../../etc/passwd"}, {}, &res);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(st.error_message() == "a blob name must be 64 lowercase hex digits");
  // A listed file whose path escapes is refused as an inline one is.
  v1::ArtifactFile bad = file;
  bad.set_path("../escape");
  const auto bad_manifest = ManifestChunks({bad});
  REQUIRE(rig.Upload(a.job_id, a.attempt_token, bad_manifest, &up).ok());
  st = CommitChunks(rig, a.job_id, a.attempt_token, {bad_manifest[0].first}, {}, &res);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(st.error_message() == "artifact path '../escape': has a '..' segment");
  // A replayed token of no live attempt.
  st = CommitChunks(rig, a.job_id, "forged-token", {manifest[0].first}, {}, &res);
  CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(f.Count("SELECT count(*) FROM artifacts") == 0);
  CHECK(f.Count("SELECT count(*) FROM artifact_files") == 0);
  // The well-formed one goes through.
  REQUIRE(CommitChunks(rig, a.job_id, a.attempt_token, {manifest[0].first}, {}, &res).ok());
  CHECK(f.Query("SELECT path FROM artifact_files") == Rows{{"out/a"}});
}

}  // namespace
}  // namespace assay::dbtest
