// GET /api/v1/jobs/{id}/log: the job's log, raw (default) or with ?timestamps=1; a byte
// range (Range: bytes=a-b → 206) or ?offset=N; ?follow=1 streams it live until the attempt
// ends (chunked text, or SSE with Accept: text/event-stream). docs/logs.md is the contract.

#include <climits>
#include <memory>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/api/routes.h"
#include "server/http/json_util.h"
#include "server/logs/log_followers.h"
#include "server/logs/log_format.h"

namespace assay::api {
namespace {

using http::ErrorResponse;
using http::Request;
using http::Response;

// Reads and sends the log in pages of about this many bytes.
constexpr size_t kLogPageBytes = 256 * 1024;

// A flag parameter: absent → false; "1"/"true" → true; "0"/"false" → false.
absl::StatusOr<bool> Flag(const Request& req, std::string_view name) {
  auto v = req.Query(name);
  if (!v.has_value()) return false;
  if (*v == "1" || *v == "true") return true;
  if (*v == "0" || *v == "false") return false;
  return absl::InvalidArgumentError(
      absl::StrCat("query parameter '", std::string(name), "' must be 1, true, 0 or false"));
}

// A byte offset: decimal digits only, at most 18 of them.
bool ParseOffset(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return absl::SimpleAtoi(absl::string_view(s.data(), s.size()), out);
}

// `bytes` as a JSON string (for an SSE data line): quotes, backslashes and control bytes
// escaped, other bytes as they are.
std::string JsonQuote(std::string_view bytes) {
  std::string out = "\"";
  for (char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (ch == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7f) {
      out += absl::StrCat("\\u00", absl::Hex(c, absl::kZeroPad2));
    } else {
      out += ch;
    }
  }
  out += '"';
  return out;
}

// One follower: reads what is stored past `pos`, or parks on the hub until the log changes.
// Owned by the response's source and by the hub while parked.
struct Follow : std::enable_shared_from_this<Follow> {
  store::LogStore* logs = nullptr;
  logs::LogFollowers* hub = nullptr;
  std::shared_ptr<void> slot;
  int64_t job_id = 0;
  int attempt = 0;
  int64_t pos = 0;
  bool timestamps = false, sse = false;
  bool ended = false;  // the end event went out (SSE); the next piece ends the body
  absl::Time last_sent = absl::Now();

  void Step(Response::PieceSink next) {
    if (ended) return next(std::string());
    absl::StatusOr<std::string> piece = Try();
    if (!piece.ok() || !piece->empty()) return next(std::move(piece));
    if (waiting_done) {
      if (!sse) return next(std::string());
      ended = true;
      return next(std::string("event: end\ndata: {}\n\n"));
    }
    const absl::Time now = absl::Now();
    if (sse && now - last_sent >= hub->options().keepalive) {
      last_sent = now;
      return next(std::string(": keepalive\n\n"));
    }
    if (!sse && now - last_sent >= hub->options().idle_end) return next(std::string());
    hub->Park(job_id, [self = shared_from_this(), next = std::move(next)]() mutable {
      self->Step(std::move(next));
    });
  }

 private:
  bool waiting_done = false;

  // The next piece; "" with waiting_done when the attempt ended and everything was sent, ""
  // alone when nothing new is stored yet.
  absl::StatusOr<std::string> Try() {
    waiting_done = false;
    if (attempt == 0) {
      auto head = logs->Head(job_id, /*live=*/true);
      if (!head.ok()) return head.status();
      if (head->attempt == 0) {
        waiting_done = head->ended;
        return std::string();
      }
      attempt = head->attempt;
    }
    // Why the state before the bytes: an attempt's chunks are all stored before it ends, so
    // when it had ended before this read, an empty read is the end.
    auto st = logs->Stat(job_id, attempt);
    if (!st.ok()) return st.status();
    auto slice = logs->Read(job_id, attempt, pos, INT64_MAX, kLogPageBytes);
    if (!slice.ok()) return slice.status();
    if (slice->data.empty()) {
      waiting_done = st->ended;
      return std::string();
    }
    pos += static_cast<int64_t>(slice->data.size());
    last_sent = absl::Now();
    std::string text = timestamps ? logs::StampLines(*slice) : std::move(slice->data);
    if (!sse) return text;
    return absl::StrCat("id: ", pos, "\ndata: ", JsonQuote(text), "\n\n");
  }
};

}  // namespace

void RegisterJobLogRoute(http::Router& router, const ApiDeps& d) {
  router.Add(
      "GET", "/api/v1/jobs/{id}/log", Authed(d, auth::Need::Read(), [&d](Request& req) {
        auto id = PathId(req);
        if (!id.ok()) return http::StatusToResponse(id.status());
        if (d.logs == nullptr) return ErrorResponse(503, "unavailable", "logs are not served here");
        auto follow = Flag(req, "follow");
        if (!follow.ok()) return http::StatusToResponse(follow.status());
        auto timestamps = Flag(req, "timestamps");
        if (!timestamps.ok()) return http::StatusToResponse(timestamps.status());
        std::optional<int64_t> offset;
        std::string offset_text;
        if (auto q = req.Query("offset"); q.has_value()) {
          offset_text = *q;
        } else if (std::string last = req.Header("Last-Event-ID"); *follow && !last.empty()) {
          offset_text = last;  // an EventSource reconnecting: the id of the last event it got
        }
        if (!offset_text.empty() || req.Query("offset").has_value()) {
          int64_t v = 0;
          if (!ParseOffset(offset_text, &v)) {
            return ErrorResponse(
                400, "bad_request",
                "query parameter 'offset' must be a byte offset: an integer from 0 "
                "to 999999999999999999");
          }
          offset = v;
        }
        const std::string range = req.Header("Range");
        if (!range.empty() && (*follow || *timestamps || offset.has_value())) {
          return ErrorResponse(
              400, "bad_request",
              "header 'Range' cannot be combined with follow, timestamps or offset");
        }

        Response r;
        r.content_type = "text/plain; charset=utf-8";
        r.headers.emplace_back("Accept-Ranges", "bytes");
        if (*follow) {
          if (d.log_followers == nullptr) {
            return ErrorResponse(503, "unavailable", "following logs is not served here");
          }
          auto slot = d.log_followers->Acquire();
          if (slot == nullptr) {
            Response busy = ErrorResponse(
                503, "overloaded",
                absl::StrCat("this server already streams ",
                             d.log_followers->options().max_followers,
                             " followed logs; try again later or read without follow"));
            busy.headers.emplace_back("Retry-After", "5");
            return busy;
          }
          auto head = d.logs->Head(*id, /*live=*/true);
          if (!head.ok()) return http::StatusToResponse(head.status());
          auto f = std::make_shared<Follow>();
          f->logs = d.logs;
          f->hub = d.log_followers;
          f->slot = std::move(slot);
          f->job_id = *id;
          f->attempt = head->attempt;
          f->pos = offset.value_or(0);
          f->timestamps = *timestamps;
          f->sse = absl::AsciiStrToLower(req.Header("Accept")).find("text/event-stream") !=
                   std::string::npos;
          if (f->sse) r.content_type = "text/event-stream";
          r.headers.emplace_back("X-Accel-Buffering", "no");  // proxies: do not buffer a live tail
          r.stream_async = [f](Response::PieceSink next) { f->Step(std::move(next)); };
          return r;
        }

        auto head = d.logs->Head(*id, /*live=*/false);
        if (!head.ok()) return http::StatusToResponse(head.status());
        int64_t from = offset.value_or(0), to = INT64_MAX;
        if (!range.empty()) {
          auto br = logs::ParseRange(range, head->size);
          if (br.status().code() == absl::StatusCode::kOutOfRange) {
            Response e =
                ErrorResponse(416, "range_not_satisfiable", std::string(br.status().message()));
            e.headers.emplace_back("Content-Range", absl::StrCat("bytes */", head->size));
            return e;
          }
          if (!br.ok()) return http::StatusToResponse(br.status());
          from = br->first;
          to = br->last + 1;
          r.status = 206;
          r.headers.emplace_back("Content-Range",
                                 absl::StrCat("bytes ", br->first, "-", br->last, "/", head->size));
        } else if (from > head->size) {
          Response e = ErrorResponse(416, "range_not_satisfiable",
                                     absl::StrCat("offset ", from, " is past the end of the log (",
                                                  head->size, " bytes)"));
          e.headers.emplace_back("Content-Range", absl::StrCat("bytes */", head->size));
          return e;
        }
        // Why streamed: a log may be as large as the quota (100 MiB by default); the server holds
        // one page of it per request, never the whole log.
        struct Cursor {
          int64_t pos, to;
        };
        auto cur = std::make_shared<Cursor>(Cursor{from, to});
        r.stream = [logs = d.logs, job = *id, attempt = head->attempt, cur,
                    ts = *timestamps]() -> absl::StatusOr<std::string> {
          if (cur->pos >= cur->to) return std::string();
          auto slice = logs->Read(job, attempt, cur->pos, cur->to, kLogPageBytes);
          if (!slice.ok()) return slice.status();
          cur->pos += static_cast<int64_t>(slice->data.size());
          if (slice->data.empty()) cur->to = cur->pos;
          return ts ? logs::StampLines(*slice) : std::move(slice->data);
        };
        return r;
      }));
}

}  // namespace assay::api
