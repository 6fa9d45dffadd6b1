// Fuzzes the gitlab webhook adapter, through ParseDelivery: any body, under every event header
// it handles and one it does not. Contract: a Status or an event, never a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/webhook/forge.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  for (const char* event : {"Push Hook", "Tag Push Hook", "Merge Request Hook", "Note Hook"}) {
    (void)assay::webhook::ParseDelivery("gitlab", event, "delivery-1", body);
  }
  return 0;
}
