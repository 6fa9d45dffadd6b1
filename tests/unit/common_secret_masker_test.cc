// SecretMasker (common/base/secret_masker.h) and the secret rules (secret_rules.h): values,
// their base64 at every alignment and URL-encoded forms, multi-line values, overlapping
// secrets and prefixes, and a value split across chunks at every position.

#include "common/base/secret_masker.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/base/secret_rules.h"

namespace assay {
namespace {

// Feeds `text` in pieces cut at `cuts` (ascending positions) and returns the whole output.
std::string Streamed(SecretMasker& m, const std::string& text, const std::vector<size_t>& cuts) {
  std::string out;
  size_t at = 0;
  for (size_t c : cuts) {
    out += m.Mask(std::string_view(text).substr(at, c - at));
    at = c;
  }
  out += m.Mask(std::string_view(text).substr(at));
  out += m.Flush();
  return out;
}

TEST_CASE("masker: a value is masked, other text is kept byte for byte", "[unit][secrets]") {
  SecretMasker m({"hunter2-xyz"});
  CHECK(m.MaskAll("token=hunter2-xyz; done\n") == "token=***; done\n");
  CHECK(m.MaskAll("hunter2-xyzhunter2-xyz") == "***");  // touching occurrences: one run
  CHECK(m.MaskAll("hunter2-xy") == "hunter2-xy");       // a prefix alone is not the secret
  CHECK(m.MaskAll("") == "");
  SecretMasker none;
  CHECK(none.Mask("abc") == "abc");
  CHECK(none.Flush() == "");
}

TEST_CASE("masker: split across two chunks at every position", "[unit][secrets]") {
  const std::string secret = "s3cr3t-V4lue!";
  const std::string text = "before " + secret + " middle " + Base64Encode(secret, false) + " url " +
                           "s3cr3t-V4lue%21" + " end\n";
  SecretMasker whole({secret});
  const std::string expected = whole.MaskAll(text);
  CHECK(expected == "before *** middle *** url *** end\n");
  for (size_t i = 0; i <= text.size(); ++i) {
    SecretMasker m({secret});
    INFO("cut at " << i);
    CHECK(Streamed(m, text, {i}) == expected);
  }
  // And one byte at a time, and in three pieces at every pair of positions.
  std::vector<size_t> every;
  for (size_t i = 1; i < text.size(); ++i) every.push_back(i);
  SecretMasker bytes({secret});
  CHECK(Streamed(bytes, text, every) == expected);
  for (size_t i = 0; i < text.size(); i += 3) {
    for (size_t j = i; j < text.size(); j += 5) {
      SecretMasker m({secret});
      INFO("cuts at " << i << ", " << j);
      CHECK(Streamed(m, text, {i, j}) == expected);
    }
  }
}

TEST_CASE("masker: output is not held back unless it may start a secret", "[unit][secrets]") {
  SecretMasker m({"abcdefgh"});
  CHECK(m.Mask("progress 10%\n") == "progress 10%\n");
  CHECK(m.Mask("xx abc") == "xx ");  // "abc" may continue as the secret
  CHECK(m.Mask("dxx\n") == "abcdxx\n");
  CHECK(m.Mask("abcdefg") == "");
  CHECK(m.Mask("h!") == "***!");
  CHECK(m.Mask("ab") == "");
  CHECK(m.Flush() == "ab");
}

TEST_CASE("masker: base64 in both alphabets and at the three alignments", "[unit][secrets]") {
  // Chosen so that the standard and URL-safe encodings differ ('+'/'/' vs '-'/'_').
  const std::string secret = "\xfb\xff\xbfsecret?>>";
  SecretMasker m({secret});
  for (bool url : {false, true}) {
    CHECK(m.MaskAll(Base64Encode(secret, url)) == "***");
    for (const std::string prefix : {"", "x", "xy", "xyz", "wxyz"}) {
      for (const std::string suffix : {"", "1", "12", "123"}) {
        const std::string enc = Base64Encode(prefix + secret + suffix, url);
        const std::string masked = m.MaskAll("data: " + enc + "\n");
        INFO("url " << url << " prefix '" << prefix << "' suffix '" << suffix << "': " << masked);
        // The secret's own characters are gone: what is left is at most the few characters
        // that encode the neighbouring bytes (and at most one shared character each side).
        CHECK(masked.find("***") != std::string::npos);
        CHECK(masked.size() <=
              6 + 3 + 1 + (prefix.size() * 4 + 2) / 3 + 2 + (suffix.size() * 4 + 2) / 3 + 2);
      }
    }
  }
  // The exact forms: `base64` of the value alone is masked including its padding.
  SecretMasker plain({"hunter22"});
  CHECK(Base64Encode("hunter22", false) == "aHVudGVyMjI=");
  CHECK(plain.MaskAll("aHVudGVyMjI=\n") == "***\n");
  CHECK(Base64Encode("xhunter22", false) == "eGh1bnRlcjIy");
  CHECK(plain.MaskAll("eGh1bnRlcjIy") == "eG***");
  CHECK(Base64Encode("xyhunter22", false) == "eHlodW50ZXIyMg==");
  CHECK(plain.MaskAll("eHlodW50ZXIyMg==") == "eHl***g==");
}

TEST_CASE("masker: URL-encoded forms", "[unit][secrets]") {
  SecretMasker m({"p@ss word/+&"});
  CHECK(m.MaskAll("u=p%40ss%20word%2F%2B%26&x") == "u=***&x");
  CHECK(m.MaskAll("u=p%40ss%20word%2f%2b%26&x") == "u=***&x");
  CHECK(m.MaskAll("u=p%40ss+word%2F%2B%26&x") == "u=***&x");
  CHECK(m.MaskAll("p@ss word/+&") == "***");
}

TEST_CASE("masker: each line of a multi-line value", "[unit][secrets]") {
  const std::string key = "-----BEGIN KEY-----\r\nMIIBVQIBADANBgkq\nhkiG9w0BAQ\nab\n";
  SecretMasker m({key});
  CHECK(m.MaskAll(key) == "***");
  CHECK(m.MaskAll("line: MIIBVQIBADANBgkq\n") == "line: ***\n");
  CHECK(m.MaskAll("-----BEGIN KEY-----\n") == "***\n");
  CHECK(m.MaskAll("hkiG9w0BAQ") == "***");
  CHECK(m.MaskAll("ab cd") == "ab cd");  // a line under 4 bytes is not a pattern
}

TEST_CASE("masker: overlapping secrets and a value that is a prefix of another",
          "[unit][secrets]") {
  SecretMasker m({"abcdef", "defghi", "abcd", "abcdefXYZ"});
  CHECK(m.MaskAll("<abcdefghi>") == "<***>");
  CHECK(m.MaskAll("<abcdefXYZ>") == "<***>");
  CHECK(m.MaskAll("<abcdeQ>") == "<***eQ>");
  CHECK(m.MaskAll("<abcdefXY>") == "<***XY>");
  for (size_t i = 0; i <= 11; ++i) {
    SecretMasker s({"abcdef", "defghi", "abcd", "abcdefXYZ"});
    CHECK(Streamed(s, "<abcdefghi>", {i}) == "<***>");
  }
}

TEST_CASE("masker: many secrets and a huge value", "[unit][secrets]") {
  std::vector<std::string> values;
  std::string text;
  for (int i = 0; i < 100; ++i) {
    values.push_back("secret-value-" + std::to_string(i) + "-end");
    text += "v=" + values.back() + "\n";
  }
  SecretMasker m(values);
  std::string expected;
  for (int i = 0; i < 100; ++i) expected += "v=***\n";
  CHECK(m.MaskAll(text) == expected);
  std::string huge(kMaxSecretValueBytes, 'q');
  huge[100] = 'Z';
  SecretMasker h({huge});
  std::string out;
  for (size_t at = 0; at < huge.size(); at += 4096) out += h.Mask(huge.substr(at, 4096));
  out += h.Mask("\n");
  out += h.Flush();
  CHECK(out == "***\n");
}

TEST_CASE("secret rules: names, environments and values", "[unit][secrets]") {
  for (const char* ok : {"HF_TOKEN", "_X", "A", "API_KEY_2"}) {
    INFO(ok);
    CHECK(ValidateSecretName(ok).ok());
  }
  CHECK(ValidateSecretName(std::string(128, 'A')).ok());
  CHECK(ValidateSecretName(std::string(129, 'A')).message() ==
        "secret name must be 1 to 128 characters, got 129");
  CHECK(ValidateSecretName("").message() == "secret name must be 1 to 128 characters, got 0");
  CHECK(ValidateSecretName("hf_token").message() ==
        "secret name 'hf_token' must be upper-case letters, digits and '_', not starting with a "
        "digit");
  CHECK(ValidateSecretName("1A").code() == absl::StatusCode::kInvalidArgument);
  CHECK(ValidateSecretName("A=B").code() == absl::StatusCode::kInvalidArgument);
  CHECK(ValidateSecretName(std::string("A\0B", 3)).message() ==
        "secret name (with unprintable characters) must be upper-case letters, digits and '_', not "
        "starting with a "
        "digit");
  CHECK(ValidateSecretName("PATH").message() ==
        "secret name 'PATH' is reserved (a variable steps rely on)");
  CHECK(ValidateSecretName("CI").code() == absl::StatusCode::kInvalidArgument);
  CHECK(ValidateSecretName("ASSAY_TOKEN").message() ==
        "secret name 'ASSAY_TOKEN' is reserved (names starting with ASSAY_ are)");
  CHECK(ValidateSecretName("LD_PRELOAD").code() == absl::StatusCode::kInvalidArgument);
  CHECK(ValidateSecretName("KEY_FILE").message() ==
        "secret name 'KEY_FILE' is reserved (NAME_FILE holds the path of a secret given as a "
        "file)");
  CHECK(ValidateEnvironmentName("").ok());
  CHECK(ValidateEnvironmentName("staging").ok());
  CHECK(ValidateEnvironmentName("prod-eu.1").ok());
  CHECK(ValidateEnvironmentName("Prod").message() ==
        "environment 'Prod' must be 1 to 64 characters of a-z, 0-9, '_', '.', '-', starting "
        "with a letter or digit");
  CHECK(ValidateEnvironmentName("a/b").code() == absl::StatusCode::kInvalidArgument);
  CHECK(ValidateEnvironmentName(std::string(65, 'a')).code() == absl::StatusCode::kInvalidArgument);
  CHECK(ValidateSecretValue("abcd").ok());
  CHECK(ValidateSecretValue("abc").message() ==
        "secret value must be at least 4 characters (a shorter one cannot be masked in logs), "
        "got 3");
  CHECK(ValidateSecretValue(std::string(kMaxSecretValueBytes, 'x')).ok());
  CHECK(ValidateSecretValue(std::string(kMaxSecretValueBytes + 1, 'x')).message() ==
        "secret value must be at most 65536 bytes, got 65537");
  CHECK(ValidateSecretValue(std::string("ab\0cd", 5)).message() ==
        "secret value must not hold a NUL byte");
}

}  // namespace
}  // namespace assay
