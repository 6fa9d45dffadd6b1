#include "agent/artifacts.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <thread>
#include <tuple>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/base/status.h"
#include "common/crypto/crypto.h"

namespace assay {
namespace {

// Reads up to `n` bytes at `offset` into `out`; how many it read (fewer only at the end of the
// file).
absl::StatusOr<size_t> ReadInto(int fd, uint64_t offset, char* out, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, out + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("read failed: ", std::strerror(errno)));
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

// Up to `n` bytes at `offset` (fewer only at the end of the file).
absl::StatusOr<std::string> ReadAt(int fd, uint64_t offset, size_t n) {
  std::string buf(n, '\0');
  ASSAY_ASSIGN_OR_RETURN(size_t got, ReadInto(fd, offset, buf.data(), n));
  buf.resize(got);
  return buf;
}

// "CALL: MESSAGE", or "CALL: CODE" when the server gave no message (e.g. UNIMPLEMENTED from
// a server without artifacts).
absl::Status FromGrpc(const grpc::Status& s, std::string_view call) {
  const auto code = static_cast<absl::StatusCode>(s.error_code());
  return absl::Status(code, absl::StrCat(std::string(call), ": ",
                                         s.error_message().empty() ? absl::StatusCodeToString(code)
                                                                   : s.error_message()));
}

bool Retryable(absl::StatusCode c) {
  switch (c) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kResourceExhausted: return true;
    default: return false;
  }
}

}  // namespace

std::string FormatMiB(uint64_t bytes) {
  return absl::StrFormat("%.1f", static_cast<double>(bytes) / (1 << 20));
}

absl::StatusOr<std::vector<ChunkRef>> ChunkFile(int fd, std::string* file_sha256, uint64_t* size) {
  // One buffer for the whole file, sized by the file (a 1-byte file does not cost a 4 MiB
  // allocation: 100,000 small files are hashed at the speed of reading them). It grows to a
  // whole chunk only when the file is larger than fstat said, i.e. it grew meanwhile.
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return absl::InternalError(absl::StrCat("stat failed: ", std::strerror(errno)));
  }
  const uint64_t expected = st.st_size > 0 ? static_cast<uint64_t>(st.st_size) : 0;
  std::string buf(static_cast<size_t>(std::min<uint64_t>(kArtifactChunkBytes, expected + 1)), '\0');
  std::vector<ChunkRef> chunks;
  Sha256Stream whole;
  uint64_t offset = 0;
  while (true) {
    ASSAY_ASSIGN_OR_RETURN(size_t got, ReadInto(fd, offset, buf.data(), buf.size()));
    if (got == buf.size() && got < kArtifactChunkBytes) {  // the file grew: a whole chunk then
      buf.resize(kArtifactChunkBytes);
      ASSAY_ASSIGN_OR_RETURN(
          size_t more, ReadInto(fd, offset + got, buf.data() + got, kArtifactChunkBytes - got));
      got += more;
    }
    if (got == 0) break;
    const std::string_view data(buf.data(), got);
    whole.Update(data);
    chunks.push_back({offset, static_cast<uint32_t>(got), HexSha256(data)});
    offset += got;
    if (got < kArtifactChunkBytes) break;
  }
  *file_sha256 = whole.Hex();
  *size = offset;
  return chunks;
}

// The retry policy of one transfer (see ArtifactTransferOptions).
class ArtifactClient::Retry {
 public:
  Retry(const ArtifactTransferOptions& o, CancelFlag& cancel, const ArtifactLog& log)
      : o_(o), cancel_(cancel), log_(log), deadline_(absl::Now() + o.total_limit) {}

  absl::Time deadline() const { return deadline_; }
  int rounds() const { return rounds_; }

  // After `failed`: true (after a backoff) when the transfer should go on from where it is.
  bool Again(const absl::Status& failed, bool progressed) {
    if (!Retryable(failed.code()) || cancel_.canceled()) return false;
    if (progressed) failures_ = 0;
    if (++failures_ >= o_.max_attempts) return false;
    absl::Duration wait = o_.backoff_min;
    for (int i = 1; i < failures_ && wait < o_.backoff_max; ++i) wait *= 2;
    wait = std::min(wait, o_.backoff_max) * std::uniform_real_distribution<double>(0.5, 1)(rng_);
    if (absl::Now() + wait >= deadline_) return false;
    ++rounds_;
    log_(absl::StrCat("assay: artifacts: ", failed.message(), "; resuming (attempt ", rounds_,
                      ")\n"));
    struct pollfd p = {cancel_.fd(), POLLIN, 0};
    ::poll(&p, cancel_.fd() < 0 ? 0 : 1, static_cast<int>(absl::ToInt64Milliseconds(wait)));
    return !cancel_.canceled();
  }

 private:
  const ArtifactTransferOptions& o_;
  CancelFlag& cancel_;
  const ArtifactLog& log_;
  const absl::Time deadline_;
  int failures_ = 0;
  int rounds_ = 1;
  std::mt19937 rng_{std::random_device{}()};
};

ArtifactClient::ArtifactClient(v1::AgentService::StubInterface* stub, std::string bearer,
                               int64_t job_id, std::string attempt_token,
                               ArtifactTransferOptions options)
    : stub_(stub),
      bearer_(std::move(bearer)),
      job_id_(job_id),
      token_(std::move(attempt_token)),
      options_(options) {}

void ArtifactClient::Prepare(grpc::ClientContext* ctx, absl::Duration timeout) const {
  ctx->AddMetadata("authorization", "Bearer " + bearer_);
  // Why wait_for_ready: while the server restarts, a call waits (up to its deadline) for the
  // channel instead of failing at once and spending a retry.
  ctx->set_wait_for_ready(true);
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

absl::StatusOr<UploadSummary> ArtifactClient::Upload(const std::string& workspace,
                                                     const std::vector<CollectedFile>& files,
                                                     std::optional<uid_t> owner, CancelFlag& cancel,
                                                     const ArtifactLog& log) {
  return UploadWith(workspace, files, owner, cancel, log, "CommitArtifacts",
                    [this](grpc::ClientContext* ctx, const v1::CommitArtifactsRequest& req) {
                      v1::CommitArtifactsResponse resp;
                      return stub_->CommitArtifacts(ctx, req, &resp);
                    });
}

absl::StatusOr<UploadSummary> ArtifactClient::UploadWith(const std::string& workspace,
                                                         const std::vector<CollectedFile>& files,
                                                         std::optional<uid_t> owner,
                                                         CancelFlag& cancel, const ArtifactLog& log,
                                                         std::string_view call,
                                                         const CommitFn& commit_fn) {
  UniqueFd root(::open(workspace.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root.valid()) {
    return absl::InternalError(absl::StrCat("cannot open ", workspace, ": ", strerror(errno)));
  }
  // 1. The manifest: every file read once to hash its chunks.
  UploadSummary summary;
  v1::CommitArtifactsRequest commit;
  commit.set_job_id(job_id_);
  commit.set_attempt_token(token_);
  struct Where {
    size_t file;
    ChunkRef ref;
  };
  std::map<std::string, Where> where;  // each distinct chunk once
  std::vector<std::string> order;      // distinct chunks in file order
  // Each file's size and times when it was hashed: a file that differs when it is sent
  // changed in between (the server checks every chunk's bytes against its name as well).
  auto Stamp = [](const struct stat& st) {
    return std::make_tuple(st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                           st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
  };
  std::vector<decltype(Stamp(std::declval<struct stat>()))> hashed;
  for (size_t i = 0; i < files.size(); ++i) {
    if (cancel.canceled()) return absl::CancelledError("canceled");
    ASSAY_ASSIGN_OR_RETURN(UniqueFd fd, OpenArtifactSource(root.get(), files[i].source, owner));
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) {
      return absl::InternalError(absl::StrCat(files[i].path, ": ", std::strerror(errno)));
    }
    hashed.push_back(Stamp(st));
    std::string sha;
    uint64_t size = 0;
    absl::StatusOr<std::vector<ChunkRef>> chunks = ChunkFile(fd.get(), &sha, &size);
    if (!chunks.ok()) {
      return absl::InternalError(absl::StrCat(files[i].path, ": ", chunks.status().message()));
    }
    v1::ArtifactFile* f = commit.add_files();
    f->set_path(files[i].path);
    f->set_size(size);
    f->set_mode(files[i].mode);
    f->set_sha256(sha);
    for (const ChunkRef& c : *chunks) {
      f->add_chunks(c.sha256);
      if (where.emplace(c.sha256, Where{i, c}).second) order.push_back(c.sha256);
    }
    summary.bytes += size;
  }
  summary.files = files.size();
  // A manifest too big for one message (the server takes 8 MiB) travels as chunks of its own,
  // uploaded with the files' chunks; the commit then names them (manifest_chunks).
  const size_t manifest_file = files.size();  // Where::file of a manifest chunk
  std::string manifest_bytes;
  if (commit.ByteSizeLong() > kInlineManifestBytes) {
    v1::ArtifactFileList list;
    list.mutable_files()->Swap(commit.mutable_files());
    manifest_bytes = list.SerializeAsString();
    if (manifest_bytes.size() > kMaxManifestBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the manifest of ", files.size(), " files is ", FormatMiB(manifest_bytes.size()),
          " MiB, more than ", kMaxManifestBytes >> 20, " MiB (shorter paths or fewer files)"));
    }
    for (uint64_t off = 0; off < manifest_bytes.size(); off += kArtifactChunkBytes) {
      const std::string_view piece =
          std::string_view(manifest_bytes).substr(off, kArtifactChunkBytes);
      ChunkRef ref{off, static_cast<uint32_t>(piece.size()), HexSha256(piece)};
      commit.add_manifest_chunks(ref.sha256);
      if (where.emplace(ref.sha256, Where{manifest_file, ref}).second) order.push_back(ref.sha256);
    }
  }

  Retry retry(options_, cancel, log);
  auto call_deadline = [&](absl::Duration d) {
    return std::min(d, std::max(absl::ZeroDuration(), retry.deadline() - absl::Now()));
  };
  bool first = true;
  size_t last_missing = order.size() + 1;
  while (true) {
    // 2. Which chunks the server lacks (10,000 per call).
    std::vector<std::string> missing;
    absl::Status failed;
    for (size_t start = 0; start < order.size() && failed.ok(); start += 10'000) {
      v1::ChunksMissingRequest req;
      req.set_job_id(job_id_);
      req.set_attempt_token(token_);
      for (size_t k = start; k < std::min(order.size(), start + 10'000); ++k) {
        req.add_chunks(order[k]);
      }
      v1::ChunksMissingResponse resp;
      grpc::ClientContext ctx;
      Prepare(&ctx, call_deadline(options_.call_timeout));
      grpc::Status s = stub_->ArtifactChunksMissing(&ctx, req, &resp);
      if (!s.ok()) {
        failed = FromGrpc(s, "ArtifactChunksMissing");
        break;
      }
      for (const std::string& m : resp.missing()) {
        if (where.count(m) == 0) {
          return absl::InternalError(
              absl::StrCat("ArtifactChunksMissing: the server named a chunk not asked for: ",
                           absl::CEscape(m.substr(0, 64))));
        }
        missing.push_back(m);
      }
    }
    if (!failed.ok()) {
      if (retry.Again(failed, false)) continue;
      return failed;
    }
    const bool progressed = missing.size() < last_missing;
    last_missing = missing.size();
    if (first) {
      for (const std::string& m : missing) {
        if (where.at(m).file != manifest_file) summary.new_bytes += where.at(m).ref.size;
      }
      first = false;
    }
    // 3. The missing chunks, in up to options_.upload_streams streams at once, each over a
    // contiguous share (so each reads its files in order).
    // Why several: the server stores a stream's chunks one after the other (hash check,
    // database row, write, fsync); parallel streams keep its disk and both ends' CPUs busy.
    if (!missing.empty()) {
      struct Share {
        absl::Status fatal;      // a file that changed, or cannot be opened: do not retry
        absl::Status transient;  // the stream failed: ask again what is missing
      };
      auto changed = [&](size_t file) {
        return absl::FailedPreconditionError(
            absl::StrCat(file == manifest_file ? "the manifest" : files[file].path,
                         " changed while it was uploaded"));
      };
      auto send = [&](size_t begin, size_t end) -> Share {
        uint64_t bytes = 0;
        for (size_t k = begin; k < end; ++k) bytes += where.at(missing[k]).ref.size;
        grpc::ClientContext ctx;
        // Why this deadline: a stalled (not broken) connection ends at the latest when even a
        // 1 MiB/s link would have finished.
        Prepare(&ctx, call_deadline(options_.call_timeout + absl::Seconds(bytes >> 20)));
        v1::UploadChunksResponse resp;
        std::unique_ptr<grpc::ClientWriterInterface<v1::ChunkUpload>> stream =
            stub_->UploadChunks(&ctx, &resp);
        auto stop = [&](absl::Status why) {
          ctx.TryCancel();
          stream->Finish();
          return Share{std::move(why), absl::OkStatus()};
        };
        UniqueFd open_fd;
        size_t open_file = files.size();
        bool broken = false;
        for (size_t k = begin; k < end; ++k) {
          if (cancel.canceled()) return stop(absl::CancelledError("canceled"));
          const Where& w = where.at(missing[k]);
          absl::StatusOr<std::string> data;
          if (w.file == manifest_file) {
            data = manifest_bytes.substr(w.ref.offset, w.ref.size);
          } else {
            struct stat st;
            if (w.file != open_file) {
              absl::StatusOr<UniqueFd> fd =
                  OpenArtifactSource(root.get(), files[w.file].source, owner);
              if (!fd.ok()) return stop(fd.status());
              open_fd = std::move(*fd);
              open_file = w.file;
            }
            // Why no second hash here: the server hashes every chunk it gets (a changed byte
            // is refused under its old name, see below); this catches the ordinary case first.
            if (::fstat(open_fd.get(), &st) != 0 || Stamp(st) != hashed[w.file]) {
              return stop(changed(w.file));
            }
            data = ReadAt(open_fd.get(), w.ref.offset, w.ref.size);
          }
          if (!data.ok() || data->size() != w.ref.size) return stop(changed(w.file));
          v1::ChunkUpload msg;
          if (k == begin) {
            msg.set_job_id(job_id_);
            msg.set_attempt_token(token_);
          }
          msg.set_sha256(w.ref.sha256);
          msg.set_data(std::move(*data));
          if (!stream->Write(msg)) {
            broken = true;
            break;
          }
        }
        if (!broken) stream->WritesDone();
        grpc::Status s = stream->Finish();
        if (s.ok() && broken) s = grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream broken");
        // The server's "chunk H does not match its data (...)": H's bytes changed after hashing.
        if (s.error_code() == grpc::StatusCode::INVALID_ARGUMENT &&
            absl::StartsWith(s.error_message(), "chunk ") && s.error_message().size() > 70) {
          auto it = where.find(s.error_message().substr(6, 64));
          if (it != where.end() &&
              absl::StartsWith(s.error_message().substr(70), " does not match its data")) {
            return Share{changed(it->second.file), absl::OkStatus()};
          }
        }
        return Share{absl::OkStatus(), s.ok() ? absl::OkStatus() : FromGrpc(s, "UploadChunks")};
      };
      const size_t n = std::clamp<size_t>(options_.upload_streams, 1, missing.size());
      std::vector<Share> shares(n);
      {
        std::vector<std::thread> threads;
        for (size_t i = 1; i < n; ++i) {
          threads.emplace_back(
              [&, i] { shares[i] = send(missing.size() * i / n, missing.size() * (i + 1) / n); });
        }
        shares[0] = send(0, missing.size() / n);
        for (std::thread& t : threads) t.join();
      }
      absl::Status transient;
      for (const Share& sh : shares) {
        if (!sh.fatal.ok()) return sh.fatal;
        if (transient.ok()) transient = sh.transient;
      }
      if (!transient.ok()) {
        if (retry.Again(transient, progressed)) continue;
        return transient;
      }
    }
    // 4. The manifest, once every chunk is there.
    grpc::ClientContext ctx;
    Prepare(&ctx, call_deadline(options_.call_timeout));
    grpc::Status s = commit_fn(&ctx, commit);
    if (s.ok()) break;
    absl::Status f = FromGrpc(s, call);
    // A chunk the server lost meanwhile: ask again what is missing.
    if (retry.Again(f.code() == absl::StatusCode::kFailedPrecondition
                        ? absl::UnavailableError(f.message())
                        : f,
                    progressed)) {
      continue;
    }
    return f;
  }
  summary.attempts = retry.rounds();
  return summary;
}

absl::Status ValidateArtifactManifest(const v1::ArtifactManifest& manifest) {
  for (const v1::JobArtifacts& job : manifest.jobs()) {
    auto bad = [&](const std::string& path, absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad artifact manifest: job '", absl::CEscape(job.job_name()), "': path '",
                       absl::CEscape(path.substr(0, 200)), path.size() > 200 ? "..." : "",
                       "': ", std::string(why)));
    };
    if (static_cast<size_t>(job.files_size()) > kMaxArtifactFiles) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad artifact manifest: job '", absl::CEscape(job.job_name()), "' has ",
                       job.files_size(), " files, more than ", kMaxArtifactFiles));
    }
    std::set<std::string_view> seen;
    for (const v1::ArtifactFile& f : job.files()) {
      if (absl::Status s = ValidateArtifactPath(f.path()); !s.ok()) {
        return bad(f.path(), s.message());
      }
      if (!seen.insert(f.path()).second) return bad(f.path(), "listed twice");
      if (!IsHexSha256(f.sha256())) return bad(f.path(), "malformed sha256");
      const uint64_t n = static_cast<uint64_t>(f.chunks_size());
      if (n > f.size() || f.size() > n * kArtifactChunkBytes) {
        return bad(f.path(), absl::StrCat(n, " chunks cannot hold ", f.size(), " bytes"));
      }
      for (const std::string& c : f.chunks()) {
        if (!IsHexSha256(c)) return bad(f.path(), "malformed chunk hash");
      }
    }
  }
  return absl::OkStatus();
}

namespace {

// Copies the local file `source` into the artifact `f` through `writer` when its bytes are f's
// (size and SHA-256, checked while copying). False when it cannot be opened as a regular file
// or does not match: nothing is left behind and the caller downloads the file instead.
absl::StatusOr<bool> CopyLocalObject(const std::string& source, const v1::ArtifactFile& f,
                                     ArtifactWriter& writer, CancelFlag& cancel) {
  UniqueFd in(::open(source.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  struct stat st {};
  if (!in.valid() || ::fstat(in.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
      static_cast<uint64_t>(st.st_size) != f.size()) {
    return false;
  }
  ASSAY_RETURN_IF_ERROR(writer.Begin(f.path()));
  Sha256Stream whole;
  uint64_t copied = 0;
  std::string buf(static_cast<size_t>(std::min<uint64_t>(kArtifactChunkBytes, f.size())), '\0');
  while (copied < f.size()) {
    if (cancel.canceled()) {
      writer.Abort();
      return absl::CancelledError("canceled");
    }
    absl::StatusOr<size_t> n = ReadInto(in.get(), copied, buf.data(), buf.size());
    if (!n.ok() || *n == 0) break;  // unreadable, or shorter than it said: not a match
    const std::string_view data(buf.data(), *n);
    whole.Update(data);
    if (absl::Status s = writer.Append(data); !s.ok()) {
      writer.Abort();
      return s;
    }
    copied += *n;
  }
  if (copied != f.size() || whole.Hex() != f.sha256()) {
    writer.Abort();
    return false;
  }
  ASSAY_RETURN_IF_ERROR(writer.Commit(f.mode()));
  return true;
}

}  // namespace

absl::Status ArtifactClient::Download(ArtifactWriter& writer, CancelFlag& cancel,
                                      const ArtifactLog& log, const LocalObjectFn& local) {
  Retry retry(options_, cancel, log);
  auto call_deadline = [&](absl::Duration d) {
    return std::min(d, std::max(absl::ZeroDuration(), retry.deadline() - absl::Now()));
  };
  v1::ArtifactManifest manifest;
  while (true) {
    v1::ArtifactManifestRequest req;
    req.set_job_id(job_id_);
    req.set_attempt_token(token_);
    grpc::ClientContext ctx;
    Prepare(&ctx, call_deadline(options_.call_timeout));
    grpc::Status s = stub_->GetArtifactManifest(&ctx, req, &manifest);
    if (s.ok()) break;
    absl::Status f = FromGrpc(s, "GetArtifactManifest");
    if (retry.Again(f, false)) continue;
    return f;
  }
  // 1. Every entry is checked before anything is written.
  ASSAY_RETURN_IF_ERROR(ValidateArtifactManifest(manifest));
  struct Item {
    const v1::JobArtifacts* job;
    const v1::ArtifactFile* file;
  };
  std::vector<Item> items;
  std::vector<const std::string*> wants;  // every chunk, in file order
  std::map<const v1::JobArtifacts*, std::pair<size_t, uint64_t>> done;  // files, bytes
  size_t local_files = 0;
  uint64_t local_bytes = 0;
  for (const v1::JobArtifacts& job : manifest.jobs()) {
    for (const v1::ArtifactFile& f : job.files()) {
      // A file this agent holds already (a Git LFS object with the same SHA-256): copied from
      // there, not downloaded; when the copy does not match, downloaded after all.
      std::optional<std::string> source;
      if (local && f.size() > 0) source = local(f.sha256(), f.size());
      if (source.has_value()) {
        ASSAY_ASSIGN_OR_RETURN(bool copied, CopyLocalObject(*source, f, writer, cancel));
        if (copied) {
          done[&job].first += 1;
          done[&job].second += f.size();
          ++local_files;
          local_bytes += f.size();
          continue;
        }
      }
      for (const std::string& c : f.chunks()) wants.push_back(&c);
      items.push_back({&job, &f});
    }
  }
  if (local_files > 0) {
    log(absl::StrCat("assay: ", local_files, " artifact file", local_files == 1 ? "" : "s", ", ",
                     FormatMiB(local_bytes),
                     " MiB, copied from this agent's Git LFS objects (not downloaded)\n"));
  }
  // 2. The chunks, in file order, a window per call; files written as their chunks arrive.
  size_t item = 0, next_chunk = 0;
  uint64_t written = 0;
  std::unique_ptr<Sha256Stream> hash;
  auto shown = [&](const Item& it) {
    return absl::StrCat("artifact ", it.file->path(), " of job '", it.job->job_name(), "'");
  };
  // Finishes the current file if all its chunks are in, and every empty file after it.
  auto settle = [&]() -> absl::Status {
    while (item < items.size() &&
           next_chunk == static_cast<size_t>(items[item].file->chunks_size())) {
      const Item& it = items[item];
      if (hash == nullptr) {  // an empty file: nothing was begun
        ASSAY_RETURN_IF_ERROR(writer.Begin(it.file->path()));
        hash = std::make_unique<Sha256Stream>();
      }
      if (written != it.file->size() || hash->Hex() != it.file->sha256()) {
        writer.Abort();
        return absl::DataLossError(
            absl::StrCat(shown(it), ": the file does not match its size and sha256"));
      }
      ASSAY_RETURN_IF_ERROR(writer.Commit(it.file->mode()));
      done[it.job].first += 1;
      done[it.job].second += written;
      ++item;
      next_chunk = 0;
      written = 0;
      hash.reset();
    }
    return absl::OkStatus();
  };
  auto feed = [&](const std::string& data) -> absl::Status {
    const Item& it = items[item];
    if (hash == nullptr) {
      ASSAY_RETURN_IF_ERROR(writer.Begin(it.file->path()));
      hash = std::make_unique<Sha256Stream>();
    }
    if (data.size() > kArtifactChunkBytes || HexSha256(data) != it.file->chunks(next_chunk)) {
      writer.Abort();
      return absl::DataLossError(
          absl::StrCat(shown(it), ": chunk ", next_chunk + 1, " does not match its hash"));
    }
    ASSAY_RETURN_IF_ERROR(writer.Append(data));
    hash->Update(data);
    written += data.size();
    ++next_chunk;
    return settle();
  };
  ASSAY_RETURN_IF_ERROR(settle());
  size_t pos = 0;
  while (pos < wants.size()) {
    const size_t end =
        std::min(wants.size(), pos + std::max<size_t>(1, options_.chunks_per_download));
    v1::DownloadChunksRequest req;
    req.set_job_id(job_id_);
    req.set_attempt_token(token_);
    for (size_t k = pos; k < end; ++k) req.add_chunks(*wants[k]);
    grpc::ClientContext ctx;
    Prepare(&ctx, call_deadline(options_.call_timeout + absl::Seconds(4 * (end - pos))));
    std::unique_ptr<grpc::ClientReaderInterface<v1::ChunkData>> reader =
        stub_->DownloadChunks(&ctx, req);
    const size_t before = pos;
    v1::ChunkData msg;
    while (pos < end && reader->Read(&msg)) {
      if (cancel.canceled()) {
        ctx.TryCancel();
        reader->Finish();
        writer.Abort();
        return absl::CancelledError("canceled");
      }
      absl::Status fed = msg.sha256() == *wants[pos]
                             ? feed(msg.data())
                             : absl::DataLossError(absl::StrCat(
                                   shown(items[item]), ": the server sent chunk ",
                                   absl::CEscape(msg.sha256().substr(0, 64)), " out of order"));
      if (!fed.ok()) {
        ctx.TryCancel();
        reader->Finish();
        return fed;
      }
      ++pos;
    }
    if (pos == end && reader->Read(&msg)) {
      ctx.TryCancel();
      reader->Finish();
      writer.Abort();
      return absl::DataLossError("DownloadChunks: the server sent more chunks than asked");
    }
    grpc::Status s = reader->Finish();
    if (pos == end && s.ok()) continue;
    absl::Status f = s.ok() ? absl::UnavailableError("DownloadChunks: the stream ended early")
                            : FromGrpc(s, "DownloadChunks");
    // Why keep the partial file: the next call goes on with the chunk after the last one
    // written, into the same temporary file.
    if (retry.Again(f, pos > before)) continue;
    writer.Abort();
    return f;
  }
  for (const v1::JobArtifacts& job : manifest.jobs()) {
    auto [n, bytes] = done[&job];
    log(absl::StrCat("assay: downloaded ", n, " file", n == 1 ? "" : "s", ", ", FormatMiB(bytes),
                     " MiB from job '", job.job_name(), "'\n"));
  }
  return absl::OkStatus();
}

absl::Status DownloadJobArtifacts(ArtifactClient& client, const v1::Assignment& a,
                                  const std::string& workspace,
                                  const std::optional<JobIdentity>& user, CancelFlag& cancel,
                                  const ArtifactLog& log,
                                  const ArtifactClient::LocalObjectFn& local) {
  if (a.artifact_needs().empty()) return absl::OkStatus();
  std::optional<ArtifactWriter::Owner> owner;
  if (user.has_value()) owner = ArtifactWriter::Owner{user->uid, user->gid};
  absl::StatusOr<ArtifactWriter> writer = ArtifactWriter::Open(workspace, owner);
  absl::Status s = writer.ok() ? client.Download(*writer, cancel, log, local) : writer.status();
  if (s.ok()) return s;
  return absl::Status(
      s.code(), absl::StrCat("downloading the artifacts of ",
                             absl::StrJoin(a.artifact_needs(), ", "), " failed: ", s.message()));
}

void UploadJobArtifacts(ArtifactClient& client, const v1::Assignment& a,
                        const std::string& workspace, const std::optional<JobIdentity>& user,
                        CancelFlag& cancel, const ArtifactLog& log, JobRunResult* res) {
  if (!a.has_artifacts()) return;
  const v1::ArtifactRules& rules = a.artifacts();
  const bool succeeded = res->outcome == JobRunOutcome::kSucceeded;
  if (cancel.canceled()) {
    // Why not succeeded: its dependents would start without the artifacts they need.
    if (succeeded) {
      res->outcome = JobRunOutcome::kCanceled;
      res->message = "job canceled before its artifacts were uploaded";
    }
    return;
  }
  const bool ended =
      res->outcome == JobRunOutcome::kFailed || res->outcome == JobRunOutcome::kTimedOut;
  if (!succeeded && !(rules.when() == "always" && ended)) return;
  const std::vector<std::string> globs(rules.paths().begin(), rules.paths().end());
  auto fail = [&](absl::string_view why) {
    log(absl::StrCat("assay: artifacts upload failed: ", std::string(why), "\n"));
    if (!succeeded) return;
    if (cancel.canceled()) {
      res->outcome = JobRunOutcome::kCanceled;
      res->message = "job canceled while uploading its artifacts";
      return;
    }
    res->outcome = JobRunOutcome::kError;
    res->exit_code = -1;
    res->message = absl::StrCat("artifacts upload failed: ", std::string(why));
  };
  CollectOptions options;
  if (user.has_value()) options.owner = user->uid;
  absl::StatusOr<CollectResult> collected = CollectArtifactFiles(workspace, globs, options);
  if (!collected.ok()) return fail(collected.status().message());
  for (const std::string& note : collected->notes) {
    log(absl::StrCat("assay: artifacts: ", note, "\n"));
  }
  if (collected->files.empty()) {
    const std::string what =
        absl::StrCat("artifacts.paths matched no file (", absl::StrJoin(globs, ", "), ")");
    if (rules.fail_if_no_files()) {
      log(absl::StrCat("assay: ", what, ", and if_no_files is error\n"));
      if (succeeded) {
        res->outcome = JobRunOutcome::kFailed;
        res->message = absl::StrCat(what, ", and if_no_files is error");
      }
      return;
    }
    log(absl::StrCat("assay: warning: ", what, "\n"));
  }
  std::optional<uid_t> owner;
  if (user.has_value()) owner = user->uid;
  absl::StatusOr<UploadSummary> up = client.Upload(workspace, collected->files, owner, cancel, log);
  if (!up.ok()) return fail(up.status().message());
  log(absl::StrCat("assay: uploaded ", up->files, " file", up->files == 1 ? "" : "s", ", ",
                   FormatMiB(up->bytes), " MiB (", FormatMiB(up->new_bytes), " MiB new)\n"));
}

}  // namespace assay
