#pragma once
// Reads a test fixture's exact bytes; fails the test (naming the path) when it cannot.
// `path` is relative to the repository root (ASSAY_SOURCE_DIR), e.g.
// "tests/fixtures/github/push.json" or "tests/fixtures/gitlab/push.json".

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <string>

namespace assay::testing {

inline std::string ReadFixture(const std::string& path) {
  const std::string full = std::string(ASSAY_SOURCE_DIR) + "/" + path;
  std::ifstream in(full, std::ios::binary);
  INFO("fixture " << full);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace assay::testing
