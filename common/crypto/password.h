#pragma once
// Password hashing for local users (issue 11): scrypt (RFC 7914, OpenSSL's EVP_PBE_scrypt),
// memory-hard so that a stolen table is slow to crack on GPUs. The stored text names its own
// parameters, so they can be raised later without breaking existing hashes:
//
//   $scrypt$ln=15,r=8,p=1$<salt: 32 hex digits>$<hash: 64 hex digits>
//
// ln is log2(N). The default (ln=15, r=8, p=1) needs 32 MiB and about 0.1 s per hash.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace assay {

struct ScryptParams {
  int log2_n = 15;
  int r = 8;
  int p = 1;
};

// The bounds a stored hash's parameters must keep: a forged or corrupt row must not make
// one login take gigabytes or minutes. N·r·128 ≤ 256 MiB, p ≤ 4.
inline constexpr int kMaxScryptLog2N = 20;
inline constexpr int kMaxScryptR = 16;
inline constexpr int kMaxScryptP = 4;

// Passwords are 8 to 1,024 bytes (any bytes but NUL); kInvalidArgument saying which limit.
inline constexpr size_t kMinPasswordLength = 8;
inline constexpr size_t kMaxPasswordLength = 1024;
absl::Status CheckPasswordPolicy(std::string_view password);

// A new hash of `password` with a random 16-byte salt. kInvalidArgument for a password the
// policy refuses or parameters out of bounds; kInternal when OpenSSL fails.
absl::StatusOr<std::string> HashPassword(std::string_view password, ScryptParams params = {});

// Whether `password` matches `stored` (compared in constant time). False for a malformed
// `stored` or parameters out of bounds (and for any password over the policy's limit, before
// any work). Never throws.
bool VerifyPassword(std::string_view password, std::string_view stored);

// The parameters `stored` names; kInvalidArgument when it is not the format above.
absl::StatusOr<ScryptParams> ParsePasswordHashParams(std::string_view stored);

}  // namespace assay
