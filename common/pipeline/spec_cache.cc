// The key of issue 9's caches: `cache: {key, paths, restore_keys}`. See docs/caches.md; the
// syntax of a key (hashFiles) and the limits are in cache_key.h.

#include "common/pipeline/cache_key.h"
#include "common/pipeline/spec_internal.h"

namespace assay::spec_internal {
namespace {

// A key or a restore_keys prefix: its calls parse, the rest is a placeholder text checked
// with the job's others, and its length before evaluation is within the limit.
void CheckKeyText(Linter& lint, const YAML::Mark& mark, const std::string& path,
                  std::string_view field, const std::string& text, JobDraft& job) {
  if (text.empty()) {
    lint.Error(mark, path, absl::StrCat(std::string(field), " must not be empty"));
    return;
  }
  if (text.size() > kMaxCacheKeyBytes) {
    lint.Error(mark, path,
               absl::StrCat(std::string(field), " is ", text.size(),
                            " bytes, more than the limit of ", kMaxCacheKeyBytes));
    return;
  }
  absl::StatusOr<std::vector<CacheKeyPart>> parts = ParseCacheKey(text);
  if (!parts.ok()) {
    lint.Error(mark, path,
               absl::StrCat(parts.status().message(), " in ", std::string(field), " '", text, "'"));
    return;
  }
  job.placeholders.push_back({CacheKeyWithoutCalls(*parts), path, mark});
}

// A list of scalars (or one scalar), each given to `add`.
template <typename Add>
void EachScalar(Linter& lint, const Entry& e, const std::string& path, std::string_view what,
                size_t limit, Add add) {
  auto one = [&](const YAML::Node& n, const YAML::Mark& mark, const std::string& key) {
    std::string text;
    if (!ScalarText(lint, n, mark, key, absl::StrCat(e.key, " entries"), what, text)) return;
    add(text, mark, key);
  };
  if (e.value.IsScalar()) {
    one(e.value, e.value_mark, path);
  } else if (!e.value.IsSequence()) {
    lint.Error(
        e.value_mark, path,
        absl::StrCat(e.key, " must be a list of ", std::string(what), ", got ", Describe(e.value)));
  } else if (e.value.size() == 0) {
    lint.Error(e.value_mark, path, absl::StrCat(e.key, " must not be empty"));
  } else if (e.value.size() > limit) {
    lint.Error(
        e.value_mark, path,
        absl::StrCat(e.key, " has ", e.value.size(), " entries, more than the limit of ", limit));
  } else {
    for (size_t i = 0; i < e.value.size(); ++i) {
      one(e.value[i], MarkOr(e.value[i], e.value.Mark()), Index(path, i));
    }
  }
}

constexpr FieldRule<JobDraft> kCacheRules[] = {
    {"key", true,
     [](Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
       std::string text;
       if (!ScalarText(lint, e.value, e.value_mark, path, "key", "a string", text)) return;
       CheckKeyText(lint, e.value_mark, path, "cache.key", text, job);
       job.spec.cache->key = std::move(text);
     }},
    {"paths", true,
     [](Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
       EachScalar(lint, e, path, "workspace-relative globs or directories", kMaxCachePaths,
                  [&](std::string& text, const YAML::Mark& mark, const std::string& key) {
                    absl::Status s = CheckWorkspaceGlob(text);
                    if (s.ok() && text[0] == '!') {
                      s = absl::InvalidArgumentError("must not be an exclusion ('!')");
                    }
                    if (!s.ok()) {
                      lint.Error(mark, key, absl::StrCat("cache path '", text, "': ", s.message()));
                      return;
                    }
                    job.placeholders.push_back({text, key, mark});
                    job.spec.cache->paths.push_back(std::move(text));
                  });
     }},
    {"restore_keys", false,
     [](Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
       EachScalar(lint, e, path, "key prefixes", kMaxCacheRestoreKeys,
                  [&](std::string& text, const YAML::Mark& mark, const std::string& key) {
                    const size_t before = lint.ErrorCount();
                    CheckKeyText(lint, mark, key, "cache.restore_keys", text, job);
                    if (lint.ErrorCount() == before) {
                      job.spec.cache->restore_keys.push_back(std::move(text));
                    }
                  });
     }},
};

}  // namespace

void ParseCache(Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
  job.spec.cache = CacheSpec{};
  if (!e.value.IsMap()) {
    lint.Error(
        e.value_mark, path,
        absl::StrCat("cache must be a mapping with 'key' and 'paths', got ", Describe(e.value)));
    return;
  }
  ParseFields<JobDraft>(lint, e.value, path, e.key_node.Mark(), kCacheRules, job);
}

}  // namespace assay::spec_internal
