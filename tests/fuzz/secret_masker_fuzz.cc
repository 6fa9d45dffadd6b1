// Fuzzes SecretMasker (common/base/secret_masker.h) over a job's output. Input: up to 3 secret
// values (each byte 0x01 ends one), then the output; split points come from the output's own
// bytes. Contract: the streamed output equals the whole-text output for every split, and no
// value of 4 bytes or more survives in it verbatim unless the mask itself forms it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/secret_masker.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> values;
  while (values.size() < 3) {
    const size_t end = in.find('\x01');
    if (end == std::string_view::npos) break;
    values.emplace_back(in.substr(0, end));
    in.remove_prefix(end + 1);
  }
  assay::SecretMasker whole(values);
  const std::string expected = whole.MaskAll(in);
  assay::SecretMasker streamed(values);
  std::string got;
  size_t at = 0;
  while (at < in.size()) {
    const size_t n = 1 + static_cast<unsigned char>(in[at]) % 17;
    got += streamed.Mask(in.substr(at, n));
    at += n;
  }
  got += streamed.Flush();
  if (got != expected) std::abort();
  for (const std::string& v : values) {
    if (v.size() >= 4 && v.find('*') == std::string::npos &&
        expected.find(v) != std::string::npos) {
      std::abort();
    }
  }
  return 0;
}
