#include "server/agents/agent_service.h"

#include "server/scheduler/explain.h"
#include "server/scheduler/requirements.h"

#include <boost/asio/post.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <deque>
#include <optional>
#include <regex>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/log.h"
#include "common/crypto/agent_secret.h"
#include "common/crypto/crypto.h"

namespace assay {
namespace {

using Reactor = grpc::ServerBidiReactor<v1::AgentMessage, v1::ServerMessage>;

// Limits on what a Hello announces (agent input).
constexpr int kMaxLabels = 64;
constexpr int kMaxGpus = 256;
constexpr int kMaxHeldJobs = 4096;
constexpr size_t kMaxVersion = 200;
// The longest "why no jobs" an agent may send (Hello.not_accepting_reason, AgentState.reason).
constexpr size_t kMaxStateReason = 300;

// kInvalidArgument unless `reason` is a short line of text: it is shown in the API and in
// waiting jobs' sentences.
absl::Status CheckStateReason(const std::string& reason, const char* field) {
  if (reason.size() > kMaxStateReason) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be at most ", kMaxStateReason, " bytes"));
  }
  for (unsigned char c : reason) {
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(field, " must not hold control characters"));
    }
  }
  return absl::OkStatus();
}

// The Drain message that tells an agent about `drain`, as of `now`.
v1::ServerMessage DrainMessage(const store::AgentDrain& drain, absl::Time now) {
  v1::ServerMessage m;
  auto* d = m.mutable_drain();
  d->set_resume(!drain.drained);
  d->set_reason(drain.reason);
  if (drain.drained && drain.deadline.has_value()) {
    d->set_cancel_after_ms(std::max<int64_t>(0, absl::ToInt64Milliseconds(*drain.deadline - now)));
  }
  return m;
}

const std::regex& LabelPattern() {
  static const std::regex kLabel("^[A-Za-z0-9][A-Za-z0-9_.:/=+\\-]{0,99}$");
  return kLabel;
}

constexpr char kCredentialPrefix[] = "Bearer assay-agent-";

std::string JobStateOf(v1::JobOutcome o) {
  switch (o) {
    case v1::JOB_OUTCOME_SUCCEEDED: return "succeeded";
    case v1::JOB_OUTCOME_FAILED: return "failed";
    case v1::JOB_OUTCOME_TIMED_OUT: return "timed_out";
    case v1::JOB_OUTCOME_CANCELED: return "canceled";
    case v1::JOB_OUTCOME_ERROR: return "error";
    case v1::JOB_OUTCOME_AGENT_STOPPED: return store::kAgentStopped;
    default: return "";
  }
}

class Session;

// The Dispatcher's handle on a session; outlives the reactor safely (Send after the stream
// ended returns false).
class SessionChannel final : public AgentChannel {
 public:
  explicit SessionChannel(Session* s) : session_(s) {}
  bool Send(const v1::ServerMessage& msg) override;
  void Close(const std::string& reason) override;
  void CloseWith(const grpc::Status& status);
  void ApplyDrain(const store::AgentDrain& drain);
  void Detach() {
    absl::MutexLock l(&mu_);
    session_ = nullptr;
  }

 private:
  absl::Mutex mu_;
  Session* session_ ABSL_GUARDED_BY(mu_);
};

class Session final : public Reactor {
 public:
  Session(AgentServiceImpl* svc, grpc::CallbackServerContext* ctx)
      : svc_(svc),
        deps_(svc->deps()),
        peer_(ctx->peer()),
        channel_(std::make_shared<SessionChannel>(this)) {
    auto md = ctx->client_metadata();
    auto it = md.find("authorization");
    std::string given = it == md.end() ? "" : std::string(it->second.data(), it->second.size());
    if (deps_.credentials != nullptr && absl::StartsWith(given, kCredentialPrefix)) {
      // Checked against the database in OnHello, on the pool (not on gRPC's thread).
      auto cred = ParseAgentSecret(given.substr(7), AgentSecretKind::kCredential);
      if (!cred.ok()) {
        LogWarn("agents", "refused a stream from ", peer_, ": malformed agent credential");
        FinishOnce(
            grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown or revoked agent credential"));
        return;
      }
      credential_hash_ = AgentSecretHash(*cred);
      absl::MutexLock l(&mu_);
      MaybeReadLocked();
      return;
    }
    // Why the emptiness check: an empty shared token would match "Bearer " from anyone.
    if (!deps_.allow_shared_token || deps_.agent_token.empty() ||
        !ConstantTimeEquals(Sha256(given), Sha256("Bearer " + deps_.agent_token))) {
      LogWarn("agents", "refused a stream from ", peer_, ": bad or missing agent token");
      FinishOnce(grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                              "missing or invalid agent token (authorization: Bearer <token>)"));
      return;
    }
    absl::MutexLock l(&mu_);
    MaybeReadLocked();
  }

  // False when the stream has finished or is ending (its queue was full): the message will
  // never be written.
  bool Enqueue(const v1::ServerMessage& msg) {
    if (msg.has_assignment() && msg.assignment().secrets_size() > 0) {
      std::vector<std::string> values;
      for (const auto& sec : msg.assignment().secrets()) {
        if (!sec.value().empty()) values.push_back(sec.value());
      }
      svc_->ingest_masks().Remember(msg.assignment().attempt_token(), values);
    }
    absl::MutexLock l(&mu_);
    if (finished_ || overflowed_) return false;
    const size_t size = msg.ByteSizeLong();
    if (out_.size() >= deps_.max_outbound_messages ||
        out_bytes_ + size > deps_.max_outbound_bytes) {
      OverflowLocked();
      return false;
    }
    if (msg.has_assignment()) owned_.insert(msg.assignment().attempt_token());
    out_.push_back(msg);
    out_bytes_ += size;
    svc_->NoteOutbound(out_.size());
    if (!writing_) {
      writing_ = true;
      StartWrite(&out_.front());
    }
    return true;
  }

  void FinishOnce(const grpc::Status& status) {
    absl::MutexLock l(&mu_);
    if (finished_ || finish_requested_) return;
    finish_requested_ = true;
    finish_status_ = status;
    // Why deferred: a Finish while a write is in flight would race it; OnWriteDone finishes.
    if (!writing_) {
      finished_ = true;
      Finish(finish_status_);
    }
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock l(&mu_);
    out_bytes_ -= out_.front().ByteSizeLong();
    out_.pop_front();
    if (ok && !out_.empty() && !finished_) {
      StartWrite(&out_.front());
      return;
    }
    writing_ = false;
    if (!ok) {
      // The stream broke: the messages behind the failed one were never written. Their
      // assignments go back to the queue when the session ends (the failed one itself may
      // have reached the agent; a reconnect or its lease settles it).
      for (size_t i = 1; i < out_.size(); ++i) {
        if (out_[i].has_assignment()) {
          undelivered_.push_back(
              {out_[i].assignment().job_id(), out_[i].assignment().attempt_token()});
        }
      }
      out_.clear();
      out_bytes_ = 0;
    }
    if (finish_requested_ && !finished_) {
      finished_ = true;
      Finish(finish_status_);
    }
  }

  // REQUIRES: mu_ held. The outbound queue is full: the agent is not reading. Drops what is
  // queued behind the write in flight (its assignments go back to the queue when the session
  // ends) and ends the stream once that write completes. Why not wait for room: the messages
  // come from the handler tasks and the dispatcher, which must never block on one agent.
  void OverflowLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    overflowed_ = true;
    const size_t queued = out_.size();
    for (size_t i = writing_ ? 1 : 0; i < out_.size(); ++i) {
      if (out_[i].has_assignment()) {
        undelivered_.push_back(
            {out_[i].assignment().job_id(), out_[i].assignment().attempt_token()});
      }
    }
    while (out_.size() > (writing_ ? 1u : 0u)) {
      out_bytes_ -= out_.back().ByteSizeLong();
      out_.pop_back();
    }
    // Why the peer, not name_: this runs on any thread that sends (name_ is the handlers').
    LogWarn("agents", "closing the agent stream from ", peer_, ": its outbound queue is full (",
            queued, " messages); the agent is not reading");
    if (finished_ || finish_requested_) return;
    finish_requested_ = true;
    finish_status_ = grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("the server's queue for this stream is full (", queued,
                     " messages unread); reconnect and resend what was not acknowledged"));
    if (!writing_) {
      finished_ = true;
      Finish(finish_status_);
    }
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the agent closed its side or the stream broke
      {
        absl::MutexLock l(&mu_);
        reading_ = false;
      }
      FinishOnce(grpc::Status::OK);
      return;
    }
    v1::AgentMessage msg = std::move(in_);
    bool post_logs = false, post_msg = false;
    {
      absl::MutexLock l(&mu_);
      reading_ = false;
      // A read that was under way when a handler chose to end the stream: as if never read
      // (nothing after such a message was ever handled; the agent resends what matters).
      if (stop_reading_) return;
      // Why agent_id_ may be read here: the hello's task set it before the StartRead (under
      // mu_) that led to this read.
      if (agent_id_ != 0 && msg.has_log() && WellFormed(msg.log())) {
        log_batch_bytes_ += msg.log().data().size();
        log_batch_.push_back(std::move(*msg.mutable_log()));
        if (!log_task_) {
          log_task_ = true;
          ++tasks_;
          post_logs = true;
        }
        MaybeReadLocked();  // the next chunks join the batch while this one is stored
      } else {
        ++tasks_;
        handling_ = true;
        // Why wait: the message must see the chunks read before it stored (a result after
        // its log, an error after the good chunks before it).
        if (log_task_) {
          after_logs_ = std::move(msg);
        } else {
          post_msg = true;
        }
      }
    }
    // Why a pool: handling touches PostgreSQL; gRPC's callback threads must not block.
    if (post_logs) svc_->Post([this] { StoreLogs(); });
    if (post_msg) PostHandle(std::move(msg));
  }

  void OnDone() override {
    channel_->Detach();
    bool idle;
    {
      absl::MutexLock l(&mu_);
      done_ = true;
      idle = tasks_ == 0;
    }
    // Why not here: ending the session writes to PostgreSQL, and gRPC's callback threads
    // must not block. Why after the last handler task: it must see what Hello set (and a
    // Hello still running must not connect the agent after its disconnect). The task that
    // runs EndSession deletes this.
    if (idle) svc_->Post([this] { EndSession(); });
  }

 private:
  void SendAck(int64_t job_id, const std::string& token, uint64_t seq, bool result, bool refused,
               const std::string& message = "") {
    v1::ServerMessage m;
    auto* a = m.mutable_ack();
    a->set_job_id(job_id);
    a->set_attempt_token(token);
    a->set_log_seq(seq);
    a->set_result_recorded(result);
    a->set_refused(refused);
    a->set_message(message);
    Enqueue(m);
  }

  // REQUIRES: mu_ held. Starts the next read unless one is outstanding, a message other than
  // a log chunk is being handled (messages are handled one at a time, in order), a handler
  // ended the stream, or the chunks waiting to be stored reach the batch bounds (the task
  // storing them reads on once it takes them).
  void MaybeReadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reading_ || handling_ || stop_reading_ || finished_ || finish_requested_) return;
    if (log_batch_.size() >= deps_.max_log_batch_chunks ||
        log_batch_bytes_ >= deps_.max_log_batch_bytes) {
      return;
    }
    reading_ = true;
    StartRead(&in_);
  }

  // A chunk OnLog would not refuse for its form (those go through Handle, to end the stream
  // after the chunks before them are stored and acknowledged).
  bool WellFormed(const v1::LogChunk& c) const {
    return c.seq() >= 1 && c.seq() <= static_cast<uint64_t>(INT64_MAX) && !c.data().empty() &&
           c.data().size() <= deps_.max_log_chunk_bytes;
  }

  // Handles `msg` on the pool (one task counted in tasks_, handling_ set), then reads on.
  void PostHandle(v1::AgentMessage msg) {
    svc_->Post([this, msg = std::move(msg)]() mutable {
      bool keep_reading = Handle(msg);
      bool last;
      {
        absl::MutexLock l(&mu_);
        --tasks_;
        handling_ = false;
        if (!keep_reading) stop_reading_ = true;
        MaybeReadLocked();
        last = done_ && tasks_ == 0;
      }
      if (last) EndSession();
    });
  }

  // The log task (one at a time, counted in tasks_): stores the waiting chunks batch by batch
  // (one transaction each) until none is left, then hands over to a message that waited
  // behind them.
  void StoreLogs() {
    bool keep = true;
    std::vector<v1::LogChunk> batch;
    while (true) {
      std::optional<v1::AgentMessage> next;
      bool ended = false, last = false;
      {
        // Why take the next batch and end the task under one lock: a chunk read in between
        // must either join a batch or start a new task (log_task_ false), never neither.
        absl::MutexLock l(&mu_);
        if (keep && !log_batch_.empty()) {
          batch.clear();
          batch.swap(log_batch_);
          log_batch_bytes_ = 0;
          MaybeReadLocked();  // room again: read on while this batch is stored
        } else {
          ended = true;
          log_task_ = false;
          --tasks_;
          if (!keep) {
            stop_reading_ = true;
            log_batch_.clear();
            log_batch_bytes_ = 0;
          }
          if (after_logs_.has_value()) {
            if (keep) {
              next = std::move(after_logs_);
            } else {  // the stream is ending: not handled (the agent resends what matters)
              --tasks_;
              handling_ = false;
            }
            after_logs_.reset();
          }
          last = done_ && tasks_ == 0;
        }
      }
      if (ended) {
        if (next.has_value()) PostHandle(std::move(*next));
        if (last) EndSession();
        return;
      }
      keep = OnLogs(batch);
    }
  }

  // Stores well-formed chunks (WellFormed) in one transaction and acknowledges each, as OnLog
  // does one by one. False when the stream is being closed (the database failed: nothing of
  // the batch is acknowledged, and the agent resends it after reconnecting).
  bool OnLogs(const std::vector<v1::LogChunk>& batch) {
    std::vector<store::LogAppend> appends;
    std::vector<const v1::LogChunk*> kept;
    std::deque<std::string> masked;  // owns the masked data the appends point to
    for (const v1::LogChunk& c : batch) {
      if (Ownership o = Owner(c.job_id(), c.attempt_token()); o != Ownership::kMineOrNone) {
        if (o == Ownership::kUnknown) return DatabaseFailed(absl::UnavailableError("database"));
        SendAck(c.job_id(), c.attempt_token(), 0, false, true, kNotYours);
        continue;
      }
      std::string_view data = c.data();
      if (auto m = svc_->ingest_masks().Mask(c.attempt_token(), data); m.has_value()) {
        data = masked.emplace_back(std::move(*m));
      }
      appends.push_back(
          {c.job_id(), c.attempt_token(), static_cast<int64_t>(c.seq()), data, c.read_unix_us()});
      kept.push_back(&c);
    }
    if (appends.empty()) return true;
    auto f = deps_.jobs->AppendLogs(appends, deps_.job_log_limit_bytes);
    if (!f.ok()) {  // not acknowledged: the stream ends and the agent resends them
      LogWarn("agents", "agent ", name_, ": storing ", appends.size(), " log chunk(s) from ",
              kept.front()->seq(), " of job ", kept.front()->job_id(),
              " failed: ", f.status().ToString());
      return DatabaseFailed(f.status());
    }
    for (size_t i = 0; i < kept.size(); ++i) {
      const store::Fence fence = (*f)[i];
      SendAck(
          kept[i]->job_id(), kept[i]->attempt_token(), kept[i]->seq(), false,
          fence == store::Fence::kStale,
          fence == store::Fence::kDropped ? "the job's log quota is reached; chunk dropped" : "");
    }
    return true;
  }

  // On the pool, once: the stream is done and no handler task runs or will run.
  void EndSession() {
    std::vector<store::HeldAttempt> undelivered;
    {
      absl::MutexLock l(&mu_);
      undelivered.swap(undelivered_);
    }
    if (agent_id_ != 0) {
      svc_->UnregisterSession(agent_id_, this);
      deps_.dispatcher->AgentDisconnected(agent_id_, channel_.get());
      for (const auto& u : undelivered) {
        auto f = deps_.jobs->Unassign(
            u.job_id, u.attempt_token,
            "not delivered: the agent's stream broke before the assignment was sent");
        if (!f.ok()) {
          LogWarn("agents", "agent ", name_, ": job ", u.job_id,
                  " was never sent to it, but "
                  "queuing it again failed (it is requeued when its lease expires): ",
                  f.status().ToString());
        }
      }
      if (!undelivered.empty()) deps_.dispatcher->Kick();
      // Each change below applies only while this session is the agent's current one: after
      // a reconnect (here or to another server) the newer session owns the agent and its
      // leases.
      auto current = deps_.agents->Disconnect(session_);
      if (!current.ok()) {
        LogWarn("agents", "agent ", name_, " (", agent_id_,
                "): marking it offline failed: ", current.status().ToString(),
                "; it shows online until it reconnects");
      }
      // Why shorten: a stream that ends while this server runs usually means the agent died;
      // its jobs wait only the reconnect grace, not the whole lease. On server shutdown the
      // agents reconnect elsewhere and keep their leases. Nor when this server ended the
      // stream because the database failed: the agent is alive and comes back to resend what
      // was not recorded.
      if (!deps_.dispatcher->closing() && !database_failed_.load() && (!current.ok() || *current)) {
        auto shortened = deps_.jobs->ShortenLeases(session_, deps_.reconnect_grace);
        if (!shortened.ok()) {
          LogWarn("agents", "agent ", name_, " (", agent_id_,
                  "): shortening its leases to the "
                  "reconnect grace failed: ",
                  shortened.status().ToString(),
                  "; its jobs are requeued when their full lease expires");
        }
      }
      LogInfo("agents", "agent ", name_, " (", agent_id_, ") disconnected",
              current.ok() && !*current ? " (an old session: it had reconnected)" : "");
    }
    svc_->SessionEnded();
    delete this;
  }

  void Fail(grpc::StatusCode code, const std::string& msg) {
    LogWarn("agents", "closing stream of ", name_.empty() ? "unnamed agent" : name_, ": ", msg);
    FinishOnce(grpc::Status(code, msg));
  }

  // A report could not be recorded (the database failed): ends the stream, so that the agent
  // reconnects and resends everything unacknowledged (log chunks, then results) on a new one.
  // Why not just leave it unacknowledged: the agent resends only after a reconnect, so a result
  // would wait forever (holding its slot here), and a later result's ack, which covers its log
  // sequence numbers, would drop the chunks that were never stored. Returns false.
  bool DatabaseFailed(const absl::Status& s) {
    database_failed_ = true;
    Fail(grpc::StatusCode::UNAVAILABLE,
         absl::StrCat("could not record a report (", s.message(), "); reconnect and resend"));
    return false;
  }

  // Returns false when the stream is being closed.
  bool Handle(const v1::AgentMessage& msg) {
    if (agent_id_ == 0 && !msg.has_hello()) {
      Fail(grpc::StatusCode::INVALID_ARGUMENT, "the first message on a stream must be hello");
      return false;
    }
    switch (msg.msg_case()) {
      case v1::AgentMessage::kHello: return OnHello(msg.hello());
      case v1::AgentMessage::kHeartbeat: return OnHeartbeat(msg.heartbeat());
      case v1::AgentMessage::kAccepted: return OnAccepted(msg.accepted());
      case v1::AgentMessage::kRejected: return OnRejected(msg.rejected());
      case v1::AgentMessage::kLog: return OnLog(msg.log());
      case v1::AgentMessage::kResult: return OnResult(msg.result());
      case v1::AgentMessage::kState: return OnAgentState(msg.state());
      default:
        Fail(grpc::StatusCode::INVALID_ARGUMENT, "empty or unknown agent message");
        return false;
    }
  }

  bool OnHello(const v1::Hello& h) {
    if (agent_id_ != 0) {
      Fail(grpc::StatusCode::INVALID_ARGUMENT, "hello sent twice on one stream");
      return false;
    }
    static const std::regex kName("^[A-Za-z0-9][A-Za-z0-9_.\\-]{0,99}$");
    if (!std::regex_match(h.name(), kName)) {
      Fail(grpc::StatusCode::INVALID_ARGUMENT,
           "hello.name must be 1-100 characters of letters, digits, '_', '.', '-'");
      return false;
    }
    if (h.cpu_slots() < 1 || h.cpu_slots() > 1024) {
      Fail(grpc::StatusCode::INVALID_ARGUMENT, "hello.cpu_slots must be between 1 and 1024");
      return false;
    }
    if (h.labels_size() > kMaxLabels || h.gpus_size() > kMaxGpus ||
        h.held_jobs_size() > kMaxHeldJobs || h.version().size() > kMaxVersion) {
      Fail(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("hello has too much: at most ", kMaxLabels, " labels, ", kMaxGpus, " GPUs, ",
                       kMaxHeldJobs, " held jobs and a ", kMaxVersion, "-byte version"));
      return false;
    }
    for (const auto& l : h.labels()) {
      if (!std::regex_match(l, LabelPattern())) {
        Fail(grpc::StatusCode::INVALID_ARGUMENT,
             "hello.labels: each must be 1-100 characters of letters, digits, "
             "'_', '.', ':', '/', '=', '+', '-'");
        return false;
      }
    }
    store::AgentHello ah;
    if (!credential_hash_.empty()) {
      if (!CheckIdentity(h, &ah)) return false;
    }
    ah.name = h.name();
    ah.version = h.version();
    ah.cpu_slots = static_cast<int>(h.cpu_slots());
    if (!(h.memory_gb() >= 0) || h.memory_gb() > 1e6) {
      Fail(grpc::StatusCode::INVALID_ARGUMENT, "hello.memory_gb must be between 0 and 1000000");
      return false;
    }
    ah.memory_gb = h.memory_gb();
    ah.accept_untrusted = h.accept_untrusted();
    if (absl::Status r = CheckStateReason(h.not_accepting_reason(), "hello.not_accepting_reason");
        !r.ok()) {
      Fail(grpc::StatusCode::INVALID_ARGUMENT, std::string(r.message()));
      return false;
    }
    if (h.not_accepting()) {
      ah.not_accepting =
          h.not_accepting_reason().empty() ? "not taking jobs" : h.not_accepting_reason();
    }
    if (h.executors_size() > 3) {
      Fail(grpc::StatusCode::INVALID_ARGUMENT, "hello.executors has more than 3 entries");
      return false;
    }
    for (const auto& e : h.executors()) {
      if (e != "container" && e != "sandbox" && e != "host") {
        Fail(grpc::StatusCode::INVALID_ARGUMENT,
             "hello.executors: unknown executor (known: container, sandbox, host)");
        return false;
      }
      ah.executors.push_back(e);
    }
    for (const auto& l : h.labels()) ah.labels.push_back(l);
    boost::json::array gpus;
    for (const auto& g : h.gpus()) {
      gpus.push_back({{"index", g.index()},
                      {"uuid", g.uuid()},
                      {"name", g.name()},
                      {"memory_mb", g.memory_mb()}});
    }
    ah.gpus_json = boost::json::serialize(gpus);
    announced_gpus_ = gpus.size();
    auto session = deps_.agents->Connect(ah);
    if (!session.ok()) {
      Fail(session.status().code() == absl::StatusCode::kPermissionDenied
               ? grpc::StatusCode::PERMISSION_DENIED
               : grpc::StatusCode::UNAVAILABLE,
           std::string(session.status().message()));
      return false;
    }
    const int64_t* id = &session->id;
    agent_id_ = *id;  // for Owner below; the session starts only if the rest succeeds
    name_ = h.name();
    std::vector<store::HeldAttempt> held;
    std::set<int64_t> foreign;  // held jobs whose attempt was given to another agent
    for (const auto& j : h.held_jobs()) {
      Ownership o = Owner(j.job_id(), j.attempt_token());
      if (o == Ownership::kUnknown) {
        agent_id_ = 0;
        Fail(grpc::StatusCode::UNAVAILABLE, "database unavailable");
        return false;
      }
      if (o == Ownership::kOther) {
        foreign.insert(j.job_id());
        continue;
      }
      held.push_back({j.job_id(), j.attempt_token()});
    }
    auto stale = deps_.jobs->Heartbeat(held, deps_.dispatcher->options().lease);
    auto released = deps_.jobs->ReleaseUnheld(*id, held);
    if (!stale.ok() || !released.ok()) {
      agent_id_ = 0;
      Fail(grpc::StatusCode::UNAVAILABLE, "database unavailable");
      return false;
    }
    session_ = *session;
    v1::ServerMessage m;
    auto* w = m.mutable_welcome();
    w->set_agent_id(agent_id_);
    w->set_heartbeat_interval_ms(
        static_cast<uint32_t>(absl::ToInt64Milliseconds(deps_.heartbeat_interval)));
    w->set_lease_ms(
        static_cast<uint32_t>(absl::ToInt64Milliseconds(deps_.dispatcher->options().lease)));
    std::set<int64_t> finished;
    for (const auto& j : h.held_jobs()) {
      bool is_stale = foreign.contains(j.job_id());
      for (const auto& s : *stale) is_stale |= s.job_id == j.job_id();
      if (j.finished()) finished.insert(j.job_id());
      // Finished results are checked when they arrive; only running ones are reported stale.
      if (is_stale && !j.finished()) *w->add_stale_jobs() = j;
    }
    // What its live jobs hold (CPUs, memory, GPUs), from the database: the agent may have
    // been placed by another server before this connection.
    auto live = deps_.jobs->LiveJobsOf(*id);
    if (!live.ok()) {
      agent_id_ = 0;
      Fail(grpc::StatusCode::UNAVAILABLE, "database unavailable");
      return false;
    }
    std::map<int64_t, JobUse> busy;
    for (const auto& j : *live) {
      // A job whose result is merely waiting to be delivered holds nothing.
      if (finished.contains(j.job_id)) continue;
      JobRequirements req = RequirementsFromJson(j.labels, j.requirements_json);
      busy[j.job_id] = JobUse{req.cpus, req.memory_gb, j.gpu_indices, req.gpu_shared};
    }
    AgentCapacity cap;
    cap.agent_id = agent_id_;
    cap.name = name_;
    cap.labels = ah.labels;
    cap.cpus_total = ah.cpu_slots;
    cap.memory_gb_total = ah.memory_gb;
    cap.accepts_untrusted = ah.accept_untrusted;
    {
      absl::MutexLock l(&state_mu_);
      agent_reason_ = ah.not_accepting;
      drain_ = session->drain;
    }
    cap.executors = ah.executors.empty() ? std::vector<std::string>{"host"} : ah.executors;
    for (const auto& g : h.gpus()) {
      GpuSlot slot;
      slot.index = g.index();
      slot.uuid = g.uuid();
      slot.model = g.name();
      slot.memory_mb = g.memory_mb();
      cap.gpus.push_back(std::move(slot));
    }
    Enqueue(m);
    std::weak_ptr<SessionChannel> weak = channel_;
    svc_->RegisterSession(
        agent_id_, this,
        [weak](const grpc::Status& st) {
          if (auto c = weak.lock()) c->CloseWith(st);
        },
        [weak](const store::AgentDrain& d) {
          if (auto c = weak.lock()) c->ApplyDrain(d);
        });
    LogInfo("agents", "agent ", name_, " (", agent_id_, ") connected",
            credential_hash_.empty() ? " with the shared agent token" : " with its credential",
            ": ", h.cpu_slots(), " slot(s), ", h.held_jobs_size(), " held job(s)");
    {
      // Why under state_mu_ up to AgentConnected: a drain applied meanwhile (ApplyDrain, from
      // another thread) must reach the dispatcher after the agent is there, not before.
      absl::MutexLock l(&state_mu_);
      if (drain_.drained) Enqueue(DrainMessage(drain_, absl::Now()));
      cap.not_accepting = NotAcceptingPhrase(drain_, agent_reason_);
      if (!cap.not_accepting.empty()) {
        LogInfo("agents", "agent ", name_, " takes no jobs: it is ", cap.not_accepting);
      }
      deps_.dispatcher->AgentConnected(std::move(cap), std::move(busy), channel_);
    }
    deps_.dispatcher->Kick();
    return true;
  }

 public:
  // An admin drained or resumed the agent (or the periodic check saw it): tells the agent and
  // the dispatcher when it changed. Any thread; idempotent.
  void ApplyDrain(const store::AgentDrain& drain) {
    v1::ServerMessage m;
    {
      absl::MutexLock l(&state_mu_);
      if (drain.drained == drain_.drained && drain.reason == drain_.reason &&
          drain.deadline == drain_.deadline) {
        return;
      }
      drain_ = drain;
      m = DrainMessage(drain_, absl::Now());
      deps_.dispatcher->SetNotAccepting(agent_id_, NotAcceptingPhrase(drain_, agent_reason_));
    }
    LogInfo("agents", "agent ", agent_id_, drain.drained ? " drained" : " resumed",
            drain.reason.empty() ? "" : ": ", drain.reason);
    Enqueue(m);
  }

 private:
  // The agent's own state (lifecycle): it applies to this stream's agent only; no message can
  // name another one.
  bool OnAgentState(const v1::AgentState& st) {
    if (absl::Status r = CheckStateReason(st.reason(), "state.reason"); !r.ok()) {
      Fail(grpc::StatusCode::INVALID_ARGUMENT, std::string(r.message()));
      return false;
    }
    std::string reason;
    if (!st.accepting()) reason = st.reason().empty() ? "not taking jobs" : st.reason();
    {
      absl::MutexLock l(&state_mu_);
      // Why: an agent repeating its state costs no write and no log line.
      if (reason == agent_reason_) return true;
      agent_reason_ = reason;
      deps_.dispatcher->SetNotAccepting(agent_id_, NotAcceptingPhrase(drain_, agent_reason_));
    }
    LogInfo("agents", "agent ", name_,
            reason.empty() ? " takes jobs again" : absl::StrCat(" takes no jobs: ", reason));
    // Why after the dispatcher: this server stops at once; the row tells the other servers'
    // claims and the waiting sentences. A failure leaves the row stale until the next state or
    // Hello (the dispatcher here, which alone sends to this agent, is right already).
    auto current = deps_.agents->SetNotAccepting(session_, reason);
    if (!current.ok()) {
      LogWarn("agents", "agent ", name_,
              ": recording its state failed: ", current.status().ToString());
    }
    return true;
  }

  bool OnHeartbeat(const v1::Heartbeat& hb) {
    if (hb.gpus_size() > 0) RecordGpuUsage(hb);
    if (hb.running_size() == 0) return true;  // nothing to extend; the stream itself is alive
    std::vector<store::HeldAttempt> held;
    for (const auto& j : hb.running()) {
      // Another agent's attempt keeps no lease alive from here; an unknown answer skips it
      // this once (the next heartbeat retries).
      if (Owner(j.job_id(), j.attempt_token()) != Ownership::kMineOrNone) continue;
      held.push_back({j.job_id(), j.attempt_token()});
    }
    if (held.empty()) return true;
    auto stale = deps_.jobs->Heartbeat(held, deps_.dispatcher->options().lease);
    if (!stale.ok()) {  // transient; the next heartbeat retries
      LogWarn("agents", "agent ", name_, ": extending ", held.size(),
              " lease(s) failed: ", stale.status().ToString());
      return true;
    }
    for (const auto& s : *stale) {
      deps_.dispatcher->SendCancel(agent_id_, s.job_id, s.attempt_token,
                                   "this attempt is no longer valid (lease lost)");
      deps_.dispatcher->JobReleased(agent_id_, s.job_id);
    }
    return true;
  }

  // Issue 11: the result's step marks as JSON, or "" when there are none or they are not
  // well-formed (then dropped whole, with a warning: the result still counts).
  std::string StepMarksJson(const v1::JobResult& r) {
    if (r.steps_size() == 0) return "";
    boost::json::array marks;
    bool ok = r.steps_size() <= 1000;
    uint64_t last = 0;
    int32_t last_index = -1;
    for (const auto& m : r.steps()) {
      ok = ok && m.index() > last_index && m.log_offset() >= last && m.name().size() <= 200;
      last = m.log_offset();
      last_index = m.index();
      marks.push_back(
          {{"index", m.index()},
           {"name", m.name()},
           {"log_offset", m.log_offset()},
           {"started_at", m.started_unix_ms() > 0
                              ? boost::json::value(absl::FormatTime(
                                    "%Y-%m-%dT%H:%M:%E3SZ",
                                    absl::FromUnixMillis(m.started_unix_ms()), absl::UTCTimeZone()))
                              : boost::json::value(nullptr)}});
    }
    if (!ok) {
      LogWarn("agents", "agent ", name_, ": job ", r.job_id(), ": dropped ", r.steps_size(),
              " malformed step mark(s)");
      return "";
    }
    return boost::json::serialize(marks);
  }

  // Issue 11: the heartbeat's GPU load, for the agents page. At most as many entries as the
  // agent announced GPUs (a hostile agent cannot grow the row), utilization clamped to -1..100.
  void RecordGpuUsage(const v1::Heartbeat& hb) {
    boost::json::array usage;
    for (const auto& g : hb.gpus()) {
      if (usage.size() >= announced_gpus_) break;
      usage.push_back({{"index", g.index()},
                       {"utilization_pct", std::clamp(g.utilization_pct(), -1, 100)},
                       {"memory_used_mb", g.memory_used_mb()}});
    }
    if (usage.empty()) return;
    absl::Status s = deps_.agents->SetGpuUsage(agent_id_, boost::json::serialize(usage));
    if (!s.ok()) LogWarn("agents", "agent ", name_, ": recording GPU load failed: ", s.ToString());
  }

  bool OnAccepted(const v1::JobAccepted& a) {
    if (Owner(a.job_id(), a.attempt_token()) != Ownership::kMineOrNone) return true;
    auto f = deps_.jobs->MarkRunning(a.job_id(), a.attempt_token());
    if (!f.ok()) {
      // The job stays 'assigned' (still live, its lease extended by heartbeats) until its
      // result arrives; only its start time is missing.
      LogWarn("agents", "agent ", name_, ": marking job ", a.job_id(),
              " running failed: ", f.status().ToString());
    } else if (*f == store::Fence::kStale) {
      deps_.dispatcher->SendCancel(agent_id_, a.job_id(), a.attempt_token(),
                                   "this attempt is no longer valid");
      deps_.dispatcher->JobReleased(agent_id_, a.job_id());
    }
    return true;
  }

  bool OnRejected(const v1::JobRejected& r) {
    // Why: a rejection requeues the job; another agent's must never be requeued from here.
    if (Owner(r.job_id(), r.attempt_token()) != Ownership::kMineOrNone) return true;
    auto f = deps_.jobs->Reject(r.job_id(), r.attempt_token(), r.reason());
    if (!f.ok()) {
      // The agent does not run it and will not report it: the job is requeued once its
      // lease expires (or at the agent's next Hello, which does not hold it).
      LogWarn("agents", "agent ", name_, " rejected job ", r.job_id(), " (", r.reason(),
              ") but recording that failed: ", f.status().ToString());
    }
    deps_.dispatcher->JobReleased(agent_id_, r.job_id());
    return true;
  }

  // A chunk with seq 0, no data or more than max_log_chunk_bytes is a protocol error that
  // ends the stream, unacknowledged and unstored. Why not acknowledge or skip it: an ack costs
  // a queued message and tells the agent it may forget the chunk, and nothing a well-behaved
  // agent sends looks like this (sequence numbers start at 1; empty output is not sent).
  bool OnLog(const v1::LogChunk& c) {
    if (c.seq() < 1 || c.seq() > static_cast<uint64_t>(INT64_MAX)) {
      Fail(grpc::StatusCode::INVALID_ARGUMENT, "log chunk seq must be >= 1");
      return false;
    }
    if (c.data().empty()) {
      Fail(grpc::StatusCode::INVALID_ARGUMENT, "log chunk data must not be empty");
      return false;
    }
    if (c.data().size() > deps_.max_log_chunk_bytes) {
      Fail(grpc::StatusCode::INVALID_ARGUMENT,
           absl::StrCat("log chunk data must be at most ", deps_.max_log_chunk_bytes,
                        " bytes, got ", c.data().size()));
      return false;
    }
    if (Ownership o = Owner(c.job_id(), c.attempt_token()); o != Ownership::kMineOrNone) {
      if (o == Ownership::kUnknown) return DatabaseFailed(absl::UnavailableError("database"));
      SendAck(c.job_id(), c.attempt_token(), 0, false, true, kNotYours);
      return true;
    }
    const std::optional<std::string> masked =
        svc_->ingest_masks().Mask(c.attempt_token(), c.data());
    auto f = deps_.jobs->AppendLog(c.job_id(), c.attempt_token(), static_cast<int64_t>(c.seq()),
                                   masked.has_value() ? *masked : c.data(),
                                   deps_.job_log_limit_bytes, c.read_unix_us());
    if (!f.ok()) {  // not acknowledged: the stream ends and the agent resends it
      LogWarn("agents", "agent ", name_, ": storing log chunk ", c.seq(), " of job ", c.job_id(),
              " failed: ", f.status().ToString());
      return DatabaseFailed(f.status());
    }
    SendAck(c.job_id(), c.attempt_token(), c.seq(), false, *f == store::Fence::kStale,
            *f == store::Fence::kDropped ? "the job's log quota is reached; chunk dropped" : "");
    return true;
  }

  bool OnResult(const v1::JobResult& r) {
    if (Ownership o = Owner(r.job_id(), r.attempt_token()); o != Ownership::kMineOrNone) {
      if (o == Ownership::kUnknown) return DatabaseFailed(absl::UnavailableError("database"));
      SendAck(r.job_id(), r.attempt_token(), 0, false, true, kNotYours);
      return true;
    }
    store::ResultReport rep;
    rep.job_id = r.job_id();
    rep.attempt_token = r.attempt_token();
    rep.state = JobStateOf(r.outcome());
    if (rep.state.empty()) {
      SendAck(r.job_id(), r.attempt_token(), 0, false, false, "result.outcome is unspecified");
      return true;
    }
    rep.exit_code = r.exit_code();
    rep.message = r.message();
    if (r.started_unix_ms() > 0) rep.started_at = absl::FromUnixMillis(r.started_unix_ms());
    if (r.finished_unix_ms() > 0) rep.finished_at = absl::FromUnixMillis(r.finished_unix_ms());
    // Issue 9, build_image: an agent's list is checked here; a bad one is dropped whole (the
    // result still counts), since the database would refuse it and the agent resend forever.
    bool images_ok = static_cast<size_t>(r.images_size()) <= store::kMaxJobImages;
    for (const v1::BuiltImage& image : r.images()) {
      images_ok = images_ok && store::IsImageDigest(image.digest()) && !image.reference().empty() &&
                  image.reference().size() <= 512;
      rep.images.push_back({0, image.reference(), image.digest(), image.primary()});
    }
    if (!images_ok) {
      LogWarn("agents", "agent ", name_, ": job ", r.job_id(), ": dropped ", r.images_size(),
              " malformed built image(s)");
      rep.images.clear();
    }
    rep.steps_json = StepMarksJson(r);
    auto out = deps_.jobs->Finish(rep);
    if (!out.ok()) {  // not acknowledged: the stream ends and the agent resends it
      LogWarn("agents", "agent ", name_, ": recording the result of job ", r.job_id(),
              " failed: ", out.status().ToString());
      return DatabaseFailed(out.status());
    }
    deps_.dispatcher->JobReleased(agent_id_, r.job_id());
    // Recorded (or refused for good): no chunk of the attempt is stored any more.
    svc_->ingest_masks().Forget(r.attempt_token());
    if (out->fence == store::Fence::kOk) {
      deps_.metrics->ObserveJobDuration(absl::ToDoubleSeconds(out->duration));
    }
    bool stale = out->fence == store::Fence::kStale;
    SendAck(r.job_id(), r.attempt_token(), r.last_log_seq(), !stale, stale);
    deps_.dispatcher->Kick();
    return true;
  }

  static constexpr char kNotYours[] = "this attempt was given to another agent";
  enum class Ownership { kMineOrNone, kOther, kUnknown };

  // Whether attempt `token` of `job_id` was given to this session's agent. kMineOrNone also
  // when no attempt has that token (the store's fence then refuses it as stale); kUnknown when
  // the database could not say. Answers for this agent are remembered for the session.
  Ownership Owner(int64_t job_id, const std::string& token) {
    {
      absl::MutexLock l(&mu_);
      if (owned_.contains(token)) return Ownership::kMineOrNone;
    }
    if (deps_.credentials == nullptr) return Ownership::kMineOrNone;
    auto owner = deps_.credentials->AttemptOwner(job_id, token);
    if (!owner.ok()) {
      LogWarn("agents", "agent ", name_, ": checking who holds job ", job_id,
              " failed: ", owner.status().ToString());
      return Ownership::kUnknown;
    }
    if (!owner->has_value()) return Ownership::kMineOrNone;
    if (**owner != agent_id_) {
      LogWarn("agents", "agent ", name_, " (", agent_id_, ") sent a report for job ", job_id,
              " whose attempt was given to agent ", **owner, ": refused");
      return Ownership::kOther;
    }
    absl::MutexLock l(&mu_);
    owned_.insert(token);
    return Ownership::kMineOrNone;
  }

  // A credential was presented: the Hello must be its agent's, announce only allowed labels,
  // and the agent must not be disabled. Fills `ah`'s identity. False when the stream is closed.
  bool CheckIdentity(const v1::Hello& h, store::AgentHello* ah) {
    auto who = deps_.credentials->FindByCredential(credential_hash_);
    if (!who.ok()) {
      Fail(grpc::StatusCode::UNAVAILABLE, "database unavailable");
      return false;
    }
    if (!who->has_value()) {
      LogWarn("agents", "refused a stream from ", peer_, ": unknown or revoked credential");
      Fail(grpc::StatusCode::UNAUTHENTICATED, "unknown or revoked agent credential");
      return false;
    }
    const store::AgentIdentity& id = **who;
    if (id.name != h.name()) {
      Fail(grpc::StatusCode::PERMISSION_DENIED,
           absl::StrCat("this credential belongs to agent '", id.name, "', not '", h.name(), "'"));
      return false;
    }
    if (id.disabled) {
      Fail(grpc::StatusCode::PERMISSION_DENIED,
           absl::StrCat("agent '", id.name, "' is disabled (assay agents enable ", id.name, ")"));
      return false;
    }
    std::vector<std::string> extra;
    for (const auto& l : h.labels()) {
      if (std::find(id.allowed_labels.begin(), id.allowed_labels.end(), l) ==
          id.allowed_labels.end()) {
        extra.push_back(l);
      }
    }
    if (!extra.empty()) {
      // Why refuse rather than drop: an agent that silently lost a label would sit idle with
      // jobs waiting for it; a refusal names the mistake where the operator looks.
      Fail(grpc::StatusCode::PERMISSION_DENIED,
           absl::StrCat("labels not allowed for agent '", id.name, "': ", absl::StrJoin(extra, ","),
                        " (allowed: ",
                        id.allowed_labels.empty() ? "none" : absl::StrJoin(id.allowed_labels, ","),
                        ")"));
      return false;
    }
    ah->enrolled_id = id.agent_id;
    ah->credential_hash = credential_hash_;
    return true;
  }

  AgentServiceImpl* svc_;
  const AgentServiceDeps& deps_;
  const std::string peer_;
  std::shared_ptr<SessionChannel> channel_;
  v1::AgentMessage in_;
  // Set by hello; touched only by the (serial) handler tasks and then EndSession.
  int64_t agent_id_ = 0;
  std::string name_;
  size_t announced_gpus_ = 0;  // in Hello; bounds what a heartbeat may report (issue 11)
  store::AgentSession session_;
  std::string credential_hash_;               // set when the stream presented a credential
  std::atomic<bool> database_failed_{false};  // set by DatabaseFailed, read by EndSession
  // Lifecycle: why the agent takes no job, its own word ("" = it does) and an admin's drain.
  // Lock order: SessionChannel's lock, then state_mu_, then the dispatcher's lock or mu_
  // (Enqueue); nothing holds mu_ or the dispatcher's lock while taking state_mu_.
  absl::Mutex state_mu_;
  std::string agent_reason_ ABSL_GUARDED_BY(state_mu_);
  store::AgentDrain drain_ ABSL_GUARDED_BY(state_mu_);

  absl::Mutex mu_;
  std::deque<v1::ServerMessage> out_ ABSL_GUARDED_BY(mu_);
  size_t out_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // serialized sizes of out_
  bool overflowed_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<store::HeldAttempt> undelivered_ ABSL_GUARDED_BY(mu_);  // assignments never sent
  int tasks_ ABSL_GUARDED_BY(mu_) = 0;
  // Reading (MaybeReadLocked): well-formed log chunks are batched and stored by one task
  // (StoreLogs) while reading goes on; any other message is handled alone, after the chunks
  // read before it.
  bool reading_ ABSL_GUARDED_BY(mu_) = false;       // a StartRead is outstanding
  bool handling_ ABSL_GUARDED_BY(mu_) = false;      // a message other than a chunk is handled
  bool stop_reading_ ABSL_GUARDED_BY(mu_) = false;  // a handler is closing the stream
  bool log_task_ ABSL_GUARDED_BY(mu_) = false;      // StoreLogs runs
  std::vector<v1::LogChunk> log_batch_ ABSL_GUARDED_BY(mu_);  // read, not stored yet
  size_t log_batch_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // The message read while chunks were stored: handled once they are.
  std::optional<v1::AgentMessage> after_logs_ ABSL_GUARDED_BY(mu_);
  // Attempt tokens known to be this agent's (assigned on this stream, or checked).
  std::set<std::string> owned_ ABSL_GUARDED_BY(mu_);
  grpc::Status finish_status_;
};

bool SessionChannel::Send(const v1::ServerMessage& msg) {
  absl::MutexLock l(&mu_);
  return session_ != nullptr && session_->Enqueue(msg);
}

void SessionChannel::Close(const std::string& reason) {
  CloseWith(grpc::Status(grpc::StatusCode::ABORTED, reason));
}

void SessionChannel::CloseWith(const grpc::Status& status) {
  absl::MutexLock l(&mu_);
  if (session_ != nullptr) session_->FinishOnce(status);
}

void SessionChannel::ApplyDrain(const store::AgentDrain& drain) {
  absl::MutexLock l(&mu_);
  if (session_ != nullptr) session_->ApplyDrain(drain);
}

}  // namespace

AgentServiceImpl::AgentServiceImpl(AgentServiceDeps deps)
    : deps_(std::move(deps)), pool_(deps_.worker_threads) {
  if (deps_.credentials != nullptr) access_check_ = std::thread([this] { AccessCheckLoop(); });
}

AgentServiceImpl::~AgentServiceImpl() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  if (access_check_.joinable()) access_check_.join();
  pool_.join();
}

void AgentServiceImpl::RegisterSession(int64_t agent_id, const void* key,
                                       std::function<void(const grpc::Status&)> close,
                                       std::function<void(const store::AgentDrain&)> drain) {
  absl::MutexLock l(&mu_);
  open_[{agent_id, key}] = std::move(close);
  if (drain) drain_[{agent_id, key}] = std::move(drain);
}

void AgentServiceImpl::UnregisterSession(int64_t agent_id, const void* key) {
  absl::MutexLock l(&mu_);
  open_.erase({agent_id, key});
  drain_.erase({agent_id, key});
}

void AgentServiceImpl::RefreshDrains(const std::vector<int64_t>& only) {
  std::vector<int64_t> ids;
  {
    absl::MutexLock l(&mu_);
    for (const auto& [k, v] : drain_) {
      if (!only.empty() && std::find(only.begin(), only.end(), k.first) == only.end()) continue;
      if (ids.empty() || ids.back() != k.first) ids.push_back(k.first);
    }
  }
  if (ids.empty()) return;
  auto drains = deps_.agents->Drains(ids);
  if (!drains.ok()) {
    LogWarn("agents", "reading agents' drain state failed: ", drains.status().ToString());
    return;
  }
  std::vector<std::pair<std::function<void(const store::AgentDrain&)>, store::AgentDrain>> calls;
  {
    absl::MutexLock l(&mu_);
    for (const auto& [k, fn] : drain_) {
      auto it = drains->find(k.first);
      if (it != drains->end()) calls.emplace_back(fn, it->second);
    }
  }
  // Outside mu_: applying takes the session's locks.
  for (auto& [fn, d] : calls) fn(d);
}

void AgentServiceImpl::CloseAgent(int64_t agent_id, const grpc::Status& status) {
  std::vector<std::function<void(const grpc::Status&)>> closers;
  {
    absl::MutexLock l(&mu_);
    for (auto it = open_.lower_bound({agent_id, nullptr});
         it != open_.end() && it->first.first == agent_id; ++it) {
      closers.push_back(it->second);
    }
  }
  // Outside mu_: closing takes the session's own lock.
  for (auto& c : closers) c(status);
  if (!closers.empty()) {
    LogInfo("agents", "closed ", closers.size(), " stream(s) of agent ", agent_id, ": ",
            status.error_message());
  }
}

// Why a loop: a revoke or disable made through another server's API closes the streams open
// here within one interval (the API's own server closes them at once).
void AgentServiceImpl::AccessCheckLoop() {
  while (true) {
    std::vector<int64_t> ids;
    {
      absl::MutexLock l(&mu_);
      auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stop), deps_.access_check_interval)) return;
      for (const auto& [k, v] : open_) {
        if (ids.empty() || ids.back() != k.first) ids.push_back(k.first);
      }
    }
    if (ids.empty()) continue;
    // Why here too: a drain whose notification was lost (a listener reconnect) still reaches
    // the agent within one interval.
    RefreshDrains(ids);
    auto blocked = deps_.credentials->Blocked(ids);
    if (!blocked.ok()) {
      LogWarn("agents", "checking agents for revocation failed: ", blocked.status().ToString());
      continue;
    }
    for (int64_t id : *blocked) {
      CloseAgent(id, grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                                  "this agent was revoked or disabled"));
    }
  }
}

grpc::ServerUnaryReactor* AgentServiceImpl::Enroll(grpc::CallbackServerContext* ctx,
                                                   const v1::EnrollRequest* request,
                                                   v1::EnrollResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (deps_.credentials == nullptr) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "enrollment is off"));
    return reactor;
  }
  auto token = ParseAgentSecret(request->enrollment_token(), AgentSecretKind::kEnrollmentToken);
  if (!token.ok()) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(token.status().message())));
    return reactor;
  }
  std::string peer = ctx->peer();
  // Why the pool: enrolling writes to PostgreSQL; gRPC's callback threads must not block.
  Post([this, reactor, request, response, hash = AgentSecretHash(*token), peer] {
    const std::string credential = NewAgentSecret(AgentSecretKind::kCredential);
    auto who = deps_.credentials->Enroll(hash, request->name(), AgentSecretHash(credential));
    if (!who.ok()) {
      grpc::StatusCode code = grpc::StatusCode::UNAVAILABLE;
      switch (who.status().code()) {
        case absl::StatusCode::kPermissionDenied: code = grpc::StatusCode::PERMISSION_DENIED; break;
        case absl::StatusCode::kInvalidArgument: code = grpc::StatusCode::INVALID_ARGUMENT; break;
        case absl::StatusCode::kAlreadyExists: code = grpc::StatusCode::ALREADY_EXISTS; break;
        default: break;
      }
      LogWarn("agents", "refused an enrollment from ", peer, ": ", who.status().message());
      reactor->Finish(grpc::Status(code, code == grpc::StatusCode::UNAVAILABLE
                                             ? "database unavailable"
                                             : std::string(who.status().message())));
      return;
    }
    response->set_agent_id(who->agent_id);
    response->set_name(who->name);
    response->set_credential(credential);
    for (const auto& l : who->allowed_labels) response->add_allowed_labels(l);
    LogInfo("agents", "agent ", who->name, " (", who->agent_id, ") enrolled from ", peer,
            "; allowed labels: ", absl::StrJoin(who->allowed_labels, ","));
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

void AgentServiceImpl::SessionEnded() {
  absl::MutexLock l(&mu_);
  ++sessions_ended_;
}

int64_t AgentServiceImpl::sessions_ended() {
  absl::MutexLock l(&mu_);
  return sessions_ended_;
}

bool AgentServiceImpl::AwaitSessionsEnded(int64_t n, absl::Duration timeout) {
  absl::MutexLock l(&mu_);
  auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return sessions_ended_ >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

Reactor* AgentServiceImpl::Connect(grpc::CallbackServerContext* ctx) {
  return new Session(this, ctx);
}

}  // namespace assay
