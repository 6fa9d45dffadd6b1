#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/git/tree.h"

namespace assay {
namespace {

std::string Entry(const std::string& mode, const std::string& name, char sha_byte) {
  return mode + " " + name + std::string(1, '\0') + std::string(20, sha_byte);
}

TEST_CASE("ParseTreeObject reads every entry", "[git]") {
  const std::string tree = Entry("100644", "README.md", 'a') + Entry("40000", "src", 'b') +
                           Entry("120000", "link", 'c') + Entry("160000", "sub", 'd');
  absl::StatusOr<std::vector<TreeEntry>> entries = ParseTreeObject(tree);
  REQUIRE(entries.ok());
  CHECK(*entries == std::vector<TreeEntry>{{0100644, "README.md", std::string(20, 'a')},
                                           {040000, "src", std::string(20, 'b')},
                                           {0120000, "link", std::string(20, 'c')},
                                           {0160000, "sub", std::string(20, 'd')}});
  CHECK(ParseTreeObject("")->empty());
}

TEST_CASE("ParseTreeObject refuses malformed trees", "[git]") {
  const std::string good = Entry("100644", "a", 'x');
  for (const std::string& bad : {
           good.substr(0, good.size() - 1),                                       // sha cut short
           std::string("100644 a"),                                               // no NUL
           std::string("100644a") + std::string(1, '\0') + std::string(20, 'x'),  // no space
           Entry("-1", "a", 'x'), Entry("10x644", "a", 'x'), Entry("", "a", 'x'),
           Entry("12345670", "a", 'x'),  // 8 digits
           good + "1",                   // trailing bytes
       }) {
    absl::StatusOr<std::vector<TreeEntry>> entries = ParseTreeObject(bad);
    CHECK(entries.status().code() == absl::StatusCode::kDataLoss);
    CHECK(entries.status().message() == "malformed tree object");
  }
}

}  // namespace
}  // namespace assay
