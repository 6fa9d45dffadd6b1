#include "common/net/address_policy.h"

#include <array>

#include <boost/asio/io_context.hpp>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace assay {
namespace net = boost::asio;
namespace {

absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

struct V4Range {
  uint32_t base;
  int prefix;
  std::string_view kind;
};

constexpr uint32_t Ip(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  return (a << 24) | (b << 16) | (c << 8) | d;
}

constexpr std::array<V4Range, 15> kV4 = {{
    {Ip(0, 0, 0, 0), 8, "unspecified"},
    {Ip(10, 0, 0, 0), 8, "private"},
    {Ip(100, 64, 0, 0), 10, "shared (CGNAT)"},
    {Ip(127, 0, 0, 0), 8, "loopback"},
    {Ip(169, 254, 0, 0), 16, "link-local"},
    {Ip(172, 16, 0, 0), 12, "private"},
    {Ip(192, 0, 0, 0), 24, "reserved"},
    {Ip(192, 0, 2, 0), 24, "documentation"},
    {Ip(192, 88, 99, 0), 24, "reserved"},
    {Ip(192, 168, 0, 0), 16, "private"},
    {Ip(198, 18, 0, 0), 15, "benchmarking"},
    {Ip(198, 51, 100, 0), 24, "documentation"},
    {Ip(203, 0, 113, 0), 24, "documentation"},
    {Ip(224, 0, 0, 0), 4, "multicast"},
    {Ip(240, 0, 0, 0), 4, "reserved"},  // and 255.255.255.255
}};

bool InV4(uint32_t a, uint32_t base, int prefix) {
  if (prefix == 0) return true;
  const uint32_t mask = prefix >= 32 ? 0xffffffffu : ~(0xffffffffu >> prefix);
  return (a & mask) == (base & mask);
}

bool InV6(const net::ip::address_v6::bytes_type& a, const net::ip::address_v6::bytes_type& base,
          int prefix) {
  for (int i = 0; i < 16 && prefix > 0; ++i, prefix -= 8) {
    const uint8_t mask = prefix >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - prefix));
    if ((a[i] & mask) != (base[i] & mask)) return false;
  }
  return true;
}

std::string_view V4Kind(uint32_t a) {
  for (const V4Range& r : kV4) {
    if (InV4(a, r.base, r.prefix)) return r.kind;
  }
  return {};
}

uint32_t V4At(const net::ip::address_v6::bytes_type& b, int at) {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) |
         uint32_t{b[at + 3]};
}

std::string Lower(std::string_view host) {
  std::string h = absl::AsciiStrToLower(Av(host));
  if (!h.empty() && h.back() == '.') h.pop_back();
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  return h;
}

// Same family, and `a` within base/prefix.
bool InBlock(const net::ip::address& a, const net::ip::address& base, int prefix) {
  if (a.is_v4() && base.is_v4()) return InV4(a.to_v4().to_uint(), base.to_v4().to_uint(), prefix);
  if (a.is_v6() && base.is_v6()) return InV6(a.to_v6().to_bytes(), base.to_v6().to_bytes(), prefix);
  return false;
}

}  // namespace

std::string_view NonPublicKind(const net::ip::address& a) {
  if (a.is_v4()) return V4Kind(a.to_v4().to_uint());
  const net::ip::address_v6 v6 = a.to_v6();
  const auto b = v6.to_bytes();
  auto prefixed = [&b](std::initializer_list<uint8_t> head, int prefix) {
    net::ip::address_v6::bytes_type base{};
    int i = 0;
    for (uint8_t x : head) base[i++] = x;
    return InV6(b, base, prefix);
  };
  if (v6.is_unspecified()) return "unspecified";
  if (v6.is_loopback()) return "loopback";
  // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated): the IPv4 address.
  if (prefixed({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96) || prefixed({}, 96)) {
    const std::string_view k = V4Kind(V4At(b, 12));
    return k;
  }
  if (prefixed({0x00, 0x64, 0xff, 0x9b}, 96)) {  // NAT64
    std::string_view k = V4Kind(V4At(b, 12));
    if (!k.empty()) return k;
  }
  if (prefixed({0x20, 0x02}, 16)) {  // 6to4
    std::string_view k = V4Kind(V4At(b, 2));
    if (!k.empty()) return k;
  }
  if (prefixed({0xfe, 0x80}, 10)) return "link-local";
  if (prefixed({0xfe, 0xc0}, 10)) return "site-local";
  if (prefixed({0xfc}, 7)) return "unique local";
  if (prefixed({0xff}, 8)) return "multicast";
  if (prefixed({0x20, 0x01, 0x0d, 0xb8}, 32)) return "documentation";
  if (prefixed({0x01, 0x00}, 64)) return "reserved";  // discard-only
  // Global unicast is 2000::/3; anything else is not allocated for it.
  if (!prefixed({0x20}, 3)) return "reserved";
  return {};
}

absl::StatusOr<AddressPolicy> AddressPolicy::Parse(std::string_view spec) {
  AddressPolicy p;
  if (absl::StripAsciiWhitespace(Av(spec)).empty()) return p;
  for (absl::string_view raw : absl::StrSplit(Av(spec), ',')) {
    std::string item(absl::StripAsciiWhitespace(raw));
    auto bad = [&] {
      return absl::InvalidArgumentError(absl::StrCat(
          "--allow-private-hosts: '", item, "' is not a host name, address or CIDR block"));
    };
    if (item == "*") {
      p.all_ = true;
      continue;
    }
    if (item.empty() || item.size() > 253) return bad();
    std::string addr = item;
    int prefix = -1;
    if (const size_t slash = item.find('/'); slash != std::string::npos) {
      addr = item.substr(0, slash);
      if (!absl::SimpleAtoi(item.substr(slash + 1), &prefix) || prefix < 0) return bad();
    }
    addr = Lower(addr);
    boost::system::error_code ec;
    const net::ip::address a = net::ip::make_address(addr, ec);
    if (!ec) {
      const int max = a.is_v4() ? 32 : 128;
      if (prefix > max) return bad();
      p.blocks_.push_back({a, prefix < 0 ? max : prefix});
      continue;
    }
    if (prefix >= 0) return bad();
    const std::string name = Lower(item);
    if (name.empty() || name[0] == '-' || name[0] == '.') return bad();
    for (char c : name) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') {
        return bad();
      }
    }
    p.names_.push_back(name);
  }
  return p;
}

bool AddressPolicy::Listed(std::string_view host) const {
  if (all_) return true;
  const std::string h = Lower(host);
  for (const std::string& n : names_) {
    if (n == h) return true;
  }
  boost::system::error_code ec;
  const net::ip::address a = net::ip::make_address(h, ec);
  if (ec) return false;
  for (const Block& b : blocks_) {
    if (InBlock(a, b.base, b.prefix)) return true;
  }
  return false;
}

absl::Status AddressPolicy::Check(std::string_view host, const net::ip::address& address) const {
  const std::string_view kind = NonPublicKind(address);
  if (kind.empty() || all_ || Listed(host)) return absl::OkStatus();
  for (const Block& b : blocks_) {
    if (InBlock(address, b.base, b.prefix)) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrCat("host '", Av(host), "' resolves to ", address.to_string(), ", a ", Av(kind),
                   " address; refused unless allowed by --allow-private-hosts"));
}

absl::Status AddressPolicy::CheckPlainHttp(std::string_view host) const {
  if (Listed(host)) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("plain http:// to '", Av(host),
                   "' is refused: use https://, or allow the host with --allow-private-hosts"));
}

absl::StatusOr<std::vector<net::ip::tcp::endpoint>> ResolveAllowed(std::string_view host,
                                                                   uint16_t port,
                                                                   const AddressPolicy& policy) {
  std::vector<net::ip::tcp::endpoint> endpoints;
  boost::system::error_code ec;
  const std::string bare = Lower(host);
  const net::ip::address literal = net::ip::make_address(bare, ec);
  if (!ec) {
    endpoints.emplace_back(literal, port);
  } else {
    net::io_context ioc;
    net::ip::tcp::resolver resolver(ioc);
    auto results = resolver.resolve(bare, std::to_string(port), ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("cannot resolve host '", Av(host), "': ", ec.message()));
    }
    for (const auto& entry : results) endpoints.push_back(entry.endpoint());
    if (endpoints.empty()) {
      return absl::UnavailableError(absl::StrCat("cannot resolve host '", Av(host), "'"));
    }
  }
  for (const auto& e : endpoints) {
    absl::Status s = policy.Check(host, e.address());
    if (!s.ok()) return s;
  }
  return endpoints;
}

}  // namespace assay
