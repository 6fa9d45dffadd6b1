// Fuzzes the --allow-private-hosts parser and the address classifier
// (common/net/address_policy.h). Input: a policy spec, a newline, then an address literal.
// Contract: never a crash; the empty policy refuses exactly the non-public addresses; "*"
// allows everything; a parsed policy's Check never fails for a public address.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/net/address_policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t nl = in.find('\n');
  const std::string_view spec = in.substr(0, nl);
  const std::string addr_text(nl == std::string_view::npos ? std::string_view()
                                                           : in.substr(nl + 1));
  auto policy = assay::AddressPolicy::Parse(spec);
  boost::system::error_code ec;
  const auto addr = boost::asio::ip::make_address(addr_text, ec);
  if (ec) {
    if (policy.ok()) (void)policy->Listed(addr_text);
    return 0;
  }
  const bool is_public = assay::NonPublicKind(addr).empty();
  const assay::AddressPolicy none;
  if (none.Check("h.example", addr).ok() != is_public) std::abort();
  auto all = assay::AddressPolicy::Parse("*");
  if (!all.ok() || !all->Check("h.example", addr).ok()) std::abort();
  if (policy.ok()) {
    if (is_public && !policy->Check("h.example", addr).ok()) std::abort();
    (void)policy->Listed(addr_text);
    (void)policy->CheckPlainHttp(addr_text);
  }
  return 0;
}
