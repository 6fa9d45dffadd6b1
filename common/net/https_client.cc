#include "common/net/https_client.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/net/http_client_internal.h"

namespace assay {
namespace {

namespace net = boost::asio;
namespace ssl = net::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// An error from Asio's SSL layer as text: OpenSSL's reason ("certificate verify failed")
// rather than Asio's generic category text where there is one.
std::string SslErrorText(const beast::error_code& ec) {
  if (ec.category() == net::error::get_ssl_category()) {
    const char* reason = ERR_reason_error_string(static_cast<unsigned long>(ec.value()));
    if (reason != nullptr) return reason;
  }
  return ec.message();
}

// The SSL context for one CA file ("" = system store only), built once and shared: loading the
// system store parses a few hundred certificates. An SSL_CTX may be shared between threads.
absl::StatusOr<std::shared_ptr<ssl::context>> ClientContext(const std::string& ca_file) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<ssl::context>> cache;
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache.find(ca_file); it != cache.end()) return it->second;
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  beast::error_code ec;
  ctx->set_default_verify_paths(ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot load the system CA store: ", SslErrorText(ec)));
  }
  if (!ca_file.empty()) {
    ctx->load_verify_file(ca_file, ec);
    if (ec) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot load CA file '", ca_file, "': ", SslErrorText(ec)));
    }
  }
  ctx->set_verify_mode(ssl::verify_peer);
  cache.emplace(ca_file, ctx);
  return ctx;
}

struct TlsExchange {
  TlsExchange(net::io_context& ioc, ssl::context& ctx) : stream(ioc, ctx) {}
  beast::ssl_stream<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  http::request<http::string_body> request;
  std::optional<http::response_parser<http::string_body>> parser;
  bool done = false;
  absl::Status status;
};

}  // namespace

absl::StatusOr<HttpClientResponse> HttpsFetch(
    std::string_view method, std::string_view url,
    const std::vector<std::pair<std::string, std::string>>& headers, std::string_view body,
    absl::Duration timeout, const TlsClientOptions& tls) {
  const auto start = std::chrono::steady_clock::now();
  auto prepared_or = http_internal::PrepareRequest(method, url, headers, body, "https", 443);
  if (!prepared_or.ok()) return prepared_or.status();
  http_internal::PreparedRequest& prepared = *prepared_or;
  const std::string& what = prepared.what;
  const auto deadline = http_internal::DeadlineAfter(start, timeout);
  auto timed_out = [&] {
    return absl::DeadlineExceededError(
        absl::StrCat(what, ": timed out after ", absl::FormatDuration(timeout)));
  };

  auto ctx_or = ClientContext(tls.ca_file);
  if (!ctx_or.ok()) return ctx_or.status();
  ssl::context& ctx = **ctx_or;
  beast::error_code ec;

  auto resolved = http_internal::Resolve(prepared, tls.address_policy);
  if (!resolved.ok()) return resolved.status();
  const std::vector<tcp::endpoint>& endpoints = *resolved;
  if (std::chrono::steady_clock::now() >= deadline) return timed_out();

  net::io_context ioc(1);
  std::optional<TlsExchange> exchange(std::in_place, ioc, ctx);
  TlsExchange& ex = *exchange;
  ex.request = std::move(prepared.request);
  ex.buffer.reserve(64 * 1024);
  ex.parser.emplace();
  ex.parser->body_limit(http_internal::kMaxResponseBody);
  ex.parser->header_limit(http_internal::kMaxResponseHeader);
  if (method == "HEAD") ex.parser->skip(true);

  // Hostname verification by OpenSSL itself (so that a mismatch shows as "hostname mismatch" or
  // "IP address mismatch"), and SNI for names only (RFC 6066 forbids IP literals there).
  SSL* ssl_handle = ex.stream.native_handle();
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl_handle);
  net::ip::make_address(prepared.host, ec);
  if (!ec) {
    if (X509_VERIFY_PARAM_set1_ip_asc(param, prepared.host.c_str()) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": cannot verify the certificate for '", prepared.host, "'"));
    }
  } else {
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl_handle, prepared.host.c_str()) != 1 ||
        SSL_set_tlsext_host_name(ssl_handle, prepared.host.c_str()) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": cannot use '", prepared.host, "' as the TLS server name"));
    }
  }

  auto fail = [&ex](absl::Status status) {
    ex.status = std::move(status);
    ex.done = true;
    beast::error_code ignored;
    beast::get_lowest_layer(ex.stream).socket().close(ignored);
  };
  const std::string authority = absl::StrCat(prepared.host, ":", prepared.port);
  beast::get_lowest_layer(ex.stream).async_connect(endpoints, [&](beast::error_code ec,
                                                                  const tcp::endpoint&) {
    if (ec) {
      return fail(absl::UnavailableError(
          absl::StrCat(what, ": cannot connect to ", authority, ": ", ec.message())));
    }
    beast::error_code ignored;
    beast::get_lowest_layer(ex.stream).socket().set_option(tcp::no_delay(true), ignored);
    ex.stream.async_handshake(ssl::stream_base::client, [&](beast::error_code ec) {
      if (ec) {
        std::string reason = SslErrorText(ec);
        const long verify = SSL_get_verify_result(ex.stream.native_handle());
        if (verify != X509_V_OK) {
          absl::StrAppend(&reason, " (", X509_verify_cert_error_string(verify), ")");
        }
        return fail(absl::UnavailableError(
            absl::StrCat(what, ": TLS handshake with ", authority, " failed: ", reason)));
      }
      http::async_write(ex.stream, ex.request, [&](beast::error_code ec, std::size_t) {
        if (ec) {
          return fail(absl::UnavailableError(
              absl::StrCat(what, ": sending the request failed: ", SslErrorText(ec))));
        }
        http::async_read(ex.stream, ex.buffer, *ex.parser, [&](beast::error_code ec, std::size_t) {
          if (ec == http::error::body_limit) {
            return fail(absl::ResourceExhaustedError(absl::StrCat(
                what, ": response body exceeds ", http_internal::kMaxResponseBody, " bytes")));
          }
          if (ec) {
            return fail(absl::UnavailableError(
                absl::StrCat(what, ": reading the response failed: ", SslErrorText(ec))));
          }
          // Why no TLS close_notify: the response is complete and the connection is
          // ours alone (Connection: close); waiting for the peer's reply only costs time.
          ex.done = true;
          beast::error_code ignored;
          beast::get_lowest_layer(ex.stream).socket().close(ignored);
        });
      });
    });
  });
  ioc.run_until(deadline);
  if (!ex.done) {
    exchange.reset();
    return timed_out();
  }
  if (!ex.status.ok()) return ex.status;
  return http_internal::ToResponse(*ex.parser);
}

absl::Status CheckCaFile(const std::string& path) {
  ssl::context ctx(ssl::context::tls_client);
  beast::error_code ec;
  ctx.load_verify_file(path, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot load CA file '", path, "': ", SslErrorText(ec)));
  }
  return absl::OkStatus();
}

absl::StatusOr<HttpClientResponse> FetchHttpOrHttps(
    std::string_view method, std::string_view url,
    const std::vector<std::pair<std::string, std::string>>& headers, std::string_view body,
    absl::Duration timeout, const TlsClientOptions& tls) {
  if (absl::StartsWithIgnoreCase(AV(url), "https://")) {
    return HttpsFetch(method, url, headers, body, timeout, tls);
  }
  return HttpFetch(method, url, headers, body, timeout, tls.address_policy);
}

}  // namespace assay
