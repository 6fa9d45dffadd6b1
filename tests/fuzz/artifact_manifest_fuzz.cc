// Fuzzes what an agent reads from the server before writing into a workspace: an
// ArtifactManifest (protobuf bytes), then each of its paths through the glob selection.
// Contract: ValidateArtifactManifest answers for any manifest, never crashes, and every path
// it accepts passes ValidateArtifactPath (so the writer would take it).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "agent/artifact_paths.h"
#include "agent/artifacts.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  assay::v1::ArtifactManifest manifest;
  if (manifest.ParseFromArray(data, static_cast<int>(size))) {
    if (assay::ValidateArtifactManifest(manifest).ok()) {
      for (const auto& job : manifest.jobs()) {
        for (const auto& f : job.files()) {
          if (!assay::ValidateArtifactPath(f.path()).ok()) std::abort();
        }
      }
    }
  }
  // The same bytes as one path, and as a glob over it.
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)assay::ValidateArtifactPath(text);
  (void)assay::ArtifactSelected({text, "!" + text, "out/**"}, text);
  return 0;
}
