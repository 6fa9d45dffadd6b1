// The model registry's REST API (issue 10, server/api/models.cc) over a real HTTP server and
// database: exact answers for models, versions, aliases and their audit, files by version and
// by alias (whole and ranged, byte-identical after the job's artifacts are swept), and hostile
// requests.

#include <boost/json.hpp>

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "common/net/http_client.h"
#include "server/api/api.h"
#include "server/artifacts/sweeper.h"
#include "server/http/http_server.h"
#include "server/metrics/metrics.h"
#include "tests/db/models_rig.h"

namespace assay::dbtest {
namespace {

std::string S(int64_t v) { return std::to_string(v); }
constexpr const char* kTime = "2023-11-14T22:13:20.000Z";

struct ApiRig {
  DbFixture& f;
  ModelRig& rig;
  Metrics metrics;
  ApiDeps deps;
  http::Router router;
  std::unique_ptr<http::Server> server;
  std::string base;
  using H = std::vector<std::pair<std::string, std::string>>;
  H auth = {{"Authorization", "Bearer " + std::string(40, 'a')}};

  ApiRig(DbFixture& fx, ModelRig& r)
      : f(fx), rig(r), deps{&f.repos,
                            &f.deliveries,
                            &f.pipelines,
                            &f.jobs,
                            &f.agents,
                            nullptr,
                            nullptr,
                            &metrics,
                            std::string(40, 'a'),
                            std::string(32, 'k')} {
    deps.artifacts = &rig.artifacts;
    deps.blobs = rig.blobs.get();
    deps.models = &rig.models;
    deps.clock = &f.clock;
    RegisterApi(router, deps);
    server = std::make_unique<http::Server>(
        http::ServerOptions{}, [this](http::Request& req) { return router.Dispatch(req); },
        [this](http::Request& req) { return router.Admit(req); });
    REQUIRE(server->Start().ok());
    base = "http://127.0.0.1:" + std::to_string(server->port()) + "/api/v1/models";
  }
  ~ApiRig() { server->Stop(); }

  HttpClientResponse Call(const std::string& method, const std::string& path,
                          const std::string& body = "", H headers = {}) {
    H h = auth;
    h.insert(h.end(), headers.begin(), headers.end());
    if (!body.empty()) h.push_back({"Content-Type", "application/json"});
    auto r = HttpFetch(method, base + path, h, body);
    REQUIRE(r.ok());
    return *r;
  }
};

std::string Err(const std::string& code, const std::string& message) {
  return R"({"error":{"code":")" + code + R"(","message":")" + message + R"("}})";
}

TEST_CASE("models API: create, register, alias, files by version and alias, exact answers",
          "[db]") {
  DbFixture f;
  ModelRig rig(f);
  ApiRig api(f, rig);
  const std::string weights = ModelBytes(5 * 1024 * 1024 + 3, 7), tok = "{\"v\":1}";
  const int64_t job = rig.TrainJob({{"model/weights.bin", weights}, {"model/tok.json", tok}},
                                   absl::Hours(1), 1 << 20);

  auto created = api.Call("POST", "", R"({"name":"bot","description":"d","tags":{"team":"x"}})");
  CHECK(created.status == 201);
  CHECK(created.body == std::string(R"({"name":"bot","description":"d","tags":{"team":"x"},)") +
                            R"("aliases":{},"latest_version":null,"versions":0,"created_at":")" +
                            kTime + R"(","updated_at":")" + kTime + R"("})");
  auto dup = api.Call("POST", "", R"({"name":"bot"})");
  CHECK(dup.status == 409);
  CHECK(dup.body == Err("already_exists", "model 'bot' exists already"));

  const std::string reg = R"({"job_id":)" + S(job) +
                          R"(,"params":{"lr":2,"opt":"adam"},"metrics":{"loss":1.5},)"
                          R"("datasets":[{"path":"data/qa.jsonl","md5":")" +
                          std::string(32, 'c') + R"("}],"tags":{"run":"r1"}})";
  auto v1 = api.Call("POST", "/bot/versions", reg);
  CHECK(v1.status == 201);
  const std::string v1_body =
      R"({"model":"bot","version":1,"status":"ready","description":"","source":{"repo_id":)" +
      S(f.repo_id) + R"(,"repo":"acme/app","commit":")" + kSha + R"(","pipeline_id":)" +
      f.One("SELECT pipeline_id FROM jobs WHERE id = " + S(job)) + R"(,"job_id":)" + S(job) +
      R"(,"job":"train","path":"model/"},"files":2,"bytes":)" +
      S(static_cast<int64_t>(weights.size() + tok.size())) +
      R"(,"params":{"lr":2,"opt":"adam"},"metrics":{"loss":1.5E0},)"
      R"("datasets":[{"md5":")" +
      std::string(32, 'c') +
      R"(","path":"data/qa.jsonl"}],"parent_version":null,)"
      R"("tags":{"run":"r1"},"aliases":[],"created_at":")" +
      kTime + R"("})";
  CHECK(v1.body == v1_body);
  // The replay: 200 and the same version.
  auto replay = api.Call("POST", "/bot/versions", reg);
  CHECK(replay.status == 200);
  CHECK(replay.body == v1_body);

  // An alias on a version that does not exist: 404 naming it, nothing changed.
  auto missing = api.Call("PUT", "/bot/aliases/production", R"({"version":2,"reason":"x"})");
  CHECK(missing.status == 404);
  CHECK(missing.body == Err("not_found", "model 'bot' has no version 2"));
  CHECK(f.Count("SELECT count(*) FROM model_alias_events") == 0);
  auto set = api.Call("PUT", "/bot/aliases/production",
                      R"({"version":1,"reason":"passed eval","actor":"alice"})");
  CHECK(set.status == 200);
  CHECK(set.body == R"({"model":"bot","alias":"production","version":1,"previous_version":null,)"
                    R"("changed":true})");
  auto history = api.Call("GET", "/bot/aliases/production/history");
  CHECK(history.status == 200);
  CHECK(history.body ==
        R"({"model":"bot","alias":"production","history":[{"id":)" +
            f.One("SELECT id FROM model_alias_events") +
            R"(,"alias":"production","from_version":null,"to_version":1,"principal":"admin",)"
            R"("client_addr":"127.0.0.1","actor":"alice","reason":"passed eval","at":")" +
            kTime + R"("}]})");

  // The version by number, by alias, as name@alias and name@N: the same answer but aliases.
  std::string with_alias = v1_body;
  with_alias.replace(with_alias.find(R"("aliases":[])"), 12, R"("aliases":["production"])");
  for (const std::string path : {"/bot/versions/1", "/bot/versions/production",
                                 "/bot/aliases/production", "/bot@production", "/bot@1"}) {
    auto got = api.Call("GET", path);
    INFO(path);
    CHECK(got.status == 200);
    CHECK(got.body == with_alias);
  }
  auto model = api.Call("GET", "/bot");
  CHECK(model.body == std::string(R"({"name":"bot","description":"d","tags":{"team":"x"},)") +
                          R"("aliases":{"production":1},"latest_version":1,"versions":1,)"
                          R"("created_at":")" +
                          kTime + R"(","updated_at":")" + kTime + R"("})");

  // Files: listing and downloads, after the job's artifacts expired and were swept.
  f.clock.Advance(absl::Hours(48));
  artifacts::Sweeper sweeper(&rig.artifacts, rig.blobs.get(), &f.clock, {});
  REQUIRE(sweeper.RunOnce().ok());
  REQUIRE(f.Count("SELECT count(*) FROM artifacts") == 0);
  auto listing = api.Call("GET", "/bot/aliases/production/files");
  CHECK(listing.status == 200);
  CHECK(listing.body == R"({"model":"bot","version":1,"files":[{"path":"tok.json","size":7,)"
                        R"("mode":"0644","sha256":")" +
                            HexSha256(tok) +
                            R"("},{"path":"weights.bin","size":5242883,)"
                            R"("mode":"0644","sha256":")" +
                            HexSha256(weights) + R"("}],"bytes":5242890})");
  auto whole = api.Call("GET", "/bot/versions/1/files/weights.bin");
  CHECK(whole.status == 200);
  CHECK(whole.body == weights);
  CHECK(whole.Header("Content-Length") == "5242883");
  CHECK(whole.Header("ETag") == "\"" + HexSha256(weights) + "\"");
  auto part = api.Call("GET", "/bot/aliases/production/files/weights.bin", "",
                       {{"Range", "bytes=4194300-4194399"}});
  CHECK(part.status == 206);
  CHECK(part.body == weights.substr(4194300, 100));
  CHECK(part.Header("Content-Range") == "bytes 4194300-4194399/5242883");
  auto small = api.Call("GET", "/bot@production");  // still resolves after the sweep
  CHECK(small.status == 200);
  auto nofile = api.Call("GET", "/bot/versions/1/files/nope.bin");
  CHECK(nofile.status == 404);
  CHECK(nofile.body == Err("not_found", "version 1 of 'bot' has no file 'nope.bin'"));
  auto traversal = api.Call("GET", "/bot/versions/1/files/%2E%2E/%2E%2E/etc/passwd");
  CHECK(traversal.status == 400);
  CHECK(traversal.body ==
        Err("invalid_argument", "artifact path '../../etc/passwd': has a '..' segment"));

  auto metrics =
      HttpFetch("GET", "http://127.0.0.1:" + std::to_string(api.server->port()) + "/metrics");
  REQUIRE(metrics.ok());
  CHECK(metrics->body.find("\nassay_model_versions{model=\"bot\"} 1\n") != std::string::npos);
  // Delete: refused while an alias points at it, then forced.
  auto refused = api.Call("DELETE", "/bot");
  CHECK(refused.status == 409);
  CHECK(refused.body == Err("failed_precondition",
                            "model 'bot' has aliases (production → 1); delete them first, or "
                            "delete with force=true"));
  auto forced = api.Call("DELETE", "/bot?force=true");
  CHECK(forced.status == 200);
  CHECK(forced.body == R"({"deleted":"bot"})");
  CHECK(api.Call("GET", "/bot").status == 404);
  metrics = HttpFetch("GET", "http://127.0.0.1:" + std::to_string(api.server->port()) + "/metrics");
  REQUIRE(metrics.ok());
  CHECK(metrics->body.find("\nassay_model_versions{model=\"bot\"} 0\n") != std::string::npos);
}

TEST_CASE("models API: list and search by name glob and tag, pages, version filters", "[db]") {
  DbFixture f;
  ModelRig rig(f);
  ApiRig api(f, rig);
  for (const char* body :
       {R"({"name":"chat-small","tags":{"family":"chat"}})",
        R"({"name":"chat-large","tags":{"family":"chat","size":"xl"}})",
        R"({"name":"embedder","tags":{"family":"embed"}})", R"({"name":"chat_x"})"}) {
    REQUIRE(api.Call("POST", "", body).status == 201);
  }
  auto names = [&](const std::string& query) {
    auto r = api.Call("GET", query);
    REQUIRE(r.status == 200);
    std::string out;
    boost::json::value v = boost::json::parse(r.body);
    for (const auto& m : v.at("models").as_array()) {
      out += std::string(m.at("name").as_string()) + " ";
    }
    return out + "| next=" + boost::json::serialize(v.at("next_after"));
  };
  CHECK(names("") == "chat-large chat-small chat_x embedder | next=null");
  CHECK(names("?name=chat-*") == "chat-large chat-small | next=null");
  CHECK(names("?name=chat?x") == "chat_x | next=null");  // '_' is not a LIKE wildcard here
  CHECK(names("?name=chat_*") == "chat_x | next=null");
  CHECK(names("?tag=family=chat") == "chat-large chat-small | next=null");
  CHECK(names("?tag=family=chat&tag=size=xl") == "chat-large | next=null");
  CHECK(names("?limit=2") == "chat-large chat-small | next=\"chat-small\"");
  CHECK(names("?limit=2&after=chat-small") == "chat_x embedder | next=\"embedder\"");
  auto bad = api.Call("GET", "?tag=nope");
  CHECK(bad.status == 400);
  CHECK(bad.body == Err("invalid_argument", "query parameter 'tag' must be KEY=VALUE, got 'nope'"));
  CHECK(api.Call("GET", "?limit=0").status == 400);

  for (int i = 0; i < 3; ++i) {
    const int64_t job = rig.TrainJob({{"model/w", S(i)}});
    const std::string tags = i == 1 ? R"(,"tags":{"good":"yes"})" : "";
    REQUIRE(api.Call("POST", "/embedder/versions", R"({"job_id":)" + S(job) + tags + "}").status ==
            201);
  }
  REQUIRE(api.Call("PUT", "/embedder/aliases/staging", R"({"version":"2"})").status == 200);
  auto versions = [&](const std::string& query) {
    auto r = api.Call("GET", "/embedder/versions" + query);
    REQUIRE(r.status == 200);
    std::string out;
    boost::json::value v = boost::json::parse(r.body);
    for (const auto& m : v.at("versions").as_array()) out += S(m.at("version").as_int64()) + " ";
    return out + "| next=" + boost::json::serialize(v.at("next_before"));
  };
  CHECK(versions("") == "3 2 1 | next=null");
  CHECK(versions("?limit=2") == "3 2 | next=2");
  CHECK(versions("?before=2") == "1 | next=null");
  CHECK(versions("?alias=staging") == "2 | next=null");
  CHECK(versions("?tag=good=yes") == "2 | next=null");
  // Tags on a model and a version, set and deleted.
  CHECK(api.Call("PUT", "/embedder/versions/staging/tags/stage", R"({"value":"b"})").body ==
        R"({"key":"stage","value":"b"})");
  CHECK(versions("?tag=stage=b") == "2 | next=null");
  CHECK(api.Call("DELETE", "/embedder/versions/2/tags/stage").status == 200);
  CHECK(api.Call("DELETE", "/embedder/versions/2/tags/stage").body ==
        Err("not_found", "version 2 of 'embedder' has no tag 'stage'"));
  CHECK(api.Call("PUT", "/embedder/tags/owner", R"({"value":"ml"})").status == 200);
  CHECK(names("?tag=owner=ml") == "embedder | next=null");
  CHECK(api.Call("PATCH", "/embedder", R"({"description":"vectors"})").status == 200);
  CHECK(f.One("SELECT description FROM models WHERE name = 'embedder'") == "vectors");
}

TEST_CASE("models API: alias delete by body or query, archived versions, audit answers", "[db]") {
  DbFixture f;
  ModelRig rig(f);
  ApiRig api(f, rig);
  for (int i = 0; i < 2; ++i) {
    const int64_t job = rig.TrainJob({{"model/w", S(i)}});
    REQUIRE(api.Call("POST", "/m/versions", R"({"job_id":)" + S(job) + "}").status == 201);
  }
  REQUIRE(api.Call("PUT", "/m/aliases/prod", R"({"version":1})").status == 200);
  auto same = api.Call("PUT", "/m/aliases/prod", R"({"version":"prod","reason":"noop"})");
  CHECK(same.body == R"({"model":"m","alias":"prod","version":1,"previous_version":1,)"
                     R"("changed":false})");
  auto gone = api.Call("DELETE", "/m/aliases/prod", R"({"reason":"rollback","actor":"bob"})");
  CHECK(gone.status == 200);
  CHECK(gone.body == R"({"model":"m","alias":"prod","previous_version":1})");
  REQUIRE(api.Call("PUT", "/m/aliases/prod", R"({"version":2})").status == 200);
  auto by_query = api.Call("DELETE", "/m/aliases/prod?reason=bad%20canary&actor=carol");
  CHECK(by_query.status == 200);
  CHECK(api.Call("DELETE", "/m/aliases/prod").body ==
        Err("not_found", "model 'm' has no alias 'prod'"));
  CHECK(f.Query("SELECT coalesce(from_version::text, '-'), coalesce(to_version::text, '-'), "
                "coalesce(actor, '-'), reason FROM model_alias_events ORDER BY id") ==
        Rows{{"-", "1", "-", ""},
             {"1", "-", "bob", "rollback"},
             {"-", "2", "-", ""},
             {"2", "-", "carol", "bad canary"}});
  auto history = api.Call("GET", "/m/aliases/prod/history?limit=1");
  CHECK(history.body.find(R"("history":[{"id":)") != std::string::npos);
  CHECK(history.body.find(R"("from_version":2,"to_version":null,"principal":"admin",)"
                          R"("client_addr":"127.0.0.1","actor":"carol","reason":"bad canary")") !=
        std::string::npos);
  CHECK(history.body.find("rollback") == std::string::npos);  // limit=1: the newest only
  auto archived = api.Call("PATCH", "/m/versions/1", R"({"status":"archived"})");
  CHECK(archived.status == 200);
  CHECK(archived.body.find(R"("status":"archived")") != std::string::npos);
  auto refused = api.Call("PUT", "/m/aliases/prod", R"({"version":1})");
  CHECK(refused.status == 409);
  CHECK(refused.body ==
        Err("failed_precondition", "version 1 of 'm' is archived; it cannot take an alias"));
  CHECK(api.Call("PATCH", "/m/versions/1", R"({"status":"gone"})").body ==
        Err("invalid_argument", R"(field 'status' must be \"ready\" or \"archived\")"));
}

TEST_CASE("models API: hostile requests get exact errors and change nothing", "[db]") {
  DbFixture f;
  ModelRig rig(f);
  ApiRig api(f, rig);
  const int64_t job = rig.TrainJob({{"model/w", "w"}});
  const std::string j = R"({"job_id":)" + S(job);
  struct Case {
    std::string method, path, body;
    int status;
    std::string answer;
  };
  const std::vector<Case> cases = {
      {"POST", "", R"({"name":"a b"})", 400,
       Err("invalid_argument",
           "model name 'a b' must be 1 to 128 characters of A-Z a-z 0-9 _ . -")},
      {"POST", "", R"({"name":".."})", 400,
       Err("invalid_argument", "model name '..' is not allowed")},
      {"GET", "/m/tags/a%2Fb", "", 404, Err("not_found", "no route for /api/v1/models/m/tags/a/b")},
      {"POST", "", R"({"name":"x","owner":"me"})", 400,
       Err("invalid_argument", "unknown field 'owner' (allowed: name, description, tags)")},
      {"POST", "", R"({"name":"x","tags":{"k":1}})", 400,
       Err("invalid_argument", "tag 'k' must be a string")},
      {"POST", "/" + std::string(129, 'n') + "/versions", j + "}", 400,
       Err("invalid_argument", "model name '" + std::string(80, 'n') +
                                   "...' must be 1 to 128 characters of A-Z a-z 0-9 _ . -")},
      {"POST", "/m/versions", R"({"job_id":"1"})", 400,
       Err("invalid_argument", "field 'job_id' is required and must be an integer")},
      {"POST", "/m/versions", R"({"job_id":-4})", 400,
       Err("invalid_argument", "field 'job_id' must be positive")},
      {"POST", "/m/versions", R"({"job_id":424242})", 404,
       Err("not_found", "job 424242 not found")},
      {"POST", "/m/versions", j + R"(,"path":"../../x"})", 400,
       Err("invalid_argument", "field 'path': artifact path '../../x': has a '..' segment")},
      {"POST", "/m/versions", j + R"(,"params":[1]})", 400,
       Err("invalid_argument", "field 'params' must be a JSON object")},
      {"POST", "/m/versions",
       j + R"(,"params":{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{}}}}}}}}}})", 400,
       Err("invalid_argument", "field 'params' is nested more than 8 levels deep")},
      {"POST", "/m/versions", j + R"(,"params":{"p":")" + std::string(65536, 'x') + R"("}})", 400,
       Err("invalid_argument", "field 'params' is 65544 bytes as JSON; at most 65536")},
      {"POST", "/m/versions", j + R"(,"metrics":{"acc":true}})", 400,
       Err("invalid_argument", "metric 'acc' must be a number")},
      {"POST", "/m/versions", j + R"(,"datasets":[{"path":"d","sha256":"x","md5":"y"}]})", 400,
       Err("invalid_argument", "datasets[0] needs exactly one of 'sha256' and 'md5'")},
      {"POST", "/m/versions", j + R"(,"parent_version":0})", 400,
       Err("invalid_argument", "field 'parent_version' must be a version from 1 to 2147483647")},
      {"POST", "/m/versions", j + R"(,"parent_version":3})", 404,
       Err("not_found", "parent version: model 'm' has no version 3")},
      {"PUT", "/m/aliases/1", R"({"version":1})", 400,
       Err("invalid_argument", "alias '1' must not be a number (it would read as a version)")},
      {"PUT", "/m/aliases/prod", R"({"version":1,"reason":7})", 400,
       Err("invalid_argument", "field 'reason' must be a string")},
      {"PUT", "/nope/aliases/prod", R"({"version":1})", 404,
       Err("not_found", "model 'nope' not found")},
      {"GET", "/m/versions/01", "", 400,
       Err("invalid_argument", "version '01' must be a number from 1 to 2147483647")},
      {"GET", "/m/versions/99999999999", "", 400,
       Err("invalid_argument", "version '99999999999' must be a number from 1 to 2147483647")},
  };
  for (const Case& c : cases) {
    INFO(c.method << " " << c.path << " " << c.body.substr(0, 200));
    auto r = api.Call(c.method, c.path, c.body);
    CHECK(r.status == c.status);
    CHECK(r.body == c.answer);
  }
  // A body nested past the JSON parser's own depth limit.
  auto deep = api.Call("POST", "/m/versions",
                       j + R"(,"params":)" + std::string(40, '[') + std::string(40, ']') + "}");
  CHECK(deep.status == 400);
  CHECK(deep.body.find(R"("code":"invalid_json")") != std::string::npos);
  CHECK(f.Count("SELECT count(*) FROM models") == 0);
  CHECK(f.Count("SELECT count(*) FROM model_versions") == 0);
  // 65 tags on a model, one by one: the 65th is refused.
  REQUIRE(api.Call("POST", "", R"({"name":"t"})").status == 201);
  for (int i = 0; i < 64; ++i) {
    REQUIRE(api.Call("PUT", "/t/tags/k" + S(i), R"({"value":"v"})").status == 200);
  }
  auto extra = api.Call("PUT", "/t/tags/k64", R"({"value":"v"})");
  CHECK(extra.status == 400);
  CHECK(extra.body == Err("invalid_argument", "model 't' has 64 tags already; at most that many"));
  CHECK(f.Count("SELECT count(*) FROM model_tags") == 64);
  // Without the token: 401, nothing read.
  auto noauth = HttpFetch("GET", api.base);
  REQUIRE(noauth.ok());
  CHECK(noauth->status == 401);
}

}  // namespace
}  // namespace assay::dbtest
