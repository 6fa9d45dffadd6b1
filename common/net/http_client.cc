#include "common/net/http_client.h"

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/net/http_client_internal.h"

namespace assay {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

using http_internal::kMaxResponseBody;
using http_internal::kMaxResponseHeader;

// Debian's Abseil has its own absl::string_view, distinct from std::string_view.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// RFC 9110 token characters (method names).
bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

bool HasControlBreak(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

// Everything one exchange needs; lives on HttpFetch's stack. Handlers run only inside
// ioc.run_for(), on the calling thread.
struct Exchange {
  explicit Exchange(net::io_context& ioc) : stream(ioc) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  http::request<http::string_body> request;
  std::optional<http::response_parser<http::string_body>> parser;
  bool done = false;    // set by the read's completion: it decides the outcome
  absl::Status status;  // the failure, when done and not OK
  beast::error_code write_error;
};

}  // namespace

namespace http_internal {

absl::StatusOr<PreparedRequest> PrepareRequest(
    std::string_view method, std::string_view url,
    const std::vector<std::pair<std::string, std::string>>& headers, std::string_view body,
    std::string_view scheme, std::uint16_t default_port) {
  const std::string what = absl::StrCat(AV(method), " ", AV(url));
  if (!IsToken(method)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid HTTP method '", AV(method), "'"));
  }
  auto parsed = boost::urls::parse_uri(boost::urls::string_view(url.data(), url.size()));
  if (!parsed) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid URL '", AV(url), "': ", parsed.error().message()));
  }
  const boost::urls::url_view u = *parsed;
  if (!absl::EqualsIgnoreCase(absl::string_view(u.scheme().data(), u.scheme().size()),
                              AV(scheme))) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported URL scheme '",
                                                   std::string(u.scheme()), "' in '", AV(url),
                                                   "': only ", AV(scheme), ":// is supported"));
  }
  if (u.has_userinfo()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid URL '", AV(url), "': credentials in the URL are not supported"));
  }
  const std::string host = u.host_address();
  if (host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("invalid URL '", AV(url), "': no host"));
  }
  std::uint16_t port = default_port;
  if (u.has_port() && !u.port().empty()) {
    // Why not port_number(): it silently wraps values above 65535.
    unsigned long value = 0;
    for (char c : u.port()) value = std::min(value * 10 + static_cast<unsigned>(c - '0'), 65536ul);
    port = static_cast<std::uint16_t>(value);
    if (value == 0 || value > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid URL '", AV(url), "': bad port '", std::string(u.port()), "'"));
    }
  }
  std::string target = u.encoded_path().empty() ? "/" : std::string(u.encoded_path());
  if (u.has_query()) absl::StrAppend(&target, "?", std::string(u.encoded_query()));

  http::request<http::string_body> request;
  request.version(11);
  request.method_string(beast::string_view(method.data(), method.size()));
  request.target(target);
  request.set(http::field::host, std::string(u.encoded_host_and_port()));
  request.set(http::field::user_agent, "assay/0.1");
  bool has_content_type = false;
  for (const auto& [name, value] : headers) {
    if (!IsToken(name) || HasControlBreak(value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid HTTP header '", name, "' for ", what));
    }
    if (absl::EqualsIgnoreCase(name, "Content-Length") ||
        absl::EqualsIgnoreCase(name, "Transfer-Encoding") ||
        absl::EqualsIgnoreCase(name, "Connection")) {
      continue;
    }
    if (absl::EqualsIgnoreCase(name, "Content-Type")) has_content_type = true;
    if (absl::EqualsIgnoreCase(name, "Host") || absl::EqualsIgnoreCase(name, "User-Agent")) {
      request.set(name, value);
    } else {
      request.insert(name, value);
    }
  }
  if (!body.empty() && !has_content_type) {
    request.set(http::field::content_type, "application/json");
  }
  request.set(http::field::connection, "close");
  request.body().assign(body.data(), body.size());
  request.prepare_payload();  // Content-Length, also "0" for an empty body

  PreparedRequest prepared;
  prepared.what = what;
  prepared.host = host;
  prepared.port = port;
  prepared.request = std::move(request);
  return prepared;
}

absl::StatusOr<std::vector<tcp::endpoint>> Resolve(const PreparedRequest& r,
                                                   const AddressPolicy* policy) {
  if (policy != nullptr) {
    auto allowed = ResolveAllowed(r.host, r.port, *policy);
    if (!allowed.ok()) {
      return absl::Status(allowed.status().code(),
                          absl::StrCat(r.what, ": ", allowed.status().message()));
    }
    return allowed;
  }
  // Why synchronous resolution: Asio's async resolver starts a helper thread per
  // io_context; IP literals (the common case) need no lookup at all.
  std::vector<tcp::endpoint> endpoints;
  beast::error_code ec;
  const auto address = net::ip::make_address(r.host, ec);
  if (!ec) {
    endpoints.emplace_back(address, r.port);
    return endpoints;
  }
  net::io_context resolve_ioc;
  tcp::resolver resolver(resolve_ioc);
  auto results = resolver.resolve(r.host, std::to_string(r.port), ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat(r.what, ": cannot resolve host '", r.host, "': ", ec.message()));
  }
  for (const auto& entry : results) endpoints.push_back(entry.endpoint());
  return endpoints;
}

std::chrono::steady_clock::time_point DeadlineAfter(std::chrono::steady_clock::time_point start,
                                                    absl::Duration timeout) {
  // Why a clamp: absl::InfiniteDuration converts to the largest nanosecond count, and
  // now() + that overflows inside Asio.
  return start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                     std::clamp(absl::ToChronoNanoseconds(timeout), std::chrono::nanoseconds(0),
                                std::chrono::nanoseconds(std::chrono::hours(24 * 365))));
}

HttpClientResponse ToResponse(http::response_parser<http::string_body>& parser) {
  auto& message = parser.get();
  HttpClientResponse response;
  response.status = static_cast<int>(message.result_int());
  response.headers.reserve(std::distance(message.begin(), message.end()));
  for (const auto& field : message) {
    response.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  response.body = std::move(message.body());
  return response;
}

}  // namespace http_internal

std::string HttpClientResponse::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, AV(name))) return value;
  }
  return "";
}

absl::StatusOr<HttpClientResponse> HttpFetch(
    std::string_view method, std::string_view url,
    const std::vector<std::pair<std::string, std::string>>& headers, std::string_view body,
    absl::Duration timeout, const AddressPolicy* policy) {
  const auto start = std::chrono::steady_clock::now();
  auto prepared_or = http_internal::PrepareRequest(method, url, headers, body, "http", 80);
  if (!prepared_or.ok()) return prepared_or.status();
  http_internal::PreparedRequest& prepared = *prepared_or;
  if (policy != nullptr) {
    if (absl::Status plain = policy->CheckPlainHttp(prepared.host); !plain.ok()) {
      return absl::PermissionDeniedError(absl::StrCat(prepared.what, ": ", plain.message()));
    }
  }
  const std::string& what = prepared.what;
  const auto deadline = http_internal::DeadlineAfter(start, timeout);
  auto timed_out = [&] {
    return absl::DeadlineExceededError(
        absl::StrCat(what, ": timed out after ", absl::FormatDuration(timeout)));
  };

  auto resolved = http_internal::Resolve(prepared, policy);
  if (!resolved.ok()) return resolved.status();
  const std::vector<tcp::endpoint>& endpoints = *resolved;
  if (std::chrono::steady_clock::now() >= deadline) return timed_out();

  // Why one io_context per thread, reused: a fresh one costs an epoll instance, an eventfd
  // and a timerfd, about ten syscalls, as many as the exchange itself.
  thread_local std::unique_ptr<net::io_context> thread_ioc;
  if (thread_ioc == nullptr) thread_ioc = std::make_unique<net::io_context>(1);
  net::io_context& ioc = *thread_ioc;
  ioc.restart();
  std::optional<Exchange> exchange(std::in_place, ioc);
  Exchange& ex = *exchange;
  ex.request = std::move(prepared.request);
  // Why reserve: Beast reads at most the buffer's free capacity (but at least 512 bytes)
  // per call, so an unreserved buffer reads a large body 512 bytes per syscall.
  ex.buffer.reserve(64 * 1024);
  ex.parser.emplace();
  ex.parser->body_limit(kMaxResponseBody);
  ex.parser->header_limit(kMaxResponseHeader);
  if (method == "HEAD") ex.parser->skip(true);
  auto fail = [&ex](absl::Status status) {
    ex.status = std::move(status);
    ex.done = true;
    beast::error_code ignored;
    ex.stream.socket().close(ignored);
  };

  const std::string authority = absl::StrCat(prepared.host, ":", prepared.port);
  ex.stream.async_connect(endpoints, [&](beast::error_code ec, const tcp::endpoint&) {
    if (ec) {
      return fail(absl::UnavailableError(
          absl::StrCat(what, ": cannot connect to ", authority, ": ", ec.message())));
    }
    beast::error_code ignored;
    ex.stream.socket().set_option(tcp::no_delay(true), ignored);
    // Why read while writing: a server may answer before taking the whole body (413 on
    // an oversized upload) and then close; the answer is more useful than the broken
    // pipe the rest of the write would give. The read decides the outcome.
    http::async_write(ex.stream, ex.request,
                      [&](beast::error_code ec, std::size_t) { ex.write_error = ec; });
    http::async_read(ex.stream, ex.buffer, *ex.parser, [&](beast::error_code ec, std::size_t) {
      if (ec == http::error::body_limit) {
        return fail(absl::ResourceExhaustedError(
            absl::StrCat(what, ": response body exceeds ", kMaxResponseBody, " bytes")));
      }
      if (ec && ex.write_error && ex.write_error != net::error::operation_aborted) {
        return fail(absl::UnavailableError(
            absl::StrCat(what, ": sending the request failed: ", ex.write_error.message())));
      }
      if (ec) {
        return fail(absl::UnavailableError(
            absl::StrCat(what, ": reading the response failed: ", ec.message())));
      }
      ex.done = true;
      beast::error_code ignored;
      ex.stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
      ex.stream.socket().close(ignored);  // also ends a write still in progress
    });
  });
  ioc.run_until(deadline);
  if (!ex.done) {
    // The io_context still holds handlers that point into `ex`; they must never run.
    // Close the socket first (it must not outlive its io_context), then drop both.
    exchange.reset();
    thread_ioc.reset();
    return timed_out();
  }
  if (!ex.status.ok()) return ex.status;

  return http_internal::ToResponse(*ex.parser);
}

}  // namespace assay
