#include "server/secrets/rotate_key.h"

#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "server/store/db.h"

namespace assay {

absl::StatusOr<RotateKeyResult> RotateKey(KeyRing* keys, store::RepoStore* repos) {
  RotateKeyResult out;
  out.old_id = keys->current_id();
  auto id = keys->AddNewKey();
  if (!id.ok()) return id.status();
  out.new_id = *id;
  LogInfo("secrets", "created key ", out.new_id, "; re-sealing every sealed value with it");
  auto n = repos->Reseal([&](const store::SealedCell& cell) -> absl::StatusOr<std::string> {
    const std::string aad = RowAad(cell.table, cell.id, cell.column);
    auto plain = keys->Open(cell.sealed, aad);
    if (!plain.ok()) {
      return absl::DataLossError(absl::StrCat("cannot open ", aad, " (sealed with key ",
                                              SealedKeyId(cell.sealed),
                                              "): ", plain.status().message()));
    }
    return keys->Seal(*plain, aad);
  });
  if (!n.ok()) {
    return absl::Status(n.status().code(),
                        absl::StrCat("rotation failed, nothing was re-sealed (key ", out.new_id,
                                     " exists and seals new values; every old key still "
                                     "opens): ",
                                     n.status().message()));
  }
  out.resealed = *n;
  return out;
}

absl::StatusOr<RotateKeyResult> RunRotateKey(const std::string& data_dir,
                                             const std::string& database_url) {
  auto keys = KeyRing::LoadDir(data_dir);
  if (!keys.ok()) return keys.status();
  store::DbOptions o;
  o.max_size = 1;
  store::Db db(database_url, o);
  store::RepoStore repos(&db);
  return RotateKey(&*keys, &repos);
}

}  // namespace assay
