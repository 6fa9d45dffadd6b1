// The model registry's input rules (common/registry/model_input.h): each limit at its edge,
// with the exact message.

#include <boost/json.hpp>

#include <catch2/catch.hpp>
#include <string>

#include "common/registry/model_input.h"

namespace assay::registry {
namespace {

namespace json = boost::json;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST_CASE("models input: names, aliases and tag keys at their limits") {
  CHECK(ValidateModelName(std::string(128, 'a')).ok());
  CHECK(ValidateModelName("support-bot_v2.1").ok());
  CHECK(Message(ValidateModelName(std::string(129, 'a'))) ==
        "model name '" + std::string(80, 'a') +
            "...' must be 1 to 128 characters of A-Z a-z 0-9 _ . -");
  CHECK(Message(ValidateModelName("a\nb")) ==
        "model name 'a\\nb' must be 1 to 128 characters of A-Z a-z 0-9 _ . -");
  CHECK(Message(ValidateModelName("..")) == "model name '..' is not allowed");
  CHECK(Message(ValidateModelName(".")) == "model name '.' is not allowed");
  CHECK(ValidateModelName("...").ok());
  for (const char* bad : {"", "a/b", "a b", "a@b", "é"}) {
    CHECK(ValidateModelName(bad).code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(ValidateAlias(std::string(64, 'p')).ok());
  CHECK(ValidateAlias("prod-2_b").ok());
  CHECK(ValidateAlias("2prod").ok());
  CHECK(Message(ValidateAlias("007")) ==
        "alias '007' must not be a number (it would read as a version)");
  for (const char* bad : {"", "Prod", "a.b", "a/b"}) {
    CHECK(ValidateAlias(bad).code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(ValidateAlias(std::string(65, 'p')).code() == absl::StatusCode::kInvalidArgument);
  CHECK(ValidateTagKey("mlflow.source:git-x_z").ok());
  CHECK(Message(ValidateTagKey("a/b")) ==
        "tag key 'a/b' must be 1 to 128 characters of A-Z a-z 0-9 _ . : -");
  CHECK(ValidateTagKey(std::string(129, 'k')).code() == absl::StatusCode::kInvalidArgument);
  std::map<std::string, std::string> tags;
  for (int i = 0; i < 64; ++i) tags["k" + std::to_string(i)] = "v";
  CHECK(ValidateTags(tags).ok());
  tags["k64"] = "v";
  CHECK(Message(ValidateTags(tags)) == "65 tags; at most 64 are allowed");
  CHECK(Message(ValidateTags({{"k", std::string(4097, 'v')}})) ==
        "tag 'k' is 4097 bytes; at most 4096");
  CHECK(Message(ValidateTags({{"k", std::string("a\0b", 3)}})) ==
        "tag 'k' must not contain a NUL byte");
}

TEST_CASE("models input: version references and model paths") {
  CHECK(ParseVersionRef("1")->version == 1);
  CHECK(ParseVersionRef("2147483647")->version == 2147483647);
  CHECK(ParseVersionRef("production")->alias == "production");
  CHECK(Message(ParseVersionRef("2147483648").status()) ==
        "version '2147483648' must be a number from 1 to 2147483647");
  CHECK(Message(ParseVersionRef("0").status()) ==
        "version '0' must be a number from 1 to 2147483647");
  CHECK(Message(ParseVersionRef("01").status()) ==
        "version '01' must be a number from 1 to 2147483647");
  CHECK(Message(ParseVersionRef("+1").status()) ==
        "version '+1' must be a version number or an alias (a-z 0-9 _ -, 1 to 64)");
  // "-1" is not a number: it reads as an alias (the rule allows it), which no model will have.
  CHECK(ParseVersionRef("-1")->alias == "-1");
  CHECK(NormalizeModelPath("").value().empty());
  CHECK(NormalizeModelPath("model").value() == "model/");
  CHECK(NormalizeModelPath("out/model/").value() == "out/model/");
  CHECK(Message(NormalizeModelPath("model//").status()) ==
        "field 'path': artifact path 'model/': has an empty segment");
  CHECK(Message(NormalizeModelPath("a/../b").status()) ==
        "field 'path': artifact path 'a/../b': has a '..' segment");
  CHECK(Message(NormalizeModelPath("/").status()) == "field 'path': artifact path '': is empty");
}

TEST_CASE("models input: params, metrics and datasets at their limits") {
  CHECK(CanonicalParams(json::parse(R"({"a":1,"b":[true,"x"]})")).value() ==
        R"({"a":1,"b":[true,"x"]})");
  CHECK(CanonicalParams(json::parse(R"({"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":1}}}}}}}})")).ok());
  CHECK(
      Message(CanonicalParams(json::parse(R"({"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{}}}}}}}}})"))
                  .status()) == "field 'params' is nested more than 8 levels deep");
  // 65,536 bytes exactly is taken; one more is not.
  const std::string fits = "{\"p\":\"" + std::string(65536 - 8, 'x') + "\"}";
  CHECK(CanonicalParams(json::parse(fits)).ok());
  CHECK(Message(CanonicalParams(json::parse("{\"p\":\"" + std::string(65536 - 7, 'x') + "\"}"))
                    .status()) == "field 'params' is 65537 bytes as JSON; at most 65536");
  CHECK(Message(CanonicalParams(json::parse(R"({"p":"a\u0000b"})")).status()) ==
        "field 'params' must not contain a NUL character");
  // A backslash followed by u0000 is just text.
  CHECK(CanonicalParams(json::parse(R"({"p":"\\u0000"})")).ok());
  CHECK(CanonicalMetrics(json::parse(R"({"loss":0.5,"steps":10})")).ok());
  CHECK(Message(CanonicalMetrics(json::parse(R"({"loss":null})")).status()) ==
        "metric 'loss' must be a number");
  CHECK(Message(CanonicalMetrics(json::parse("[]")).status()) ==
        "field 'metrics' must be a JSON object of numbers");
  json::object many;
  for (int i = 0; i <= 1000; ++i) many["m" + std::to_string(i)] = i;
  CHECK(Message(CanonicalMetrics(many).status()) ==
        "field 'metrics' has 1001 entries; at most 1000");
  auto ds = ParseDatasets(
      json::parse(R"([{"path":"data/a.jsonl","md5":")" + std::string(32, 'f') + R"("}])"));
  REQUIRE(ds.ok());
  CHECK(ds->at(0).md5 == std::string(32, 'f'));
  CHECK(DatasetsJson(*ds) ==
        R"([{"path":"data/a.jsonl","md5":")" + std::string(32, 'f') + R"("}])");
  CHECK(Message(ParseDatasets(json::parse(R"([{"path":"a","sha256":"x","size":1}])")).status()) ==
        "datasets[0]: unknown field 'size' (allowed: path, sha256, md5)");
  CHECK(Message(ParseDatasets(json::parse(R"([{"path":"a"}])")).status()) ==
        "datasets[0] needs exactly one of 'sha256' and 'md5'");
  CHECK(Message(ParseDatasets(json::parse(R"([{"path":"a","md5":"ABC"}])")).status()) ==
        "datasets[0].md5 must be 32 lowercase hex digits");
  json::array lots(101, json::object{{"path", "a"}, {"md5", std::string(32, 'a')}});
  CHECK(Message(ParseDatasets(lots).status()) == "field 'datasets' has 101 entries; at most 100");
}

}  // namespace
}  // namespace assay::registry
