// Fuzzes the artifact path rule (common/artifacts/path.h), which sees every path an agent
// commits and every path of a download URL. Contract: never a crash; an accepted path is 1 to
// 4,096 bytes, has no NUL, does not start with '/', and, joined under any root, stays under it
// (no empty, "." or ".." segment).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/artifacts/path.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view path(reinterpret_cast<const char*>(data), size);
  if (!assay::artifacts::ValidateArtifactPath(path).ok()) return 0;
  if (path.empty() || path.size() > 4096 || path.front() == '/') std::abort();
  if (path.find('\0') != std::string_view::npos) std::abort();
  size_t start = 0;
  while (true) {
    const size_t end = path.find('/', start);
    const std::string_view seg =
        path.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (seg.empty() || seg == "." || seg == "..") std::abort();
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return 0;
}
