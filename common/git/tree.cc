#include "common/git/tree.h"

#include "absl/status/status.h"

namespace assay {

absl::StatusOr<std::vector<TreeEntry>> ParseTreeObject(std::string_view t) {
  std::vector<TreeEntry> out;
  size_t pos = 0;
  while (pos < t.size()) {
    size_t sp = t.find(' ', pos);
    size_t nul = t.find('\0', sp == std::string_view::npos ? pos : sp);
    if (sp == std::string_view::npos || nul == std::string_view::npos || nul + 21 > t.size() ||
        sp == pos || sp - pos > 7) {
      return absl::DataLossError("malformed tree object");
    }
    TreeEntry e;
    for (size_t i = pos; i < sp; ++i) {
      if (t[i] < '0' || t[i] > '7') return absl::DataLossError("malformed tree object");
      e.mode = e.mode * 8 + static_cast<uint32_t>(t[i] - '0');
    }
    e.name = std::string(t.substr(sp + 1, nul - sp - 1));
    e.raw_sha = std::string(t.substr(nul + 1, 20));
    pos = nul + 21;
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace assay
