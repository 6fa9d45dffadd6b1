// JSONL datasets (common/evals/data/dataset.h): the format, every error's exact message, and
// hostile inputs.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/evals/data/dataset.h"

namespace assay::evals {
namespace {

std::string ErrorOf(std::string_view bytes, const DatasetLimits& limits = {}) {
  absl::StatusOr<std::vector<Example>> r = ParseJsonlDataset(bytes, "qa.jsonl", limits);
  REQUIRE_FALSE(r.ok());
  REQUIRE(r.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(r.status().message());
}

std::vector<Example> Parse(std::string_view bytes) {
  absl::StatusOr<std::vector<Example>> r = ParseJsonlDataset(bytes, "qa.jsonl");
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return *std::move(r);
}

TEST_CASE("ParseJsonlDataset reads every key of the format") {
  const std::string file =
      "\xEF\xBB\xBF{\"id\": \"capital-fr\", \"input\": \"Capital of France?\", \"expected\": "
      "\"Paris\", \"tags\": [\"geo\", \"easy\"], \"assert\": [{\"type\": \"icontains\", "
      "\"value\": \"paris\"}, {\"type\": \"not-contains\", \"value\": \"Lyon\", \"weight\": "
      "0.5}]}\r\n"
      "\n"
      "   \n"
      "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", "
      "\"content\": \"2+2?\"}], \"expected\": \"4\", \"id\": 7}\n"
      "{\"vars\": {\"city\": \"Lyon\", \"n\": 3, \"ratio\": 0.5, \"ok\": true}}\n";
  const std::vector<Example> ex = Parse(file);
  REQUIRE(ex.size() == 3);

  Example first;
  first.id = "capital-fr";
  first.line = 1;
  first.input = "Capital of France?";
  first.expected = "Paris";
  first.tags = {"geo", "easy"};
  first.asserts = {Assertion{"icontains", false, "paris", std::nullopt, 1},
                   Assertion{"contains", true, "Lyon", std::nullopt, 0.5}};
  CHECK(ex[0] == first);

  Example second;
  second.id = "7";
  second.line = 4;
  second.messages = {Message{"system", "Be brief."}, Message{"user", "2+2?"}};
  second.expected = "4";
  CHECK(ex[1] == second);

  Example third;
  third.id = "line-5";
  third.line = 5;
  third.vars = {{"city", "Lyon"}, {"n", "3"}, {"ratio", "0.5"}, {"ok", "true"}};
  CHECK(ex[2] == third);
}

TEST_CASE("ParseJsonlDataset accepts a last line without a newline and CRLF endings") {
  const std::vector<Example> ex = Parse("{\"input\": \"a\"}\r\n{\"input\": \"b\"}");
  REQUIRE(ex.size() == 2);
  CHECK(ex[1].input == "b");
  CHECK(ex[1].id == "line-2");
}

TEST_CASE("ParseJsonlDataset names the file, line and key of each mistake") {
  CHECK(ErrorOf("{\"input\": \"a\"}\n{\"input\": \"b\",}\n") ==
        "qa.jsonl:2: not JSON: syntax error at column 15");
  CHECK(ErrorOf("not json\n") == "qa.jsonl:1: not JSON: syntax error at column 1");
  CHECK(ErrorOf("[1, 2]\n") == "qa.jsonl:1: must be a JSON object, not an array");
  CHECK(ErrorOf("{\"input\": \"a\", \"expected\": 42}") ==
        "qa.jsonl:1: key \"expected\": must be a string (write 42 as \"42\")");
  CHECK(ErrorOf("{\"input\": \"a\", \"expected\": 0.5}") ==
        "qa.jsonl:1: key \"expected\": must be a string (write 0.5 as \"0.5\")");
  CHECK(ErrorOf("{\"input\": \"a\", \"expected\": true}") ==
        "qa.jsonl:1: key \"expected\": must be a string, not a boolean");
  CHECK(ErrorOf("{\"input\": \"a\", \"output\": \"b\"}") ==
        "qa.jsonl:1: unknown key \"output\" (allowed: input, messages, expected, id, tags, "
        "vars, assert)");
  CHECK(ErrorOf("{\"input\": 5}") == "qa.jsonl:1: key \"input\": must be a string, not a number");
  CHECK(ErrorOf("{\"input\": \"\"}") == "qa.jsonl:1: key \"input\": must not be empty");
  CHECK(ErrorOf("{\"expected\": \"x\"}") ==
        "qa.jsonl:1: needs \"input\", \"messages\" or \"vars\"");
  CHECK(ErrorOf("{\"input\": \"a\", \"messages\": [{\"role\": \"user\", \"content\": \"b\"}]}") ==
        "qa.jsonl:1: has both \"input\" and \"messages\" (give one of them)");
  CHECK(ErrorOf("{\"messages\": []}") == "qa.jsonl:1: key \"messages\": must not be empty");
  CHECK(ErrorOf("{\"messages\": [{\"role\": \"tool\", \"content\": \"b\"}]}") ==
        "qa.jsonl:1: key \"messages[0]\": unknown role \"tool\" (allowed: system, user, "
        "assistant)");
  CHECK(ErrorOf("{\"messages\": [{\"role\": \"user\", \"content\": 1}]}") ==
        "qa.jsonl:1: key \"messages[0]\": \"content\" must be a string");
  CHECK(ErrorOf("{\"messages\": [{\"role\": \"user\", \"content\": \"a\", \"name\": \"x\"}]}") ==
        "qa.jsonl:1: key \"messages[0]\": unknown key \"name\" (allowed: role, content)");
  CHECK(ErrorOf("{\"messages\": [\"hi\"]}") ==
        "qa.jsonl:1: key \"messages[0]\": must be an object {role, content}, not a string");
  CHECK(ErrorOf("{\"input\": \"a\", \"id\": 1.5}") ==
        "qa.jsonl:1: key \"id\": must be a string or an integer, not a number");
  CHECK(ErrorOf("{\"input\": \"a\", \"id\": \"\"}") == "qa.jsonl:1: key \"id\": must not be empty");
  CHECK(ErrorOf("{\"input\": \"a\", \"tags\": \"geo\"}") ==
        "qa.jsonl:1: key \"tags\": must be an array of strings, not a string");
  CHECK(ErrorOf("{\"input\": \"a\", \"tags\": [\"\"]}") ==
        "qa.jsonl:1: key \"tags[0]\": must not be empty");
  CHECK(ErrorOf("{\"vars\": {\"city\": null}}") ==
        "qa.jsonl:1: key \"vars.city\": must be a string, a number or a boolean, not null");
  CHECK(ErrorOf("{\"vars\": {\"2x\": \"a\"}}") ==
        "qa.jsonl:1: key \"vars.2x\": a name is letters, digits and _, not starting with a "
        "digit");
  CHECK(ErrorOf("{\"vars\": {\"input\": \"a\"}}") ==
        "qa.jsonl:1: key \"vars.input\": is reserved (templates take it from the example's own "
        "key)");
  CHECK(ErrorOf("{\"input\": \"a\", \"assert\": {\"type\": \"equals\"}}") ==
        "qa.jsonl:1: key \"assert\": must be an array of assertions, not an object");
  CHECK(ErrorOf("{\"input\": \"a\", \"assert\": [{\"type\": \"equals\", \"value\": \"x\"}, "
                "{\"type\": \"similar\", \"value\": \"x\"}]}") ==
        "qa.jsonl:1: assert[1]: unknown assertion type \"similar\" (known: equals, contains, "
        "icontains, regex, starts-with, is-json; each also as not-TYPE)");
  CHECK(ErrorOf("\n\n") == "qa.jsonl: no examples");
  CHECK(ErrorOf("") == "qa.jsonl: no examples");
}

TEST_CASE("ParseJsonlDataset refuses repeated ids, explicit or defaulted") {
  CHECK(ErrorOf("{\"input\": \"a\", \"id\": \"a\"}\n{\"input\": \"b\"}\n"
                "{\"input\": \"c\", \"id\": \"a\"}\n") == "qa.jsonl:3: id \"a\" repeats line 1");
  // An integer id and the same digits as a string are the same id.
  CHECK(ErrorOf("{\"input\": \"a\", \"id\": 3}\n{\"input\": \"b\", \"id\": \"3\"}\n") ==
        "qa.jsonl:2: id \"3\" repeats line 1");
  // The default id of line 1 is taken by line 2's explicit id, and the other way round.
  CHECK(ErrorOf("{\"input\": \"a\"}\n{\"input\": \"b\", \"id\": \"line-1\"}\n") ==
        "qa.jsonl:2: id \"line-1\" repeats line 1");
  CHECK(ErrorOf("{\"input\": \"a\", \"id\": \"line-2\"}\n{\"input\": \"b\"}\n") ==
        "qa.jsonl:2: id \"line-2\" (the default of a line without id) repeats line 1");
}

TEST_CASE("ParseJsonlDataset refuses hostile input with a message naming the limit") {
  DatasetLimits small;
  small.max_bytes = 64;
  CHECK(ErrorOf(std::string(65, ' '), small) ==
        "qa.jsonl: 65 bytes is over the limit of 64 bytes (max_bytes)");

  DatasetLimits few;
  few.max_examples = 2;
  CHECK(ErrorOf("{\"input\": \"a\"}\n\n{\"input\": \"b\"}\n{\"input\": \"c\"}\n", few) ==
        "qa.jsonl:4: more than 2 examples (max_examples)");

  DatasetLimits line;
  line.max_line_bytes = 20;
  CHECK(ErrorOf("{\"input\": \"abcdefghij\"}\n", line) ==
        "qa.jsonl:1: line of 23 bytes is over the limit of 20 bytes (max_line_bytes)");

  std::string deep = "{\"input\": \"a\", \"vars\": {\"x\": ";
  for (int i = 0; i < 40; ++i) deep += "[";
  for (int i = 0; i < 40; ++i) deep += "]";
  deep += "}}";
  CHECK(ErrorOf(deep) == "qa.jsonl:1: nested deeper than 32 levels (max_depth)");

  DatasetLimits tight;
  tight.max_asserts = 1;
  tight.max_vars = 1;
  tight.max_messages = 1;
  tight.max_tags = 1;
  tight.max_id_bytes = 3;
  CHECK(ErrorOf("{\"input\": \"a\", \"assert\": [{\"type\": \"is-json\"}, {\"type\": "
                "\"is-json\"}]}",
                tight) ==
        "qa.jsonl:1: key \"assert\": 2 assertions is over the limit of 1 (max_asserts)");
  CHECK(ErrorOf("{\"vars\": {\"a\": \"1\", \"b\": \"2\"}}", tight) ==
        "qa.jsonl:1: key \"vars\": 2 vars is over the limit of 1 (max_vars)");
  CHECK(ErrorOf("{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": "
                "\"assistant\", \"content\": \"b\"}]}",
                tight) ==
        "qa.jsonl:1: key \"messages\": 2 messages is over the limit of 1 (max_messages)");
  CHECK(ErrorOf("{\"input\": \"a\", \"tags\": [\"x\", \"y\"]}", tight) ==
        "qa.jsonl:1: key \"tags\": 2 tags is over the limit of 1 (max_tags)");
  CHECK(ErrorOf("{\"input\": \"a\", \"id\": \"abcd\"}", tight) ==
        "qa.jsonl:1: key \"id\": longer than 3 bytes (max_id_bytes)");
}

TEST_CASE("ParseJsonlDataset refuses invalid UTF-8, NUL bytes and repeated keys") {
  CHECK(ErrorOf("{\"input\": \"caf\xC3\"}\n") ==
        "qa.jsonl:1: not JSON: invalid UTF-8 at column 15");
  CHECK(ErrorOf(std::string("{\"input\": \"a\0b\"}\n", 17)) ==
        "qa.jsonl:1: not JSON: control character U+0000 at column 13");
  CHECK(ErrorOf(std::string("{\"input\": \"a\"}\0\n", 16)) ==
        "qa.jsonl:1: not JSON: extra data at column 15");
  // Boost.JSON alone would keep the last "expected" silently.
  CHECK(ErrorOf("{\"input\": \"a\", \"expected\": \"x\", \"expected\": \"y\"}\n") ==
        "qa.jsonl:1: duplicate key \"expected\"");
  CHECK(ErrorOf("{\"vars\": {\"a\": \"1\", \"a\": \"2\"}}\n") == "qa.jsonl:1: duplicate key \"a\"");
  // A BOM is skipped only at the very start of the file.
  CHECK(ErrorOf("{\"input\": \"a\"}\n\xEF\xBB\xBF{\"input\": \"b\"}\n") ==
        "qa.jsonl:2: not JSON: syntax error at column 1");
}

TEST_CASE("ParseJsonlDataset reads a dataset of many lines") {
  std::string file;
  for (int i = 0; i < 5000; ++i) {
    file += "{\"input\": \"question " + std::to_string(i) + "\", \"expected\": \"" +
            std::to_string(i * 2) + "\"}\n";
  }
  const std::vector<Example> ex = Parse(file);
  REQUIRE(ex.size() == 5000);
  CHECK(ex[4999].id == "line-5000");
  CHECK(ex[4999].expected == "9998");
}

TEST_CASE("DatasetDigest is the lowercase hex SHA-256 of the exact bytes") {
  CHECK(DatasetDigest("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(DatasetDigest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(DatasetDigest("{\"input\": \"a\"}\n") != DatasetDigest("{\"input\": \"a\"}\r\n"));
}

}  // namespace
}  // namespace assay::evals
