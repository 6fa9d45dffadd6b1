// Fuzzes the model registry's input rules (common/registry/model_input.h), which see every
// registration body and every name, alias and version in a URL. Contract: never a crash; an
// accepted name is 1 to 128 bytes of [A-Za-z0-9_.-]; an accepted version reference is a number
// from 1 or a valid alias; accepted params are an object within the byte and depth limits.
#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/registry/model_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace assay::registry;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (ValidateModelName(text).ok() && (text.empty() || text.size() > kMaxNameBytes)) std::abort();
  if (auto ref = ParseVersionRef(text); ref.ok()) {
    if (ref->version ? *ref->version < 1 : !ValidateAlias(ref->alias).ok()) std::abort();
  }
  (void)NormalizeModelPath(text);
  boost::json::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  if (ec) return 0;
  if (auto p = CanonicalParams(v); p.ok() && p->size() > kMaxParamsBytes) std::abort();
  (void)CanonicalMetrics(v);
  if (auto d = ParseDatasets(v); d.ok() && d->size() > kMaxDatasets) std::abort();
  return 0;
}
