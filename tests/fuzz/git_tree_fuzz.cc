// Fuzzes the reader of raw tree objects (a repository's content, so untrusted), as
// GitMirror::CheckoutTree gets them from `git cat-file --batch`. Contract: a Status or
// entries, never a crash; every entry has a 20-byte object name.
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
  }
  return 0;
}
