#include "common/registry/model_input.h"

#include <boost/json.hpp>

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/artifacts/path.h"

namespace assay::registry {
namespace {

namespace json = boost::json;

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// The text as a message shows it: control bytes escaped, cut at 80 bytes.
std::string Shown(std::string_view s) {
  std::string out = absl::CHexEscape(AV(s.substr(0, std::min<size_t>(s.size(), 80))));
  if (s.size() > 80) out += "...";
  return out;
}

bool AllOf(std::string_view s, bool (*ok)(char)) {
  for (char c : s) {
    if (!ok(c)) return false;
  }
  return true;
}

bool NameChar(char c) { return absl::ascii_isalnum(c) || c == '_' || c == '.' || c == '-'; }
bool AliasChar(char c) {
  return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'z') || c == '_' || c == '-';
}
// Why no '/': a key is a URL path segment (.../tags/KEY), and the server decodes %2F.
bool TagKeyChar(char c) { return NameChar(c) || c == ':'; }
bool IsDigit(char c) { return absl::ascii_isdigit(c); }
bool IsLowerHex(char c) { return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f'); }

// The depth of `v` (a scalar: 0, an empty or flat object: 1); stops counting past `limit`.
int Depth(const json::value& v, int limit) {
  if (limit < 0) return 0;
  int deepest = 0;
  if (v.is_object()) {
    for (const auto& [k, child] : v.as_object())
      deepest = std::max(deepest, Depth(child, limit - 1));
    return deepest + 1;
  }
  if (v.is_array()) {
    for (const auto& child : v.as_array()) deepest = std::max(deepest, Depth(child, limit - 1));
    return deepest + 1;
  }
  return 0;
}

// Whether a string or key anywhere in `v` holds a NUL character.
bool HasNul(const json::value& v) {
  if (v.is_string()) return std::string_view(v.as_string()).find('\0') != std::string_view::npos;
  if (v.is_array()) {
    for (const auto& child : v.as_array()) {
      if (HasNul(child)) return true;
    }
  }
  if (v.is_object()) {
    for (const auto& [k, child] : v.as_object()) {
      if (std::string_view(k).find('\0') != std::string_view::npos || HasNul(child)) return true;
    }
  }
  return false;
}

}  // namespace

std::string VersionRef::text() const { return version ? absl::StrCat(*version) : alias; }

absl::Status ValidateModelName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes || !AllOf(name, NameChar)) {
    return absl::InvalidArgumentError(absl::StrCat("model name '", Shown(name), "' must be 1 to ",
                                                   kMaxNameBytes,
                                                   " characters of A-Z a-z 0-9 _ . -"));
  }
  // Why: a name is a URL path segment, where "." and ".." mean this and the parent folder.
  if (name == "." || name == "..") {
    return absl::InvalidArgumentError(absl::StrCat("model name '", AV(name), "' is not allowed"));
  }
  return absl::OkStatus();
}

absl::Status ValidateAlias(std::string_view alias) {
  if (alias.empty() || alias.size() > kMaxAliasBytes || !AllOf(alias, AliasChar)) {
    return absl::InvalidArgumentError(absl::StrCat("alias '", Shown(alias), "' must be 1 to ",
                                                   kMaxAliasBytes, " characters of a-z 0-9 _ -"));
  }
  if (AllOf(alias, IsDigit)) {
    return absl::InvalidArgumentError(
        absl::StrCat("alias '", AV(alias), "' must not be a number (it would read as a version)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateTagKey(std::string_view key) {
  if (key.empty() || key.size() > kMaxTagKeyBytes || !AllOf(key, TagKeyChar)) {
    return absl::InvalidArgumentError(absl::StrCat("tag key '", Shown(key), "' must be 1 to ",
                                                   kMaxTagKeyBytes,
                                                   " characters of A-Z a-z 0-9 _ . : -"));
  }
  return absl::OkStatus();
}

absl::Status ValidateTags(const std::map<std::string, std::string>& tags) {
  if (tags.size() > kMaxTags) {
    return absl::InvalidArgumentError(
        absl::StrCat(tags.size(), " tags; at most ", kMaxTags, " are allowed"));
  }
  for (const auto& [k, v] : tags) {
    if (absl::Status s = ValidateTagKey(k); !s.ok()) return s;
    if (absl::Status s = ValidateText(absl::StrCat("tag '", k, "'"), v, kMaxTagValueBytes);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateText(std::string_view field, std::string_view text, size_t max_bytes) {
  if (text.size() > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(AV(field), " is ", text.size(), " bytes; at most ", max_bytes));
  }
  if (text.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(AV(field), " must not contain a NUL byte"));
  }
  return absl::OkStatus();
}

absl::StatusOr<VersionRef> ParseVersionRef(std::string_view text) {
  VersionRef ref;
  if (!text.empty() && AllOf(text, IsDigit)) {
    int v = 0;
    if (text.size() > 10 || text[0] == '0' || !absl::SimpleAtoi(AV(text), &v) || v < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("version '", Shown(text), "' must be a number from 1 to 2147483647"));
    }
    ref.version = v;
    return ref;
  }
  if (!ValidateAlias(text).ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "version '", Shown(text), "' must be a version number or an alias (a-z 0-9 _ -, 1 to 64)"));
  }
  ref.alias = std::string(text);
  return ref;
}

absl::StatusOr<std::string> NormalizeModelPath(std::string_view path) {
  if (path.empty()) return std::string();
  std::string_view p = path;
  if (p.back() == '/') p.remove_suffix(1);
  if (absl::Status s = artifacts::ValidateArtifactPath(p); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("field 'path': ", s.message()));
  }
  return absl::StrCat(AV(p), "/");
}

absl::StatusOr<std::string> CanonicalParams(const json::value& params) {
  if (!params.is_object()) {
    return absl::InvalidArgumentError("field 'params' must be a JSON object");
  }
  if (Depth(params, kMaxParamsDepth + 1) > kMaxParamsDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat("field 'params' is nested more than ", kMaxParamsDepth, " levels deep"));
  }
  std::string text = json::serialize(params);
  if (text.size() > kMaxParamsBytes) {
    return absl::InvalidArgumentError(absl::StrCat("field 'params' is ", text.size(),
                                                   " bytes as JSON; at most ", kMaxParamsBytes));
  }
  // Why: PostgreSQL's jsonb cannot hold \u0000.
  if (HasNul(params)) {
    return absl::InvalidArgumentError("field 'params' must not contain a NUL character");
  }
  return text;
}

absl::StatusOr<std::string> CanonicalMetrics(const json::value& metrics) {
  if (!metrics.is_object()) {
    return absl::InvalidArgumentError("field 'metrics' must be a JSON object of numbers");
  }
  const json::object& o = metrics.as_object();
  if (o.size() > kMaxMetrics) {
    return absl::InvalidArgumentError(
        absl::StrCat("field 'metrics' has ", o.size(), " entries; at most ", kMaxMetrics));
  }
  for (const auto& [k, v] : o) {
    std::string_view key(k.data(), k.size());
    if (key.empty() || key.size() > kMaxMetricKeyBytes || key.find('\0') != key.npos) {
      return absl::InvalidArgumentError(absl::StrCat("metric name '", Shown(key), "' must be 1 to ",
                                                     kMaxMetricKeyBytes, " bytes, without NUL"));
    }
    if (!v.is_number() || (v.is_double() && !std::isfinite(v.as_double()))) {
      return absl::InvalidArgumentError(absl::StrCat("metric '", Shown(key), "' must be a number"));
    }
  }
  return json::serialize(metrics);
}

absl::StatusOr<std::vector<DatasetDigest>> ParseDatasets(const json::value& datasets) {
  if (!datasets.is_array()) {
    return absl::InvalidArgumentError(
        "field 'datasets' must be an array of {\"path\", \"sha256\" or \"md5\"}");
  }
  const json::array& a = datasets.as_array();
  if (a.size() > kMaxDatasets) {
    return absl::InvalidArgumentError(
        absl::StrCat("field 'datasets' has ", a.size(), " entries; at most ", kMaxDatasets));
  }
  std::vector<DatasetDigest> out;
  for (size_t i = 0; i < a.size(); ++i) {
    const std::string where = absl::StrCat("datasets[", i, "]");
    const json::object* d = a[i].if_object();
    if (d == nullptr) return absl::InvalidArgumentError(absl::StrCat(where, " must be an object"));
    DatasetDigest dd;
    for (const auto& [k, v] : *d) {
      if (k != "path" && k != "sha256" && k != "md5") {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": unknown field '", Shown(k), "' (allowed: path, sha256, md5)"));
      }
      if (!v.is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".", std::string(k), " must be a string"));
      }
      std::string s(v.as_string());
      (k == "path" ? dd.path : k == "sha256" ? dd.sha256 : dd.md5) = std::move(s);
    }
    if (absl::Status s = artifacts::ValidateArtifactPath(dd.path); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".path: ", s.message()));
    }
    if (dd.sha256.empty() == dd.md5.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " needs exactly one of 'sha256' and 'md5'"));
    }
    if (!dd.sha256.empty() && (dd.sha256.size() != 64 || !AllOf(dd.sha256, IsLowerHex))) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".sha256 must be 64 lowercase hex digits"));
    }
    if (!dd.md5.empty() && (dd.md5.size() != 32 || !AllOf(dd.md5, IsLowerHex))) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".md5 must be 32 lowercase hex digits"));
    }
    out.push_back(std::move(dd));
  }
  return out;
}

std::string DatasetsJson(const std::vector<DatasetDigest>& datasets) {
  json::array a;
  for (const auto& d : datasets) {
    json::object o{{"path", d.path}};
    if (!d.sha256.empty()) o["sha256"] = d.sha256;
    if (!d.md5.empty()) o["md5"] = d.md5;
    a.push_back(std::move(o));
  }
  return json::serialize(a);
}

}  // namespace assay::registry
