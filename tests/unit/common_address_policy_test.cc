// Outbound address policy (common/net/address_policy.h) and its use by the HTTP clients: forge
// API calls may not reach loopback, link-local, private or other non-public addresses unless
// allowlisted (issue 8, item 6).

#include <catch2/catch.hpp>
#include <string>

#include "common/net/address_policy.h"
#include "common/net/http_client.h"
#include "common/net/https_client.h"

namespace assay {
namespace {

std::string Kind(const std::string& a) {
  return std::string(NonPublicKind(boost::asio::ip::make_address(a)));
}

std::string Refusal(const std::string& host, const std::string& addr, const std::string& kind) {
  return "host '" + host + "' resolves to " + addr + ", a " + kind +
         " address; refused unless allowed by --allow-private-hosts";
}

TEST_CASE("NonPublicKind classifies addresses", "[net][security]") {
  CHECK(Kind("127.0.0.1") == "loopback");
  CHECK(Kind("127.255.0.9") == "loopback");
  CHECK(Kind("169.254.169.254") == "link-local");
  CHECK(Kind("10.1.2.3") == "private");
  CHECK(Kind("172.16.0.1") == "private");
  CHECK(Kind("172.31.255.255") == "private");
  CHECK(Kind("172.32.0.1") == "");
  CHECK(Kind("192.168.1.1") == "private");
  CHECK(Kind("100.64.0.1") == "shared (CGNAT)");
  CHECK(Kind("100.127.255.255") == "shared (CGNAT)");
  CHECK(Kind("100.128.0.1") == "");
  CHECK(Kind("0.0.0.0") == "unspecified");
  CHECK(Kind("224.0.0.1") == "multicast");
  CHECK(Kind("255.255.255.255") == "reserved");
  CHECK(Kind("8.8.8.8") == "");
  CHECK(Kind("140.82.112.3") == "");
  CHECK(Kind("::1") == "loopback");
  CHECK(Kind("::") == "unspecified");
  CHECK(Kind("fe80::1") == "link-local");
  CHECK(Kind("fd00::1") == "unique local");
  CHECK(Kind("fc00::1") == "unique local");
  CHECK(Kind("ff02::1") == "multicast");
  CHECK(Kind("::ffff:127.0.0.1") == "loopback");
  CHECK(Kind("::ffff:169.254.169.254") == "link-local");
  CHECK(Kind("::ffff:8.8.8.8") == "");
  CHECK(Kind("64:ff9b::a00:1") == "private");
  CHECK(Kind("2002:7f00:1::") == "loopback");
  CHECK(Kind("2001:db8::1") == "documentation");
  CHECK(Kind("2606:4700::1111") == "");
}

TEST_CASE("AddressPolicy parses its allowlist", "[net][security]") {
  CHECK(AddressPolicy::Parse("").ok());
  CHECK(AddressPolicy::Parse("*")->allow_all());
  auto p = AddressPolicy::Parse("forge.internal, 10.20.0.0/16,127.0.0.1,[::1],fd00::/8");
  REQUIRE(p.ok());
  CHECK(p->Listed("FORGE.internal."));
  CHECK(p->Listed("127.0.0.1"));
  CHECK(p->Listed("[::1]"));
  CHECK(p->Listed("10.20.3.4"));
  CHECK_FALSE(p->Listed("10.21.0.1"));
  CHECK_FALSE(p->Listed("localhost"));
  const auto a = [](const char* s) { return boost::asio::ip::make_address(s); };
  CHECK(p->Check("x.example", a("10.20.9.9")).ok());
  CHECK(p->Check("x.example", a("fd12::1")).ok());
  CHECK(p->Check("x.example", a("10.30.0.1")).message() ==
        Refusal("x.example", "10.30.0.1", "private"));
  for (const char* bad : {"10.0.0.0/33", "::1/129", "a b", "-x", "host/8", ",", "x,,y", "/8"}) {
    INFO(bad);
    CHECK(AddressPolicy::Parse(bad).status().code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(AddressPolicy::Parse("10.0.0.0/33").status().message() ==
        "--allow-private-hosts: '10.0.0.0/33' is not a host name, address or CIDR block");
}

TEST_CASE("ResolveAllowed refuses non-public addresses unless listed", "[net][security]") {
  const AddressPolicy none;
  for (const auto& [host, addr, kind] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"127.0.0.1", "127.0.0.1", "loopback"},
           {"169.254.169.254", "169.254.169.254", "link-local"},
           {"10.0.0.7", "10.0.0.7", "private"},
           {"[::1]", "::1", "loopback"}}) {
    INFO(host);
    auto r = ResolveAllowed(host, 443, none);
    CHECK(r.status().code() == absl::StatusCode::kPermissionDenied);
    CHECK(r.status().message() == Refusal(host, addr, kind));
  }
  // A name resolving to loopback (either family, whichever the resolver lists first).
  auto local = ResolveAllowed("localhost", 443, none);
  CHECK(local.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK((local.status().message() == Refusal("localhost", "127.0.0.1", "loopback") ||
         local.status().message() == Refusal("localhost", "::1", "loopback")));
  auto listed = AddressPolicy::Parse("localhost,127.0.0.1");
  REQUIRE(listed.ok());
  CHECK(ResolveAllowed("localhost", 443, *listed).ok());
  auto ep = ResolveAllowed("127.0.0.1", 8443, *listed);
  REQUIRE(ep.ok());
  REQUIRE(ep->size() == 1);
  CHECK((*ep)[0].port() == 8443);
}

TEST_CASE("The HTTP clients apply the address policy before connecting", "[net][security]") {
  const AddressPolicy none;
  TlsClientOptions tls;
  tls.address_policy = &none;
  auto https = HttpsFetch("POST", "https://169.254.169.254/latest", {}, "x", absl::Seconds(5), tls);
  CHECK(https.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK(https.status().message() ==
        "POST https://169.254.169.254/latest: " +
            Refusal("169.254.169.254", "169.254.169.254", "link-local"));
  auto http = FetchHttpOrHttps("POST", "http://127.0.0.1:1/x", {}, "x", absl::Seconds(5), tls);
  CHECK(http.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK(http.status().message() ==
        "POST http://127.0.0.1:1/x: plain http:// to '127.0.0.1' is refused: use https://, or "
        "allow the host with --allow-private-hosts");
  auto listed = AddressPolicy::Parse("127.0.0.1");
  REQUIRE(listed.ok());
  tls.address_policy = &*listed;
  // Allowed: the request goes out (and fails to connect: nothing listens on port 1).
  auto allowed = FetchHttpOrHttps("POST", "http://127.0.0.1:1/x", {}, "x", absl::Seconds(5), tls);
  CHECK(allowed.status().code() == absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace assay
