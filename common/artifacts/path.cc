#include "common/artifacts/path.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace assay::artifacts {
namespace {

absl::Status Bad(std::string_view path, const std::string& why) {
  std::string shown =
      absl::CHexEscape(absl::string_view(path.data(), std::min<size_t>(path.size(), 200)));
  if (path.size() > 200) shown += "...";
  return absl::InvalidArgumentError(absl::StrCat("artifact path '", shown, "': ", why));
}

}  // namespace

absl::Status ValidateArtifactPath(std::string_view path) {
  if (path.empty()) return Bad(path, "is empty");
  if (path.size() > kMaxArtifactPathBytes) {
    return Bad(path, absl::StrCat("is ", path.size(), " bytes, more than ", kMaxArtifactPathBytes));
  }
  if (path.find('\0') != std::string_view::npos) return Bad(path, "contains a NUL byte");
  if (path.front() == '/') return Bad(path, "is absolute");
  size_t start = 0;
  while (true) {
    size_t end = path.find('/', start);
    std::string_view seg =
        path.substr(start, end == std::string_view::npos ? path.npos : end - start);
    if (seg.empty()) return Bad(path, "has an empty segment");
    if (seg == "." || seg == "..")
      return Bad(path, seg == "." ? "has a '.' segment" : "has a '..' segment");
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return absl::OkStatus();
}

}  // namespace assay::artifacts
