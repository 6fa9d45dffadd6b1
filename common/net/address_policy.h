#pragma once
// Which hosts Assay may make outbound requests to (forge APIs for commit statuses): no
// loopback, link-local, private (RFC 1918, ULA, CGNAT 100.64/10), unspecified or other
// non-global address unless the operator allowlists it (--allow-private-hosts), so a repository
// admin cannot point the server at 127.0.0.1, a cloud metadata service (169.254.169.254) or
// the internal network (SSRF). Host names are resolved once per request and the connection is
// made to the addresses that were checked (common/net/http_client.h), so a name cannot resolve
// to a public address when checked and a private one when used (DNS rebinding).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "absl/status/statusor.h"

namespace assay {

// Why `a` is not a public unicast address: "loopback", "link-local", "private",
// "unique local", "shared (CGNAT)", "unspecified", "multicast", "reserved", "documentation",
// "benchmarking", "site-local"; empty when it is one. IPv4-mapped, IPv4-compatible, NAT64
// (64:ff9b::/96) and 6to4 (2002::/16) IPv6 addresses are classified by their IPv4 address.
std::string_view NonPublicKind(const boost::asio::ip::address& a);

class AddressPolicy {
 public:
  // `spec` (the --allow-private-hosts value): empty (nothing non-public allowed), "*"
  // (everything, and plain http:// to any host), or a comma-separated list of host names,
  // IP addresses and CIDR blocks, e.g. "forge.internal,10.20.0.0/16,127.0.0.1,[::1],fd00::/8".
  // kInvalidArgument "--allow-private-hosts: 'X' is not a host name, address or CIDR block".
  static absl::StatusOr<AddressPolicy> Parse(std::string_view spec);

  // Whether `host` (a name, or an address literal, brackets allowed) is allowlisted itself.
  bool Listed(std::string_view host) const;

  // OK when `address`, which `host` resolved to, may be connected to: it is public, or the
  // host or the address is allowlisted. Otherwise kPermissionDenied, exactly:
  //   "host 'H' resolves to A, a KIND address; refused unless allowed by --allow-private-hosts"
  absl::Status Check(std::string_view host, const boost::asio::ip::address& address) const;

  // For a URL's host: plain http:// is allowed only to a host that is Listed (or with "*").
  // kPermissionDenied "plain http:// to 'H' is refused: use https://, or allow the host with
  // --allow-private-hosts".
  absl::Status CheckPlainHttp(std::string_view host) const;

  bool allow_all() const { return all_; }

 private:
  struct Block {
    boost::asio::ip::address base;
    int prefix = 0;
  };
  bool all_ = false;
  std::vector<std::string> names_;  // lowercase, no trailing '.'
  std::vector<Block> blocks_;
};

// Resolves `host` (an address literal needs no lookup) once and checks every address with
// `policy`; all of them must pass, so the connection can use any. kUnavailable "cannot resolve
// host 'H': ..." when the lookup fails; Check's error otherwise.
absl::StatusOr<std::vector<boost::asio::ip::tcp::endpoint>> ResolveAllowed(
    std::string_view host, uint16_t port, const AddressPolicy& policy);

}  // namespace assay
