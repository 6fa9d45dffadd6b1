#include "server/http/http_server.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>
#include <chrono>
#include <exception>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/base/log.h"

namespace assay::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

constexpr std::uint32_t kHeaderLimit = 64 * 1024;
// Why reserve: Beast reads at most the buffer's free capacity (but at least 512 bytes)
// per call, so an unreserved buffer reads a body 512 bytes per syscall.
constexpr std::size_t kReadChunk = 16 * 1024;
constexpr std::size_t kLargeBodyReadChunk = 64 * 1024;
// After an error response the server stops sending but keeps reading (and discarding)
// for a while, so that the client's unsent body does not turn our close into a TCP
// reset that could destroy the response before the client reads it.
// The byte limit must exceed what a client may still have to send after a 413 (a blocked
// writer reads nothing until its body is out): at 1 MiB, an 8 MiB upload was reset before
// its client read the 413 whenever the loopback socket buffers were small (a loaded
// machine). Discarding is cheap; the time limit is what bounds a hostile client.
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr std::size_t kLingerBytes = 64 * 1024 * 1024;

// Debian's Abseil has its own absl::string_view, distinct from std::string_view.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::chrono::steady_clock::duration ToChrono(absl::Duration d) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::clamp(absl::ToChronoNanoseconds(d), std::chrono::nanoseconds(1),
                 std::chrono::nanoseconds(std::chrono::hours(24 * 365))));
}

bool IsSafeHeader(std::string_view name, std::string_view value) {
  auto bad = [](std::string_view s) {
    return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
  };
  return !name.empty() && !bad(name) && !bad(value) && name.find(':') == std::string_view::npos;
}

thread_local std::string current_request_id;

// Sets CurrentRequestId() for the life of a handler call on this thread.
class ScopedRequestId {
 public:
  explicit ScopedRequestId(const std::string& id) { current_request_id = id; }
  ~ScopedRequestId() { current_request_id.clear(); }
};

// The whole answer to a connection beyond ServerOptions::max_connections.
const std::string& OverloadedConnectionReply() {
  static const std::string reply = [] {
    const std::string body =
        R"({"error":{"code":"overloaded","message":"too many open connections; retry later"}})";
    return absl::StrCat(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        "X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\nRetry-After: 1\r\n"
        "Connection: close\r\nContent-Length: ",
        body.size(), "\r\n\r\n", body);
  }();
  return reply;
}

Response Overloaded() {
  Response r = ErrorResponse(503, "overloaded", "the server is busy; retry later");
  r.headers.emplace_back("Retry-After", "1");
  return r;
}

std::string EndpointString(const tcp::endpoint& ep) {
  const auto address = ep.address();
  if (address.is_v6()) return absl::StrCat("[", address.to_string(), "]:", ep.port());
  return absl::StrCat(address.to_string(), ":", ep.port());
}

}  // namespace

std::string CurrentRequestId() { return current_request_id; }

class HttpSession;

struct Server::Core {
  Core(ServerOptions options, Handler h, HeadHandler hh, std::function<bool(Request&)> has)
      : opts(std::move(options)),
        handler(std::move(h)),
        head_handler(std::move(hh)),
        has_head(std::move(has)),
        request_id_base(std::random_device{}() * 0x100000000ull + std::random_device{}()),
        ioc(std::max(1, opts.io_threads)),
        acceptor(net::make_strand(ioc)),
        accept_retry(acceptor.get_executor()) {}

  void DoAccept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  enum class Registered { kOk, kStopping, kFull };
  Registered Register(const std::shared_ptr<HttpSession>& s) ABSL_LOCKS_EXCLUDED(mu);
  // Answers a connection over the cap with OverloadedConnectionReply(), then closes it.
  void Refuse(tcp::socket socket);
  // Runs `fn` on the handler pool unless max_queued calls already wait there; false then.
  bool TryPost(std::function<void()> fn);
  std::string NextRequestId() {
    return absl::StrCat(
        absl::Hex(request_id_base + request_counter.fetch_add(1), absl::kZeroPad16));
  }
  void Unregister(HttpSession* s) ABSL_LOCKS_EXCLUDED(mu);
  bool Stopping() ABSL_LOCKS_EXCLUDED(mu) {
    absl::MutexLock lock(&mu);
    return stopping;
  }

  const ServerOptions opts;
  const Handler handler;
  const HeadHandler head_handler;
  const std::function<bool(Request&)> has_head;
  const uint64_t request_id_base;
  std::atomic<uint64_t> request_counter{0};
  std::atomic<int> pending{0};  // handler-pool calls queued or running

  absl::Mutex lifecycle_mu;  // serializes Start/Stop
  enum class State { kNew, kRunning, kStopped };
  State state ABSL_GUARDED_BY(lifecycle_mu) = State::kNew;
  std::vector<std::thread> io_threads ABSL_GUARDED_BY(lifecycle_mu);
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::atomic<uint16_t> port{0};

  // Sessions waiting for a Response::stream_async piece: held here (nothing else does while
  // no I/O is pending) until the piece arrives or Stop. The gate stops late pieces.
  struct AsyncGate {
    absl::Mutex mu;
    bool open ABSL_GUARDED_BY(mu) = true;
  };
  const std::shared_ptr<AsyncGate> gate = std::make_shared<AsyncGate>();

  absl::Mutex mu;
  bool stopping ABSL_GUARDED_BY(mu) = false;
  std::unordered_map<HttpSession*, std::shared_ptr<HttpSession>> waiting ABSL_GUARDED_BY(mu);
  std::unordered_map<HttpSession*, std::weak_ptr<HttpSession>> sessions ABSL_GUARDED_BY(mu);

  // Why this order: members die bottom-up. The pool goes first (its queued tasks hold
  // sessions, whose sockets need `ioc`); then `ioc`, whose queued handlers hold the
  // remaining sessions, whose destructors use `mu` and `sessions` above.
  net::io_context ioc;
  tcp::acceptor acceptor;  // on its own strand
  net::steady_timer accept_retry;
  std::optional<net::thread_pool> pool;
};

// One connection. All members are touched only on the connection's strand (the
// executor of stream_), except that Server::Stop closes it after all threads joined.
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(Server::Core& core, tcp::socket socket, std::string remote)
      : core_(core), stream_(std::move(socket)), remote_(std::move(remote)) {
    buffer_.reserve(kReadChunk);
  }
  ~HttpSession() { core_.Unregister(this); }

  void Start() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&HttpSession::ReadHeader, shared_from_this()));
  }

  // Answers a connection over the cap and closes it; the session was never registered.
  void Refuse() {
    const std::string& reply = OverloadedConnectionReply();
    stream_.expires_after(ToChrono(core_.opts.read_timeout));
    net::async_write(
        stream_, net::buffer(reply.data(), reply.size()),
        [self = shared_from_this()](beast::error_code, std::size_t) { self->Close(); });
  }

  void Close() {
    closed_ = true;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

 private:
  void ReadHeader() {
    if (closed_) return;
    request_id_ = core_.NextRequestId();
    check_.reset();
    fed_ = 0;
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(core_.opts.body_limit);
    stream_.expires_after(ToChrono(core_.opts.read_timeout));
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             beast::bind_front_handler(&HttpSession::OnHeader, shared_from_this()));
  }

  void OnHeader(beast::error_code ec, std::size_t) {
    if (ec) return OnReadError(ec);
    body_deadline_ = std::chrono::steady_clock::now() + ToChrono(core_.opts.body_timeout);
    parser_->eager(true);
    if (!core_.head_handler) return AfterAdmission();
    Request head;
    if (!FillHead(parser_->get(), &head)) return WriteError(BadTarget(head.target));
    if (core_.has_head && !core_.has_head(head)) return AfterAdmission();
    auto admit = [self = shared_from_this(), head = std::move(head)]() mutable {
      Admission a = self->RunHeadHandler(head);
      net::post(self->stream_.get_executor(),
                [self, a = std::move(a)]() mutable { self->OnAdmitted(std::move(a)); });
    };
    const bool posted = core_.TryPost(std::move(admit));
    if (!posted) return WriteError(Overloaded());
  }

  void OnAdmitted(Admission a) {
    if (closed_) return;
    if (a.refuse) return WriteError(std::move(*a.refuse));
    check_ = std::move(a.check);
    AfterAdmission();
  }

  // On a handler-pool thread.
  Admission RunHeadHandler(Request& head) {
    ScopedRequestId scope(head.request_id);
    try {
      return core_.head_handler(head);
    } catch (const std::exception& e) {
      LogError("http", "request ", head.request_id, ": head handler for ", head.method, " ",
               absl::CEscape(head.target), " threw: ", e.what());
    } catch (...) {
      LogError("http", "request ", head.request_id, ": head handler threw a non-std exception");
    }
    Admission a;
    a.refuse = InternalErrorResponse();
    return a;
  }

  // Reads the body (answering Expect: 100-continue first).
  void AfterAdmission() {
    const auto& header = parser_->get();
    if (parser_->chunked() || parser_->content_length().value_or(0) > kReadChunk) {
      buffer_.reserve(kLargeBodyReadChunk);
    }
    if (header.version() >= 11 && !parser_->is_done() &&
        absl::EqualsIgnoreCase(
            absl::StripAsciiWhitespace(absl::string_view(header[bhttp::field::expect].data(),
                                                         header[bhttp::field::expect].size())),
            "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      stream_.expires_at(body_deadline_);
      net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                       [self = shared_from_this()](beast::error_code ec, std::size_t) {
                         if (ec) return self->Close();
                         self->ReadBody();
                       });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    if (closed_) return;
    FeedCheck();
    if (parser_->is_done()) return Dispatch();
    // Why one deadline for the whole body, not one per read: a client trickling a byte now
    // and then would otherwise hold the connection (and its buffers) for ever.
    stream_.expires_at(body_deadline_);
    bhttp::async_read_some(stream_, buffer_, *parser_,
                           beast::bind_front_handler(&HttpSession::OnBody, shared_from_this()));
  }

  void OnBody(beast::error_code ec, std::size_t) {
    if (ec) return OnReadError(ec);
    ReadBody();
  }

  void OnReadError(beast::error_code ec) {
    if (ec == bhttp::error::body_limit) {
      return WriteError(ErrorResponse(
          413, "payload_too_large",
          absl::StrCat("request body exceeds the limit of ", core_.opts.body_limit, " bytes")));
    }
    if (ec == bhttp::error::header_limit) {
      return WriteError(ErrorResponse(
          431, "headers_too_large",
          absl::StrCat("request header exceeds the limit of ", kHeaderLimit, " bytes")));
    }
    // end_of_stream: the peer closed between requests. partial_message: it closed in
    // the middle of one. Neither can be answered.
    if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
        ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
      return WriteError(ErrorResponse(400, "bad_request",
                                      absl::StrCat("malformed HTTP request: ", ec.message())));
    }
    Close();  // timeout, reset, abort: nothing to say
  }

  // Hands the body bytes that arrived since the last call to the BodyCheck.
  void FeedCheck() {
    if (!check_) return;
    const std::string& body = parser_->get().body();
    if (body.size() > fed_) {
      check_->Update(std::string_view(body).substr(fed_));
      fed_ = body.size();
    }
  }

  static Response BadTarget(std::string_view target) {
    return ErrorResponse(400, "bad_request",
                         absl::StrCat("invalid request target '", AV(target), "'"));
  }

  // Everything of a request but its body; false (with head->target set) for a bad target.
  bool FillHead(const bhttp::request<bhttp::string_body>& message, Request* req) {
    req->method = std::string(message.method_string());
    req->target = std::string(message.target());
    req->request_id = request_id_;
    req->remote_addr = remote_;
    auto url = boost::urls::parse_origin_form(req->target);
    if (!url) url = boost::urls::parse_absolute_uri(req->target);
    if (!url) return false;
    req->path = url->path();
    if (req->path.empty()) req->path = "/";
    boost::urls::encoding_opts opts;
    opts.space_as_plus = true;
    for (const auto& param : url->params(opts)) {
      if (param.key.empty() && !param.has_value) continue;  // "?" or "a=1&&b=2"
      req->query.emplace_back(param.key, param.value);
    }
    req->headers.reserve(std::distance(message.begin(), message.end()));
    for (const auto& field : message) {
      req->headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    return true;
  }

  void Dispatch() {
    stream_.expires_never();
    auto message = parser_->release();
    parser_.reset();
    keep_alive_ = message.keep_alive();
    version_ = message.version();
    head_ = message.method() == bhttp::verb::head;

    Request req;
    if (!FillHead(message, &req)) return WriteError(BadTarget(req.target));
    if (check_) {
      std::shared_ptr<BodyCheck> check = std::move(check_);
      if (std::optional<Response> refused = check->Finish()) return WriteError(std::move(*refused));
      req.body_check = std::move(check);
    }
    req.body = std::move(message.body());

    const bool posted = core_.TryPost([self = shared_from_this(), req = std::move(req)]() mutable {
      Response res = self->RunHandler(req);
      net::post(self->stream_.get_executor(), [self, res = std::move(res)]() mutable {
        self->Write(std::move(res), /*after_error=*/false);
      });
    });
    if (!posted) WriteError(Overloaded());
  }

  // On a handler-pool thread.
  Response RunHandler(Request& req) {
    ScopedRequestId scope(req.request_id);
    try {
      return core_.handler(req);
    } catch (const std::exception& e) {
      LogError("http", "request ", req.request_id, ": handler for ", req.method, " ",
               absl::CEscape(req.target), " threw: ", e.what());
    } catch (...) {
      LogError("http", "request ", req.request_id, ": handler for ", req.method, " ",
               absl::CEscape(req.target), " threw a non-std exception");
    }
    return InternalErrorResponse();
  }

  // Answers a request that could not be read completely, then closes.
  void WriteError(Response res) {
    keep_alive_ = false;
    version_ = 11;
    head_ = false;
    Write(std::move(res), /*after_error=*/true);
  }

  void Write(Response res, bool after_error) {
    if (closed_) return;
    if (res.status < 200 || res.status > 599) {
      LogError("http", "request ", request_id_, ": handler returned invalid status ", res.status,
               "; sending 500");
      ScopedRequestId scope(request_id_);
      res = InternalErrorResponse();
    }
    response_ = {};
    response_.version(version_);
    response_.result(static_cast<unsigned>(res.status));
    const bool no_body = res.status == 204 || res.status == 304;
    bool has_content_type = false, has_cache_control = false, has_csp = false;
    for (const auto& [name, value] : res.headers) {
      if (!IsSafeHeader(name, value)) {
        LogError("http", "dropping unsafe response header '", absl::CEscape(name), "'");
        continue;
      }
      if (absl::EqualsIgnoreCase(name, "Content-Length") ||
          absl::EqualsIgnoreCase(name, "Transfer-Encoding") ||
          absl::EqualsIgnoreCase(name, "Connection")) {
        continue;
      }
      if (absl::EqualsIgnoreCase(name, "X-Request-Id") ||
          absl::EqualsIgnoreCase(name, "X-Content-Type-Options")) {
        continue;  // always ours
      }
      if (absl::EqualsIgnoreCase(name, "Content-Type")) has_content_type = true;
      if (absl::EqualsIgnoreCase(name, "Cache-Control")) has_cache_control = true;
      if (absl::EqualsIgnoreCase(name, "Content-Security-Policy")) has_csp = true;
      response_.insert(name, value);
    }
    if (!has_content_type && !no_body && !res.content_type.empty() &&
        IsSafeHeader("Content-Type", res.content_type)) {
      response_.set(bhttp::field::content_type, res.content_type);
    }
    // Why here: one place that no response can bypass (handlers, errors, refusals).
    response_.set("X-Request-Id", request_id_);
    response_.set("X-Content-Type-Options", "nosniff");
    if (!has_cache_control) response_.set(bhttp::field::cache_control, "no-store");
    const auto type = response_[bhttp::field::content_type];
    if (!has_csp &&
        absl::StartsWithIgnoreCase(absl::string_view(type.data(), type.size()), "text/html")) {
      response_.set("Content-Security-Policy", kContentSecurityPolicy);
    }
    if ((res.stream || res.stream_async) && !no_body) {
      return WriteStreamed(std::move(res), after_error);
    }
    if (!no_body) response_.body() = std::move(res.body);
    response_.prepare_payload();
    if (head_) {
      const auto length = response_.body().size();
      response_.body().clear();
      response_.content_length(length);  // what a GET would have sent
    }
    const bool keep = keep_alive_ && !after_error && !core_.Stopping();
    response_.keep_alive(keep);
    stream_.expires_after(ToChrono(core_.opts.read_timeout));
    bhttp::async_write(stream_, response_,
                       [self = shared_from_this(), keep](beast::error_code ec, std::size_t) {
                         if (ec) return self->Close();
                         if (keep) return self->ReadHeader();
                         self->Linger();
                       });
  }

  // A streamed body (Response::stream): the header from response_, then one chunk per piece,
  // asked for on the handler pool (one piece ahead of the socket with stream_read_ahead).
  void WriteStreamed(Response res, bool after_error) {
    stream_head_.emplace();
    stream_head_->version(version_);
    stream_head_->result(response_.result());
    for (const auto& field : response_) stream_head_->set(field.name_string(), field.value());
    // Why a length when known: a client (curl, a browser) then shows progress and can tell a
    // truncated body from a whole one without chunked framing.
    stream_left_.reset();
    if (res.stream && res.stream_length.has_value()) {
      stream_left_ = *res.stream_length;
      stream_head_->content_length(*res.stream_length);
    } else {
      stream_head_->chunked(true);
    }
    const bool keep = keep_alive_ && !after_error && !core_.Stopping();
    stream_head_->keep_alive(keep);
    stream_sr_.emplace(*stream_head_);
    body_source_ = std::move(res.stream);
    read_ahead_ = res.stream_read_ahead;
    if (!body_source_) async_source_ = std::move(res.stream_async);
    stream_.expires_after(ToChrono(core_.opts.read_timeout));
    bhttp::async_write_header(stream_, *stream_sr_,
                              [self = shared_from_this(), keep](beast::error_code ec, std::size_t) {
                                if (ec) return self->Close();
                                if (self->head_) return self->EndStreamed(keep);
                                self->NextPiece(keep);
                              });
  }

  // The next piece of a streamed body, written when it is there. A synchronous source with
  // stream_read_ahead is read one piece ahead: while piece N is written, piece N+1 is read on the
  // handler pool (disk and socket overlap; at most two pieces of a connection are in memory). One
  // read at a time, so the source is never called concurrently.
  void NextPiece(bool keep) {
    if (closed_) return;
    if (async_source_) return NextAsyncPiece(keep);
    if (ahead_.has_value()) {
      absl::StatusOr<std::string> piece = std::move(*ahead_);
      ahead_.reset();
      return WritePiece(keep, std::move(piece));
    }
    want_piece_ = true;
    if (!reading_) ReadAhead(keep);
  }

  void ReadAhead(bool keep) {
    reading_ = true;
    net::post(*core_.pool, [self = shared_from_this(), keep]() {
      absl::StatusOr<std::string> piece;
      try {
        piece = self->body_source_();
      } catch (const std::exception& e) {
        piece = absl::InternalError(e.what());
      }
      net::post(self->stream_.get_executor(), [self, keep, piece = std::move(piece)]() mutable {
        self->reading_ = false;
        if (self->want_piece_) {
          self->want_piece_ = false;
          return self->WritePiece(keep, std::move(piece));
        }
        self->ahead_ = std::move(piece);
      });
    });
  }

  // Called once the write of a non-empty piece has started: reads the next one meanwhile.
  void ReadNextWhileWriting(bool keep) {
    if (read_ahead_ && body_source_ && !reading_ && !ahead_.has_value() && !closed_) {
      ReadAhead(keep);
    }
  }

  // Asks the async source for a piece; the session waits in core_.waiting until it comes.
  void NextAsyncPiece(bool keep) {
    auto self = shared_from_this();
    {
      absl::MutexLock lock(&core_.mu);
      core_.waiting[this] = self;
    }
    net::post(*core_.pool, [self, keep, gate = core_.gate]() {
      std::weak_ptr<HttpSession> weak = self;
      Response::PieceSink next = [gate, weak, keep](absl::StatusOr<std::string> piece) {
        absl::MutexLock lock(&gate->mu);
        if (!gate->open) return;
        auto s = weak.lock();
        if (!s) return;
        net::post(s->stream_.get_executor(), [s, keep, piece = std::move(piece)]() mutable {
          std::shared_ptr<HttpSession> held;
          {
            absl::MutexLock l(&s->core_.mu);
            auto it = s->core_.waiting.find(s.get());
            if (it != s->core_.waiting.end()) {
              held = std::move(it->second);
              s->core_.waiting.erase(it);
            }
          }
          s->WritePiece(keep, std::move(piece));
        });
      };
      self->async_source_(std::move(next));
    });
  }

  void WritePiece(bool keep, absl::StatusOr<std::string> piece) {
    if (closed_) return;
    if (!piece.ok()) {
      LogError("http", "streamed response body failed: ", piece.status().ToString());
      return Close();
    }
    if (stream_left_.has_value()) {  // a Content-Length was sent: exactly that many bytes
      if (piece->size() > *stream_left_ || (piece->empty() && *stream_left_ != 0)) {
        LogError("http", "streamed response body is not its Content-Length (", *stream_left_,
                 " bytes left, piece of ", piece->size(), ")");
        return Close();
      }
      if (piece->empty()) return EndStreamed(keep);
      *stream_left_ -= piece->size();
      piece_ = std::move(*piece);
      stream_.expires_after(ToChrono(core_.opts.read_timeout));
      net::async_write(stream_, net::buffer(piece_),
                       [self = shared_from_this(), keep](beast::error_code ec, std::size_t) {
                         if (ec) return self->Close();
                         self->piece_.clear();
                         self->piece_.shrink_to_fit();
                         // The Content-Length is complete: the source is not asked again
                         // (the client may already be gone with every byte).
                         if (*self->stream_left_ == 0) return self->EndStreamed(keep);
                         self->NextPiece(keep);
                       });
      if (*stream_left_ > 0) ReadNextWhileWriting(keep);
      return;
    }
    if (piece->empty()) return EndStreamed(keep);
    piece_ = std::move(*piece);
    stream_.expires_after(ToChrono(core_.opts.read_timeout));
    net::async_write(stream_, bhttp::make_chunk(net::buffer(piece_)),
                     [self = shared_from_this(), keep](beast::error_code ec, std::size_t) {
                       if (ec) return self->Close();
                       self->piece_.clear();
                       self->piece_.shrink_to_fit();
                       self->NextPiece(keep);
                     });
    ReadNextWhileWriting(keep);
  }

  void EndStreamed(bool keep) {
    // Nothing is read ahead here: the last piece (empty, or the one that ended the
    // Content-Length) came with no read in flight after it.
    ahead_.reset();
    want_piece_ = false;
    body_source_ = nullptr;
    async_source_ = nullptr;
    stream_.expires_after(ToChrono(core_.opts.read_timeout));
    auto done = [self = shared_from_this(), keep](beast::error_code ec, std::size_t) {
      self->stream_sr_.reset();
      self->stream_head_.reset();
      if (ec) return self->Close();
      if (keep) return self->ReadHeader();
      self->Linger();
    };
    if (head_ || stream_left_.has_value()) return done({}, 0);
    net::async_write(stream_, bhttp::make_chunk_last(), std::move(done));
  }

  // Half-closes, then discards what the peer still sends until it closes, a limit of
  // bytes, or kLingerTime.
  void Linger() {
    if (closed_) return;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return Close();
    stream_.expires_after(kLingerTime);
    DrainSome();
  }

  void DrainSome() {
    stream_.async_read_some(net::buffer(drain_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ >= kLingerBytes) return self->Close();
                              self->DrainSome();
                            });
  }

  Server::Core& core_;
  beast::tcp_stream stream_;
  const std::string remote_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::string request_id_;
  std::chrono::steady_clock::time_point body_deadline_;
  std::shared_ptr<BodyCheck> check_;  // the current request's, until Dispatch
  std::size_t fed_ = 0;               // body bytes check_ has seen
  bhttp::response<bhttp::string_body> response_;
  // A streamed response in progress (WriteStreamed): its header, serializer, source and the
  // piece being written.
  std::optional<bhttp::response<bhttp::empty_body>> stream_head_;
  std::optional<bhttp::response_serializer<bhttp::empty_body>> stream_sr_;
  std::function<void(Response::PieceSink)> async_source_;
  std::function<absl::StatusOr<std::string>()> body_source_;
  // The bytes a streamed body with a Content-Length still owes; unset: chunked.
  std::optional<uint64_t> stream_left_;
  std::string piece_;
  // Read ahead of a synchronous source (NextPiece): a read on the pool, its result when it came
  // before it was wanted, and whether the writer waits for it.
  bool read_ahead_ = false;  // Response::stream_read_ahead
  bool reading_ = false;
  bool want_piece_ = false;
  std::optional<absl::StatusOr<std::string>> ahead_;
  bool keep_alive_ = false;
  unsigned version_ = 11;
  bool head_ = false;
  bool closed_ = false;
  std::size_t drained_ = 0;
  std::array<char, 4096> drain_;
};

void Server::Core::DoAccept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    OnAccept(ec, std::move(socket));
  });
}

void Server::Core::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
  if (ec) {
    // Why a pause: running out of descriptors or memory fails every accept at once;
    // retrying immediately would spin.
    LogWarn("http", "accept failed: ", ec.message());
    accept_retry.expires_after(std::chrono::milliseconds(100));
    accept_retry.async_wait([this](beast::error_code ec) {
      if (!ec) DoAccept();
    });
    return;
  }
  beast::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);  // Why: no Nagle delay on responses
  auto endpoint = socket.remote_endpoint(ignored);
  auto session = std::make_shared<HttpSession>(*this, std::move(socket),
                                               ignored ? "" : EndpointString(endpoint));
  switch (Register(session)) {
    case Registered::kOk: session->Start(); break;
    case Registered::kFull: session->Refuse(); break;
    case Registered::kStopping: break;
  }
  DoAccept();
}

Server::Core::Registered Server::Core::Register(const std::shared_ptr<HttpSession>& s) {
  absl::MutexLock lock(&mu);
  if (stopping) return Registered::kStopping;
  if (static_cast<int>(sessions.size()) >= std::max(1, opts.max_connections)) {
    return Registered::kFull;
  }
  sessions.emplace(s.get(), s);
  return Registered::kOk;
}

bool Server::Core::TryPost(std::function<void()> fn) {
  const int limit = std::max(1, opts.handler_threads) + std::max(0, opts.max_queued);
  if (pending.fetch_add(1) >= limit) {
    pending.fetch_sub(1);
    return false;
  }
  net::post(*pool, [this, fn = std::move(fn)] {
    fn();
    pending.fetch_sub(1);
  });
  return true;
}

void Server::Core::Unregister(HttpSession* s) {
  absl::MutexLock lock(&mu);
  sessions.erase(s);
}

Server::Server(ServerOptions opts, Handler handler, HeadHandler head,
               std::function<bool(Request&)> has_head)
    : core_(std::make_unique<Core>(std::move(opts), std::move(handler), std::move(head),
                                   std::move(has_head))) {}

int Server::pending_handlers() const { return core_->pending.load(); }

Server::~Server() { Stop(); }

uint16_t Server::port() const { return core_->port.load(); }

absl::Status Server::Start() {
  Core& c = *core_;
  absl::MutexLock lock(&c.lifecycle_mu);
  if (c.state != Core::State::kNew) {
    return absl::FailedPreconditionError("HTTP server was already started");
  }
  const std::string where = absl::StrCat(c.opts.host, ":", c.opts.port);
  beast::error_code ec;
  tcp::endpoint endpoint;
  const auto address = net::ip::make_address(c.opts.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, c.opts.port);
  } else {
    tcp::resolver resolver(c.ioc);
    auto results =
        resolver.resolve(c.opts.host, std::to_string(c.opts.port), tcp::resolver::passive, ec);
    if (ec || results.empty()) {
      return absl::UnavailableError(absl::StrCat("cannot resolve HTTP listen address ", where, ": ",
                                                 ec ? ec.message() : "no addresses"));
    }
    endpoint = results.begin()->endpoint();
  }
  auto fail = [&](std::string_view step) {
    beast::error_code ignored;
    c.acceptor.close(ignored);
    return absl::UnavailableError(
        absl::StrCat("cannot ", AV(step), " HTTP listen address ", where, ": ", ec.message()));
  };
  if (c.acceptor.open(endpoint.protocol(), ec)) return fail("open");
  if (c.acceptor.set_option(net::socket_base::reuse_address(true), ec)) return fail("configure");
  if (c.acceptor.bind(endpoint, ec)) return fail("bind");
  if (c.acceptor.listen(net::socket_base::max_listen_connections, ec)) return fail("listen on");
  c.port = c.acceptor.local_endpoint(ec).port();
  if (ec) return fail("read back");

  c.pool.emplace(static_cast<std::size_t>(std::max(1, c.opts.handler_threads)));
  c.work.emplace(c.ioc.get_executor());
  net::post(c.acceptor.get_executor(), [&c] { c.DoAccept(); });
  for (int i = 0; i < std::max(1, c.opts.io_threads); ++i) {
    c.io_threads.emplace_back([&c] { c.ioc.run(); });
  }
  c.state = Core::State::kRunning;
  return absl::OkStatus();
}

void Server::Stop() {
  Core& c = *core_;
  absl::MutexLock lock(&c.lifecycle_mu);
  if (c.state == Core::State::kStopped) return;
  const bool was_running = c.state == Core::State::kRunning;
  c.state = Core::State::kStopped;
  {
    absl::MutexLock l(&c.mu);
    c.stopping = true;  // new connections are refused; responses say Connection: close
  }
  if (!was_running) return;
  net::post(c.acceptor.get_executor(), [&c] {
    beast::error_code ignored;
    c.acceptor.close(ignored);
    c.accept_retry.cancel();
  });
  // Running handlers finish and their responses are queued for writing.
  c.pool->join();
  c.work.reset();
  c.ioc.stop();
  for (auto& t : c.io_threads) t.join();
  c.io_threads.clear();
  // No thread runs now, so the sessions can be closed from here.
  {
    absl::MutexLock g(&c.gate->mu);
    c.gate->open = false;  // a late async piece does nothing now
  }
  std::vector<std::shared_ptr<HttpSession>> open;
  {
    absl::MutexLock l(&c.mu);
    for (auto& [ptr, held] : c.waiting) open.push_back(std::move(held));
    c.waiting.clear();
    for (auto& [ptr, weak] : c.sessions) {
      if (auto s = weak.lock()) open.push_back(std::move(s));
    }
  }
  beast::error_code ignored;
  c.acceptor.close(ignored);
  for (auto& s : open) s->Close();
  open.clear();  // outside mu: a HttpSession's destructor takes it
  // Why a drain: a connection the reactor accepted just before ioc.stop() waits in a
  // queued OnAccept that would otherwise hold its socket open until ~Server. Every
  // socket is closed now, so each queued handler ends at once (OnAccept drops the socket,
  // a session's read or write fails); the bound guards against a chain that does not.
  c.ioc.restart();
  for (int i = 0; i < 100000 && c.ioc.poll_one() > 0; ++i) {
  }
}

}  // namespace assay::http
