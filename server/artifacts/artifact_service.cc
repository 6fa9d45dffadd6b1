#include "server/artifacts/artifact_service.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "common/artifacts/path.h"
#include "common/crypto/crypto.h"

namespace assay::artifacts {

absl::StatusOr<store::LiveAttempt> ArtifactService::Authorize(int64_t job_id,
                                                              const std::string& token,
                                                              std::optional<int64_t> agent_id) {
  auto live = store_->FindLiveAttempt(job_id, token);
  if (!live.ok()) return live.status();
  if (!live->has_value()) {
    return absl::PermissionDeniedError(
        absl::StrCat("attempt token is not the live attempt of job ", job_id));
  }
  if (agent_id.has_value() && (*live)->agent_id != *agent_id) {
    return absl::PermissionDeniedError(
        absl::StrCat("the live attempt of job ", job_id, " was given to another agent"));
  }
  return **live;
}

absl::Status ArtifactService::CheckNames(const std::vector<std::string>& chunks, const char* what) {
  if (chunks.size() > limits_.max_names) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": ", chunks.size(), " chunk names, more than ", limits_.max_names, " per call"));
  }
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (!IsSha256Hex(chunks[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": chunks[", i, "] is not 64 lowercase hex digits"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ArtifactService::Missing(
    const std::vector<std::string>& chunks) {
  if (absl::Status s = CheckNames(chunks, "ArtifactChunksMissing"); !s.ok()) return s;
  return store_->MissingChunks(chunks, clock_->Now());
}

absl::StatusOr<bool> ArtifactService::PutChunk(const std::string& sha256, std::string_view data) {
  if (!IsSha256Hex(sha256)) {
    return absl::InvalidArgumentError("chunk sha256 is not 64 lowercase hex digits");
  }
  if (data.empty() || data.size() > limits_.max_chunk_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("chunk ", sha256, " has ", data.size(),
                                                   " bytes; a chunk has 1 to ",
                                                   limits_.max_chunk_bytes));
  }
  const std::string actual = HexEncode(Sha256(data));
  if (actual != sha256) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk ", sha256, " does not match its data (SHA-256 ", actual, ")"));
  }
  return store_->PutChunk(
      sha256, static_cast<int64_t>(data.size()), clock_->Now(),
      [&] { return blobs_->Put(sha256, data); },
      [&] {
        auto has = blobs_->Has(sha256);
        return has.ok() && *has;
      });
}

absl::Status ArtifactService::CheckFiles(std::vector<store::ArtifactFileRow>& rows,
                                         std::string_view what) {
  const std::string call(what);
  if (rows.size() > limits_.max_files) {
    return absl::InvalidArgumentError(
        absl::StrCat(call, ": ", rows.size(), " files, more than ", limits_.max_files));
  }
  std::set<std::string_view> seen;
  size_t chunk_names = 0;
  for (auto& f : rows) {
    if (absl::Status s = ValidateArtifactPath(f.path); !s.ok()) return s;
    if (!seen.insert(f.path).second) {
      return absl::InvalidArgumentError(absl::StrCat("artifact path '", f.path, "' appears twice"));
    }
    if (!IsSha256Hex(f.sha256)) {
      return absl::InvalidArgumentError(
          absl::StrCat("artifact '", f.path, "': sha256 is not 64 lowercase hex digits"));
    }
    if (f.size < 0 || (f.size == 0) != f.chunks.empty() ||
        static_cast<uint64_t>(f.size) > f.chunks.size() * limits_.max_chunk_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("artifact '", f.path, "': size ", f.size,
                                                     " does not fit its ", f.chunks.size(),
                                                     " chunks"));
    }
    chunk_names += f.chunks.size();
    if (chunk_names > limits_.max_chunks_per_commit) {
      return absl::InvalidArgumentError(
          absl::StrCat(call, ": more than ", limits_.max_chunks_per_commit, " chunk names"));
    }
    for (size_t i = 0; i < f.chunks.size(); ++i) {
      if (!IsSha256Hex(f.chunks[i])) {
        return absl::InvalidArgumentError(absl::StrCat("artifact '", f.path, "': chunks[", i,
                                                       "] is not 64 lowercase hex digits"));
      }
    }
    f.mode = (f.mode & 0111) != 0 ? 0755 : 0644;
  }
  return absl::OkStatus();
}

absl::StatusOr<store::ArtifactCommit> ArtifactService::Commit(
    const store::LiveAttempt& attempt, const std::vector<store::ArtifactFileRow>& files) {
  std::vector<store::ArtifactFileRow> rows = files;
  if (absl::Status s = CheckFiles(rows, "CommitArtifacts"); !s.ok()) return s;
  const int64_t expire_s = attempt.expire_in_s.value_or(limits_.default_expire_s);
  const absl::Time now = clock_->Now();
  return store_->Commit(attempt.job_id, attempt.attempt, attempt.repo_id, rows, now,
                        now + absl::Seconds(expire_s));
}

absl::StatusOr<std::vector<JobManifest>> ArtifactService::Manifests(
    const store::LiveAttempt& attempt) {
  auto jobs = store_->JobsNamed(attempt.pipeline_id, attempt.artifact_needs);
  if (!jobs.ok()) return jobs.status();
  std::vector<JobManifest> out;
  for (const auto& j : *jobs) {
    auto files = store_->Files(j.job_id);
    if (!files.ok()) return files.status();
    out.push_back({j.job_id, j.name, std::move(*files)});
  }
  return out;
}

absl::Status ArtifactService::CheckDownload(const store::LiveAttempt& attempt,
                                            const std::vector<std::string>& chunks) {
  if (absl::Status s = CheckNames(chunks, "DownloadChunks"); !s.ok()) return s;
  auto jobs = store_->JobsNamed(attempt.pipeline_id, attempt.artifact_needs);
  if (!jobs.ok()) return jobs.status();
  std::vector<int64_t> ids;
  for (const auto& j : *jobs) ids.push_back(j.job_id);
  auto allowed = store_->ChunksOf(ids, chunks);
  if (!allowed.ok()) return allowed.status();
  std::set<std::string> ok(allowed->begin(), allowed->end());
  std::vector<std::string> rest;
  for (const auto& h : chunks) {
    if (!ok.contains(h)) rest.push_back(h);
  }
  if (caches_ != nullptr && !rest.empty()) {
    auto cached = caches_->ChunksReadBy(attempt.job_id, rest);
    if (!cached.ok()) return cached.status();
    ok.insert(cached->begin(), cached->end());
  }
  std::vector<std::string> left;
  for (const auto& h : chunks) {
    if (!ok.contains(h)) left.push_back(h);
  }
  if (train_ != nullptr && !left.empty()) {
    auto restored = train_->ChunksReadBy(attempt.job_id, left);
    if (!restored.ok()) return restored.status();
    ok.insert(restored->begin(), restored->end());
  }
  for (const auto& h : chunks) {
    if (!ok.contains(h)) {
      return absl::PermissionDeniedError(
          absl::StrCat("chunk ", h, " is not in the artifacts of a job that job ", attempt.job_id,
                       " needs with artifacts: true",
                       caches_ != nullptr ? ", nor in a cache entry it restored" : "",
                       train_ != nullptr ? ", nor in a checkpoint it restored" : ""));
    }
  }
  return absl::OkStatus();
}

}  // namespace assay::artifacts
