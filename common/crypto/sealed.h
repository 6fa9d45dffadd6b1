#pragma once
// Secrets sealed at rest with a key id and the row they belong to (issue 8, item 9).
//
// Format (version 1): "ASK1" || key id (4 bytes, big-endian) || nonce (12) || ciphertext ||
// tag (16), AES-256-GCM. The associated data is the 8-byte header followed by the caller's
// `aad`, by convention the row and column the value is stored in (RowAad("repos", 7,
// "webhook_secret") = "repos/7/webhook_secret"): a value copied to another row or column, or
// relabelled with another key id, fails to open. Values sealed before key ids (no "ASK1"
// header; SealSecret in crypto.h) still open with key 1 and no associated data.
//
// Keys: key 1 is <data dir>/secret.key (the key servers always had); later keys are
// <data dir>/keys/<id>.key, 32 random bytes each, made by `assay-server rotate-key`. The
// highest id present seals; every key present opens.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace assay {

struct SecretKey {
  uint32_t id = 0;    // >= 1
  std::string bytes;  // 32 bytes
};

// "<table>/<id>/<column>": the associated data of a value stored in that row and column.
std::string RowAad(std::string_view table, int64_t id, std::string_view column);

// Seals `plaintext` under `key`, bound to `aad`. kInvalidArgument for a key that is not 32
// bytes or has id 0.
absl::StatusOr<std::string> Seal(const SecretKey& key, std::string_view plaintext,
                                 std::string_view aad);
// The key id of a version-1 sealed value; 0 for a value in the old format (or anything
// without the header).
uint32_t SealedKeyId(std::string_view sealed);
// Opens a value sealed by Seal under `key` with the same `aad`. kDataLoss when it is
// truncated, forged, sealed under another key id or for other associated data.
absl::StatusOr<std::string> Open(const SecretKey& key, std::string_view sealed,
                                 std::string_view aad);

// The server's keys. Copies share one set, so a copy handed to a component sees keys added
// later. Thread-safe.
class KeyRing {
 public:
  KeyRing();  // no keys: Seal and Open fail with kFailedPrecondition
  // One key, id 1 (the old single-key setups, and tests). Why implicit: components and their
  // tests that were given the one secret key keep working unchanged.
  KeyRing(std::string key_1);  // NOLINT(google-explicit-constructor)
  // secret.key (id 1) and keys/<id>.key under `data_dir`; kFailedPrecondition when a key
  // file is not 32 bytes or no key exists. Open re-reads the directory when it meets a key id
  // it lacks (a rotation run by `rotate-key` while this server runs).
  static absl::StatusOr<KeyRing> LoadDir(const std::string& data_dir);
  // Writes keys/<current + 1>.key (mode 0600, fsynced, never overwriting) and adds it: it
  // seals from now on. Returns its id.
  absl::StatusOr<uint32_t> AddNewKey();

  uint32_t current_id() const;
  // Seals under the current key, bound to `aad`.
  absl::StatusOr<std::string> Seal(std::string_view plaintext, std::string_view aad) const;
  // Opens a version-1 value with the key it names (kDataLoss naming the id when that key is
  // missing), or an old-format value with key 1 (its `aad` is not checked: it has none).
  absl::StatusOr<std::string> Open(std::string_view sealed, std::string_view aad) const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace assay
