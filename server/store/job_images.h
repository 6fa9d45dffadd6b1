#pragma once
// What build_image steps pushed (issue 9, docs/images.md): table job_images (migration 0017).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/store/db.h"

namespace assay::store {

// At most this many images per result; more is an agent's bug or a hostile agent.
inline constexpr size_t kMaxJobImages = 64;

struct JobImage {
  int attempt = 0;
  std::string reference;  // as pushed, [registry/]path:tag
  std::string digest;     // sha256:<64 hex>
  bool primary = false;   // the step's image (see v1::BuiltImage.primary)

  bool operator==(const JobImage&) const = default;
};

// Whether `digest` is "sha256:" and 64 lowercase hex digits.
bool IsImageDigest(const std::string& digest);

// Inside JobStore::Finish's transaction, after its fence passed: the images of the attempt
// `token` of `job_id`, in push order. Callers pass only checked rows (IsImageDigest, a
// reference of 1 to 512 bytes, at most kMaxJobImages).
void InsertJobImages(pqxx::transaction_base& tx, Connection& c, int64_t job_id,
                     const std::string& token, const std::vector<JobImage>& images);

class JobImageStore {
 public:
  explicit JobImageStore(Db* db) : db_(db) {}  // *db outlives this

  // The images of the job's latest attempt that pushed any, in push order.
  absl::StatusOr<std::vector<JobImage>> ImagesOf(int64_t job_id);
  // `${{ jobs.<job_name>.image }}` of pipeline `pipeline_id`: the job's last primary image
  // (latest attempt); nullopt when it pushed none.
  struct Pinned {
    std::string reference;          // "<repository>@<digest>"
    std::string builder_spec_json;  // the pushing job's jobs.spec (its registry_secret)
  };
  absl::StatusOr<std::optional<Pinned>> PinnedImage(int64_t pipeline_id,
                                                    const std::string& job_name);

 private:
  Db* db_;
};

// "<repository>@<digest>" for a pushed reference ([registry/]path:tag).
std::string PinnedReference(const std::string& reference, const std::string& digest);

}  // namespace assay::store
