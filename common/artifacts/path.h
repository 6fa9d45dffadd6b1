#pragma once
// The artifact path rule (proto ArtifactFile.path): relative to the workspace, '/'-separated,
// 1 to 4,096 bytes, no NUL, no leading '/', no empty, "." or ".." segment.

#include <string_view>

#include "absl/status/status.h"

namespace assay::artifacts {

inline constexpr size_t kMaxArtifactPathBytes = 4096;

// OK, or kInvalidArgument "artifact path '<path>': <why>" (the path with control bytes
// escaped, cut at 200 bytes).
absl::Status ValidateArtifactPath(std::string_view path);

}  // namespace assay::artifacts
