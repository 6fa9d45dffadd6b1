#include "agent/train_step.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <map>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "agent/artifact_paths.h"
#include "agent/artifacts.h"
#include "agent/cache.h"
#include "common/base/status.h"
#include "common/crypto/crypto.h"
#include "common/evals/data/text.h"
#include "common/proc/spawn.h"

namespace assay {
namespace {

namespace json = boost::json;

constexpr size_t kNoteBytes = 200;
constexpr size_t kPointsPerCall = 5'000;
constexpr size_t kReadPerTick = 4 << 20;
constexpr int kMaxNotes = 20;  // bad-line notes in the log per step; then one "and more"

std::string Cut(absl::string_view s) {
  std::string out = absl::CHexEscape(s.substr(0, kNoteBytes));
  if (s.size() > kNoteBytes) out += "...";
  return out;
}

bool GoodName(absl::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  if (!evals::IsValidUtf8(std::string_view(name.data(), name.size()))) return false;
  return std::none_of(name.begin(), name.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

// One metrics line, read with Boost.JSON's SAX parser so that each number is converted from its
// own text by std::from_chars: exact (round to nearest), where Boost 1.81's DOM parser is off by
// one ulp for some 17-digit values. Keeps the numbers of the top-level object's fields, in
// order (a repeated key keeps its last value), and "step" as it was written.
struct MetricsLineHandler {
  static constexpr std::size_t max_array_size = -1;
  static constexpr std::size_t max_object_size = -1;
  static constexpr std::size_t max_string_size = -1;
  static constexpr std::size_t max_key_size = -1;

  int depth = 0;
  bool object = false;  // the document is an object
  std::string key, part, number;
  std::vector<std::pair<std::string, double>> fields;
  std::optional<int64_t> step;
  bool step_bad = false;

  void Top(double v, bool integral, bool negative) {
    if (depth != 1) return;
    if (key == "step") {
      // An integer >= 0 (2.0 counts; 2.5, -1 and 1e300 do not).
      if (integral && !negative && v < 9e15 && std::floor(v) == v) {
        step = static_cast<int64_t>(v);
      } else {
        step_bad = true;
      }
      return;
    }
    if (!std::isfinite(v)) return;
    for (auto& f : fields) {
      if (f.first == key) {
        f.second = v;
        return;
      }
    }
    fields.emplace_back(key, v);
  }
  double Exact(boost::json::string_view tail) {
    number.append(tail.data(), tail.size());
    double v = 0;
    std::from_chars(number.data(), number.data() + number.size(), v);
    number.clear();
    return v;
  }
  void NotNumber() {
    if (depth == 1 && key == "step") step_bad = true;
  }
  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }
  bool on_array_begin(boost::system::error_code&) {
    NotNumber();
    ++depth;
    return true;
  }
  bool on_array_end(std::size_t, boost::system::error_code&) {
    --depth;
    return true;
  }
  bool on_object_begin(boost::system::error_code&) {
    if (depth == 0) object = true;
    NotNumber();
    ++depth;
    return true;
  }
  bool on_object_end(std::size_t, boost::system::error_code&) {
    --depth;
    return true;
  }
  bool on_string_part(boost::json::string_view, std::size_t, boost::system::error_code&) {
    return true;
  }
  bool on_string(boost::json::string_view, std::size_t, boost::system::error_code&) {
    NotNumber();
    return true;
  }
  bool on_key_part(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    if (depth == 1) part.append(s.data(), s.size());
    return true;
  }
  bool on_key(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    if (depth == 1) {
      key = part;
      key.append(s.data(), s.size());
      part.clear();
    }
    return true;
  }
  bool on_number_part(boost::json::string_view s, boost::system::error_code&) {
    number.append(s.data(), s.size());
    return true;
  }
  bool on_int64(int64_t i, boost::json::string_view, boost::system::error_code&) {
    number.clear();
    Top(static_cast<double>(i), true, i < 0);
    return true;
  }
  bool on_uint64(uint64_t u, boost::json::string_view, boost::system::error_code&) {
    number.clear();
    Top(static_cast<double>(u), true, false);
    return true;
  }
  bool on_double(double, boost::json::string_view s, boost::system::error_code&) {
    const double v = Exact(s);
    Top(v, true, v < 0);
    return true;
  }
  bool on_bool(bool, boost::system::error_code&) {
    NotNumber();
    return true;
  }
  bool on_null(boost::system::error_code&) {
    NotNumber();
    return true;
  }
  bool on_comment_part(boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_comment(boost::json::string_view, boost::system::error_code&) { return true; }
};

std::string SingleQuoted(absl::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

grpc::Status Call(const TrainStepContext& ctx,
                  const std::function<grpc::Status(grpc::ClientContext*)>& fn, int attempts) {
  return StepRpc(ctx, fn, attempts);
}

std::string MiB(uint64_t bytes) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.1f", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

// Opens `rel` (a directory below `root_fd`), never through a symlink.
absl::StatusOr<UniqueFd> OpenDirBelow(int root_fd, absl::string_view rel) {
  UniqueFd cur(::dup(root_fd));
  for (absl::string_view part : absl::StrSplit(rel, '/', absl::SkipEmpty())) {
    const std::string name(part);
    UniqueFd next(
        ::openat(cur.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next.valid()) {
      return absl::NotFoundError(absl::StrCat(rel, ": ", strerror(errno)));
    }
    cur = std::move(next);
  }
  return cur;
}

// The state of one train step's run, shared by start, drive and after_success (the job's
// thread and the driver's thread, one after the other: start before drive begins,
// after_success after it returned; mu_ guards what the log callback might race on).
class TrainRun {
 public:
  TrainRun(evals::TrainSpec spec, TrainStepContext ctx)
      : spec_(std::move(spec)), ctx_(std::move(ctx)) {
    base_ = absl::StrCat(".assay/train/", ctx_.step_index);
    if (ctx_.user.has_value()) owner_ = ctx_.user->uid;
  }

  absl::StatusOr<std::string> Start() {
    if (ctx_.assignment.attempt() > 1) Restore();
    return TrainShellText(spec_, ctx_.step_index, resumed_);
  }

  absl::Status Drive(const std::atomic<bool>& exited, CancelFlag& cancel) {
    while (true) {
      const bool done = exited.load();
      ReadMetrics(false);
      SendMetrics(done ? 3 : 1);
      if (done || cancel.canceled()) break;
      MaybeCheckpoint(cancel);
      if (cancel.fd() >= 0) {
        pollfd p{cancel.fd(), POLLIN, 0};
        (void)::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(ctx_.tick)));
      } else {
        absl::SleepFor(ctx_.tick);
      }
    }
    ReadMetrics(true);
    SendMetrics(3);
    return absl::OkStatus();
  }

  absl::Status AfterSuccess() {
    if (spec_.register_model) {
      CollectOptions o;
      o.owner = owner_;
      ASSAY_ASSIGN_OR_RETURN(CollectResult model,
                             CollectArtifactFiles(ctx_.workspace, {spec_.model_dir}, o));
      if (model.files.empty()) {
        return absl::FailedPreconditionError(
            absl::StrCat("the model directory '", spec_.model_dir,
                         "' holds no file: the command must write the model to "
                         "$ASSAY_MODEL_DIR"));
      }
    }
    v1::TrainRunReport report;
    report.set_job_id(ctx_.assignment.job_id());
    report.set_attempt_token(ctx_.assignment.attempt_token());
    report.set_step_index(ctx_.step_index);
    for (const std::string& path : spec_.datasets) {
      ASSAY_ASSIGN_OR_RETURN(v1::TrainDataset d, Digest(path));
      ctx_.log(absl::StrCat("assay: train: dataset ", d.path(), " ",
                            d.md5().empty() ? "sha256 " + d.sha256() : "md5 " + d.md5(), "\n"));
      *report.add_datasets() = std::move(d);
    }
    if (resumed_.has_value()) {
      report.set_resumed(true);
      report.set_resumed_from(*resumed_);
    }
    v1::TrainRunAck ack;
    grpc::Status s = Call(
        ctx_, [&](grpc::ClientContext* c) { return ctx_.stub->ReportTrainRun(c, report, &ack); },
        5);
    if (!s.ok()) {
      return absl::UnavailableError(absl::StrCat("ReportTrainRun: ", s.error_message()));
    }
    if (spec_.register_model) {
      ctx_.log(absl::StrCat("assay: train: model '", spec_.model,
                            "' is registered when the job succeeds\n"));
    }
    return absl::OkStatus();
  }

 private:
  void Restore() {
    v1::CheckpointRestoreRequest req;
    req.set_job_id(ctx_.assignment.job_id());
    req.set_attempt_token(ctx_.assignment.attempt_token());
    req.set_step_index(ctx_.step_index);
    v1::CheckpointRestoreResponse resp;
    grpc::Status s = Call(
        ctx_, [&](grpc::ClientContext* c) { return ctx_.stub->RestoreCheckpoint(c, req, &resp); },
        3);
    if (!s.ok()) {
      ctx_.log(absl::StrCat("assay: warning: train: no checkpoint restored (RestoreCheckpoint: ",
                            s.error_message(), "); training starts from scratch\n"));
      return;
    }
    if (!resp.found()) {
      ctx_.log("assay: train: no checkpoint saved by an earlier attempt; starting from scratch\n");
      return;
    }
    CancelFlag never;
    absl::StatusOr<RestoredFiles> r =
        RestoreFiles(ctx_.stub, ctx_.bearer, ctx_.assignment, ctx_.workspace, ctx_.user,
                     ctx_.chunks, resp.files(), "checkpoint", never, CacheTransferOptions{});
    if (ctx_.chunks == nullptr) {
      std::error_code ec;
      std::filesystem::remove_all(ctx_.workspace + ".cache-chunks", ec);
    }
    if (!r.ok()) {
      ctx_.log(absl::StrCat("assay: warning: train: checkpoint step ", resp.step(),
                            " not restored: ", r.status().message(),
                            "; training starts from scratch\n"));
      return;
    }
    resumed_ = resp.step();
    uploaded_step_ = resp.step();
    ctx_.log(absl::StrCat("assay: train: restored checkpoint step ", resp.step(),
                          " (saved by attempt ", resp.attempt(), "): ", resp.files_size(), " file",
                          resp.files_size() == 1 ? "" : "s", ", ", MiB(r->bytes), " MiB, ",
                          MiB(r->downloaded), " MiB downloaded; ASSAY_RESUME_STEP=", resp.step(),
                          "\n"));
  }

  UniqueFd& Root() {
    if (!root_.valid()) {
      root_ =
          UniqueFd(::open(ctx_.workspace.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    }
    return root_;
  }

  void ReadMetrics(bool final) {
    if (!metrics_fd_.valid()) {
      if (!Root().valid()) return;
      auto fd = OpenArtifactSource(Root().get(), base_ + "/metrics.jsonl", owner_);
      if (!fd.ok()) return;  // not made yet (or refused: nothing is read from it)
      metrics_fd_ = *std::move(fd);
    }
    std::vector<TrainMetricsParser::Point> points;
    std::vector<std::string> notes;
    std::string buf;
    size_t read_now = 0;
    while (read_now < kReadPerTick) {
      buf.resize(64 << 10);
      const ssize_t n = ::pread(metrics_fd_.get(), buf.data(), buf.size(), offset_);
      if (n <= 0) break;
      offset_ += n;
      read_now += static_cast<size_t>(n);
      parser_.Feed(absl::string_view(buf.data(), static_cast<size_t>(n)), points, notes);
    }
    if (final) parser_.Finish(points, notes);
    for (const std::string& note : notes) {
      if (notes_shown_ < kMaxNotes) {
        ctx_.log(absl::StrCat("assay: warning: train: metrics file ", note, "\n"));
      } else if (notes_shown_ == kMaxNotes) {
        ctx_.log("assay: warning: train: further bad lines of the metrics file are not shown\n");
      }
      ++notes_shown_;
    }
    const int64_t now_ms = absl::ToUnixMillis(absl::Now());
    for (auto& p : points) {
      if (pending_.size() >= kMaxTrainPendingPoints) {
        if (!told_dropped_) {
          ctx_.log(
              "assay: warning: train: more than 100000 metric points wait to be sent; "
              "the oldest are dropped\n");
          told_dropped_ = true;
        }
        pending_.erase(pending_.begin(), pending_.begin() + kPointsPerCall);
      }
      v1::TrainMetricPoint w;
      w.set_name(std::move(p.name));
      w.set_step(p.step);
      w.set_value(p.value);
      w.set_unix_ms(now_ms);
      pending_.push_back(std::move(w));
    }
  }

  void SendMetrics(int attempts) {
    while (!pending_.empty() && !metrics_off_) {
      v1::TrainMetricsRequest req;
      req.set_job_id(ctx_.assignment.job_id());
      req.set_attempt_token(ctx_.assignment.attempt_token());
      req.set_step_index(ctx_.step_index);
      const size_t n = std::min(pending_.size(), kPointsPerCall);
      for (size_t i = 0; i < n; ++i) *req.add_points() = pending_[i];
      v1::TrainMetricsResponse resp;
      grpc::Status s = Call(
          ctx_,
          [&](grpc::ClientContext* c) { return ctx_.stub->ReportTrainMetrics(c, req, &resp); },
          attempts);
      if (s.ok()) {
        pending_.erase(pending_.begin(), pending_.begin() + static_cast<ptrdiff_t>(n));
        continue;
      }
      if (s.error_code() == grpc::StatusCode::UNAVAILABLE ||
          s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
        if (absl::Now() - last_send_warning_ > absl::Minutes(1)) {
          ctx_.log(absl::StrCat("assay: warning: train: metrics not sent yet (", s.error_message(),
                                "); trying again\n"));
          last_send_warning_ = absl::Now();
        }
        return;  // the next tick tries again
      }
      ctx_.log(
          absl::StrCat("assay: warning: train: metrics no longer sent: ", s.error_message(), "\n"));
      metrics_off_ = true;
      pending_.clear();
    }
  }

  // The newest checkpoint entry (by N), its files and their sizes and times.
  struct Candidate {
    int64_t step = -1;
    std::string rel;
    std::vector<CollectedFile> files;
    std::string signature;
  };

  // The two newest checkpoint entries (by N), newest first, each with its files and their
  // sizes and times.
  std::vector<Candidate> Newest() {
    std::vector<Candidate> out;
    if (!Root().valid()) return out;
    auto dir = OpenDirBelow(Root().get(), base_ + "/checkpoints");
    if (!dir.ok()) return out;
    DIR* d = ::fdopendir(::dup(dir->get()));
    if (d == nullptr) return out;
    std::vector<std::pair<int64_t, std::string>> entries;
    while (dirent* e = ::readdir(d)) {
      if (auto n = evals::CheckpointStep(e->d_name); n.has_value()) {
        entries.emplace_back(*n, e->d_name);
      }
    }
    ::closedir(d);
    std::sort(entries.begin(), entries.end(), std::greater<>());
    for (size_t i = 0; i < entries.size() && out.size() < 2; ++i) {
      if (i > 0 && entries[i].first == entries[i - 1].first) continue;  // step-5 and ckpt-5
      Candidate c;
      c.step = entries[i].first;
      c.rel = absl::StrCat(base_, "/checkpoints/", entries[i].second);
      if (Fill(c)) out.push_back(std::move(c));
    }
    return out;
  }

  bool Fill(Candidate& c) {
    CollectOptions o;
    o.owner = owner_;
    o.max_files = 10'000;
    auto files = CollectArtifactFiles(ctx_.workspace, {c.rel}, o);
    if (!files.ok() || files->files.empty()) return false;
    for (const CollectedFile& f : files->files) {
      struct stat st {};
      if (::fstatat(Root().get(), f.source.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return false;
      absl::StrAppend(&c.signature, f.path, "\n", st.st_size, " ", st.st_mtim.tv_sec, ".",
                      st.st_mtim.tv_nsec, "\n");
    }
    c.files = std::move(files->files);
    return true;
  }

  void MaybeCheckpoint(CancelFlag& cancel) {
    std::vector<Candidate> newest = Newest();
    // Which checkpoint is whole: the newest once it stood still for a tick (one written in
    // place rather than renamed into place may still grow), or the one before it as soon as a
    // newer one exists (the trainer has moved past it: checkpoints that come faster than the
    // tick are still taken). At most one upload per interval.
    std::map<int64_t, std::string> seen;
    for (const Candidate& c : newest) seen[c.step] = c.signature;
    const Candidate* pick = nullptr;
    if (!newest.empty()) {
      auto it = seen_.find(newest[0].step);
      if (it != seen_.end() && it->second == newest[0].signature) {
        pick = &newest[0];
      } else if (newest.size() > 1) {
        pick = &newest[1];
      }
    }
    seen_ = std::move(seen);
    if (pick == nullptr || pick->step <= uploaded_step_ ||
        absl::Now() - last_upload_ < absl::Milliseconds(spec_.checkpoint_interval_ms)) {
      return;
    }
    const Candidate* c = pick;
    last_upload_ = absl::Now();
    ArtifactClient client(ctx_.stub, ctx_.bearer, ctx_.assignment.job_id(),
                          ctx_.assignment.attempt_token());
    v1::CheckpointCommitResponse done;
    const int64_t step = c->step;
    absl::StatusOr<UploadSummary> up =
        client.UploadWith(ctx_.workspace, c->files, owner_, cancel, ctx_.log, "CommitCheckpoint",
                          [&](grpc::ClientContext* cc, const v1::CommitArtifactsRequest& manifest) {
                            v1::CheckpointCommitRequest req;
                            req.set_job_id(manifest.job_id());
                            req.set_attempt_token(manifest.attempt_token());
                            req.set_step_index(ctx_.step_index);
                            req.set_step(step);
                            *req.mutable_files() = manifest.files();
                            return ctx_.stub->CommitCheckpoint(cc, req, &done);
                          });
    if (!up.ok()) {
      ctx_.log(absl::StrCat("assay: warning: train: checkpoint step ", step,
                            " not saved: ", up.status().message(), "\n"));
      return;
    }
    uploaded_step_ = step;
    ctx_.log(absl::StrCat("assay: train: checkpoint step ", step, " saved: ", up->files, " file",
                          up->files == 1 ? "" : "s", ", ", MiB(up->bytes), " MiB (",
                          MiB(up->new_bytes), " MiB new)\n"));
  }

  absl::StatusOr<v1::TrainDataset> Digest(const std::string& path) {
    v1::TrainDataset d;
    if (!Root().valid()) return absl::InternalError("cannot open the workspace");
    if (path.size() > 4 && path.compare(path.size() - 4, 4, ".dvc") == 0) {
      ASSAY_ASSIGN_OR_RETURN(UniqueFd fd, OpenArtifactSource(Root().get(), path, owner_));
      std::string text(64 << 10, '\0');
      const ssize_t n = ::pread(fd.get(), text.data(), text.size(), 0);
      if (n < 0) return absl::InternalError(absl::StrCat("dataset ", path, ": cannot read"));
      text.resize(static_cast<size_t>(n));
      ASSAY_ASSIGN_OR_RETURN(DvcOutput out, ParseDvcPointer(path, text));
      d.set_path(out.path);
      d.set_md5(out.md5);
      return d;
    }
    d.set_path(path);
    struct stat st {};
    if (::fstatat(Root().get(), path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISDIR(st.st_mode)) {
      // A directory: hashFiles' digest over its files (docs/train.md).
      ASSAY_ASSIGN_OR_RETURN(std::string h, HashFiles(ctx_.workspace, {path}, owner_));
      if (h.empty()) {
        return absl::FailedPreconditionError(absl::StrCat("dataset ", path, " holds no file"));
      }
      d.set_sha256(h);
      return d;
    }
    absl::StatusOr<UniqueFd> fd = OpenArtifactSource(Root().get(), path, owner_);
    if (!fd.ok()) {
      return absl::Status(fd.status().code(),
                          absl::StrCat("dataset ", path, ": ", fd.status().message()));
    }
    Sha256Stream sha;
    std::string buf(1 << 20, '\0');
    off_t at = 0;
    while (true) {
      const ssize_t n = ::pread(fd->get(), buf.data(), buf.size(), at);
      if (n < 0) return absl::InternalError(absl::StrCat("dataset ", path, ": cannot read"));
      if (n == 0) break;
      sha.Update(std::string_view(buf.data(), static_cast<size_t>(n)));
      at += n;
    }
    d.set_sha256(sha.Hex());
    return d;
  }

  const evals::TrainSpec spec_;
  const TrainStepContext ctx_;
  std::string base_;
  std::optional<uid_t> owner_;
  std::optional<int64_t> resumed_;
  UniqueFd root_;
  UniqueFd metrics_fd_;
  off_t offset_ = 0;
  TrainMetricsParser parser_;
  int notes_shown_ = 0;
  std::vector<v1::TrainMetricPoint> pending_;
  bool told_dropped_ = false;
  bool metrics_off_ = false;
  absl::Time last_send_warning_ = absl::InfinitePast();
  int64_t uploaded_step_ = -1;
  std::map<int64_t, std::string> seen_;  // the last look: step -> signature
  absl::Time last_upload_ = absl::InfinitePast();
};

}  // namespace

void TrainMetricsParser::Feed(absl::string_view bytes, std::vector<Point>& out,
                              std::vector<std::string>& notes) {
  while (!bytes.empty()) {
    const size_t nl = bytes.find('\n');
    const absl::string_view piece = bytes.substr(0, nl);
    if (!skipping_) {
      if (partial_.size() + piece.size() > kMaxTrainMetricsLineBytes) {
        skipping_ = true;
        partial_.clear();
      } else {
        partial_.append(piece.data(), piece.size());
      }
    }
    if (nl == absl::string_view::npos) return;
    bytes.remove_prefix(nl + 1);
    ++line_;
    if (skipping_) {
      notes.push_back(absl::StrCat("line ", line_, " is longer than ", kMaxTrainMetricsLineBytes,
                                   " bytes; skipped"));
      skipping_ = false;
    } else {
      Line(partial_, out, notes);
    }
    partial_.clear();
  }
}

void TrainMetricsParser::Finish(std::vector<Point>& out, std::vector<std::string>& notes) {
  if (partial_.empty() && !skipping_) return;
  Feed("\n", out, notes);
}

void TrainMetricsParser::Line(absl::string_view line, std::vector<Point>& out,
                              std::vector<std::string>& notes) {
  line = absl::StripAsciiWhitespace(line);
  if (line.empty()) return;
  boost::system::error_code ec;
  json::basic_parser<MetricsLineHandler> parser(json::parse_options{});
  parser.write_some(false, line.data(), line.size(), ec);
  const MetricsLineHandler& h = parser.handler();
  std::optional<int64_t> step;
  if (!ec && parser.done() && h.object && !h.step_bad) step = h.step;
  if (!step.has_value()) {
    notes.push_back(absl::StrCat(
        "line ", line_, " is not a JSON object with an integer \"step\" >= 0: ", Cut(line)));
    return;
  }
  for (const auto& [name, d] : h.fields) {  // numbers only: text, lists, flags are no series
    if (!GoodName(name)) {
      notes.push_back(absl::StrCat("line ", line_, ": field \"", Cut(name),
                                   "\" is not a series name (1 to 128 bytes, no control "
                                   "characters); skipped"));
      continue;
    }
    if (std::find(names_.begin(), names_.end(), name) == names_.end()) {
      if (names_.size() >= kMaxTrainSeries) {
        if (!told_series_) {
          notes.push_back(absl::StrCat("line ", line_, ": more than ", kMaxTrainSeries,
                                       " series; \"", Cut(name),
                                       "\" and later new names are dropped"));
          told_series_ = true;
        }
        continue;
      }
      names_.push_back(name);
    }
    out.push_back({name, *step, d});
  }
}

absl::StatusOr<DvcOutput> ParseDvcPointer(absl::string_view pointer_path, absl::string_view text) {
  bool in_outs = false, in_first = false;
  std::string md5, path;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    absl::string_view line = absl::StripTrailingAsciiWhitespace(raw);
    if (line.empty() || absl::StripLeadingAsciiWhitespace(line).substr(0, 1) == "#") continue;
    if (line[0] != ' ' && line[0] != '-') {  // a top-level key
      if (in_first) break;
      in_outs = line == "outs:";
      continue;
    }
    if (!in_outs) continue;
    absl::string_view item = absl::StripLeadingAsciiWhitespace(line);
    if (absl::ConsumePrefix(&item, "- ") || item == "-") {
      if (in_first) break;  // the second output
      in_first = true;
      item = absl::StripLeadingAsciiWhitespace(item);
    }
    if (!in_first) continue;
    const size_t colon = item.find(':');
    if (colon == absl::string_view::npos) continue;
    const absl::string_view key = item.substr(0, colon);
    absl::string_view value = absl::StripAsciiWhitespace(item.substr(colon + 1));
    if (value.size() >= 2 && (value.front() == '\'' || value.front() == '"') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    if (key == "md5") md5 = std::string(value);
    if (key == "path") path = std::string(value);
  }
  bool dir = false;
  if (md5.size() == 36 && md5.compare(32, 4, ".dir") == 0) {
    md5.resize(32);
    dir = true;
  }
  const bool hex = md5.size() == 32 && std::all_of(md5.begin(), md5.end(), [](char c) {
                     return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                   });
  if (!hex || path.empty() || path[0] == '/' || path.find("..") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("DVC file ", pointer_path,
                     ": no output with an md5 (32 hex digits) and a relative path under outs:"));
  }
  DvcOutput out;
  const size_t slash = pointer_path.rfind('/');
  out.path = slash == absl::string_view::npos
                 ? path
                 : absl::StrCat(pointer_path.substr(0, slash + 1), path);
  if (dir && out.path.back() != '/') out.path += '/';
  out.md5 = std::move(md5);
  return out;
}

std::string TrainShellText(const evals::TrainSpec& spec, int step_index,
                           std::optional<int64_t> resume_step) {
  const std::string base = absl::StrCat("\"$PWD\"/.assay/train/", step_index);
  std::string text = absl::StrCat("export ASSAY_MODEL_DIR=\"$PWD\"/", SingleQuoted(spec.model_dir),
                                  "\n", "export ASSAY_CHECKPOINT_DIR=", base, "/checkpoints\n",
                                  "export ASSAY_METRICS_FILE=", base, "/metrics.jsonl\n",
                                  "export ASSAY_PARAMS=", SingleQuoted(spec.params_json), "\n");
  if (resume_step.has_value()) {
    absl::StrAppend(&text, "export ASSAY_RESUME_STEP=", *resume_step, "\n");
  }
  absl::StrAppend(&text, "mkdir -p \"$ASSAY_MODEL_DIR\" \"$ASSAY_CHECKPOINT_DIR\"\n",
                  ": > \"$ASSAY_METRICS_FILE\"\n", spec.command);
  return text;
}

std::shared_ptr<StepDriver> MakePromoteDriver(TrainStepContext ctx) {
  auto shared = std::make_shared<const TrainStepContext>(std::move(ctx));
  auto driver = std::make_shared<StepDriver>();
  driver->start = []() -> absl::StatusOr<std::string> { return std::string(":"); };
  driver->drive = [shared](const std::atomic<bool>&, CancelFlag&) -> absl::Status {
    const TrainStepContext& c = *shared;
    v1::PromoteRequest req;
    req.set_job_id(c.assignment.job_id());
    req.set_attempt_token(c.assignment.attempt_token());
    req.set_step_index(c.step_index);
    v1::PromoteResponse resp;
    grpc::Status s = Call(
        c, [&](grpc::ClientContext* cc) { return c.stub->Promote(cc, req, &resp); }, 3);
    if (!s.ok())
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                          absl::StrCat("promote: ", s.error_message()));
    c.log(absl::StrCat("assay: promote: ", resp.message(), "\n"));
    return absl::OkStatus();
  };
  return driver;
}

std::shared_ptr<StepDriver> MakeTrainDriver(evals::TrainSpec spec, TrainStepContext ctx) {
  auto run = std::make_shared<TrainRun>(std::move(spec), std::move(ctx));
  auto driver = std::make_shared<StepDriver>();
  driver->start = [run] { return run->Start(); };
  driver->drive = [run](const std::atomic<bool>& exited, CancelFlag& cancel) {
    return run->Drive(exited, cancel);
  };
  driver->process_must_succeed = true;
  driver->after_success = [run] { return run->AfterSuccess(); };
  return driver;
}

grpc::Status StepRpc(const TrainStepContext& ctx,
                     const std::function<grpc::Status(grpc::ClientContext*)>& fn, int attempts,
                     absl::Duration deadline, absl::Duration backoff) {
  grpc::Status s;
  for (int i = 0; i < attempts; ++i) {
    if (i > 0) absl::SleepFor(backoff);
    grpc::ClientContext c;
    c.AddMetadata("authorization", "Bearer " + ctx.bearer);
    c.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    s = fn(&c);
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE &&
        s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      break;
    }
  }
  return s;
}

}  // namespace assay
