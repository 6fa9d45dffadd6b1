#pragma once
// `assay-server rotate-key`: a new secret key, and every sealed value re-sealed with it.
//
// Order, so that a crash at any point leaves every value readable: (1) the new key file is
// written (keys/<id>.key; old keys stay), (2) one transaction opens each sealed value with
// the key it names and seals it again with the new key, bound to its row, (3) it commits.
// A failure in (2) or (3) changes no row; the new key exists but only seals from then on.
// Running servers read the new key file when they first meet a value sealed with it, and
// seal with it from then on. Old key files are never deleted here: remove them (on every
// server) once no server runs with only the old keys, to make values from before the
// rotation (backups, copies) unreadable.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/crypto/sealed.h"
#include "server/store/repos.h"
#include "server/store/secrets.h"

namespace assay {

struct RotateKeyResult {
  uint32_t old_id = 0, new_id = 0;
  int resealed = 0;  // sealed values re-sealed with the new key
};

// Adds a key to `*keys` (its data dir) and re-seals every value in `*repos` with it, then
// (a second transaction) every repository secret in `*secrets` when it is given.
// Errors: the key file cannot be written (kFailedPrecondition); a value cannot be opened
// (kDataLoss naming its row; nothing of that transaction changed); the database fails. Every
// value still opens after any failure (old keys stay).
absl::StatusOr<RotateKeyResult> RotateKey(KeyRing* keys, store::RepoStore* repos,
                                          store::SecretStore* secrets = nullptr);

// The subcommand: loads the keys of `data_dir`, connects to `database_url` (whose schema the
// server has migrated), rotates. For main.cpp.
absl::StatusOr<RotateKeyResult> RunRotateKey(const std::string& data_dir,
                                             const std::string& database_url);

}  // namespace assay
