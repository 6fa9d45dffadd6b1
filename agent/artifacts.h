#pragma once
// A job's artifacts on the agent (issue 9, docs/artifacts.md): files cut into chunks of 4 MiB
// named by their SHA-256, uploaded after the steps over AgentService's artifact RPCs
// (resumable: only the chunks the server lacks are sent, and a broken stream starts over from
// "which chunks are missing"), and downloaded before the first step for the needs marked
// `artifacts: true`, each chunk and each file checked against its hash before it is renamed
// into place. The file-system side (which files, how they are read and written without ever
// leaving the workspace) is in artifact_paths.h.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/artifact_paths.h"
#include "agent/step_runner.h"
#include "assay/v1/agent.grpc.pb.h"

namespace assay {

inline constexpr size_t kArtifactChunkBytes = 4 << 20;
// A CommitArtifacts message larger than this (the server takes 8 MiB) sends its file list as
// chunks instead (CommitArtifactsRequest.manifest_chunks), of at most kMaxManifestBytes: about
// 300,000 files with 100-byte paths, or 100,000 with 500-byte paths.
inline constexpr size_t kInlineManifestBytes = 4 << 20;
inline constexpr size_t kMaxManifestBytes = 64 << 20;

// One chunk of a file: its place and its lowercase hex SHA-256.
struct ChunkRef {
  uint64_t offset = 0;
  uint32_t size = 0;
  std::string sha256;
};

// The chunks and whole-file hash of `fd`, read from offset 0 to its end in pieces of
// kArtifactChunkBytes (the last one shorter; an empty file has none). *file_sha256 gets the
// lowercase hex SHA-256 of the whole file, *size the bytes read.
absl::StatusOr<std::vector<ChunkRef>> ChunkFile(int fd, std::string* file_sha256, uint64_t* size);

// OK when every file of every job in `manifest` may be written: ValidateArtifactPath, no
// path twice in one job, lowercase hex SHA-256 for the file and each chunk, a chunk count that
// can hold the size (each chunk 1 B to 4 MiB), at most kMaxArtifactFiles per job. Otherwise
// kInvalidArgument "bad artifact manifest: job 'NAME': path 'P': REASON" (NAME and P
// C-escaped, P cut at 200 bytes).
absl::Status ValidateArtifactManifest(const v1::ArtifactManifest& manifest);

// Retries of a transfer: a call that fails with a status worth retrying (UNAVAILABLE,
// DEADLINE_EXCEEDED, ABORTED, INTERNAL, UNKNOWN, RESOURCE_EXHAUSTED; a commit that finds a
// chunk missing) is tried again after a backoff, up to max_attempts times in a row without
// progress, and never after total_limit has passed since the transfer began.
struct ArtifactTransferOptions {
  int max_attempts = 6;
  absl::Duration backoff_min = absl::Milliseconds(250);
  absl::Duration backoff_max = absl::Seconds(8);
  absl::Duration total_limit = absl::Minutes(30);
  absl::Duration call_timeout = absl::Seconds(60);  // unary calls; streams get more per MiB
  size_t chunks_per_download = 64;                  // chunks asked in one DownloadChunks call
  size_t upload_streams = 4;  // UploadChunks streams at once, each over a share of the chunks
};

struct UploadSummary {
  size_t files = 0;
  uint64_t bytes = 0;      // of all files
  uint64_t new_bytes = 0;  // of the chunks the server lacked at the first ask
  int attempts = 1;        // upload rounds (1: no stream was broken)
};

using ArtifactLog = std::function<void(std::string_view)>;

// Talks to the server's artifact RPCs for one job attempt. `stub` must outlive this; every
// call carries `authorization: Bearer <bearer>` (as Connect does) and the attempt token.
// Not thread-safe: one transfer at a time.
class ArtifactClient {
 public:
  ArtifactClient(v1::AgentService::StubInterface* stub, std::string bearer, int64_t job_id,
                 std::string attempt_token, ArtifactTransferOptions options = {});

  // Uploads `files` (from CollectArtifactFiles) of `workspace` and commits the manifest.
  // Errors: the last failed call's status (its code as gRPC gave it, message prefixed with
  // the call), kCancelled when `cancel` was raised, kFailedPrecondition when a file changed
  // while it was read twice, kDeadlineExceeded past total_limit. `log` receives a line for
  // each resumed attempt.
  absl::StatusOr<UploadSummary> Upload(const std::string& workspace,
                                       const std::vector<CollectedFile>& files,
                                       std::optional<uid_t> owner, CancelFlag& cancel,
                                       const ArtifactLog& log);

  // As Upload, but the manifest is sent by `commit` (issue 9: CacheCommit for a cache entry)
  // instead of CommitArtifacts; `call` names it in errors. A FAILED_PRECONDITION from it (a
  // chunk went missing) is retried from "which chunks are missing", as Upload's is.
  using CommitFn =
      std::function<grpc::Status(grpc::ClientContext*, const v1::CommitArtifactsRequest&)>;
  absl::StatusOr<UploadSummary> UploadWith(const std::string& workspace,
                                           const std::vector<CollectedFile>& files,
                                           std::optional<uid_t> owner, CancelFlag& cancel,
                                           const ArtifactLog& log, std::string_view call,
                                           const CommitFn& commit);

  // Downloads the artifacts of the jobs this job needs into `workspace` (GetArtifactManifest,
  // then DownloadChunks), writing with `writer`. Every path is checked (ValidateArtifactPath)
  // before anything is written; every chunk and file against its hash. Logs one line per job:
  //   assay: downloaded N files, X MiB from job 'NAME'
  // Errors name the path: "bad artifact manifest: job 'b': path 'P': <reason>"
  // (kInvalidArgument), "artifact P of job 'b': chunk N does not match its hash"
  // (kDataLoss), and the writer's errors.
  //
  // `local`, when set, is asked for each non-empty file (its SHA-256 and size): a path on this
  // agent that should hold the same bytes (a Git LFS object: its oid is the SHA-256 of its
  // content). Such a file is copied from there, checked against the manifest's size and SHA-256
  // as it is copied, and its chunks are not asked for; one that does not match is downloaded.
  // Then one more line:
  //   assay: N artifact files, X MiB, copied from this agent's Git LFS objects (not downloaded)
  using LocalObjectFn =
      std::function<std::optional<std::string>(const std::string& sha256, uint64_t size)>;
  absl::Status Download(ArtifactWriter& writer, CancelFlag& cancel, const ArtifactLog& log,
                        const LocalObjectFn& local = nullptr);

 private:
  class Retry;
  void Prepare(grpc::ClientContext* ctx, absl::Duration timeout) const;

  v1::AgentService::StubInterface* stub_;
  const std::string bearer_;
  const int64_t job_id_;
  const std::string token_;
  const ArtifactTransferOptions options_;
};

// The two calls Agent::RunJob makes. `user`: the job user (files written are given to it;
// files read must be its own).
//
// Before the first step: downloads the artifacts of a.artifact_needs() (nothing when it is
// empty). An error's message is the job's message.
absl::Status DownloadJobArtifacts(ArtifactClient& client, const v1::Assignment& a,
                                  const std::string& workspace,
                                  const std::optional<JobIdentity>& user, CancelFlag& cancel,
                                  const ArtifactLog& log,
                                  const ArtifactClient::LocalObjectFn& local = nullptr);
// After the steps: collects and uploads per a.artifacts() when its `when` allows for the
// outcome in *res (on_success: succeeded; always: also failed and timed out; never after a
// cancel or an agent error), logging
//   assay: uploaded N files, X MiB (Y MiB new)
// A job that succeeded becomes kFailed when `if_no_files: error` and nothing matched
// ("artifacts.paths matched no file (GLOBS), and if_no_files is error"), and kError when the
// upload failed ("artifacts upload failed: REASON"; kCanceled "job canceled while uploading
// its artifacts" when a cancel stopped it, "job canceled before its artifacts were uploaded"
// when it came first); a job that had failed keeps its outcome
// and message, and the log says what happened.
void UploadJobArtifacts(ArtifactClient& client, const v1::Assignment& a,
                        const std::string& workspace, const std::optional<JobIdentity>& user,
                        CancelFlag& cancel, const ArtifactLog& log, JobRunResult* res);

// "3.0": bytes as MiB with one decimal, as in the log lines.
std::string FormatMiB(uint64_t bytes);

}  // namespace assay
