// Fuzzes cache key texts (issue 9, common/pipeline/cache_key.h): the whole input is a key.
// Contract: ParseCacheKey answers for any text and never crashes; a text it accepts is rebuilt
// exactly from its parts (calls as written), every call has 1 to 16 globs that
// CheckWorkspaceGlob accepts, and CheckCacheKeyText answers for any text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/pipeline/cache_key.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)assay::CheckCacheKeyText(in);
  auto parts = assay::ParseCacheKey(in);
  if (!parts.ok()) return 0;
  std::string rebuilt;
  for (const auto& p : *parts) {
    rebuilt += p.text;
    if (!p.call) continue;
    if (p.globs.empty() || p.globs.size() > assay::kMaxHashFilesArgs) std::abort();
    for (const auto& g : p.globs) {
      if (!assay::CheckWorkspaceGlob(g).ok()) std::abort();
    }
  }
  if (rebuilt != in) std::abort();
  (void)assay::CacheKeyWithoutCalls(*parts);
  return 0;
}
