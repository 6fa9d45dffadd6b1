// The secret masker (issue 9) on a multi-line value whose lines, base64 and URL-encoded forms
// reach it split across log chunks: each is masked for every way of cutting the output.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/base/secret_masker.h"

namespace assay {
namespace {

// Feeds `text` cut at `cuts` (ascending positions), then flushes: the whole output.
std::string StreamedAt(SecretMasker& m, const std::string& text, const std::vector<size_t>& cuts) {
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

TEST_CASE("masker: each line of a multi-line value and its encodings, cut at every position",
          "[unit][secrets]") {
  const std::string value = "user: deploy-bot\r\npass: Zq9!x y&z\nab\n";
  // The job prints the lines in another order, each on its own, next to other text; then the
  // whole value base64-encoded (both alphabets) and percent-encoded.
  const std::string text = "2nd=pass: Zq9!x y&z;1st=user: deploy-bot\nshort=ab\n" +
                           Base64Encode(value, false) + "\n" + Base64Encode(value, true) +
                           "\nurl=user%3A+deploy-bot%0D%0Apass%3A+Zq9%21x+y%26z%0Aab%0A\n";
  const std::string expected = "2nd=***;1st=***\nshort=ab\n***\n***\nurl=***\n";
  SecretMasker whole({value});
  REQUIRE(whole.MaskAll(text) == expected);
  for (size_t i = 0; i <= text.size(); ++i) {
    SecretMasker m({value});
    INFO("cut at " << i);
    CHECK(StreamedAt(m, text, {i}) == expected);
  }
  std::vector<size_t> every;
  for (size_t i = 1; i < text.size(); ++i) every.push_back(i);
  SecretMasker bytes({value});
  CHECK(StreamedAt(bytes, text, every) == expected);
  for (size_t i = 0; i < text.size(); i += 2) {
    for (size_t j = i; j < text.size(); j += 7) {
      SecretMasker m({value});
      INFO("cuts at " << i << ", " << j);
      CHECK(StreamedAt(m, text, {i, j}) == expected);
    }
  }
}

}  // namespace
}  // namespace assay
