#pragma once
// The text of a job's `cache.key` and `cache.restore_keys` (issue 9, docs/caches.md): literal
// text and `${{ }}` placeholders, where a placeholder may be one function call,
// `${{ hashFiles('GLOB', ...) }}`. The server substitutes the ordinary placeholders (branch,
// env.NAME, matrix.NAME, ...) when it plans the pipeline; the agent evaluates hashFiles after
// the checkout. Pure functions, no I/O; linked by the linter and the agent (assay_glob).

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace assay {

// Limits, each checked by the linter (file:line:key) and again where the text arrives.
inline constexpr size_t kMaxCacheKeyBytes = 512;  // a key, also once evaluated
inline constexpr size_t kMaxCachePaths = 32;
inline constexpr size_t kMaxCacheRestoreKeys = 16;
inline constexpr size_t kMaxHashFilesArgs = 16;

// One piece of a key: literal text (placeholders other than calls included, as written), or a
// hashFiles call with its globs.
struct CacheKeyPart {
  bool call = false;
  std::string text;                // as written (a call: the whole `${{ ... }}`)
  std::vector<std::string> globs;  // call only: the arguments, in order, never empty

  bool operator==(const CacheKeyPart&) const = default;
};

// Splits `text` into parts. A placeholder whose inside has a '(' is a call; errors
// (kInvalidArgument), in the linter's words:
//   "unknown function 'NAME'"                  (hashFiles is the only one)
//   "hashFiles needs one or more quoted globs, e.g. hashFiles('requirements.txt')"
//   "hashFiles has more than 16 globs"
//   "hashFiles glob 'G': <reason>"   (a glob per glob.h, relative, without '..' or NUL)
absl::StatusOr<std::vector<CacheKeyPart>> ParseCacheKey(std::string_view text);

// The text with every call left out (for the placeholder check of the rest).
std::string CacheKeyWithoutCalls(const std::vector<CacheKeyPart>& parts);

// OK when `glob` may be a cache path or a hashFiles argument: a valid glob (an optional
// leading '!' for paths), relative to the workspace, no '..' segment, no NUL. Otherwise
// kInvalidArgument: "must be relative to the workspace", "must not leave the workspace
// ('..')", or ValidateGlob's message.
absl::Status CheckWorkspaceGlob(std::string_view glob);

// OK when an evaluated key (or a restore_keys prefix) may be sent: 1 to 512 bytes, no control
// character and no ','. kInvalidArgument saying which otherwise.
absl::Status CheckCacheKeyText(std::string_view key);

}  // namespace assay
