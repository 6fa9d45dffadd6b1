// Fuzzes the reader of raw tree objects (a repository's content, so untrusted), as
// GitMirror::CheckoutTree gets them from `git cat-file --batch`. Contract: a Status or
// entries, never a crash; every entry has a 20-byte object name; CheckTreeEntries accepts
// only trees whose names are all safe and distinct.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/git/tree.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view content(reinterpret_cast<const char*>(data), size);
  auto entries = assay::ParseTreeObject(content);
  if (entries.ok()) {
    for (const auto& e : *entries) {
      if (e.raw_sha.size() != 20) std::abort();
    }
    if (assay::CheckTreeEntries(*entries).ok()) {
      for (size_t i = 0; i < entries->size(); ++i) {
        if (!assay::IsSafeEntryName((*entries)[i].name)) std::abort();
        for (size_t j = 0; j < i; ++j) {
          if ((*entries)[j].name == (*entries)[i].name) std::abort();
        }
      }
    }
  }
  return 0;
}
