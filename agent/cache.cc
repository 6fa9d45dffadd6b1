#include "agent/cache.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/log.h"
#include "common/base/status.h"
#include "common/crypto/crypto.h"
#include "common/pipeline/cache_key.h"

namespace assay {
namespace {

absl::Status FromGrpc(const grpc::Status& s, std::string_view call) {
  const auto code = static_cast<absl::StatusCode>(s.error_code());
  return absl::Status(code, absl::StrCat(std::string(call), ": ",
                                         s.error_message().empty() ? absl::StatusCodeToString(code)
                                                                   : s.error_message()));
}

void Prepare(grpc::ClientContext* ctx, const std::string& bearer, absl::Duration timeout) {
  ctx->AddMetadata("authorization", "Bearer " + bearer);
  ctx->set_wait_for_ready(true);
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

// Reads all of `fd` (a regular file of at most `limit` bytes).
absl::StatusOr<std::string> ReadAll(int fd, size_t limit) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return absl::InternalError(std::strerror(errno));
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) > limit) {
    return absl::OutOfRangeError("not a chunk file");
  }
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::InternalError(absl::StrCat("read: ", std::strerror(errno)));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

}  // namespace

// ---- LocalChunkCache ----

absl::StatusOr<std::unique_ptr<LocalChunkCache>> LocalChunkCache::Open(const std::string& dir,
                                                                       uint64_t budget_bytes) {
  std::error_code ec;
  std::filesystem::create_directories(dir + "/tmp", ec);
  if (ec || ::chmod(dir.c_str(), 0700) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create the chunk cache ", dir, ": ",
                     ec ? ec.message() : std::string(std::strerror(errno))));
  }
  // Leftovers of a write that a crash interrupted.
  for (const auto& e : std::filesystem::directory_iterator(dir + "/tmp", ec)) {
    std::filesystem::remove(e.path(), ec);
  }
  return std::unique_ptr<LocalChunkCache>(new LocalChunkCache(dir, budget_bytes));
}

std::string LocalChunkCache::PathOf(const std::string& sha256) const {
  return absl::StrCat(dir_, "/", sha256.substr(0, 2), "/", sha256);
}

void LocalChunkCache::Hold(int d) {
  absl::MutexLock l(&mu_);
  pins_ += d;
}

bool LocalChunkCache::Has(const std::string& sha256) {
  if (!IsHexSha256(sha256)) return false;
  // Why utimensat: the mtime is the last use that Evict orders by.
  return ::utimensat(AT_FDCWD, PathOf(sha256).c_str(), nullptr, 0) == 0;
}

std::optional<std::string> LocalChunkCache::Get(const std::string& sha256) {
  if (!IsHexSha256(sha256)) return std::nullopt;
  const std::string path = PathOf(sha256);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return std::nullopt;
  absl::StatusOr<std::string> data = ReadAll(fd.get(), kArtifactChunkBytes);
  if (!data.ok() || HexSha256(*data) != sha256) {
    ::unlink(path.c_str());
    return std::nullopt;
  }
  ::futimens(fd.get(), nullptr);
  return *std::move(data);
}

std::optional<std::string> LocalChunkCache::GetUnchecked(const std::string& sha256) {
  if (!IsHexSha256(sha256)) return std::nullopt;
  UniqueFd fd(::open(PathOf(sha256).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return std::nullopt;
  absl::StatusOr<std::string> data = ReadAll(fd.get(), kArtifactChunkBytes);
  if (!data.ok()) return std::nullopt;
  ::futimens(fd.get(), nullptr);
  return *std::move(data);
}

void LocalChunkCache::Drop(const std::string& sha256) {
  if (IsHexSha256(sha256)) ::unlink(PathOf(sha256).c_str());
}

absl::Status LocalChunkCache::Put(const std::string& sha256, std::string_view data) {
  if (!IsHexSha256(sha256)) return absl::InvalidArgumentError("not a chunk name");
  const std::string sub = absl::StrCat(dir_, "/", sha256.substr(0, 2));
  if (::mkdir(sub.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::InternalError(absl::StrCat("mkdir ", sub, ": ", std::strerror(errno)));
  }
  const std::string tmp =
      absl::StrCat(dir_, "/tmp/", sha256, ".", ::getpid(), ".", std::random_device{}());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd.valid()) {
    return absl::InternalError(absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno)));
  }
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      ::unlink(tmp.c_str());
      return absl::InternalError(absl::StrCat("cannot write ", tmp, ": ", why));
    }
    done += static_cast<size_t>(n);
  }
  // Why no fsync: the local copy is only a cache; a torn chunk fails its hash in Get and is
  // downloaded again.
  if (::rename(tmp.c_str(), PathOf(sha256).c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("cannot rename ", tmp, ": ", why));
  }
  return absl::OkStatus();
}

namespace {
struct Held {
  std::filesystem::path path;
  uint64_t size;
  int64_t mtime_ns;
};

std::vector<Held> ListChunks(const std::string& dir) {
  std::vector<Held> out;
  std::error_code ec;
  for (const auto& sub : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = sub.path().filename().string();
    if (name.size() != 2 || !sub.is_directory(ec)) continue;
    for (const auto& f : std::filesystem::directory_iterator(sub.path(), ec)) {
      struct stat st;
      if (::lstat(f.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      out.push_back({f.path(), static_cast<uint64_t>(st.st_size),
                     static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec});
    }
  }
  return out;
}
}  // namespace

uint64_t LocalChunkCache::TotalBytes() {
  uint64_t total = 0;
  for (const Held& h : ListChunks(dir_)) total += h.size;
  return total;
}

int LocalChunkCache::Evict() {
  absl::MutexLock l(&mu_);
  if (pins_ > 0) return 0;
  std::vector<Held> chunks = ListChunks(dir_);
  uint64_t total = 0;
  for (const Held& h : chunks) total += h.size;
  if (total <= budget_) return 0;
  std::sort(chunks.begin(), chunks.end(),
            [](const Held& a, const Held& b) { return a.mtime_ns < b.mtime_ns; });
  int removed = 0;
  for (const Held& h : chunks) {
    if (total <= budget_) break;
    std::error_code ec;
    if (std::filesystem::remove(h.path, ec)) {
      total -= h.size;
      ++removed;
    }
  }
  return removed;
}

// ---- The key ----

absl::StatusOr<std::string> HashFiles(const std::string& workspace,
                                      const std::vector<std::string>& globs,
                                      std::optional<uid_t> owner) {
  CollectOptions options;
  options.owner = owner;
  ASSAY_ASSIGN_OR_RETURN(CollectResult collected, CollectArtifactFiles(workspace, globs, options));
  if (collected.files.empty()) return std::string();
  UniqueFd root(::open(workspace.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root.valid()) {
    return absl::InternalError(absl::StrCat("cannot open ", workspace, ": ", strerror(errno)));
  }
  std::string listing;
  for (const CollectedFile& f : collected.files) {
    ASSAY_ASSIGN_OR_RETURN(UniqueFd fd, OpenArtifactSource(root.get(), f.source, owner));
    std::string sha;
    uint64_t size = 0;
    absl::StatusOr<std::vector<ChunkRef>> chunks = ChunkFile(fd.get(), &sha, &size);
    if (!chunks.ok()) return chunks.status();
    absl::StrAppend(&listing, f.path, absl::string_view("\0", 1), sha, "\n");
  }
  return HexSha256(listing);
}

absl::StatusOr<std::string> EvaluateCacheKey(const std::string& workspace, const std::string& text,
                                             std::optional<uid_t> owner, std::string_view field) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(field), " '", absl::CEscape(text), "': ", std::string(why)));
  };
  absl::StatusOr<std::vector<CacheKeyPart>> parts = ParseCacheKey(text);
  if (!parts.ok()) return bad(parts.status().message());
  std::string out;
  for (const CacheKeyPart& p : *parts) {
    if (!p.call) {
      out += p.text;
      continue;
    }
    absl::StatusOr<std::string> h = HashFiles(workspace, p.globs, owner);
    if (!h.ok()) return bad(absl::StrCat("hashFiles: ", h.status().message()));
    out += *h;
  }
  if (absl::Status s = CheckCacheKeyText(out); !s.ok()) {
    return bad(absl::StrCat(s.message(), " (evaluated: '", absl::CEscape(out.substr(0, 100)),
                            out.size() > 100 ? "...'" : "'", ")"));
  }
  return out;
}

// ---- Restore ----

namespace {

// Downloads `want` (distinct chunks) into `local`, a window per call, each chunk checked
// against its name. Returns the bytes downloaded.
absl::StatusOr<uint64_t> FetchChunks(v1::AgentService::StubInterface* stub,
                                     const std::string& bearer, const v1::Assignment& a,
                                     const std::vector<std::string>& want, LocalChunkCache& local,
                                     CancelFlag& cancel, const CacheTransferOptions& options) {
  uint64_t bytes = 0;
  size_t pos = 0;
  int failures = 0;
  while (pos < want.size()) {
    if (cancel.canceled()) return absl::CancelledError("canceled");
    const size_t end = std::min(want.size(), pos + options.chunks_per_download);
    v1::DownloadChunksRequest req;
    req.set_job_id(a.job_id());
    req.set_attempt_token(a.attempt_token());
    for (size_t k = pos; k < end; ++k) req.add_chunks(want[k]);
    grpc::ClientContext ctx;
    Prepare(&ctx, bearer, options.call_timeout + absl::Seconds((end - pos) * 4));
    std::unique_ptr<grpc::ClientReaderInterface<v1::ChunkData>> reader =
        stub->DownloadChunks(&ctx, req);
    v1::ChunkData msg;
    const size_t before = pos;
    while (pos < end && reader->Read(&msg)) {
      if (msg.sha256() != want[pos] || HexSha256(msg.data()) != want[pos]) {
        ctx.TryCancel();
        reader->Finish();
        return absl::DataLossError(
            absl::StrCat("DownloadChunks: chunk ", want[pos], " does not match its hash"));
      }
      ASSAY_RETURN_IF_ERROR(local.Put(want[pos], msg.data()));
      bytes += msg.data().size();
      ++pos;
    }
    if (pos == end && reader->Read(&msg)) {
      ctx.TryCancel();
      reader->Finish();
      return absl::DataLossError("DownloadChunks: the server sent more chunks than asked");
    }
    grpc::Status s = reader->Finish();
    if (pos == end && s.ok()) continue;
    absl::Status f = s.ok() ? absl::UnavailableError("DownloadChunks: the stream ended early")
                            : FromGrpc(s, "DownloadChunks");
    const auto code = f.code();
    const bool retryable = code == absl::StatusCode::kUnavailable ||
                           code == absl::StatusCode::kDeadlineExceeded ||
                           code == absl::StatusCode::kAborted;
    if (pos > before) failures = 0;
    if (!retryable || ++failures >= options.attempts) return f;
    ::usleep(200'000 * failures);
  }
  return bytes;
}

}  // namespace

absl::StatusOr<uint64_t> WriteCacheFiles(
    const google::protobuf::RepeatedPtrField<v1::ArtifactFile>& files, LocalChunkCache& local,
    ArtifactWriter& writer, CancelFlag& cancel) {
  uint64_t bytes = 0;
  for (const v1::ArtifactFile& f : files) {
    if (cancel.canceled()) return absl::CancelledError("canceled");
    ASSAY_RETURN_IF_ERROR(writer.Begin(f.path()));
    Sha256Stream whole;
    uint64_t size = 0;
    for (const std::string& c : f.chunks()) {
      // Why unchecked: the whole file's SHA-256 below covers every chunk (one hash, not two).
      std::optional<std::string> data = local.GetUnchecked(c);
      if (!data.has_value()) {
        writer.Abort();
        return absl::NotFoundError(
            absl::StrCat("a chunk of ", f.path(), " went missing from the local copy"));
      }
      size += data->size();
      whole.Update(*data);
      if (absl::Status s = writer.Append(*data); !s.ok()) {
        writer.Abort();
        return s;
      }
    }
    if (size != f.size() || whole.Hex() != f.sha256()) {
      writer.Abort();
      for (const std::string& c : f.chunks()) local.Drop(c);
      return absl::DataLossError(
          absl::StrCat(f.path(), ": the file does not match its size and sha256"));
    }
    ASSAY_RETURN_IF_ERROR(writer.Commit(f.mode()));
    bytes += size;
  }
  return bytes;
}

namespace {

absl::StatusOr<JobCacheState> Restore(v1::AgentService::StubInterface* stub,
                                      const std::string& bearer, const v1::Assignment& a,
                                      const std::string& workspace,
                                      const std::optional<JobIdentity>& user,
                                      LocalChunkCache* local, CancelFlag& cancel,
                                      const ArtifactLog& log, const CacheTransferOptions& options) {
  JobCacheState state;
  if (!a.has_cache()) return state;
  std::optional<uid_t> owner;
  if (user.has_value()) owner = user->uid;
  ASSAY_ASSIGN_OR_RETURN(state.key, EvaluateCacheKey(workspace, a.cache().key(), owner));
  v1::CacheRestoreRequest req;
  req.set_job_id(a.job_id());
  req.set_attempt_token(a.attempt_token());
  req.set_key(state.key);
  for (size_t i = 0; i < static_cast<size_t>(a.cache().restore_keys_size()); ++i) {
    ASSAY_ASSIGN_OR_RETURN(std::string prefix,
                           EvaluateCacheKey(workspace, a.cache().restore_keys(i), owner,
                                            absl::StrCat("cache.restore_keys[", i, "]")));
    req.add_restore_keys(std::move(prefix));
  }
  state.active = true;
  auto warn = [&](absl::string_view why) {
    log(absl::StrCat("assay: warning: cache not restored: ", std::string(why), "\n"));
    return state;
  };
  v1::CacheRestoreResponse resp;
  {
    grpc::ClientContext ctx;
    Prepare(&ctx, bearer, options.call_timeout);
    grpc::Status s = stub->CacheRestore(&ctx, req, &resp);
    if (!s.ok()) return warn(FromGrpc(s, "CacheRestore").message());
  }
  state.exists = resp.saved_in_own_scope();
  if (!resp.hit()) {
    log(absl::StrCat("assay: cache: no entry for key '", absl::CEscape(state.key), "'",
                     req.restore_keys_size() > 0 ? " nor its restore_keys" : "", "\n"));
    return state;
  }
  absl::StatusOr<RestoredFiles> restored =
      RestoreFiles(stub, bearer, a, workspace, user, local, resp.files(), "cache", cancel, options);
  if (!restored.ok()) return warn(restored.status().message());
  log(absl::StrCat("assay: cache: restored ", resp.files_size(), " file",
                   resp.files_size() == 1 ? "" : "s", ", ", FormatMiB(restored->bytes),
                   " MiB from key '", absl::CEscape(resp.key()), "' (scope ",
                   absl::CEscape(resp.scope()), resp.exact() ? "" : ", a restore_keys prefix",
                   "), ", FormatMiB(restored->downloaded), " MiB downloaded\n"));
  return state;
}

}  // namespace

absl::StatusOr<RestoredFiles> RestoreFiles(
    v1::AgentService::StubInterface* stub, const std::string& bearer, const v1::Assignment& a,
    const std::string& workspace, const std::optional<JobIdentity>& user, LocalChunkCache* local,
    const google::protobuf::RepeatedPtrField<v1::ArtifactFile>& files, std::string_view what,
    CancelFlag& cancel, const CacheTransferOptions& options) {
  // 1. Every entry is checked before anything is written.
  v1::ArtifactManifest manifest;
  v1::JobArtifacts* entry = manifest.add_jobs();
  entry->set_job_name(std::string(what));
  *entry->mutable_files() = files;
  ASSAY_RETURN_IF_ERROR(ValidateArtifactManifest(manifest));
  // 2. The chunks this agent lacks, into its local copy.
  std::unique_ptr<LocalChunkCache> scratch;
  if (local == nullptr) {
    ASSAY_ASSIGN_OR_RETURN(scratch, LocalChunkCache::Open(workspace + ".cache-chunks", 0));
    local = scratch.get();
  }
  LocalChunkCache::Pin pin(local);
  std::vector<std::string> want;
  std::set<std::string> seen;
  for (const v1::ArtifactFile& f : files) {
    for (const std::string& c : f.chunks()) {
      if (seen.insert(c).second && !local->Has(c)) want.push_back(c);
    }
  }
  RestoredFiles out;
  ASSAY_ASSIGN_OR_RETURN(out.downloaded,
                         FetchChunks(stub, bearer, a, want, *local, cancel, options));
  // 3. The files, each checked against its hash before it is renamed into place.
  std::optional<ArtifactWriter::Owner> writer_owner;
  if (user.has_value()) writer_owner = ArtifactWriter::Owner{user->uid, user->gid};
  ASSAY_ASSIGN_OR_RETURN(ArtifactWriter writer, ArtifactWriter::Open(workspace, writer_owner));
  ASSAY_ASSIGN_OR_RETURN(out.bytes, WriteCacheFiles(files, *local, writer, cancel));
  return out;
}

absl::StatusOr<JobCacheState> RestoreJobCache(
    v1::AgentService::StubInterface* stub, const std::string& bearer, const v1::Assignment& a,
    const std::string& workspace, const std::optional<JobIdentity>& user, LocalChunkCache* local,
    CancelFlag& cancel, const ArtifactLog& log, const CacheTransferOptions& options) {
  absl::StatusOr<JobCacheState> state =
      Restore(stub, bearer, a, workspace, user, local, cancel, log, options);
  // Why after: the chunks of this restore were pinned until it ended.
  if (local != nullptr) local->Evict();
  std::error_code ec;
  std::filesystem::remove_all(workspace + ".cache-chunks", ec);  // the scratch copy, if any
  return state;
}

// ---- Save ----

namespace {

// Puts the chunks of `files` into `local` (those it lacks), reading each file once more.
void KeepLocally(const std::string& workspace, const std::vector<CollectedFile>& files,
                 std::optional<uid_t> owner, LocalChunkCache& local) {
  UniqueFd root(::open(workspace.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root.valid()) return;
  std::string buf;
  for (const CollectedFile& f : files) {
    absl::StatusOr<UniqueFd> fd = OpenArtifactSource(root.get(), f.source, owner);
    if (!fd.ok()) continue;
    uint64_t offset = 0;
    while (true) {
      buf.resize(kArtifactChunkBytes);
      size_t got = 0;
      while (got < buf.size()) {
        ssize_t n = ::pread(fd->get(), buf.data() + got, buf.size() - got,
                            static_cast<off_t>(offset + got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += static_cast<size_t>(n);
      }
      if (got == 0) break;
      buf.resize(got);
      const std::string h = HexSha256(buf);
      if (!local.Has(h) && !local.Put(h, buf).ok()) return;
      offset += got;
      if (got < kArtifactChunkBytes) break;
    }
  }
}

}  // namespace

void SaveJobCache(ArtifactClient& client, v1::AgentService::StubInterface* stub,
                  const v1::Assignment& a, const std::string& workspace,
                  const std::optional<JobIdentity>& user, LocalChunkCache* local,
                  const JobCacheState& state, CancelFlag& cancel, const ArtifactLog& log,
                  const JobRunResult& res) {
  if (!a.has_cache() || !state.active) return;
  // Why only after success: a failed or canceled job's files may be half written; a cache
  // made of them would break every later job that restores it.
  if (res.outcome != JobRunOutcome::kSucceeded || cancel.canceled()) return;
  const std::string shown_key = absl::CEscape(state.key);
  if (state.exists) {
    log(absl::StrCat("assay: cache: key '", shown_key,
                     "' exists (keys are immutable); not saved\n"));
    return;
  }
  auto warn = [&](absl::string_view why) {
    log(absl::StrCat("assay: warning: cache not saved: ", std::string(why), "\n"));
  };
  std::optional<uid_t> owner;
  if (user.has_value()) owner = user->uid;
  const std::vector<std::string> globs(a.cache().paths().begin(), a.cache().paths().end());
  CollectOptions options;
  options.owner = owner;
  absl::StatusOr<CollectResult> collected = CollectArtifactFiles(workspace, globs, options);
  if (!collected.ok()) return warn(collected.status().message());
  for (const std::string& note : collected->notes) {
    log(absl::StrCat("assay: cache: ", note, "\n"));
  }
  if (collected->files.empty()) {
    return warn(absl::StrCat("cache.paths matched no file (", absl::StrJoin(globs, ", "), ")"));
  }
  v1::CacheCommitResponse done;
  absl::StatusOr<UploadSummary> up =
      client.UploadWith(workspace, collected->files, owner, cancel, log, "CacheCommit",
                        [&](grpc::ClientContext* ctx, const v1::CommitArtifactsRequest& manifest) {
                          v1::CacheCommitRequest req;
                          req.set_job_id(manifest.job_id());
                          req.set_attempt_token(manifest.attempt_token());
                          req.set_key(state.key);
                          *req.mutable_files() = manifest.files();
                          return stub->CacheCommit(ctx, req, &done);
                        });
  if (!up.ok()) return warn(up.status().message());
  if (!done.saved()) {
    log(absl::StrCat("assay: cache: key '", shown_key, "' exists in scope ",
                     absl::CEscape(done.scope()), " (keys are immutable); not saved\n"));
    return;
  }
  if (local != nullptr && local->budget_bytes() > 0) {
    KeepLocally(workspace, collected->files, owner, *local);
    local->Evict();
  }
  log(absl::StrCat("assay: cache: saved ", up->files, " file", up->files == 1 ? "" : "s", ", ",
                   FormatMiB(up->bytes), " MiB (", FormatMiB(up->new_bytes), " MiB new) as key '",
                   shown_key, "' (scope ", absl::CEscape(done.scope()), ")\n"));
}

}  // namespace assay
