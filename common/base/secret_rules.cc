#include "common/base/secret_rules.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace assay {
namespace {

bool Printable(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c >= 0x7F) return false;
  }
  return true;
}

std::string Quoted(std::string_view name) {
  return Printable(name) ? absl::StrCat("'", std::string(name), "'")
                         : std::string("(with unprintable characters)");
}

constexpr std::string_view kReserved[] = {"CI",         "PATH",
                                          "HOME",       "USER",
                                          "LOGNAME",    "SHELL",
                                          "PWD",        "OLDPWD",
                                          "IFS",        "TMPDIR",
                                          "BASH_ENV",   "ENV",
                                          "TERM",       "LANG",
                                          "TZ",         "PS4",
                                          "CDPATH",     "CUDA_VISIBLE_DEVICES",
                                          "GLOBIGNORE", "NVIDIA_VISIBLE_DEVICES"};

}  // namespace

absl::Status ValidateSecretName(std::string_view name) {
  if (name.empty() || name.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrCat("secret name must be 1 to 128 characters, got ", name.size()));
  }
  const bool first_ok = (name[0] >= 'A' && name[0] <= 'Z') || name[0] == '_';
  bool rest_ok = first_ok;
  for (char c : name) {
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) rest_ok = false;
  }
  if (!rest_ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("secret name ", Quoted(name),
                     " must be upper-case letters, digits and '_', not starting with a digit"));
  }
  for (std::string_view r : kReserved) {
    if (name == r) {
      return absl::InvalidArgumentError(absl::StrCat("secret name '", std::string(name),
                                                     "' is reserved (a variable steps rely on)"));
    }
  }
  for (std::string_view prefix : {"ASSAY_", "GITHUB_", "LD_", "GIT_"}) {
    if (name.substr(0, prefix.size()) == prefix) {
      return absl::InvalidArgumentError(absl::StrCat("secret name '", std::string(name),
                                                     "' is reserved (names starting with ",
                                                     std::string(prefix), " are)"));
    }
  }
  if (name.size() >= 5 && name.substr(name.size() - 5) == "_FILE") {
    return absl::InvalidArgumentError(
        absl::StrCat("secret name '", std::string(name),
                     "' is reserved (NAME_FILE holds the path of a secret given as a file)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateEnvironmentName(std::string_view name) {
  if (name.empty()) return absl::OkStatus();
  bool ok = name.size() <= 64 &&
            ((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9'));
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')) {
      ok = false;
    }
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("environment ", Quoted(name),
                     " must be 1 to 64 characters of a-z, 0-9, '_', '.', '-', starting with a "
                     "letter or digit"));
  }
  return absl::OkStatus();
}

absl::Status ValidateSecretValue(std::string_view value) {
  if (value.size() < kMinSecretValueBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("secret value must be at least ", kMinSecretValueBytes,
                     " characters (a shorter one cannot be masked in logs), got ", value.size()));
  }
  if (value.size() > kMaxSecretValueBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "secret value must be at most ", kMaxSecretValueBytes, " bytes, got ", value.size()));
  }
  if (value.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError("secret value must not hold a NUL byte");
  }
  return absl::OkStatus();
}

}  // namespace assay
