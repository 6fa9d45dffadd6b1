// Fuzzes the gitea webhook adapter, through ParseDelivery: any body, under every event header
// it handles and one it does not. Contract: a Status or an event, never a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/webhook/forge.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  for (const char* event : {"push", "pull_request", "pull_request_sync", "create"}) {
    (void)assay::webhook::ParseDelivery("gitea", event, "delivery-1", body);
  }
  return 0;
}
