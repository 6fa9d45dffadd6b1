// json_util: body parsing, typed getters and Status → Response.

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <string>

#include "server/http/json_util.h"

#include "common/base/status.h"

namespace assay::http {
namespace {

std::string Message(const absl::Status& s) { return std::string(s.message()); }

}  // namespace

TEST_CASE("json_util: ParseJsonObject reports what and where", "[http]") {
  auto ok = ParseJsonObject(R"( {"a": 1} )");
  REQUIRE(ok.ok());
  CHECK(ok->at("a").as_int64() == 1);

  auto check = [](std::string_view text, std::string_view message) {
    auto r = ParseJsonObject(text);
    REQUIRE(r.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(Message(r.status()) == message);
  };
  check("", "body is empty; expected a JSON object");
  check(" \n", "body is empty; expected a JSON object");
  check(R"({"a":1,})", "body is not valid JSON: syntax error at offset 7");
  check(R"({"a": tru)", "body is not valid JSON: incomplete JSON at offset 9");
  check(R"({"a":1} x)", "body is not valid JSON: unexpected data after the value at offset 8");
  check("[1,2]", "body must be a JSON object, got array");
  check("\"s\"", "body must be a JSON object, got string");
  check("3", "body must be a JSON object, got number");
}

TEST_CASE("json_util: ParseJsonBody gives a ready 400 invalid_json", "[http]") {
  Request req;
  req.body = "{oops";
  Response err;
  CHECK_FALSE(ParseJsonBody(req, &err).has_value());
  CHECK(err.status == 400);
  CHECK(
      err.body ==
      R"({"error":{"code":"invalid_json","message":"body is not valid JSON: syntax error at offset 1"}})");

  req.body = R"({"x":"y"})";
  auto obj = ParseJsonBody(req, &err);
  REQUIRE(obj.has_value());
  CHECK(obj->at("x").as_string() == "y");
}

TEST_CASE("json_util: typed getters name the field", "[http]") {
  const boost::json::object obj =
      boost::json::parse(
          R"({"clone_url":"https://x/y.git","n":5,"big":18446744073709551615,"d":3.0,"f":2.5,)"
          R"("b":true,"nul":null,"s":"7"})")
          .as_object();

  CHECK(*RequiredString(obj, "clone_url") == "https://x/y.git");
  CHECK(Message(RequiredString(obj, "missing").status()) ==
        "field 'missing' is required and must be a string");
  CHECK(Message(RequiredString(obj, "n").status()) == "field 'n' is required and must be a string");
  CHECK(Message(RequiredString(obj, "nul").status()) ==
        "field 'nul' is required and must be a string");

  CHECK(*OptionalString(obj, "s") == std::optional<std::string>("7"));
  CHECK(*OptionalString(obj, "missing") == std::nullopt);
  CHECK(*OptionalString(obj, "nul") == std::nullopt);
  CHECK(Message(OptionalString(obj, "b").status()) == "field 'b' must be a string");

  CHECK(*OptionalInt(obj, "n") == std::optional<int64_t>(5));
  CHECK(*OptionalInt(obj, "d") == std::optional<int64_t>(3));
  CHECK(*OptionalInt(obj, "missing") == std::nullopt);
  CHECK(Message(OptionalInt(obj, "f").status()) == "field 'f' must be an integer");
  CHECK(Message(OptionalInt(obj, "big").status()) == "field 'big' must be an integer");
  CHECK(Message(OptionalInt(obj, "s").status()) == "field 's' must be an integer");
  CHECK(*RequiredInt(obj, "n") == 5);
  CHECK(Message(RequiredInt(obj, "nul").status()) ==
        "field 'nul' is required and must be an integer");

  CHECK(*OptionalBool(obj, "b") == std::optional<bool>(true));
  CHECK(*OptionalBool(obj, "missing") == std::nullopt);
  CHECK(Message(OptionalBool(obj, "n").status()) == "field 'n' must be a boolean");
}

TEST_CASE("json_util: StatusToResponse maps codes", "[http]") {
  struct Case {
    absl::Status status;
    int http;
    std::string code;
  };
  const Case cases[] = {
      {absl::InvalidArgumentError("m"), 400, "invalid_argument"},
      {absl::NotFoundError("m"), 404, "not_found"},
      {absl::AlreadyExistsError("m"), 409, "already_exists"},
      {absl::FailedPreconditionError("m"), 409, "failed_precondition"},
      {absl::UnauthenticatedError("m"), 401, "unauthenticated"},
      {absl::PermissionDeniedError("m"), 403, "permission_denied"},
      {absl::UnavailableError("m"), 503, "unavailable"},
  };
  for (const Case& c : cases) {
    const Response res = StatusToResponse(c.status);
    CHECK(res.status == c.http);
    CHECK(res.content_type == "application/json");
    CHECK(res.body == R"({"error":{"code":")" + c.code + R"(","message":"m"}})");
  }
  // Server-side failures never show their message (it may be a database's own text).
  const Response unavailable =
      StatusToResponse(MarkInternalDetail(absl::UnavailableError("database lost: pq")));
  CHECK(unavailable.status == 503);
  CHECK(unavailable.body ==
        R"({"error":{"code":"unavailable","message":"service temporarily unavailable; retry"}})");
  CHECK(unavailable.headers ==
        std::vector<std::pair<std::string, std::string>>{{"Retry-After", "1"}});
  for (const absl::Status& s :
       {absl::InternalError("database error: ERROR: relation"), absl::DeadlineExceededError("m"),
        absl::AbortedError("m"), absl::UnknownError("m"), absl::OkStatus(),
        // A client-error code whose text came from the database (a constraint's message).
        MarkInternalDetail(absl::FailedPreconditionError("ERROR: duplicate key value"))}) {
    const Response res = StatusToResponse(s);
    CHECK(res.status == 500);
    CHECK(res.body ==
          R"({"error":{"code":"internal","message":"internal server error","request_id":""}})");
  }
  CHECK(StatusToResponse(absl::NotFoundError("pipeline \"7\" not found")).body ==
        R"({"error":{"code":"not_found","message":"pipeline \"7\" not found"}})");
}

}  // namespace assay::http
