#include "common/crypto/password.h"

#include <openssl/evp.h>

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"

namespace assay {
namespace {

constexpr size_t kSaltBytes = 16;
constexpr size_t kHashBytes = 32;

absl::Status CheckParams(const ScryptParams& p) {
  if (p.log2_n < 1 || p.log2_n > kMaxScryptLog2N || p.r < 1 || p.r > kMaxScryptR || p.p < 1 ||
      p.p > kMaxScryptP) {
    return absl::InvalidArgumentError(
        absl::StrCat("scrypt parameters out of bounds: ln=", p.log2_n, ", r=", p.r, ", p=", p.p));
  }
  return absl::OkStatus();
}

// scrypt of `password` and `salt` into kHashBytes bytes; empty on failure.
std::string Derive(std::string_view password, std::string_view salt, const ScryptParams& p) {
  const uint64_t n = uint64_t{1} << p.log2_n;
  // Memory scrypt needs: 128·r·(N + p) plus some; give OpenSSL a ceiling just above it.
  const uint64_t maxmem = 128 * static_cast<uint64_t>(p.r) * (n + p.p + 2) + (1 << 20);
  std::string out(kHashBytes, '\0');
  if (EVP_PBE_scrypt(password.data(), password.size(),
                     reinterpret_cast<const unsigned char*>(salt.data()), salt.size(), n,
                     static_cast<uint64_t>(p.r), static_cast<uint64_t>(p.p), maxmem,
                     reinterpret_cast<unsigned char*>(out.data()), out.size()) != 1) {
    return "";
  }
  return out;
}

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      out.emplace_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

struct Parsed {
  ScryptParams params;
  std::string salt;
  std::string hash;
};

absl::StatusOr<Parsed> Parse(std::string_view stored) {
  const auto bad = [](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("not an assay password hash: ", why));
  };
  if (stored.size() > 256) return bad("too long");
  std::vector<std::string> parts = Split(stored, '$');
  // "", "scrypt", "ln=..,r=..,p=..", salt, hash
  if (parts.size() != 5 || !parts[0].empty() || parts[1] != "scrypt") {
    return bad("expected $scrypt$ln=N,r=R,p=P$salt$hash");
  }
  Parsed out;
  std::vector<std::string> kv = Split(parts[2], ',');
  if (kv.size() != 3) return bad("expected ln, r and p");
  const std::string names[] = {"ln=", "r=", "p="};
  int* fields[] = {&out.params.log2_n, &out.params.r, &out.params.p};
  for (size_t i = 0; i < 3; ++i) {
    if (kv[i].compare(0, names[i].size(), names[i]) != 0 ||
        !absl::SimpleAtoi(kv[i].substr(names[i].size()), fields[i])) {
      return bad(absl::StrCat("parameter ", i + 1, " must be ", names[i], "<integer>"));
    }
  }
  if (absl::Status s = CheckParams(out.params); !s.ok()) return s;
  auto salt = HexDecode(parts[3]);
  auto hash = HexDecode(parts[4]);
  if (!salt.ok() || salt->size() != kSaltBytes) return bad("salt must be 32 hex digits");
  if (!hash.ok() || hash->size() != kHashBytes) return bad("hash must be 64 hex digits");
  out.salt = *std::move(salt);
  out.hash = *std::move(hash);
  return out;
}

}  // namespace

absl::Status CheckPasswordPolicy(std::string_view password) {
  if (password.size() < kMinPasswordLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("password must be at least ", kMinPasswordLength, " bytes"));
  }
  if (password.size() > kMaxPasswordLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("password must be at most ", kMaxPasswordLength, " bytes"));
  }
  if (password.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError("password must not contain a NUL byte");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> HashPassword(std::string_view password, ScryptParams params) {
  if (absl::Status s = CheckPasswordPolicy(password); !s.ok()) return s;
  if (absl::Status s = CheckParams(params); !s.ok()) return s;
  std::string salt = RandomBytes(kSaltBytes);
  std::string hash = Derive(password, salt, params);
  if (hash.empty()) return absl::InternalError("scrypt failed (OpenSSL EVP_PBE_scrypt)");
  return absl::StrCat("$scrypt$ln=", params.log2_n, ",r=", params.r, ",p=", params.p, "$",
                      HexEncode(salt), "$", HexEncode(hash));
}

absl::StatusOr<ScryptParams> ParsePasswordHashParams(std::string_view stored) {
  auto p = Parse(stored);
  if (!p.ok()) return p.status();
  return p->params;
}

bool VerifyPassword(std::string_view password, std::string_view stored) {
  if (password.size() > kMaxPasswordLength) return false;
  auto p = Parse(stored);
  if (!p.ok()) return false;
  std::string got = Derive(password, p->salt, p->params);
  if (got.empty()) return false;
  return ConstantTimeEquals(got, p->hash);
}

}  // namespace assay
