// The commit status reporter opens tokens sealed with a key id and bound to their repository
// (issue 8, item 9): a rotated key works, a token copied from another repository does not.

#include <unistd.h>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/crypto/sealed.h"
#include "server/forge/status_reporter.h"

namespace assay::forge {
namespace {

TEST_CASE("reporter: tokens sealed for their repository with a rotated key", "[unit][forge]") {
  const std::string dir = std::filesystem::temp_directory_path() /
                          ("assay-reporter-keys-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/secret.key", std::ios::binary) << std::string(32, '\x21');
  KeyRing ring = KeyRing::LoadDir(dir).value();
  REQUIRE(ring.AddNewKey().value() == 2);

  store::Db db("postgresql://unused", 1);  // StatusFor does not touch the database
  CommitStatusNotifier notifier({});
  StatusReporter reporter(&db, &notifier, ring, {});
  store::DueStatus d;
  d.pipeline_id = 3;
  d.repo_id = 5;
  d.commit_sha = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";
  d.repo_name = "acme/app";
  d.provider = "github";
  d.api_url = "https://api.github.com";
  d.state = "succeeded";
  d.token_sealed = ring.Seal("tok-5", RowAad("repos", 5, "status_token")).value();
  REQUIRE(SealedKeyId(d.token_sealed) == 2);
  auto s = reporter.StatusFor(d);
  REQUIRE(s.ok());
  CHECK(s->api_token == "tok-5");

  // Another repository's token, or its webhook secret, in this repository's row.
  for (const std::string& aad :
       {RowAad("repos", 6, "status_token"), RowAad("repos", 5, "webhook_secret")}) {
    d.token_sealed = ring.Seal("tok-other", aad).value();
    CHECK(reporter.StatusFor(d).status().message() ==
          "pipeline 3 of repository acme/app: cannot open the commit status token (was the "
          "secret key replaced?)");
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace assay::forge
