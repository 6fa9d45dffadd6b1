#include "common/git/tree.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

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

bool IsSafeEntryName(std::string_view name) {
  if (name.empty() || name == "." || name == "..") return false;
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
    return false;
  }
  return !(name.size() == 4 && absl::AsciiStrToLower(std::string(name)) == ".git");
}

absl::Status CheckTreeEntries(const std::vector<TreeEntry>& entries) {
  std::vector<std::string_view> names;
  names.reserve(entries.size());
  for (const TreeEntry& e : entries) {
    if (!IsSafeEntryName(e.name)) {
      return absl::DataLossError(absl::StrCat(
          "entry \"", absl::CEscape(e.name),
          "\" is not a safe file name (empty, '.', '..', '.git' in any case, or with '/' or NUL)"));
    }
    names.push_back(e.name);
  }
  std::sort(names.begin(), names.end());
  auto dup = std::adjacent_find(names.begin(), names.end());
  if (dup != names.end()) {
    return absl::DataLossError(
        absl::StrCat("two entries are named \"", absl::CEscape(std::string(*dup)), "\""));
  }
  return absl::OkStatus();
}

}  // namespace assay
