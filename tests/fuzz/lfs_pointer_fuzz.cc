// Fuzzes the Git LFS pointer parser and the lfs.url check (common/git/lfs.h), which read what
// any commit (a fork's too) holds. Contract: never a crash; a parsed pointer has a 64-digit
// lowercase hex oid and came from at most kMaxLfsPointerBytes; an accepted lfs.url is http(s),
// without spaces, control characters or userinfo, and is https unless it is on loopback.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/git/lfs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto p = assay::ParseLfsPointer(text); p.has_value()) {
    if (size > assay::kMaxLfsPointerBytes || p->oid.size() != 64) std::abort();
    for (char c : p->oid) {
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) std::abort();
    }
  }
  for (bool allow_local : {false, true}) {
    if (!assay::CheckLfsUrl(text, "https://git.example.com/acme/app.git", allow_local).ok()) {
      continue;
    }
    const bool https = text.substr(0, 8) == "https://";
    if (!https && !(allow_local && text.substr(0, 7) == "http://")) std::abort();
    for (char c : text) {
      if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) std::abort();
    }
    const std::string_view rest = text.substr(https ? 8 : 7);
    if (rest.substr(0, rest.find('/')).find('@') != std::string_view::npos) std::abort();
  }
  return 0;
}
