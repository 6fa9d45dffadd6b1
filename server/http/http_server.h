#pragma once
// HTTP/1.1 server and router on Boost.Beast.
//
// Threads: `io_threads` Asio threads do all socket I/O; each connection lives on its
// own strand. Handlers run on a separate pool of `handler_threads` threads, so they
// may block (database calls) without stalling I/O; the response is written back on
// the connection's strand.

#include <any>
#include <boost/json/value.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace assay::http {

class BodyCheck;

struct Request {
  std::string method;  // "GET"
  std::string target;  // raw target "/api/v1/x?y=1"
  std::string path;    // percent-decoded path "/api/v1/x"
  // Decoded query parameters in order; '+' decodes to a space; "?flag" gives {"flag", ""}.
  std::vector<std::pair<std::string, std::string>> query;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;         // raw bytes exactly as received (chunked encoding removed)
  std::string remote_addr;  // peer "ip:port" ("[::1]:port" for IPv6)
  // This request's id, also sent back as X-Request-Id and named in every 500 answer and in
  // the server log lines about it.
  std::string request_id;
  // The BodyCheck the route's HeadHandler chose (see Admission), after it saw every body
  // byte; null when there was none.
  std::shared_ptr<BodyCheck> body_check;

  // Value of the first header named `name` (ASCII case-insensitive), "" if absent.
  std::string Header(std::string_view name) const;
  // Value of the first query parameter named `name` (case-sensitive), nullopt if absent.
  std::optional<std::string> Query(std::string_view name) const;

  std::map<std::string, std::string> path_params;  // filled by Router
  // Set by the application's middleware for the handler it wraps (the API: who is asking,
  // an auth::Principal); empty otherwise.
  std::any auth;
};

struct Response {
  int status = 200;
  // Sent as Content-Type unless empty or `headers` already has one.
  std::string content_type = "application/json";
  std::string body;
  // Extra headers. Content-Length, Transfer-Encoding and Connection are set by the
  // server and ignored here; a header whose name or value holds CR, LF or NUL is dropped.
  std::vector<std::pair<std::string, std::string>> headers;
  // When set, the body is streamed instead of `body` (which is ignored): sent with
  // Transfer-Encoding: chunked, one piece at a time. The server calls `stream` on a handler
  // thread (it may block, e.g. on the database), writes the piece, and only then asks for the
  // next, so at most one piece per connection is in memory (two with stream_read_ahead). An empty
  // piece ends the body; an error closes the connection without the last chunk (the client sees a
  // truncated body, as the status line has already gone out). Must stay callable until it returned
  // "" or an error.
  std::function<absl::StatusOr<std::string>()> stream;
  // With `stream`: the body's exact length, sent as Content-Length instead of chunked
  // encoding (the pieces go out as they are). The source is asked until that many bytes came,
  // never after. A piece past the length, or an empty one before it, closes the connection (the
  // client sees a truncated body), as an error does.
  std::optional<uint64_t> stream_length;
  // With `stream`: read one piece ahead, so that the next piece is read while the last one is
  // written (two pieces per connection in memory instead of one). For sources that read a
  // disk (artifact files); a log reader's pieces stay one at a time.
  bool stream_read_ahead = false;
  // Like `stream`, for a body that waits on events (a followed log) without holding a handler
  // thread while it waits: the server calls `stream_async(next)` on a handler thread for each
  // piece, and the source calls `next` exactly once per call, from any thread, now or later,
  // with the piece ("" ends the body; an error closes the connection). `next` may outlive the
  // server (it then does nothing). The source must not throw. Ignored when `stream` is set.
  using PieceSink = std::function<void(absl::StatusOr<std::string>)>;
  std::function<void(PieceSink)> stream_async;
};

// `status` with the serialized JSON value as body.
Response JsonResponse(int status, const boost::json::value& v);
// {"error":{"code":code,"message":message}}; code is a short snake_case word like
// "not_found". Bytes of `message` that are not valid UTF-8 become U+FFFD.
Response ErrorResponse(int status, std::string_view code, std::string_view message);

// 500 {"error":{"code":"internal","message":"internal server error","request_id":ID}}
// where ID is CurrentRequestId(). What went wrong goes to the server log, never to a client.
Response InternalErrorResponse();
// The id of the request whose handler (or HeadHandler) runs on this thread; "" elsewhere.
std::string CurrentRequestId();

// Called on a handler-pool thread; must be safe to call concurrently. A thrown
// exception becomes InternalErrorResponse() and its text is logged to stderr.
using Handler = std::function<Response(Request&)>;

// Watches a request body as it streams in, before the handler runs: e.g. an HMAC over the
// raw bytes, so that a forged body is refused without anything parsing it. Called on the
// connection's I/O strand (never concurrently), so it must not block.
class BodyCheck {
 public:
  virtual ~BodyCheck() = default;
  // The next body bytes, in order (chunked encoding removed).
  virtual void Update(std::string_view bytes) = 0;
  // After the last byte: nullopt lets the request on to its handler (with body_check set);
  // a Response refuses it (sent, then the connection closes).
  virtual std::optional<Response> Finish() = 0;
};

// What a HeadHandler decides from a request's head alone.
struct Admission {
  // Set: answer this at once, without reading the body, and close the connection.
  std::optional<Response> refuse;
  // Otherwise: fed every body byte (may be null).
  std::shared_ptr<BodyCheck> check;
};

// Runs on a handler-pool thread (it may block) with the request's head: everything but the
// body, path_params filled. Thread-safe like Handler; a thrown exception refuses with
// InternalErrorResponse().
using HeadHandler = std::function<Admission(Request&)>;

struct ServerOptions {
  std::string host = "127.0.0.1";  // an IP address or a resolvable name
  uint16_t port = 0;               // 0 = pick a free port
  int io_threads = 1;              // Asio threads doing socket I/O
  int handler_threads = 4;         // handlers run here: they may block (database calls)
  // Larger bodies → 413 payload_too_large, connection closed. Checked against
  // Content-Length before the body is read, and while reading a chunked body.
  size_t body_limit = 25 * 1024 * 1024;
  // The request header must arrive within this time of the read starting (this is also
  // the keep-alive idle limit). A response write must also finish within it.
  absl::Duration read_timeout = absl::Seconds(30);
  // The whole body must have arrived this long after the header did (one deadline per
  // request, not per read: a body trickled in byte by byte cannot hold the connection
  // longer); then the connection is closed without an answer.
  absl::Duration body_timeout = absl::Seconds(60);
  // Open connections beyond this are answered 503 overloaded (Retry-After: 1) and closed.
  int max_connections = 1024;
  // Requests waiting for a handler thread (beyond the handler_threads running) beyond this
  // are answered 503 overloaded with Retry-After: 1, and the connection is closed.
  int max_queued = 256;
};

class Server {
 public:
  // `head`, when set, admits each request from its head before its body is read (see
  // Admission); the Router's Admit is meant for it. `has_head`, when set, is asked first, on
  // the I/O thread (it must not block), whether `head` has anything to say about a request;
  // when it says no, the request skips that trip to the handler pool (Router::HasHead).
  Server(ServerOptions opts, Handler handler, HeadHandler head = nullptr,
         std::function<bool(Request&)> has_head = nullptr);
  ~Server();  // Stop()s
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds, listens and starts the threads. kUnavailable with the reason if it cannot
  // resolve or bind; kFailedPrecondition if already started.
  absl::Status Start();
  // The bound port (after a successful Start), else 0.
  uint16_t port() const;
  // Handler and HeadHandler calls queued or running now (for tests and metrics).
  int pending_handlers() const;
  // Closes the listener and all open connections, waits for running handlers to
  // return, joins all threads. Idempotent. Must not be called from a handler.
  void Stop();

  struct Core;  // the listener, threads and open connections; in http_server.cc

 private:
  std::unique_ptr<Core> core_;
};

// Every response also carries X-Request-Id, X-Content-Type-Options: nosniff,
// Cache-Control: no-store (unless the handler set a Cache-Control) and, when its
// Content-Type is text/html, kContentSecurityPolicy (unless the handler set a CSP).
inline constexpr char kContentSecurityPolicy[] =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'";

// Method + path pattern router. Patterns look like "/api/v1/pipelines/{id}/cancel";
// {name} matches one non-empty path segment and lands in req.path_params (decoded).
// When several routes match a path, the one with the most literal segments wins
// (ties: the first added). Unknown path → 404 not_found; known path but wrong
// method → 405 method_not_allowed with an Allow header.
//
// Add() must not run concurrently with Dispatch(); Dispatch() is thread-safe.
class Router {
 public:
  // Throws std::invalid_argument for a malformed pattern (a programming error): it must
  // start with '/', and a '{' must enclose a whole, non-empty segment name. A last segment
  // "{name...}" takes the rest of the path (one segment or more, '/'-joined, empty ones kept).
  // `head`, when set, is the route's HeadHandler, run by Admit.
  void Add(std::string method, std::string pattern, Handler h, HeadHandler head = nullptr);
  Response Dispatch(Request& req) const;
  // The matching route's HeadHandler's verdict (path_params filled); an empty Admission
  // (read the body, no check) for a route without one or a request no route takes.
  Admission Admit(Request& req) const;
  // Whether the route for req's method and path has a HeadHandler. Never blocks.
  bool HasHead(Request& req) const;
  // Every route as added: {method, pattern} (the OpenAPI check and the access tests walk it).
  std::vector<std::pair<std::string, std::string>> Routes() const;

 private:
  struct Segment {
    bool is_param = false;
    bool rest = false;  // "{name...}": matches the rest of the path
    std::string text;   // literal text, or the parameter name
  };
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<Segment> segments;
    int literal_count = 0;
    Handler handler;
    HeadHandler head;
  };
  // The route for req's method and path, path_params filled; null with *allowed (the methods
  // the path takes, sorted, unique) when none.
  const Route* Match(Request& req, std::vector<std::string>* allowed) const;
  std::vector<Route> routes_;
};

}  // namespace assay::http
