#pragma once
// The model registry tests' world (issue 10): the fixture's database, a directory blob store,
// the artifact and model stores, and succeeded jobs whose artifacts hold given files.

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/crypto/crypto.h"
#include "server/artifacts/blob_store.h"
#include "server/store/artifacts.h"
#include "server/store/models.h"
#include "tests/db/db_fixture.h"

namespace assay::dbtest {

struct ModelRig {
  DbFixture& f;
  std::string dir;
  std::unique_ptr<artifacts::DirBlobStore> blobs;
  store::ArtifactStore artifacts{&f.db};
  store::ModelStore models{&f.db};
  int64_t agent = 0;

  explicit ModelRig(DbFixture& fx) : f(fx) {
    char tmpl[] = "/tmp/assay-models-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    blobs = std::move(artifacts::DirBlobStore::Open(dir + "/artifacts").value());
    agent = f.Agent("agent-1");
  }
  ~ModelRig() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  // Stores `data` as chunks of at most `chunk` bytes; the file's manifest row.
  store::ArtifactFileRow Put(const std::string& path, const std::string& data, size_t chunk,
                             int mode = 0644) {
    store::ArtifactFileRow row;
    row.path = path;
    row.size = static_cast<int64_t>(data.size());
    row.mode = mode;
    row.sha256 = HexSha256(data);
    for (size_t pos = 0; pos < data.size(); pos += chunk) {
      const std::string piece = data.substr(pos, chunk);
      const std::string h = HexSha256(piece);
      auto put = artifacts.PutChunk(
          h, static_cast<int64_t>(piece.size()), f.clock.Now(),
          [&] { return blobs->Put(h, piece); }, [&] { return blobs->Has(h).value_or(false); });
      REQUIRE(put.ok());
      row.chunks.push_back(h);
    }
    return row;
  }

  // A new pipeline whose one job "train" ran and succeeded with `files` (path → bytes) as its
  // artifacts, expiring `ttl` from now. Returns the job's id.
  int64_t TrainJob(const std::map<std::string, std::string>& files,
                   absl::Duration ttl = absl::Hours(1), size_t chunk = 1 << 20,
                   const std::string& state = "succeeded") {
    f.CreatePipeline({Job("train")});
    store::ClaimedJob c = f.ClaimOne(agent);
    std::vector<store::ArtifactFileRow> rows;
    for (const auto& [path, data] : files) rows.push_back(Put(path, data, chunk));
    auto committed =
        artifacts.Commit(c.job_id, c.attempt, f.repo_id, rows, f.clock.Now(), f.clock.Now() + ttl);
    REQUIRE(committed.ok());
    f.FinishJob(c, state, state == "succeeded" ? 0 : 1);
    return c.job_id;
  }

  store::RegisterVersionRequest Request(const std::string& model, int64_t job) {
    store::RegisterVersionRequest r;
    r.model = model;
    r.job_id = job;
    r.now = f.clock.Now();
    return r;
  }

  store::ModelVersion Register(const std::string& model, int64_t job) {
    auto v = models.RegisterVersion(Request(model, job));
    INFO(v.status().ToString());
    REQUIRE(v.ok());
    return *v;
  }

  store::AliasChange Admin(const std::string& reason = "") {
    store::AliasChange who;
    who.principal = "admin";
    who.client_addr = "127.0.0.1";
    who.reason = reason;
    who.now = f.clock.Now();
    return who;
  }
};

inline registry::VersionRef V(int v) {
  registry::VersionRef r;
  r.version = v;
  return r;
}
inline registry::VersionRef A(const std::string& alias) {
  registry::VersionRef r;
  r.alias = alias;
  return r;
}

// Bytes that differ by seed, so chunks do not dedupe by accident.
inline std::string ModelBytes(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((seed * 131 + i * 7 + i / 251) & 0xff);
  return s;
}

}  // namespace assay::dbtest
