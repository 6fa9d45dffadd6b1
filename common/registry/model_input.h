#pragma once
// The model registry's input rules (issue 10, docs/models.md): names, aliases, tags, version
// references, and the JSON a version records (params, metrics, dataset digests), each with its
// limits. Pure functions, no I/O: the REST handlers and the store (which the job-finish path
// calls directly) both check with them. Every error is kInvalidArgument naming the field.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace assay::registry {

inline constexpr size_t kMaxNameBytes = 128;       // [A-Za-z0-9_.-]{1,128}
inline constexpr size_t kMaxAliasBytes = 64;       // [a-z0-9_-]{1,64}, not all digits
inline constexpr size_t kMaxTagKeyBytes = 128;     // [A-Za-z0-9_.:-]{1,128}
inline constexpr size_t kMaxTagValueBytes = 4096;  // any UTF-8 but NUL
inline constexpr size_t kMaxTags = 64;             // per model, per version
inline constexpr size_t kMaxDescriptionBytes = 16384;
inline constexpr size_t kMaxReasonBytes = 1024;
inline constexpr size_t kMaxActorBytes = 256;
inline constexpr size_t kMaxParamsBytes = 65536;  // params, serialized
inline constexpr int kMaxParamsDepth = 8;         // params itself is depth 1
inline constexpr size_t kMaxMetrics = 1000;
inline constexpr size_t kMaxMetricKeyBytes = 250;
inline constexpr size_t kMaxDatasets = 100;

// A dataset a version was trained or evaluated on: its path and exactly one digest.
struct DatasetDigest {
  std::string path;
  std::string sha256;  // 64 lowercase hex, or ""
  std::string md5;     // 32 lowercase hex (DVC's), or ""
};

// A version reference: a number ("3") or an alias ("production").
struct VersionRef {
  std::optional<int> version;
  std::string alias;
  std::string text() const;
};

absl::Status ValidateModelName(std::string_view name);
absl::Status ValidateAlias(std::string_view alias);
absl::Status ValidateTagKey(std::string_view key);
absl::Status ValidateTags(const std::map<std::string, std::string>& tags);
// `field` names the text in the message; no NUL byte, at most `max_bytes`.
absl::Status ValidateText(std::string_view field, std::string_view text, size_t max_bytes);

// "3" → version 3 (1 to 2^31-1, no sign, no leading zero); a valid alias → that alias.
absl::StatusOr<VersionRef> ParseVersionRef(std::string_view text);

// The prefix of a job's artifact paths that a version takes: "" (every file) or a valid
// artifact path with a trailing '/' ("model" and "model/" both give "model/").
absl::StatusOr<std::string> NormalizeModelPath(std::string_view path);

// params: a JSON object, at most kMaxParamsBytes serialized and kMaxParamsDepth deep. Returns
// its serialization.
absl::StatusOr<std::string> CanonicalParams(const boost::json::value& params);
// metrics: a JSON object of at most kMaxMetrics numbers with keys of 1 to kMaxMetricKeyBytes.
absl::StatusOr<std::string> CanonicalMetrics(const boost::json::value& metrics);
// datasets: an array of at most kMaxDatasets {"path", "sha256"} or {"path", "md5"} objects.
absl::StatusOr<std::vector<DatasetDigest>> ParseDatasets(const boost::json::value& datasets);
std::string DatasetsJson(const std::vector<DatasetDigest>& datasets);

}  // namespace assay::registry
