// Named statements (no database needed; in the db tier because its binary links every store):
// each query is registered, and CheckQueryNames (run at server start) refuses shared names.

#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "server/store/db.h"

namespace assay::store {
namespace {

TEST_CASE("queries: the store's statements are registered under distinct names", "[db]") {
  const auto& all = AllQueries();
  std::set<std::string> names;
  for (const Query* q : all) names.insert(q->name);
  CHECK(names.size() == all.size());
  CHECK(names.count("delivery_get") == 1);
  CHECK(names.count("agent_touch") == 1);
  CHECK(CheckQueryNames().ok());
}

TEST_CASE("queries: two statements sharing a name are refused, naming both", "[db]") {
  const Query a{"unit_dup", "SELECT 1"};
  const Query b{"unit_dup", "SELECT 2"};
  const Query same{"unit_same", "SELECT 3"};
  const Query again{"unit_same", "SELECT 3"};
  CHECK(CheckQueryNames({&same, &again}).ok());
  absl::Status s = CheckQueryNames({&same, &a, &b});
  CHECK(s.code() == absl::StatusCode::kInternal);
  CHECK(s.message() == "two statements are named 'unit_dup': \"SELECT 1\" and \"SELECT 2\"");
  // The registry holds them while they live; the server's check sees them too.
  CHECK(CheckQueryNames().code() == absl::StatusCode::kInternal);
}

TEST_CASE("queries: a statement leaves the registry with its object", "[db]") {
  const size_t before = AllQueries().size();
  {
    const Query scoped{"unit_scoped", "SELECT 4"};
    CHECK(AllQueries().size() == before + 1);
  }
  CHECK(AllQueries().size() == before);
  CHECK(CheckQueryNames().ok());
}

}  // namespace
}  // namespace assay::store
