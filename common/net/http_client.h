#pragma once
// A small synchronous HTTP/1.1 client (plain http only) on Boost.Beast.
//
// Each call opens a new connection, sends one request with `Connection: close`,
// reads the whole response and closes. Calls are independent and thread-safe:
// every call owns its own io_context, so there are no shared threads or pools.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace assay {

class AddressPolicy;

struct HttpClientResponse {
  int status = 0;
  std::string body;
  // In the order received; names as the server spelled them.
  std::vector<std::pair<std::string, std::string>> headers;

  // Value of the first header named `name` (ASCII case-insensitive), "" if absent.
  std::string Header(std::string_view name) const;
};

// Sends `method url` with `headers` and `body` and returns the response, whatever its
// status (a 404 or 500 is a successful fetch).
//
// `url` is http://host[:port]/path?query; the fragment is dropped. The client sets
// Host, User-Agent "assay/0.1", Content-Length and Connection: close, plus
// Content-Type: application/json when `body` is non-empty and `headers` has no
// Content-Type. Headers passed in `headers` replace Host/User-Agent; Content-Length,
// Transfer-Encoding and Connection from `headers` are ignored. TCP_NODELAY is set.
//
// Errors:
//   kInvalidArgument  bad or non-http URL, bad method token, CR/LF in a header.
//   kUnavailable      cannot resolve or connect; connection reset; malformed response.
//   kDeadlineExceeded the whole exchange (resolve + connect + write + read) took
//                     longer than `timeout`.
//   kResourceExhausted the response body exceeds 1 GiB.
//
// With `policy` (common/net/address_policy.h): the host must be allowlisted for plain http
// (AddressPolicy::CheckPlainHttp) and every address it resolves to must pass
// AddressPolicy::Check; the connection is made to those checked addresses, resolved once.
// kPermissionDenied "METHOD URL: <the policy's message>" otherwise.
absl::StatusOr<HttpClientResponse> HttpFetch(
    std::string_view method, std::string_view url,
    const std::vector<std::pair<std::string, std::string>>& headers = {},
    std::string_view body = {}, absl::Duration timeout = absl::Seconds(30),
    const AddressPolicy* policy = nullptr);

}  // namespace assay
