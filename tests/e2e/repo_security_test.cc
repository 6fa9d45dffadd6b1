// Issue 8, item 6, end to end: which clone URLs a server accepts, and that a credential in one
// never shows in an API answer, a log, the database's clone_url or a mirror's git config.
#include <boost/json.hpp>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

std::string ErrorMessage(const HttpClientResponse& r) {
  return std::string(
      json::parse(r.body).as_object().at("error").as_object().at("message").as_string());
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string AllServerLogs(Cluster& c) {
  std::string all;
  for (int i = 1; i <= 3; ++i) all += Slurp(absl::StrCat(c.dir(), "/server-", i, ".log"));
  return all;
}

TEST_CASE("repos API: only https and ssh clone URLs without --allow-local-repos",
          "[e2e][security]") {
  ClusterOptions o = Options();
  o.allow_local_repos = false;
  Cluster c(o);
  MUST(c.StartServer());
  auto add = [&](const std::string& name, const std::string& url) {
    return MUST(c.Api("POST", "/api/v1/repos",
                      json::serialize(json::object{{"name", name}, {"clone_url", url}})));
  };
  const std::string local =
      "field 'clone_url' is a local repository (file:// or a path), refused unless the server "
      "runs with --allow-local-repos";
  const std::string only = "(only https://, ssh:// and user@host:path are allowed)";
  const std::vector<std::pair<std::string, std::string>> bad = {
      // Another repository's mirror on the server itself.
      {"file://" + c.dir() + "/server-data/mirrors/1.git", local},
      {c.dir() + "/server-data/mirrors/1.git", local},
      {"ext::sh -c touch% /tmp/pwned",
       "field 'clone_url' must not contain spaces or control "
       "characters"},
      {"ext::sh%-c%touch%/tmp/pwned", "field 'clone_url' must not use the ext:: transport " + only},
      {"fd::3", "field 'clone_url' must not use the fd:: transport " + only},
      {"git://github.com/acme/app.git", "field 'clone_url' must not use the git:// scheme " + only},
      {"http://github.com/acme/app.git",
       "field 'clone_url' must use https://, not http:// (code and credentials would travel in "
       "clear)"},
      {"../other", "field 'clone_url' must be an https:// or ssh:// URL or user@host:path " + only},
      {"-oProxyCommand=touch:x", "field 'clone_url' must not start with '-'"},
  };
  int n = 0;
  for (const auto& [url, want] : bad) {
    INFO(url);
    auto r = add(absl::StrCat("bad", ++n), url);
    CHECK(r.status == 400);
    CHECK(ErrorMessage(r) == want);
  }
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM repos")) == 0);
  for (const char* url : {"https://github.com/acme/app.git", "ssh://git@github.com/acme/b.git",
                          "git@github.com:acme/c.git"}) {
    INFO(url);
    CHECK(add(absl::StrCat("ok", ++n), url).status == 201);
  }
}

TEST_CASE("repos API: a password in a clone URL is sealed, never shown, logged or configured",
          "[e2e][security]") {
  Cluster c(Options());
  MUST(c.StartServer());
  const std::string password = "S3cret-clone-pw-0xC0FFEE";
  // Nothing listens on 127.0.0.1:1: the fetch fails at once, after the mirror is made.
  const std::string url = "https://alice:" + password + "@127.0.0.1:1/acme/app.git";
  const std::string clean = "https://127.0.0.1:1/acme/app.git";
  json::object body{{"name", kRepoName}, {"clone_url", url}, {"webhook_secret", kSecret}};
  auto created = MUST(c.Api("POST", "/api/v1/repos", json::serialize(body)));
  REQUIRE(created.status == 201);
  json::object repo = json::parse(created.body).as_object();
  CHECK(repo.at("clone_url") == json::value(clean));
  CHECK(repo.at("has_clone_credential") == json::value(true));
  CHECK_FALSE(absl::StrContains(created.body, password));
  CHECK_FALSE(absl::StrContains(MUST(c.Api("GET", "/api/v1/repos")).body, password));
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM repos WHERE clone_url = '" + clean +
                        "' AND clone_credential_enc IS NOT NULL AND position('" + password +
                        "'::bytea in clone_credential_enc) = 0")) == 1);

  const std::string sha(40, 'a');
  MUST(c.Push(Cluster::PushPayload(clean, kRepoName, sha), "d-cred", kSecret));
  MUST(c.WaitUntil("the fetch to fail", [&](std::string& seen) {
    seen = AllServerLogs(c);
    return absl::StrContains(seen, "git fetch from " + clean + " into ");
  }));
  const int64_t id = repo.at("id").as_int64();
  const std::string config =
      Slurp(absl::StrCat(c.dir(), "/server-data/mirrors/", id, ".git/config"));
  CHECK(absl::StrContains(config, "url = " + clean));
  CHECK_FALSE(absl::StrContains(config, password));
  CHECK_FALSE(absl::StrContains(config, "alice"));
  CHECK_FALSE(absl::StrContains(AllServerLogs(c), password));
}

}  // namespace
}  // namespace assay::e2e
