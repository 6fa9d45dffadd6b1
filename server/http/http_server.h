#pragma once
// HTTP/1.1 server and router on Boost.Beast.
//
// Threads: `io_threads` Asio threads do all socket I/O; each connection lives on its
// own strand. Handlers run on a separate pool of `handler_threads` threads, so they
// may block (database calls) without stalling I/O; the response is written back on
// the connection's strand.

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

struct Request {
  std::string method;  // "GET"
  std::string target;  // raw target "/api/v1/x?y=1"
  std::string path;    // percent-decoded path "/api/v1/x"
  // Decoded query parameters in order; '+' decodes to a space; "?flag" gives {"flag", ""}.
  std::vector<std::pair<std::string, std::string>> query;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;         // raw bytes exactly as received (chunked encoding removed)
  std::string remote_addr;  // peer "ip:port" ("[::1]:port" for IPv6)

  // Value of the first header named `name` (ASCII case-insensitive), "" if absent.
  std::string Header(std::string_view name) const;
  // Value of the first query parameter named `name` (case-sensitive), nullopt if absent.
  std::optional<std::string> Query(std::string_view name) const;

  std::map<std::string, std::string> path_params;  // filled by Router
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
  // next, so at most one piece per connection is in memory. An empty piece ends the body; an
  // error closes the connection without the last chunk (the client sees a truncated body, as
  // the status line has already gone out). Must stay callable until it returned "" or an error.
  std::function<absl::StatusOr<std::string>()> stream;
};

// `status` with the serialized JSON value as body.
Response JsonResponse(int status, const boost::json::value& v);
// {"error":{"code":code,"message":message}}; code is a short snake_case word like
// "not_found". Bytes of `message` that are not valid UTF-8 become U+FFFD.
Response ErrorResponse(int status, std::string_view code, std::string_view message);

// Called on a handler-pool thread; must be safe to call concurrently. A thrown
// exception becomes 500 {"error":{"code":"internal","message":"internal server error"}}
// and its text is logged to stderr.
using Handler = std::function<Response(Request&)>;

struct ServerOptions {
  std::string host = "127.0.0.1";  // an IP address or a resolvable name
  uint16_t port = 0;               // 0 = pick a free port
  int io_threads = 1;              // Asio threads doing socket I/O
  int handler_threads = 4;         // handlers run here: they may block (database calls)
  // Larger bodies → 413 payload_too_large, connection closed. Checked against
  // Content-Length before the body is read, and while reading a chunked body.
  size_t body_limit = 25 * 1024 * 1024;
  // The request header must arrive within this time of the read starting (this is also
  // the keep-alive idle limit); after that, the body may pause at most this long
  // between reads. A response write must also finish within it.
  absl::Duration read_timeout = absl::Seconds(30);
};

class Server {
 public:
  Server(ServerOptions opts, Handler handler);
  ~Server();  // Stop()s
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds, listens and starts the threads. kUnavailable with the reason if it cannot
  // resolve or bind; kFailedPrecondition if already started.
  absl::Status Start();
  // The bound port (after a successful Start), else 0.
  uint16_t port() const;
  // Closes the listener and all open connections, waits for running handlers to
  // return, joins all threads. Idempotent. Must not be called from a handler.
  void Stop();

  struct Core;  // the listener, threads and open connections; in http_server.cc

 private:
  std::unique_ptr<Core> core_;
};

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
  // start with '/', and a '{' must enclose a whole, non-empty segment name.
  void Add(std::string method, std::string pattern, Handler h);
  Response Dispatch(Request& req) const;

 private:
  struct Segment {
    bool is_param = false;
    std::string text;  // literal text, or the parameter name
  };
  struct Route {
    std::string method;
    std::vector<Segment> segments;
    int literal_count = 0;
    Handler handler;
  };
  std::vector<Route> routes_;
};

}  // namespace assay::http
