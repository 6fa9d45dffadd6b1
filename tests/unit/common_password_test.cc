// Password hashing (common/crypto/password.h): scrypt round trips, the stored format, and
// hostile stored hashes and passwords that must be refused without the work they ask for.

#include "common/crypto/password.h"

#include <catch2/catch.hpp>
#include <string>

namespace assay {
namespace {

// Cheap parameters: the format and the checks are the same at any cost.
constexpr ScryptParams kFast{10, 8, 1};

TEST_CASE("password: a hash verifies its password and no other, salted each time", "[crypto]") {
  auto h = HashPassword("correct horse battery", kFast);
  REQUIRE(h.ok());
  CHECK(h->rfind("$scrypt$ln=10,r=8,p=1$", 0) == 0);
  CHECK(h->size() == std::string("$scrypt$ln=10,r=8,p=1$").size() + 32 + 1 + 64);
  CHECK(VerifyPassword("correct horse battery", *h));
  CHECK_FALSE(VerifyPassword("correct horse batterY", *h));
  CHECK_FALSE(VerifyPassword("correct horse battery ", *h));
  CHECK_FALSE(VerifyPassword("", *h));
  auto again = HashPassword("correct horse battery", kFast);
  REQUIRE(again.ok());
  CHECK(*again != *h);  // a new salt
  CHECK(VerifyPassword("correct horse battery", *again));
  auto params = ParsePasswordHashParams(*h);
  REQUIRE(params.ok());
  CHECK(params->log2_n == 10);
  CHECK(params->r == 8);
  CHECK(params->p == 1);
}

TEST_CASE("password: a stored hash made by another scrypt implementation verifies", "[crypto]") {
  // Python's hashlib.scrypt (which gives RFC 7914's own test vector for P="password",
  // S="NaCl", N=1024, r=8, p=16) computed this, with salt 00 01 .. 0f:
  //   hashlib.scrypt(b"correct horse battery", salt=bytes(range(16)), n=1024, r=8, p=1,
  //                  dklen=32).hex()
  const std::string stored =
      "$scrypt$ln=10,r=8,p=1$000102030405060708090a0b0c0d0e0f$"
      "84a1962f6d96b5d19f21bc443c0674e814b66d6c982ae6482afca97c09583969";
  CHECK(VerifyPassword("correct horse battery", stored));
  CHECK_FALSE(VerifyPassword("correct horse battery!", stored));
  // The same hash under other parameters is another hash.
  CHECK_FALSE(VerifyPassword("correct horse battery",
                             "$scrypt$ln=11,r=8,p=1$000102030405060708090a0b0c0d0e0f$"
                             "84a1962f6d96b5d19f21bc443c0674e814b66d6c982ae6482afca97c09583969"));
}

TEST_CASE("password: the policy's limits", "[crypto]") {
  CHECK(HashPassword("short", kFast).status().message() == "password must be at least 8 bytes");
  CHECK(HashPassword(std::string(1025, 'x'), kFast).status().message() ==
        "password must be at most 1024 bytes");
  CHECK(HashPassword(std::string("abcd\0efgh", 9), kFast).status().message() ==
        "password must not contain a NUL byte");
  CHECK(HashPassword(std::string(8, 'x'), kFast).ok());
  CHECK(HashPassword(std::string(1024, 'x'), kFast).ok());
  // Parameters out of bounds are refused before any work.
  CHECK(HashPassword("long enough", ScryptParams{21, 8, 1}).status().message() ==
        "scrypt parameters out of bounds: ln=21, r=8, p=1");
  CHECK(HashPassword("long enough", ScryptParams{10, 17, 1}).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(HashPassword("long enough", ScryptParams{10, 8, 5}).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("password: forged and corrupt stored hashes are refused, never worked on", "[security]") {
  auto h = HashPassword("correct horse battery", kFast);
  REQUIRE(h.ok());
  const std::string salt = h->substr(22, 32), hash = h->substr(55);
  for (const std::string& bad : {
           std::string(""),
           std::string("$scrypt$"),
           std::string("plaintext-password"),
           "$bcrypt$ln=10,r=8,p=1$" + salt + "$" + hash,
           "scrypt$ln=10,r=8,p=1$" + salt + "$" + hash,
           // A cost that would take gigabytes or minutes: refused by the bounds.
           "$scrypt$ln=30,r=8,p=1$" + salt + "$" + hash,
           "$scrypt$ln=10,r=1000,p=1$" + salt + "$" + hash,
           "$scrypt$ln=10,r=8,p=1000$" + salt + "$" + hash,
           "$scrypt$ln=-1,r=8,p=1$" + salt + "$" + hash,
           "$scrypt$ln=10,r=8$" + salt + "$" + hash,
           "$scrypt$r=8,ln=10,p=1$" + salt + "$" + hash,
           "$scrypt$ln=10,r=8,p=1$" + salt.substr(2) + "$" + hash,
           "$scrypt$ln=10,r=8,p=1$" + salt + "$" + hash.substr(2),
           "$scrypt$ln=10,r=8,p=1$" + salt + "$" + hash + "00",
           "$scrypt$ln=10,r=8,p=1$" + salt + "$" + hash + "$",
           "$scrypt$ln=10,r=8,p=1$zz" + salt.substr(2) + "$" + hash,
           "$scrypt$ln=10,r=8,p=1$" + salt + "$" + hash + std::string(300, 'a'),
       }) {
    INFO(bad);
    CHECK_FALSE(VerifyPassword("correct horse battery", bad));
    CHECK(ParsePasswordHashParams(bad).status().code() == absl::StatusCode::kInvalidArgument);
  }
  // A password over the limit is refused before the stored hash is even parsed.
  CHECK_FALSE(VerifyPassword(std::string(1 << 20, 'x'), *h));
  CHECK(ParsePasswordHashParams("$scrypt$ln=30,r=8,p=1$" + salt + "$" + hash).status().message() ==
        "scrypt parameters out of bounds: ln=30, r=8, p=1");
}

}  // namespace
}  // namespace assay
