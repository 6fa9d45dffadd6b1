// Fuzzes the JSONL dataset parser (common/evals/data/dataset.h) and, on what it accepts, the
// assertions it compiled, run over the input itself. A dataset comes from any commit (a
// fork's too). Contract: never a crash and no unbounded work; an accepted dataset has at least
// one example, each with a non-empty, unique id, a 1-based line, input or messages or vars,
// and assertions that validate; Check gives one result per assertion, each scored 0 or 1.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "common/evals/data/assertions.h"
#include "common/evals/data/dataset.h"
#include "common/evals/data/json_strict.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace assay::evals;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)IsJson(text);
  if (DatasetDigest(text).size() != 64) std::abort();
  DatasetLimits limits;
  limits.max_examples = 64;
  limits.max_depth = 16;
  absl::StatusOr<std::vector<Example>> ex = ParseJsonlDataset(text, "fuzz.jsonl", limits);
  if (!ex.ok()) {
    if (ex.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  if (ex->empty() || ex->size() > limits.max_examples) std::abort();
  std::set<std::string> ids;
  for (const Example& e : *ex) {
    if (e.id.empty() || !ids.insert(e.id).second || e.line < 1) std::abort();
    if (!e.input.empty() && !e.messages.empty()) std::abort();
    if (e.input.empty() && e.messages.empty() && e.vars.empty()) std::abort();
    absl::StatusOr<AssertionSet> set = AssertionSet::Compile(e.asserts);
    if (!set.ok()) std::abort();
    const AssertionVerdict v = set->Run(text);
    if (v.results.size() != e.asserts.size()) std::abort();
    for (const AssertionResult& r : v.results) {
      if (r.score != 0 && r.score != 1) std::abort();
    }
    if (v.score < 0 || v.score > 1) std::abort();
  }
  return 0;
}
