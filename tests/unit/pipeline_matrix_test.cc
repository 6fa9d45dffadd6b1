#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "common/pipeline/matrix.h"

namespace assay {
namespace {

using Combo = std::map<std::string, std::string>;
using Combos = std::vector<Combo>;

MatrixSpec TwoAxes() {
  MatrixSpec spec;
  spec.axes = {{"python", {"3.10", "3.11"}}, {"os", {"linux", "mac"}}};
  return spec;
}

TEST_CASE("matrix: product in axis order") {
  absl::StatusOr<Combos> got = ExpandMatrix(TwoAxes());
  REQUIRE(got.ok());
  CHECK(*got == Combos{{{"os", "linux"}, {"python", "3.10"}},
                       {{"os", "mac"}, {"python", "3.10"}},
                       {{"os", "linux"}, {"python", "3.11"}},
                       {{"os", "mac"}, {"python", "3.11"}}});
}

TEST_CASE("matrix: exclude removes combinations matching all keys") {
  MatrixSpec spec = TwoAxes();
  spec.exclude = {{{"python", "3.10"}, {"os", "mac"}}, {{"python", "2.7"}}};
  absl::StatusOr<Combos> got = ExpandMatrix(spec);
  REQUIRE(got.ok());
  CHECK(*got == Combos{{{"os", "linux"}, {"python", "3.10"}},
                       {{"os", "linux"}, {"python", "3.11"}},
                       {{"os", "mac"}, {"python", "3.11"}}});
  spec.exclude = {{{"os", "mac"}}};
  got = ExpandMatrix(spec);
  REQUIRE(got.ok());
  CHECK(got->size() == 2);
}

TEST_CASE("matrix: include extends or adds (GitHub semantics)") {
  MatrixSpec spec;
  spec.axes = {{"fruit", {"apple", "pear"}}, {"animal", {"cat", "dog"}}};
  spec.include = {{{"color", "green"}},
                  {{"color", "pink"}, {"animal", "cat"}},
                  {{"fruit", "apple"}, {"shape", "circle"}},
                  {{"fruit", "banana"}},
                  {{"fruit", "banana"}, {"animal", "cat"}}};
  absl::StatusOr<Combos> got = ExpandMatrix(spec);
  REQUIRE(got.ok());
  CHECK(*got ==
        Combos{{{"fruit", "apple"}, {"animal", "cat"}, {"color", "pink"}, {"shape", "circle"}},
               {{"fruit", "apple"}, {"animal", "dog"}, {"color", "green"}, {"shape", "circle"}},
               {{"fruit", "pear"}, {"animal", "cat"}, {"color", "pink"}},
               {{"fruit", "pear"}, {"animal", "dog"}, {"color", "green"}},
               {{"fruit", "banana"}},
               {{"fruit", "banana"}, {"animal", "cat"}}});
  CHECK(MatrixJobName("test", (*got)[0], spec) == "test (apple, cat, pink, circle)");
  CHECK(MatrixJobName("test", (*got)[4], spec) == "test (banana)");
}

TEST_CASE("matrix: include only, and empty") {
  MatrixSpec spec;
  spec.include = {{{"gpu", "h100"}}, {{"gpu", "a10"}}};
  absl::StatusOr<Combos> got = ExpandMatrix(spec);
  REQUIRE(got.ok());
  CHECK(*got == Combos{{{"gpu", "h100"}}, {{"gpu", "a10"}}});
  CHECK(ExpandMatrix(MatrixSpec{}).status().message() == "matrix expands to no jobs");
  MatrixSpec all_out = TwoAxes();
  all_out.exclude = {{}};  // An empty exclude matches everything.
  CHECK(ExpandMatrix(all_out).status().message() == "matrix expands to no jobs");
}

TEST_CASE("matrix: cap") {
  MatrixSpec spec;
  std::vector<std::string> ten = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  spec.axes = {{"a", ten}, {"b", ten}, {"c", {"x", "y", "z"}}};
  absl::StatusOr<Combos> got = ExpandMatrix(spec);
  CHECK(got.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(got.status().message() == "matrix expands to 300 jobs, more than the limit of 256");
  CHECK(ExpandMatrix(spec, 300).ok());
  CHECK(ExpandMatrix(spec, 299).status().message() ==
        "matrix expands to 300 jobs, more than the limit of 299");
  spec.exclude = {{{"c", "z"}}};
  REQUIRE(ExpandMatrix(spec).ok());
  CHECK(ExpandMatrix(spec)->size() == 200);
  MatrixSpec huge;
  for (int i = 0; i < 7; ++i) huge.axes.push_back({std::string(1, char('a' + i)), ten});
  CHECK(ExpandMatrix(huge).status().message() ==
        "matrix expands to 10000000 jobs, more than the limit of 256");
}

TEST_CASE("matrix: job names in axis order") {
  MatrixSpec spec;
  spec.axes = {{"python", {"3.11"}}, {"os", {"linux"}}};
  CHECK(MatrixJobName("test", {{"os", "linux"}, {"python", "3.11"}}, spec) == "test (3.11, linux)");
  CHECK(MatrixJobName("test", {}, spec) == "test");
}

}  // namespace
}  // namespace assay
