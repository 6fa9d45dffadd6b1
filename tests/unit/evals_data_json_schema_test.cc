// The JSON Schema subset of is-json (common/evals/data/json_schema.h), with Ajv's messages.
#include <catch2/catch.hpp>
#include <string>

#include <boost/json/parse.hpp>

#include "common/evals/data/json_schema.h"

namespace assay::evals {
namespace {

// "ok" when `data` conforms to `schema`, else the error.
std::string Run(std::string_view schema, std::string_view data) {
  absl::StatusOr<JsonSchema> s = JsonSchema::Compile(schema);
  INFO(s.status().ToString());
  REQUIRE(s.ok());
  std::string error;
  const bool ok = s->Validate(boost::json::parse(std::string(data)), &error);
  CHECK(ok == error.empty());
  return ok ? "ok" : error;
}

std::string CompileError(std::string_view schema) {
  absl::StatusOr<JsonSchema> s = JsonSchema::Compile(schema);
  REQUIRE(s.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(s.status().message());
}

TEST_CASE("JsonSchema: the promptfoo example's schema") {
  const std::string schema = R"({"required": ["latitude", "longitude"], "type": "object",
      "properties": {"latitude": {"type": "number", "minimum": -90, "maximum": 90},
                     "longitude": {"type": "number", "minimum": -180, "maximum": 180}}})";
  CHECK(Run(schema, R"({"latitude": 48.85, "longitude": 2.35})") == "ok");
  CHECK(Run(schema, R"({"latitude": 91, "longitude": 2.35})") == "data/latitude must be <= 90");
  CHECK(Run(schema, R"({"latitude": 48.85})") == "data must have required property 'longitude'");
  CHECK(Run(schema, R"({"latitude": "48.85", "longitude": 2.35})") ==
        "data/latitude must be number");
  CHECK(Run(schema, R"([48.85, 2.35])") == "data must be object");
  CHECK(Run(schema, R"({"latitude": 0, "longitude": -180, "extra": true})") == "ok");
}

TEST_CASE("JsonSchema: types, enum, const, strings, arrays, objects, combinators") {
  CHECK(Run(R"({"type": "integer"})", "3") == "ok");
  CHECK(Run(R"({"type": "integer"})", "3.0") == "ok");  // Ajv: Number.isInteger(3.0).
  CHECK(Run(R"({"type": "integer"})", "3.5") == "data must be integer");
  CHECK(Run(R"({"type": ["string", "null"]})", "null") == "ok");
  CHECK(Run(R"({"type": ["string", "null"]})", "1") == "data must be string,null");
  CHECK(Run(R"({"enum": ["a", 1, {"b": [true]}]})", R"({"b": [true]})") == "ok");
  CHECK(Run(R"({"enum": ["a", 1]})", "1.0") == "ok");
  CHECK(Run(R"({"enum": ["a", 1]})", "\"b\"") == "data must be equal to one of the allowed values");
  CHECK(Run(R"({"const": {"x": 1}})", R"({"x": 2})") == "data must be equal to constant");
  // Lengths are in code points: "été" is 3.
  CHECK(Run(R"({"minLength": 3, "maxLength": 3})", "\"\xC3\xA9t\xC3\xA9\"") == "ok");
  CHECK(Run(R"({"maxLength": 2})", "\"abc\"") == "data must NOT have more than 2 characters");
  CHECK(Run(R"({"minLength": 4})", "\"abc\"") == "data must NOT have fewer than 4 characters");
  CHECK(Run(R"({"pattern": "^\\d+$"})", "\"123\"") == "ok");
  CHECK(Run(R"({"pattern": "^\\d+$"})", "\"12a\"") == "data must match pattern \"^\\d+$\"");
  CHECK(Run(R"({"exclusiveMinimum": 0, "exclusiveMaximum": 1})", "0") == "data must be > 0");
  CHECK(Run(R"({"exclusiveMaximum": 1})", "1") == "data must be < 1");
  CHECK(Run(R"({"minimum": 0.5})", "0.25") == "data must be >= 0.5");
  CHECK(Run(R"({"items": {"type": "string"}, "minItems": 1})", R"(["a", 2])") ==
        "data/1 must be string");
  CHECK(Run(R"({"minItems": 1})", "[]") == "data must NOT have fewer than 1 items");
  CHECK(Run(R"({"maxItems": 1})", "[1, 2]") == "data must NOT have more than 1 items");
  CHECK(Run(R"({"properties": {"a": {}}, "additionalProperties": false})", R"({"a": 1, "b": 2})") ==
        "data must NOT have additional properties");
  CHECK(Run(R"({"additionalProperties": {"type": "number"}})", R"({"a": 1, "b": "x"})") ==
        "data/b must be number");
  CHECK(Run(R"({"minProperties": 1})", "{}") == "data must NOT have fewer than 1 properties");
  CHECK(Run(R"({"maxProperties": 0})", R"({"a": 1})") ==
        "data must NOT have more than 0 properties");
  CHECK(Run(R"({"anyOf": [{"type": "string"}, {"type": "number"}]})", "true") ==
        "data must match a schema in anyOf");
  CHECK(Run(R"({"oneOf": [{"type": "number"}, {"type": "integer"}]})", "1") ==
        "data must match exactly one schema in oneOf");
  CHECK(Run(R"({"oneOf": [{"type": "number"}, {"type": "integer"}]})", "1.5") == "ok");
  CHECK(Run(R"({"allOf": [{"minimum": 1}, {"maximum": 2}]})", "3") == "data must be <= 2");
  CHECK(Run(R"({"not": {"type": "null"}})", "null") == "data must NOT be valid");
  CHECK(Run("true", "[1]") == "ok");
  CHECK(Run("false", "[1]") == "data boolean schema is false");
  // Keywords of other types do not apply: a string is not checked against "minimum".
  CHECK(Run(R"({"minimum": 5, "title": "t", "description": "d", "$schema": "x"})", "\"a\"") ==
        "ok");
  CHECK(Run(R"({"properties": {"a": {"properties": {"b": {"type": "null"}}}}})",
            R"({"a": {"b": 0}})") == "data/a/b must be null");
}

TEST_CASE("JsonSchema refuses what it does not support, by name") {
  CHECK(CompileError(R"({"format": "email"})") ==
        "schema /: keyword \"format\" is not supported (supported: type, enum, const, required, "
        "properties, additionalProperties, minProperties, maxProperties, items, minItems, "
        "maxItems, minLength, maxLength, pattern, minimum, maximum, exclusiveMinimum, "
        "exclusiveMaximum, allOf, anyOf, oneOf, not)");
  CHECK(CompileError(R"({"properties": {"a": {"$ref": "#/definitions/x"}}})")
            .rfind("schema /properties/a: keyword \"$ref\" is not supported", 0) == 0);
  CHECK(CompileError(R"({"type": "float"})") == "schema /: unknown type \"float\"");
  CHECK(CompileError(R"({"items": [{}, {}]})") ==
        "schema /: \"items\" as a list (tuple) is not supported");
  CHECK(CompileError(R"({"minLength": -1})") ==
        "schema /: \"minLength\" must be a non-negative integer");
  CHECK(CompileError(R"x({"pattern": "(?=a)"})x") ==
        "schema /: regex \"(?=a)\": invalid perl operator: (?= (RE2 has no lookaround)");
  CHECK(CompileError(R"({"anyOf": []})") ==
        "schema /: \"anyOf\" must be a non-empty array of schemas");
  CHECK(CompileError("1") == "schema /: a schema is an object or a boolean");
  CHECK(CompileError("{\"type\": \"object\", \"type\": \"array\"}") ==
        "schema: duplicate key \"type\"");
  CHECK(CompileError("not json") == "schema: not JSON: syntax error at column 1");
}

}  // namespace
}  // namespace assay::evals
