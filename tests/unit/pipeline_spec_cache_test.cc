// `cache: {key, paths, restore_keys}` (issue 9, docs/caches.md): the parsed model, the plan's
// substitution (hashFiles left for the agent), the key parser, and every lint error with its
// exact line, column and key.

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/pipeline/cache_key.h"
#include "common/pipeline/plan.h"
#include "common/pipeline/spec.h"

namespace assay {
namespace {

using Lines = std::vector<std::string>;

Lines Lint(const std::string& yaml) {
  Lines lines;
  for (const SpecError& error : LintPipelineSpec(yaml, "f.yml")) {
    lines.push_back(error.ToString().substr(6));
  }
  return lines;
}

TEST_CASE("cache: every key parses to the exact model") {
  const std::string yaml = R"(jobs:
  test:
    cache:
      key: "pip-${{ branch }}-${{ hashFiles('requirements.txt', 'lock/**') }}"
      paths: [.venv, "models/*.bin"]
      restore_keys: ["pip-${{ branch }}-", pip-]
    steps: [pytest]
  lint:
    cache: {key: k, paths: .cache}
    steps: [x]
)";
  REQUIRE(Lint(yaml).empty());
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec(yaml);
  REQUIRE(spec.ok());
  REQUIRE(spec->jobs[0].cache.has_value());
  CHECK(*spec->jobs[0].cache ==
        CacheSpec{"pip-${{ branch }}-${{ hashFiles('requirements.txt', 'lock/**') }}",
                  {".venv", "models/*.bin"},
                  {"pip-${{ branch }}-", "pip-"}});
  CHECK(*spec->jobs[1].cache == CacheSpec{"k", {".cache"}, {}});
}

TEST_CASE("cache: the plan substitutes placeholders but leaves hashFiles to the agent") {
  const std::string yaml = R"(jobs:
  test:
    strategy: {matrix: {py: ["3.11"]}}
    cache:
      key: "${{ matrix.py }}-${{ branch }}-${{hashFiles('a.txt')}}"
      paths: ["venv-${{ matrix.py }}"]
      restore_keys: ["${{ matrix.py }}-${{ branch }}-"]
    steps: [x]
)";
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec(yaml);
  REQUIRE(spec.ok());
  ExprContext ctx;
  ctx.branch = "dev";
  absl::StatusOr<std::vector<PlannedJob>> plan = PlanJobs(*spec, ctx);
  REQUIRE(plan.ok());
  REQUIRE(plan->size() == 1);
  REQUIRE((*plan)[0].cache.has_value());
  CHECK(*(*plan)[0].cache ==
        CacheSpec{"3.11-dev-${{hashFiles('a.txt')}}", {"venv-3.11"}, {"3.11-dev-"}});
}

TEST_CASE("cache: each bad value is an error naming file, line, column and key") {
  auto job = [](const std::string& cache) {
    return "jobs:\n  a:\n    steps: [x]\n    cache: " + cache + "\n";
  };
  CHECK(Lint(job("[x]")) ==
        Lines{"4:12: jobs.a.cache: cache must be a mapping with 'key' and 'paths', got a list"});
  CHECK(Lint(job("{paths: [x]}")) == Lines{"4:5: jobs.a.cache.key: missing required key 'key'"});
  CHECK(Lint(job("{key: k}")) == Lines{"4:5: jobs.a.cache.paths: missing required key 'paths'"});
  CHECK(Lint(job("{key: \"pip-${{ hashFile('a') }}\", paths: [x]}")) ==
        Lines{"4:18: jobs.a.cache.key: unknown function 'hashFile' in cache.key "
              "'pip-${{ hashFile('a') }}'"});
  CHECK(Lint(job("{key: \"${{ hashFiles() }}\", paths: [x]}")) ==
        Lines{"4:18: jobs.a.cache.key: hashFiles needs one or more quoted globs, e.g. "
              "hashFiles('requirements.txt') in cache.key '${{ hashFiles() }}'"});
  CHECK(Lint(job("{key: \"${{ hashFiles('../etc/x') }}\", paths: [x]}")) ==
        Lines{"4:18: jobs.a.cache.key: hashFiles glob '../etc/x': must not leave the workspace "
              "('..') in cache.key '${{ hashFiles('../etc/x') }}'"});
  CHECK(Lint(job("{key: \"${{ hashFiles('/etc/passwd') }}\", paths: [x]}")) ==
        Lines{"4:18: jobs.a.cache.key: hashFiles glob '/etc/passwd': must be relative to the "
              "workspace in cache.key '${{ hashFiles('/etc/passwd') }}'"});
  CHECK(Lint(job("{key: \"${{ sha }}\", paths: [x]}")) ==
        Lines{"4:18: jobs.a.cache.key: column 1: unknown placeholder 'sha' (expected branch, "
              "tag, event, inputs.NAME, env.NAME)"});
  CHECK(Lint(job("{key: \"\", paths: [x]}")) ==
        Lines{"4:18: jobs.a.cache.key: cache.key must not be empty"});
  CHECK(Lint(job("{key: k, paths: [\"/home/u/.cache\"]}")) ==
        Lines{"4:29: jobs.a.cache.paths[0]: cache path '/home/u/.cache': must be relative to "
              "the workspace"});
  CHECK(Lint(job("{key: k, paths: [\"a/../../b\"]}")) ==
        Lines{"4:29: jobs.a.cache.paths[0]: cache path 'a/../../b': must not leave the "
              "workspace ('..')"});
  CHECK(Lint(job("{key: k, paths: [\"!x\"]}")) ==
        Lines{"4:29: jobs.a.cache.paths[0]: cache path '!x': must not be an exclusion ('!')"});
  CHECK(Lint(job("{key: k, paths: []}")) ==
        Lines{"4:28: jobs.a.cache.paths: paths must not be empty"});
  CHECK(Lint(job("{key: k, paths: [x], restore_keys: [\"${{ hashFile('x') }}\"]}")) ==
        Lines{"4:48: jobs.a.cache.restore_keys[0]: unknown function 'hashFile' in "
              "cache.restore_keys '${{ hashFile('x') }}'"});
  CHECK(Lint(job("{key: k, paths: [x], keys: [y]}")) ==
        Lines{"4:33: jobs.a.cache.keys: unknown key 'keys' (did you mean 'key'?)"});
}

TEST_CASE("cache: limits on key length, paths and restore_keys") {
  const std::string long_key(513, 'k');
  CHECK(Lint("jobs:\n  a:\n    cache: {key: " + long_key + ", paths: [x]}\n    steps: [x]\n") ==
        Lines{"3:18: jobs.a.cache.key: cache.key is 513 bytes, more than the limit of 512"});
  std::string paths;
  for (int i = 0; i < 33; ++i) paths += (i ? ", " : "") + std::string("p") + std::to_string(i);
  CHECK(Lint("jobs:\n  a:\n    cache: {key: k, paths: [" + paths + "]}\n    steps: [x]\n") ==
        Lines{"3:28: jobs.a.cache.paths: paths has 33 entries, more than the limit of 32"});
  std::string keys;
  for (int i = 0; i < 17; ++i) keys += (i ? ", " : "") + std::string("k") + std::to_string(i);
  CHECK(Lint("jobs:\n  a:\n    cache: {key: k, paths: [x], restore_keys: [" + keys +
             "]}\n    steps: [x]\n") ==
        Lines{"3:47: jobs.a.cache.restore_keys: restore_keys has 17 entries, more than the "
              "limit of 16"});
  std::string globs;
  for (int i = 0; i < 17; ++i) globs += (i ? ", " : "") + std::string("'g'");
  CHECK(Lint("jobs:\n  a:\n    cache: {key: \"${{ hashFiles(" + globs +
             ") }}\", paths: [x]}\n    steps: [x]\n")[0]
            .find("hashFiles has more than 16 globs") != std::string::npos);
}

TEST_CASE("cache key parser: parts, calls and their globs") {
  absl::StatusOr<std::vector<CacheKeyPart>> parts =
      ParseCacheKey("a-${{ env.X }}-${{ hashFiles( 'x.txt' , 'lib/**' ) }}-z");
  REQUIRE(parts.ok());
  CHECK(*parts == std::vector<CacheKeyPart>{
                      {false, "a-${{ env.X }}-", {}},
                      {true, "${{ hashFiles( 'x.txt' , 'lib/**' ) }}", {"x.txt", "lib/**"}},
                      {false, "-z", {}}});
  CHECK(CacheKeyWithoutCalls(*parts) == "a-${{ env.X }}--z");
  CHECK(ParseCacheKey("${{ hashFiles('a' 'b') }}").status().message() ==
        "hashFiles needs one or more quoted globs, e.g. hashFiles('requirements.txt')");
  CHECK(ParseCacheKey("${{ hashFiles('a') + 1 }}").status().message() ==
        "hashFiles needs one or more quoted globs, e.g. hashFiles('requirements.txt')");
  CHECK(ParseCacheKey("${{ hashFiles('!a') }}").status().message() ==
        "hashFiles glob '!a': must not be an exclusion ('!')");
  CHECK(ParseCacheKey("${{ format('a') }}").status().message() == "unknown function 'format'");
}

TEST_CASE("cache key text: length, control characters and commas are refused") {
  CHECK(CheckCacheKeyText("pip-0123").ok());
  CHECK(CheckCacheKeyText("").message() == "a cache key must not be empty");
  CHECK(CheckCacheKeyText(std::string(513, 'a')).message() ==
        "a cache key is at most 512 bytes, this one has 513");
  CHECK(CheckCacheKeyText("a\nb").message() == "a cache key must not contain control characters");
  CHECK(CheckCacheKeyText("a,b").message() == "a cache key must not contain ','");
}

}  // namespace
}  // namespace assay
