#pragma once
// HTTPS for the small synchronous client of common/http_client.h: Boost.Beast's ssl_stream over
// Asio and OpenSSL. TLS 1.2 or later, SNI (for host names), the peer's chain verified against the
// system CA store (plus an optional extra CA file) and its name checked against the URL's host
// (DNS name or IP address, RFC 6125 via OpenSSL's X509_check_host / X509_check_ip).
//
// Same contract as HttpFetch: one connection per call, `Connection: close`, the same headers, the
// whole exchange (resolve + connect + handshake + write + read) bounded by `timeout`. Thread-safe:
// every call has its own io_context; the SSL context (trust store) is built once per CA file and
// shared, so a CA file changed on disk is read again only by a new process.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/net/http_client.h"

namespace assay {

struct TlsClientOptions {
  // PEM file with extra trusted CA certificates (e.g. a self-hosted forge's private CA), used in
  // addition to the system store. Empty: the system store only.
  std::string ca_file;
  // When set, the host's addresses are checked (and plain http:// in FetchHttpOrHttps allowed
  // only to a listed host) as HttpFetch documents for its `policy`. Not owned.
  const AddressPolicy* address_policy = nullptr;
};

// `url` is https://host[:port]/path?query (port 443 by default).
// Errors, besides HttpFetch's (kInvalidArgument for a bad or non-https URL, kUnavailable,
// kDeadlineExceeded, kResourceExhausted):
//   kFailedPrecondition "cannot load CA file 'F': ..." when ca_file cannot be read or parsed.
//   kUnavailable "POST https://h/p: TLS handshake with h:443 failed: certificate verify failed
//                (self-signed certificate)" and the like: the reason OpenSSL gives, with the
//                verification result when the peer's certificate was rejected.
absl::StatusOr<HttpClientResponse> HttpsFetch(
    std::string_view method, std::string_view url,
    const std::vector<std::pair<std::string, std::string>>& headers = {},
    std::string_view body = {}, absl::Duration timeout = absl::Seconds(30),
    const TlsClientOptions& tls = {});

// kFailedPrecondition "cannot load CA file 'F': ..." unless `path` holds PEM CA certificates that
// OpenSSL accepts (for checking a configured ca_file at startup).
absl::Status CheckCaFile(const std::string& path);

// HttpsFetch for https:// URLs, HttpFetch for anything else.
absl::StatusOr<HttpClientResponse> FetchHttpOrHttps(
    std::string_view method, std::string_view url,
    const std::vector<std::pair<std::string, std::string>>& headers = {},
    std::string_view body = {}, absl::Duration timeout = absl::Seconds(30),
    const TlsClientOptions& tls = {});

}  // namespace assay
