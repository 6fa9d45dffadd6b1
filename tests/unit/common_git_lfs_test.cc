// Git LFS pointers and the lfs.url policy (common/git/lfs.h). The checkout itself, with a real
// git-lfs and an LFS endpoint, is tested in tests/e2e/lfs_test.cc.
#include <catch2/catch.hpp>
#include <string>

#include "common/git/lfs.h"

namespace assay {
namespace {

constexpr char kOid[] = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393";

std::string Pointer(const std::string& middle) {
  return "version https://git-lfs.github.com/spec/v1\n" + middle;
}

TEST_CASE("ParseLfsPointer reads the spec's pointer and its extensions", "[lfs]") {
  auto p = ParseLfsPointer(Pointer(std::string("oid sha256:") + kOid + "\nsize 12345\n"));
  REQUIRE(p.has_value());
  CHECK(p->oid == kOid);
  CHECK(p->size == 12345);
  // Extension keys sort before "oid" ("ext-0-foo"), as git-lfs writes them.
  p = ParseLfsPointer(
      Pointer(std::string("ext-0-foo sha256:") + kOid + "\noid sha256:" + kOid + "\nsize 0\n"));
  REQUIRE(p.has_value());
  CHECK(p->size == 0);
}

TEST_CASE("ParseLfsPointer refuses anything else, which stays an ordinary file", "[lfs]") {
  const std::string oid = std::string("oid sha256:") + kOid + "\n";
  const std::vector<std::string> bad = {
      "",
      Pointer(oid),                                  // no size
      Pointer("size 1\n"),                           // no oid
      Pointer("size 1\n" + oid),                     // keys out of order
      Pointer(oid + "size 1\nsize 2\n"),             // a key twice
      Pointer(oid + "size 1"),                       // no final newline
      Pointer(oid + "size 1\n\n"),                   // an empty line
      Pointer(oid + "size 01\n"),                    // leading zero
      Pointer(oid + "size -1\n"),                    // negative
      Pointer(oid + "size 99999999999999999999\n"),  // beyond uint64
      Pointer(std::string("oid sha256:") + std::string(64, 'A') + "\nsize 1\n"),  // upper hex
      Pointer(std::string("oid sha256:") + std::string(63, 'a') + "\nsize 1\n"),  // short
      Pointer(std::string("oid md5:") + kOid + "\nsize 1\n"),
      "version https://git-lfs.github.com/spec/v2\n" + oid + "size 1\n",
      "version https://git-lfs.github.com/spec/v1\r\n" + oid + "size 1\r\n",  // CRLF
      Pointer(oid + "size 1\n" + "zzz " + std::string(1100, 'x') + "\n"),     // too big
      Pointer(oid + "Size 1\n"),                                              // bad key
  };
  for (const std::string& text : bad) {
    INFO(text);
    CHECK(!ParseLfsPointer(text).has_value());
  }
}

TEST_CASE("CheckLfsUrl: https on the clone URL's host, loopback only for tests",
          "[lfs][security]") {
  const std::string clone = "https://git.example.com/acme/app.git";
  CHECK(CheckLfsUrl("https://git.example.com/acme/app.git/info/lfs", clone, false).ok());
  CHECK(CheckLfsUrl("https://GIT.example.com:443/lfs", clone, false).ok());
  CHECK(CheckLfsUrl("https://git.example.com/lfs", "git@git.example.com:acme/app.git", false).ok());
  CHECK(CheckLfsUrl("https://git.example.com/lfs", "ssh://git@git.example.com:22/a", false).ok());
  CHECK(CheckLfsUrl("http://127.0.0.1:8080/lfs", clone, true).ok());

  auto msg = [&](const std::string& url, bool allow_local = false) {
    return std::string(CheckLfsUrl(url, clone, allow_local).message());
  };
  CHECK(msg("https://evil.example/lfs") ==
        ".lfsconfig: lfs.url https://evil.example/lfs: is on host evil.example, not on the "
        "repository's host git.example.com");
  CHECK(msg("http://git.example.com/lfs") ==
        ".lfsconfig: lfs.url http://git.example.com/lfs: must be an https:// URL");
  CHECK(msg("http://127.0.0.1:8080/lfs") ==
        ".lfsconfig: lfs.url http://127.0.0.1:8080/lfs: must be an https:// URL");
  CHECK(msg("https://127.0.0.1/lfs") ==
        ".lfsconfig: lfs.url https://127.0.0.1/lfs: is on host 127.0.0.1, not on the "
        "repository's host git.example.com");
  CHECK(msg("https://user:pw@git.example.com/lfs") ==
        ".lfsconfig: lfs.url https://user:pw@git.example.com/lfs: must not hold a user or "
        "password (the agent sends the clone credential)");
  CHECK(msg("file:///etc") == ".lfsconfig: lfs.url file:///etc: must be an https:// URL");
  CHECK(msg("https://git.example.com/a b") ==
        ".lfsconfig: lfs.url https://git.example.com/a b: holds a space or a control character");
  CHECK(msg("https:///x") == ".lfsconfig: lfs.url https:///x: has no host");
  CHECK(CheckLfsUrl("https://" + std::string(3000, 'a'), clone, false).code() ==
        absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace assay
