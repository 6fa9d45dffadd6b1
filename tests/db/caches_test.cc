// Caches (issue 9), server side: the store's scope fallback order, immutable keys, retention
// (entries, then their chunks through the artifact sweeper), and the Cache RPCs over a real
// in-process gRPC server: forged tokens, bad keys, commits before their chunks, and
// DownloadChunks serving exactly the chunks of the entry a job restored.

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "assay/v1/agent.grpc.pb.h"
#include "common/crypto/crypto.h"
#include "server/agents/agent_service.h"
#include "server/artifacts/artifact_service.h"
#include "server/artifacts/blob_store.h"
#include "server/artifacts/cache_service.h"
#include "server/artifacts/sweeper.h"
#include "server/metrics/metrics.h"
#include "server/scheduler/dispatcher.h"
#include "server/store/artifacts.h"
#include "server/store/caches.h"
#include "tests/db/db_fixture.h"

namespace assay::dbtest {
namespace {

std::string S(int64_t v) { return std::to_string(v); }
std::string Hex(const std::string& data) { return HexEncode(Sha256(data)); }

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/assay-caches-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// A pipeline of one job on `ref`, claimed by agent-1: the job's live attempt.
store::ClaimedJob JobOn(DbFixture& f, const std::string& ref, bool trusted = true) {
  store::NewPipeline p = f.Pipeline({Job("build")});
  p.ref = ref;
  p.trusted = trusted;
  if (!trusted) p.pr_number = 7;
  auto id = f.pipelines.Create(p);
  REQUIRE(id.ok());
  return f.ClaimOne(f.Agent("agent-1"));
}

// Stores `data` as one chunk and returns a file row over it.
store::ArtifactFileRow StoredFile(DbFixture& f, store::ArtifactStore& artifacts,
                                  const std::string& path, const std::string& data) {
  auto put = artifacts.PutChunk(
      Hex(data), static_cast<int64_t>(data.size()), f.clock.Now(), [] { return absl::OkStatus(); },
      [] { return true; });
  REQUIRE(put.ok());
  store::ArtifactFileRow r;
  r.path = path;
  r.size = static_cast<int64_t>(data.size());
  r.mode = 0644;
  r.sha256 = Hex(data);
  r.chunks = {Hex(data)};
  return r;
}

TEST_CASE("cache store: scopes of trusted branches, tags and untrusted pull requests", "[db]") {
  DbFixture f;
  store::CacheStore caches(&f.db);
  f.Exec("UPDATE repos SET default_branch = 'main'");
  auto main_job = JobOn(f, "refs/heads/main");
  auto s = caches.ScopeOf(main_job.job_id);
  REQUIRE(s.ok());
  CHECK(s->own == "main");
  CHECK(s->fallback == "");
  f.FinishJob(main_job, "succeeded", 0);
  auto feature = JobOn(f, "refs/heads/feature/x");
  s = caches.ScopeOf(feature.job_id);
  REQUIRE(s.ok());
  CHECK(s->own == "feature/x");
  CHECK(s->fallback == "main");
  f.FinishJob(feature, "succeeded", 0);
  auto tag = JobOn(f, "refs/tags/v1");
  s = caches.ScopeOf(tag.job_id);
  REQUIRE(s.ok());
  CHECK(s->own == "refs/tags/v1");
  CHECK(s->fallback == "main");
  f.FinishJob(tag, "succeeded", 0);
  // A fork's pull request: a scope of its own, no fallback (it reads nothing trusted wrote).
  auto fork = JobOn(f, "refs/pull/7/head", /*trusted=*/false);
  s = caches.ScopeOf(fork.job_id);
  REQUIRE(s.ok());
  CHECK(s->own == "untrusted:refs/pull/7/head");
  CHECK(s->fallback == "");
  CHECK(caches.ScopeOf(987654).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("cache store: exact key on the branch, then the default branch, then prefixes", "[db]") {
  DbFixture f;
  store::CacheStore caches(&f.db);
  store::ArtifactStore artifacts(&f.db);
  auto job = JobOn(f, "refs/heads/feature");
  const int64_t repo = f.repo_id;
  auto file = StoredFile(f, artifacts, "venv/a", "A");
  auto save = [&](const std::string& scope, const std::string& key) {
    auto r = caches.Commit(job.job_id, repo, scope, key, {file}, f.clock.Now());
    REQUIRE(r.ok());
    REQUIRE(r->saved);
    f.clock.Advance(absl::Seconds(10));
  };
  save("main", "pip-1");
  save("main", "pip-2");
  save("feature", "pip-0");
  save("other", "pip-3");  // another branch: never read by this job
  const store::CacheScope scope{repo, "feature", "main"};
  auto restore = [&](const std::string& key, std::vector<std::string> prefixes) {
    auto r = caches.Restore(job.job_id, scope, key, prefixes, f.clock.Now());
    REQUIRE(r.ok());
    return r->has_value()
               ? (*r)->entry.scope + "/" + (*r)->entry.key + ((*r)->exact ? " exact" : " prefix")
               : std::string("none");
  };
  CHECK(restore("pip-0", {}) == "feature/pip-0 exact");
  CHECK(restore("pip-1", {}) == "main/pip-1 exact");            // the default branch's
  CHECK(restore("pip-3", {}) == "none");                        // another branch's: not read
  CHECK(restore("pip-9", {"pip-"}) == "feature/pip-0 prefix");  // own scope first
  CHECK(restore("pip-9", {"nope-", "pip-2"}) == "main/pip-2 prefix");
  save("feature", "pip-5");
  CHECK(restore("pip-9", {"pip-"}) == "feature/pip-5 prefix");  // newest first
  CHECK(restore("pip-9", {"pip_"}) == "none");                  // '_' is no wildcard
  CHECK(restore("pip-9", {"%"}) == "none");
  // The entry restored is touched and recorded for the job.
  CHECK(f.Count("SELECT count(*) FROM cache_reads WHERE job_id = " + S(job.job_id)) == 4);
  auto chunks = caches.ChunksReadBy(job.job_id, {Hex("A"), Hex("B")});
  REQUIRE(chunks.ok());
  CHECK(*chunks == std::vector<std::string>{Hex("A")});
}

TEST_CASE("cache store: keys are immutable and a commit needs every chunk stored", "[db]") {
  DbFixture f;
  store::CacheStore caches(&f.db);
  store::ArtifactStore artifacts(&f.db);
  auto job = JobOn(f, "refs/heads/main");
  auto a = StoredFile(f, artifacts, "a", "first");
  auto r = caches.Commit(job.job_id, f.repo_id, "main", "k", {a}, f.clock.Now());
  REQUIRE(r.ok());
  CHECK(r->saved);
  CHECK(r->files == 1);
  CHECK(r->bytes == 5);
  // The same key again, other content: nothing changes.
  auto b = StoredFile(f, artifacts, "a", "second");
  r = caches.Commit(job.job_id, f.repo_id, "main", "k", {b}, f.clock.Now());
  REQUIRE(r.ok());
  CHECK_FALSE(r->saved);
  CHECK(f.Query("SELECT e.key, c.sha256 FROM cache_entries e JOIN cache_files c "
                "ON c.entry_id = e.id") == Rows{{"k", Hex("first")}});
  // A chunk the store lacks: refused, no partial entry.
  store::ArtifactFileRow ghost = a;
  ghost.path = "ghost";
  ghost.chunks = {Hex("never uploaded")};
  auto g = caches.Commit(job.job_id, f.repo_id, "main", "k2", {a, ghost}, f.clock.Now());
  CHECK(g.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(g.status().message() == "chunk " + Hex("never uploaded") +
                                    " of 'ghost' is not stored; upload it first "
                                    "(ArtifactChunksMissing)");
  CHECK(f.Count("SELECT count(*) FROM cache_entries") == 1);
  CHECK(f.Count("SELECT count(*) FROM cache_files") == 1);
  CHECK(f.Count("SELECT count(*) FROM cache_chunk_refs") == 1);
}

TEST_CASE("cache retention: unused entries go, then their chunks unless an artifact holds them",
          "[db]") {
  DbFixture f;
  TempDir dir;
  auto blobs = std::move(artifacts::DirBlobStore::Open(dir.path + "/artifacts").value());
  store::ArtifactStore artifacts_store(&f.db);
  store::CacheStore caches(&f.db);
  artifacts::ArtifactService service(&artifacts_store, blobs.get(), &f.clock);
  artifacts::CacheService cache_service(&caches, &service, &f.clock);
  auto job = JobOn(f, "refs/heads/main");
  auto put = [&](const std::string& data) {
    REQUIRE(service.PutChunk(Hex(data), data).ok());
    store::ArtifactFileRow r;
    r.path = "f-" + data;
    r.size = static_cast<int64_t>(data.size());
    r.sha256 = Hex(data);
    r.chunks = {Hex(data)};
    return r;
  };
  auto weights = put("model-weights");  // in a cache entry and in the job's artifacts
  auto deps = put("deps");              // in the old cache entry only
  auto fresh = put("fresh");            // in an entry used recently
  REQUIRE(caches.Commit(job.job_id, f.repo_id, "main", "old", {weights, deps}, f.clock.Now()).ok());
  REQUIRE(artifacts_store
              .Commit(job.job_id, job.attempt, f.repo_id, {weights}, f.clock.Now(),
                      f.clock.Now() + absl::Hours(24 * 365))
              .ok());
  f.clock.Advance(absl::Hours(24 * 6));
  REQUIRE(caches.Commit(job.job_id, f.repo_id, "main", "new", {fresh}, f.clock.Now()).ok());
  // Dedup by content: the weights are one chunk for both.
  CHECK(f.Count("SELECT count(*) FROM artifact_chunks") == 3);

  artifacts::SweeperOptions so;
  so.batch = 1;
  so.chunk_grace = absl::Hours(1);
  so.cache_unused_for = absl::Hours(24 * 7);
  artifacts::Sweeper sweeper(&artifacts_store, blobs.get(), &f.clock, so);
  sweeper.SetCaches(&cache_service);
  auto n = sweeper.RunOnce();
  REQUIRE(n.ok());
  CHECK(n->cache_entries == 0);
  CHECK(n->chunks == 0);
  f.clock.Advance(absl::Hours(24 * 1 + 1));  // "old" unused for 7 days and an hour
  n = sweeper.RunOnce();
  REQUIRE(n.ok());
  CHECK(n->cache_entries == 1);
  CHECK(n->chunks == 1);  // deps; the weights stay for the artifact
  CHECK(f.Query("SELECT key FROM cache_entries") == Rows{{"new"}});
  CHECK(f.Query("SELECT sha256 FROM artifact_chunks ORDER BY size") ==
        Rows{{Hex("fresh")}, {Hex("model-weights")}});
  CHECK_FALSE(blobs->Has(Hex("deps")).value());
  CHECK(blobs->Has(Hex("model-weights")).value());
  // A restore keeps an entry alive: last used now.
  const store::CacheScope scope{f.repo_id, "main", ""};
  f.clock.Advance(absl::Hours(24 * 6));
  REQUIRE(caches.Restore(job.job_id, scope, "new", {}, f.clock.Now()).ok());
  f.clock.Advance(absl::Hours(24 * 6));
  n = sweeper.RunOnce();
  REQUIRE(n.ok());
  CHECK(n->cache_entries == 0);
  CHECK(f.Query("SELECT key FROM cache_entries") == Rows{{"new"}});
  auto usage = caches.BytesPerRepo();
  REQUIRE(usage.ok());
  REQUIRE(usage->size() == 1);
  CHECK((*usage)[0].bytes == 5);
  CHECK((*usage)[0].count == 1);
}

// The Cache RPCs over gRPC.
struct Rig {
  static constexpr const char* kToken = "agent-token-for-tests";
  DbFixture& f;
  TempDir dir;
  std::unique_ptr<artifacts::DirBlobStore> blobs;
  store::ArtifactStore store{&f.db};
  store::CacheStore caches{&f.db};
  std::unique_ptr<artifacts::ArtifactService> service;
  std::unique_ptr<artifacts::CacheService> cache_service;
  Metrics metrics;
  Dispatcher dispatcher;
  std::unique_ptr<AgentServiceImpl> impl;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<v1::AgentService::Stub> stub;

  explicit Rig(DbFixture& fx)
      : f(fx), dispatcher(&f.jobs, &metrics, &f.clock, DispatcherOptions{absl::Seconds(25)}) {
    blobs = std::move(artifacts::DirBlobStore::Open(dir.path + "/artifacts").value());
    service = std::make_unique<artifacts::ArtifactService>(&store, blobs.get(), &f.clock);
    service->SetCacheStore(&caches);
    cache_service = std::make_unique<artifacts::CacheService>(&caches, service.get(), &f.clock);
    AgentServiceDeps deps{&f.agents, &f.jobs, &dispatcher, &metrics, kToken};
    deps.artifacts = service.get();
    deps.caches = cache_service.get();
    impl = std::make_unique<AgentServiceImpl>(deps);
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(impl.get());
    server = builder.BuildAndStart();
    REQUIRE(server != nullptr);
    stub = v1::AgentService::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                         grpc::InsecureChannelCredentials()));
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
  grpc::Status Restore(int64_t job, const std::string& attempt, const std::string& key,
                       std::vector<std::string> prefixes, v1::CacheRestoreResponse* out,
                       const std::string& token = kToken) {
    grpc::ClientContext ctx;
    Prepare(&ctx, token);
    v1::CacheRestoreRequest req;
    req.set_job_id(job);
    req.set_attempt_token(attempt);
    req.set_key(key);
    for (const auto& p : prefixes) req.add_restore_keys(p);
    return stub->CacheRestore(&ctx, req, out);
  }
  grpc::Status Commit(int64_t job, const std::string& attempt, const std::string& key,
                      const std::vector<v1::ArtifactFile>& files, v1::CacheCommitResponse* out) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::CacheCommitRequest req;
    req.set_job_id(job);
    req.set_attempt_token(attempt);
    req.set_key(key);
    for (const auto& fl : files) *req.add_files() = fl;
    return stub->CacheCommit(&ctx, req, out);
  }
  grpc::Status Download(int64_t job, const std::string& attempt,
                        const std::vector<std::string>& chunks, std::vector<std::string>* out) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::DownloadChunksRequest req;
    req.set_job_id(job);
    req.set_attempt_token(attempt);
    for (const auto& h : chunks) req.add_chunks(h);
    auto r = stub->DownloadChunks(&ctx, req);
    v1::ChunkData d;
    while (r->Read(&d)) out->push_back(d.data());
    return r->Finish();
  }
};

v1::ArtifactFile WireFile(const std::string& path, const std::string& data) {
  v1::ArtifactFile f;
  f.set_path(path);
  f.set_size(data.size());
  f.set_mode(0644);
  f.set_sha256(Hex(data));
  f.add_chunks(Hex(data));
  return f;
}

TEST_CASE("cache RPCs: save, restore by a later job, download only the restored chunks", "[db]") {
  DbFixture f;
  Rig rig(f);
  auto first = JobOn(f, "refs/heads/main");
  REQUIRE(rig.service->PutChunk(Hex("cached bytes"), "cached bytes").ok());
  REQUIRE(rig.service->PutChunk(Hex("other bytes"), "other bytes").ok());
  v1::CacheRestoreResponse miss;
  REQUIRE(rig.Restore(first.job_id, first.attempt_token, "k-1", {"k-"}, &miss).ok());
  CHECK_FALSE(miss.hit());
  CHECK_FALSE(miss.saved_in_own_scope());
  v1::CacheCommitResponse saved;
  REQUIRE(rig.Commit(first.job_id, first.attempt_token, "k-1",
                     {WireFile(".venv/lib.py", "cached bytes")}, &saved)
              .ok());
  CHECK(saved.saved());
  CHECK(saved.scope() == "main");
  CHECK(saved.files() == 1);
  CHECK(saved.bytes() == 12);
  v1::CacheCommitResponse again;
  REQUIRE(rig.Commit(first.job_id, first.attempt_token, "k-1",
                     {WireFile(".venv/lib.py", "other bytes")}, &again)
              .ok());
  CHECK_FALSE(again.saved());
  f.FinishJob(first, "succeeded", 0);

  auto second = JobOn(f, "refs/heads/main");
  // Before it restored anything, the entry's chunks are not this job's to download.
  std::vector<std::string> got;
  grpc::Status refused =
      rig.Download(second.job_id, second.attempt_token, {Hex("cached bytes")}, &got);
  CHECK(refused.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(refused.error_message() ==
        "chunk " + Hex("cached bytes") + " is not in the artifacts of a job that job " +
            S(second.job_id) + " needs with artifacts: true, nor in a cache entry it restored");
  v1::CacheRestoreResponse hit;
  REQUIRE(rig.Restore(second.job_id, second.attempt_token, "k-2", {"k-"}, &hit).ok());
  CHECK(hit.hit());
  CHECK_FALSE(hit.exact());
  CHECK(hit.key() == "k-1");
  CHECK(hit.scope() == "main");
  CHECK_FALSE(hit.saved_in_own_scope());
  REQUIRE(hit.files_size() == 1);
  CHECK(hit.files(0).path() == ".venv/lib.py");
  got.clear();
  REQUIRE(rig.Download(second.job_id, second.attempt_token, {Hex("cached bytes")}, &got).ok());
  CHECK(got == std::vector<std::string>{"cached bytes"});
  // A chunk that is stored but in no entry it restored: still refused.
  got.clear();
  CHECK(
      rig.Download(second.job_id, second.attempt_token, {Hex("other bytes")}, &got).error_code() ==
      grpc::StatusCode::PERMISSION_DENIED);
  v1::CacheRestoreResponse exact;
  REQUIRE(rig.Restore(second.job_id, second.attempt_token, "k-1", {}, &exact).ok());
  CHECK(exact.exact());
  CHECK(exact.saved_in_own_scope());
}

TEST_CASE("cache RPCs: forged tokens and bad input are refused and change nothing", "[db]") {
  DbFixture f;
  Rig rig(f);
  auto job = JobOn(f, "refs/heads/main");
  REQUIRE(rig.service->PutChunk(Hex("x"), "x").ok());
  v1::CacheRestoreResponse r;
  grpc::Status s = rig.Restore(job.job_id, "forged-attempt-token", "k", {}, &r);
  CHECK(s.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(s.error_message() == "attempt token is not the live attempt of job " + S(job.job_id));
  s = rig.Restore(job.job_id, job.attempt_token, "k", {}, &r, "wrong-agent-token");
  CHECK(s.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  v1::CacheCommitResponse c;
  grpc::ClientContext ctx;
  rig.Prepare(&ctx);
  v1::CacheCommitRequest req;
  req.set_job_id(job.job_id);
  req.set_attempt_token("forged-attempt-token");
  req.set_key("k");
  *req.add_files() = WireFile("a", "x");
  s = rig.stub->CacheCommit(&ctx, req, &c);
  CHECK(s.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  // Bad keys.
  s = rig.Restore(job.job_id, job.attempt_token, std::string(513, 'k'), {}, &r);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(s.error_message() == "cache key: a cache key is at most 512 bytes, this one has 513");
  s = rig.Restore(job.job_id, job.attempt_token, "k", {"a", "b\n"}, &r);
  CHECK(s.error_message() == "restore_keys[1]: a cache key must not contain control characters");
  s = rig.Restore(job.job_id, job.attempt_token, "k", std::vector<std::string>(17, "p"), &r);
  CHECK(s.error_message() == "restore_keys: 17 prefixes, more than 16");
  // Escaping paths, a chunk never uploaded: refused, no entry.
  s = rig.Commit(job.job_id, job.attempt_token, "k", {WireFile("../outside", "x")}, &c);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  s = rig.Commit(job.job_id, job.attempt_token, "k", {WireFile("/etc/passwd", "x")}, &c);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  s = rig.Commit(job.job_id, job.attempt_token, "k",
                 {WireFile("a", "x"), WireFile("b", "not uploaded")}, &c);
  CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(f.Count("SELECT count(*) FROM cache_entries") == 0);
  CHECK(f.Count("SELECT count(*) FROM cache_files") == 0);
}

TEST_CASE("cache RPCs: a fork's pull request never reads or writes a trusted scope", "[db]") {
  DbFixture f;
  Rig rig(f);
  auto trusted = JobOn(f, "refs/heads/main");
  REQUIRE(rig.service->PutChunk(Hex("trusted"), "trusted").ok());
  REQUIRE(rig.service->PutChunk(Hex("poison"), "poison").ok());
  v1::CacheCommitResponse c;
  REQUIRE(rig.Commit(trusted.job_id, trusted.attempt_token, "deps-1",
                     {WireFile("venv/a", "trusted")}, &c)
              .ok());
  f.FinishJob(trusted, "succeeded", 0);
  auto fork = JobOn(f, "refs/pull/7/head", /*trusted=*/false);
  v1::CacheRestoreResponse r;
  REQUIRE(rig.Restore(fork.job_id, fork.attempt_token, "deps-1", {"deps-"}, &r).ok());
  CHECK_FALSE(r.hit());  // the default branch's entry is not shown to untrusted code
  // Its save of the same key lands in its own scope; main's entry is untouched.
  REQUIRE(rig.Commit(fork.job_id, fork.attempt_token, "deps-1", {WireFile("venv/a", "poison")}, &c)
              .ok());
  CHECK(c.saved());
  CHECK(c.scope() == "untrusted:refs/pull/7/head");
  f.FinishJob(fork, "succeeded", 0);
  auto later = JobOn(f, "refs/heads/main");
  REQUIRE(rig.Restore(later.job_id, later.attempt_token, "deps-1", {}, &r).ok());
  CHECK(r.hit());
  CHECK(r.scope() == "main");
  REQUIRE(r.files_size() == 1);
  CHECK(r.files(0).sha256() == Hex("trusted"));
}

}  // namespace
}  // namespace assay::dbtest
