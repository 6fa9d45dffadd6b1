// Fuzzes the clone-URL policy (common/git/clone_url.h), which sees what any repository admin
// registers. Contract, for both allow_local values: never a crash; an accepted URL has no
// control characters or spaces, does not start with '-', has no "::" transport helper, is
// local only with allow_local, and its stored form carries no userinfo (https) and passes the
// policy again unchanged, with no credential left to split off.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/git/clone_url.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view url(reinterpret_cast<const char*>(data), size);
  for (bool allow_local : {false, true}) {
    auto parsed = assay::ParseCloneUrl(url, allow_local);
    if (!parsed.ok()) continue;
    const std::string& stored = parsed->url;
    if (stored.empty() || stored[0] == '-') std::abort();
    for (char c : stored) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == ' ') std::abort();
    }
    if (!allow_local && parsed->kind == assay::CloneUrl::Kind::kLocal) std::abort();
    if (parsed->kind != assay::CloneUrl::Kind::kLocal && stored.find("::") != std::string::npos &&
        stored.find("://") == std::string::npos) {
      std::abort();
    }
    if (parsed->kind == assay::CloneUrl::Kind::kHttps) {
      const std::string_view authority =
          std::string_view(stored).substr(8, stored.find('/', 8) - 8);
      if (authority.find('@') != std::string_view::npos) std::abort();
    }
    auto again = assay::ParseCloneUrl(stored, allow_local);
    if (!again.ok() || again->url != stored || !again->password.empty()) std::abort();
  }
  return 0;
}
