#include "server/webhook/payload_util.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/git/git.h"

namespace assay::webhook::internal {

absl::StatusOr<boost::json::object> ParseObject(const std::string& body) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(body, ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat("payload is not valid JSON: ", ec.message()));
  }
  if (!v.is_object()) return absl::InvalidArgumentError("payload is not a JSON object");
  return std::move(v.as_object());
}

std::string Str(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(boost::json::string_view(key.data(), key.size()));
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

const boost::json::object* Obj(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(boost::json::string_view(key.data(), key.size()));
  return v != nullptr && v->is_object() ? &v->as_object() : nullptr;
}

std::optional<int64_t> Int(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(boost::json::string_view(key.data(), key.size()));
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64() && v->as_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(v->as_uint64());
  }
  if (v->is_double()) {
    // Range first: converting a double outside int64 is undefined (found by webhook fuzzing).
    const double d = v->as_double();
    if (d >= -0x1p63 && d < 0x1p63 && d == std::trunc(d)) return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

bool Bool(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(boost::json::string_view(key.data(), key.size()));
  return v != nullptr && v->is_bool() && v->as_bool();
}

std::vector<std::string> ChangedPaths(const boost::json::value* commits) {
  std::set<std::string> paths;
  if (commits == nullptr || !commits->is_array()) return {};
  for (const auto& c : commits->as_array()) {
    if (!c.is_object()) continue;
    for (const char* k : {"added", "modified", "removed"}) {
      const auto* list = c.as_object().if_contains(k);
      if (list == nullptr || !list->is_array()) continue;
      for (const auto& p : list->as_array()) {
        if (p.is_string()) paths.emplace(p.as_string());
      }
    }
  }
  return {paths.begin(), paths.end()};
}

void AppendCandidates(const boost::json::object& o, std::initializer_list<const char*> keys,
                      std::vector<std::string>* out) {
  for (const char* k : keys) {
    std::string v = Str(o, k);
    if (v.empty() || std::find(out->begin(), out->end(), v) != out->end()) continue;
    out->push_back(std::move(v));
  }
}

bool IsZeroSha(std::string_view sha) {
  return !sha.empty() && std::all_of(sha.begin(), sha.end(), [](char c) { return c == '0'; });
}

absl::Status FillGithubStylePullRequest(const boost::json::object& payload,
                                        std::initializer_list<std::string_view> build_actions,
                                        ForgeEvent* e) {
  e->pr_action = Str(payload, "action");
  const bool builds = std::find(build_actions.begin(), build_actions.end(),
                                std::string_view(e->pr_action)) != build_actions.end();
  if (!builds) {
    e->kind = "ignored";
    e->ignore_reason =
        absl::StrCat("pull_request action '", e->pr_action, "' does not start a build");
  }
  const boost::json::object* pr = Obj(payload, "pull_request");
  if (pr == nullptr) {
    if (!builds) return absl::OkStatus();
    return absl::InvalidArgumentError(
        "pull_request payload: field 'pull_request' must be an object");
  }
  std::optional<int64_t> number = Int(payload, "number");
  if (!number) number = Int(*pr, "number");
  const boost::json::object* head = Obj(*pr, "head");
  const boost::json::object* base = Obj(*pr, "base");
  const boost::json::object* head_repo = head ? Obj(*head, "repo") : nullptr;
  const boost::json::object* base_repo = base ? Obj(*base, "repo") : nullptr;
  e->pr_number = number.value_or(0);
  e->after = head ? Str(*head, "sha") : "";
  e->head_branch = head ? Str(*head, "ref") : "";
  e->base_branch = base ? Str(*base, "ref") : "";
  e->branch = e->head_branch;
  if (e->pr_action == "synchronize" || e->pr_action == "synchronized")
    e->before = Str(payload, "before");
  e->ref = absl::StrCat("refs/pull/", e->pr_number, "/head");
  e->fork = head_repo == nullptr || base_repo == nullptr ||
            Str(*head_repo, "full_name") != Str(*base_repo, "full_name");
  if (!builds) return absl::OkStatus();
  if (!number || *number <= 0) {
    return absl::InvalidArgumentError("pull_request payload: field 'number' must be an integer");
  }
  if (!IsHexSha(e->after)) {
    return absl::InvalidArgumentError(
        "pull_request payload: field 'pull_request.head.sha' must be a 40-character hex commit "
        "id");
  }
  if (e->base_branch.empty()) {
    return absl::InvalidArgumentError(
        "pull_request payload: field 'pull_request.base.ref' is missing");
  }
  return absl::OkStatus();
}

}  // namespace assay::webhook::internal
