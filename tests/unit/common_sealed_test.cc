// Sealed secrets with key ids and associated data (common/crypto/sealed.h): round trips,
// forged, truncated and relabelled values, the wrong row, unknown keys, the old format, and
// the key files of a data dir.

#include "common/crypto/sealed.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/crypto/crypto.h"

namespace assay {
namespace {

const SecretKey kKey1{1, std::string(32, '\x01')};
const SecretKey kKey2{2, std::string(32, '\x02')};

TEST_CASE("sealed: a value opens only with its key and its row", "[unit][crypto]") {
  CHECK(RowAad("repos", 7, "webhook_secret") == "repos/7/webhook_secret");
  const std::string aad = RowAad("repos", 7, "webhook_secret");
  auto sealed = Seal(kKey2, "s3cr3t", aad);
  REQUIRE(sealed.ok());
  CHECK(sealed->size() == 8 + 12 + 6 + 16);
  CHECK(sealed->substr(0, 8) == std::string("ASK1\0\0\0\x02", 8));
  CHECK(SealedKeyId(*sealed) == 2);
  CHECK(Open(kKey2, *sealed, aad).value() == "s3cr3t");

  // Another row, another column: refused.
  for (const std::string& other :
       {RowAad("repos", 8, "webhook_secret"), RowAad("repos", 7, "status_token"), std::string()}) {
    auto o = Open(kKey2, *sealed, other);
    CHECK(o.status().code() == absl::StatusCode::kDataLoss);
    CHECK(o.status().message() == "sealed secret failed authentication (wrong key or tampered)");
  }
  // The wrong key under the right id, and a key with another id.
  CHECK(Open(SecretKey{2, std::string(32, '\x09')}, *sealed, aad).status().code() ==
        absl::StatusCode::kDataLoss);
  auto other_id = Open(kKey1, *sealed, aad);
  CHECK(other_id.status().code() == absl::StatusCode::kDataLoss);
  CHECK(other_id.status().message() == "sealed secret names key 2, not key 1");
}

TEST_CASE("sealed: forged, truncated and relabelled values are refused", "[unit][crypto]") {
  const std::string aad = "repos/1/status_token";
  const std::string sealed = Seal(kKey1, "token-value", aad).value();
  // Every single flipped bit, header included.
  for (size_t i = 0; i < sealed.size(); ++i) {
    std::string t = sealed;
    t[i] ^= 0x01;
    INFO("byte " << i);
    CHECK_FALSE(Open(kKey1, t, aad).ok());
  }
  // Every truncation.
  for (size_t n = 0; n < sealed.size(); ++n) {
    INFO("length " << n);
    CHECK_FALSE(Open(kKey1, sealed.substr(0, n), aad).ok());
  }
  CHECK(Open(kKey1, sealed.substr(0, 7), aad).status().message() ==
        "sealed secret has no key id header");
  CHECK(Open(kKey1, sealed.substr(0, 30), aad).status().message() == "sealed secret is truncated");
  // Relabelled with another key id (same key bytes): the header is authenticated.
  std::string relabelled = sealed;
  relabelled[7] = '\x05';
  CHECK_FALSE(Open(SecretKey{5, kKey1.bytes}, relabelled, aad).ok());
  CHECK_FALSE(Open(kKey1, sealed + "x", aad).ok());
  CHECK(Seal(SecretKey{0, kKey1.bytes}, "x", aad).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(Seal(SecretKey{1, "short"}, "x", aad).status().message() == "secret key must be 32 bytes");
}

TEST_CASE("sealed: a key ring opens every key it has, the old format with key 1",
          "[unit][crypto]") {
  const std::string dir =
      std::filesystem::temp_directory_path() / ("assay-sealed-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  CHECK(KeyRing::LoadDir(dir).status().message() == "no secret key in " + dir);
  { std::ofstream(dir + "/secret.key", std::ios::binary) << kKey1.bytes; }
  auto ring = KeyRing::LoadDir(dir);
  REQUIRE(ring.ok());
  CHECK(ring->current_id() == 1);
  const std::string aad = "repos/3/webhook_secret";
  const std::string old_format = SealSecret(kKey1.bytes, "legacy").value();
  CHECK(SealedKeyId(old_format) == 0);
  CHECK(ring->Open(old_format, aad).value() == "legacy");
  const std::string v1 = ring->Seal("one", aad).value();
  CHECK(SealedKeyId(v1) == 1);

  // A second ring (another server on the same data dir) adds key 2; the first ring meets a
  // value sealed with it and reads the new key file.
  KeyRing rotator = KeyRing::LoadDir(dir).value();
  auto id = rotator.AddNewKey();
  REQUIRE(id.ok());
  CHECK(*id == 2);
  struct stat st {};
  REQUIRE(::stat((dir + "/keys/2.key").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  const std::string v2 = rotator.Seal("two", aad).value();
  CHECK(SealedKeyId(v2) == 2);
  CHECK(ring->Open(v2, aad).value() == "two");
  CHECK(ring->current_id() == 2);
  CHECK(ring->Open(v1, aad).value() == "one");
  CHECK(rotator.Open(old_format, aad).value() == "legacy");

  // An unknown key id.
  std::string unknown = v2;
  unknown[7] = '\x09';
  auto u = ring->Open(unknown, aad);
  CHECK(u.status().code() == absl::StatusCode::kDataLoss);
  CHECK(u.status().message() == "sealed secret needs key 9, which this server does not have");

  // A bad key file is an error, not a silent skip.
  { std::ofstream(dir + "/keys/3.key", std::ios::binary) << "short"; }
  CHECK(KeyRing::LoadDir(dir).status().message() ==
        dir + "/keys/3.key: secret key must be exactly 32 bytes, found 5");
  std::filesystem::remove_all(dir);

  // The one-key ring of tests and old callers.
  KeyRing single(kKey1.bytes);
  CHECK(single.Open(single.Seal("x", aad).value(), aad).value() == "x");
  CHECK(KeyRing().Seal("x", aad).status().code() == absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace assay
