// Fuzzes opening sealed secrets (common/crypto/sealed.h): the input is a sealed value as read
// from the database (forged, truncated, any key id). Contract: KeyRing::Open and SealedKeyId
// answer for any bytes and never crash; nothing but a value sealed under the ring's key for
// the same row opens.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/crypto/sealed.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const assay::KeyRing kRing(std::string(32, '\x5a'));
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)assay::SealedKeyId(in);
  auto opened = kRing.Open(in, "repos/1/webhook_secret");
  // Forging a value that opens would need the key: only the seeds' real values may open.
  if (opened.ok() && in.substr(0, 4) == "ASK1" && assay::SealedKeyId(in) != 1) std::abort();
  (void)assay::Open(assay::SecretKey{7, std::string(32, '\x01')}, in, "");
  return 0;
}
