#pragma once
// Shared by common/http_client.cc and common/https_client.cc: the parts of one exchange that do
// not depend on the transport. Not for use elsewhere.

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/net/address_policy.h"
#include "common/net/http_client.h"

namespace assay::http_internal {

inline constexpr std::uint64_t kMaxResponseBody = std::uint64_t{1} << 30;
inline constexpr std::uint32_t kMaxResponseHeader = 64 * 1024;

struct PreparedRequest {
  std::string what;  // "METHOD URL", for messages
  std::string host;  // as in the URL, brackets removed from IPv6 literals
  std::uint16_t port = 0;
  boost::beast::http::request<boost::beast::http::string_body> request;
};

// Checks `method`, `url` (its scheme must be `scheme`; `default_port` when it has none) and
// `headers`, and builds the request as HttpFetch documents.
absl::StatusOr<PreparedRequest> PrepareRequest(
    std::string_view method, std::string_view url,
    const std::vector<std::pair<std::string, std::string>>& headers, std::string_view body,
    std::string_view scheme, std::uint16_t default_port);

// The endpoints for host:port: the address itself for an IP literal, else a (synchronous) lookup.
// With `policy`, ResolveAllowed's check (and its error, after r.what) applies.
absl::StatusOr<std::vector<boost::asio::ip::tcp::endpoint>> Resolve(
    const PreparedRequest& r, const AddressPolicy* policy = nullptr);

// `timeout` from now as a steady_clock deadline, clamped to a year.
std::chrono::steady_clock::time_point DeadlineAfter(std::chrono::steady_clock::time_point start,
                                                    absl::Duration timeout);

// The response a finished parser holds.
HttpClientResponse ToResponse(
    boost::beast::http::response_parser<boost::beast::http::string_body>& parser);

}  // namespace assay::http_internal
