#pragma once
// Reading a raw tree object, as `git cat-file --batch` prints its content. Pure; no I/O.
// Split out of GitMirror::CheckoutTree so that the parser of untrusted repository content can
// be unit-tested and fuzzed (tests/fuzz/git_tree_fuzz.cc) without a git process.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace assay {

// One entry: "<octal mode> <name>\0<20-byte raw sha>".
struct TreeEntry {
  uint32_t mode = 0;    // e.g. 040000 (tree), 0100644, 0100755, 0120000 (link), 0160000
  std::string name;     // as stored; not checked here (CheckoutTree refuses unsafe names)
  std::string raw_sha;  // 20 raw bytes
  bool operator==(const TreeEntry&) const = default;
};

// Every entry of `content`, in order. kDataLoss "malformed tree object" when an entry has no
// space, no NUL, fewer than 20 bytes after its NUL, or a mode that is not 1-7 octal digits.
absl::StatusOr<std::vector<TreeEntry>> ParseTreeObject(std::string_view content);

// Whether `name` may be created in a checkout: not empty, not "." or "..", not ".git" in any
// case, no '/' and no NUL.
bool IsSafeEntryName(std::string_view name);

// OK when every entry of one tree has a safe name and no name is used twice (a symlink and a
// directory under one name would let the second write through the first). Otherwise
// kDataLoss, exactly:
//   "entry \"NAME\" is not a safe file name (empty, '.', '..', '.git' in any case, or with '/'
//    or NUL)"
//   "two entries are named \"NAME\""
// NAME C-escaped.
absl::Status CheckTreeEntries(const std::vector<TreeEntry>& entries);

}  // namespace assay
