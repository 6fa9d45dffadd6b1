#pragma once
// Where artifact chunks live: a content-addressed store of blobs named by their lowercase hex
// SHA-256. Implementations are thread-safe. Callers check names with IsSha256Hex first; an
// implementation refuses other names (kInvalidArgument) so that no name can leave its root.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace assay::artifacts {

// True for exactly 64 lowercase hex digits.
bool IsSha256Hex(std::string_view s);

class BlobStore {
 public:
  virtual ~BlobStore() = default;
  // Stores `data` under `sha256` (the caller has checked the hash). Atomic: a reader, or a
  // crash at any point, sees the whole blob or none of it. Overwriting is allowed (same bytes).
  virtual absl::Status Put(const std::string& sha256, std::string_view data) = 0;
  virtual absl::StatusOr<bool> Has(const std::string& sha256) = 0;
  // Bytes [offset, offset + length) of the blob; length < 0: to its end. kNotFound when the
  // blob does not exist; kOutOfRange when offset is past its end.
  virtual absl::StatusOr<std::string> Read(const std::string& sha256, int64_t offset = 0,
                                           int64_t length = -1) = 0;
  // OK when the blob was deleted or did not exist.
  virtual absl::Status Delete(const std::string& sha256) = 0;
  // kNotFound when the blob does not exist.
  virtual absl::StatusOr<int64_t> Size(const std::string& sha256) = 0;
};

// Blobs as files ROOT/sha256/ab/cdef... (the first two hex digits name a directory). Put writes
// ROOT/tmp/<random>, fsyncs it, renames it into place and fsyncs the directory.
class DirBlobStore final : public BlobStore {
 public:
  // Creates ROOT/sha256 and ROOT/tmp when missing; kFailedPrecondition when it cannot.
  static absl::StatusOr<std::unique_ptr<DirBlobStore>> Open(const std::string& root);

  absl::Status Put(const std::string& sha256, std::string_view data) override;
  absl::StatusOr<bool> Has(const std::string& sha256) override;
  absl::StatusOr<std::string> Read(const std::string& sha256, int64_t offset,
                                   int64_t length) override;
  absl::Status Delete(const std::string& sha256) override;
  absl::StatusOr<int64_t> Size(const std::string& sha256) override;

  // The file of blob `sha256` (which must be IsSha256Hex).
  std::string PathOf(const std::string& sha256) const;

 private:
  explicit DirBlobStore(std::string root) : root_(std::move(root)) {}
  std::string root_;
};

}  // namespace assay::artifacts
