#include "server/secrets/rotate_key.h"

#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "server/secrets/job_secrets.h"
#include "server/store/db.h"

namespace assay {

absl::StatusOr<RotateKeyResult> RotateKey(KeyRing* keys, store::RepoStore* repos,
                                          store::SecretStore* secrets) {
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
  if (secrets != nullptr) {
    auto m = secrets->Reseal(
        [&](int64_t repo_id, const store::SealedSecret& s) -> absl::StatusOr<std::string> {
          const std::string aad = SecretAad(repo_id, s.environment, s.name);
          auto plain = keys->Open(s.sealed, aad);
          if (!plain.ok()) {
            return absl::DataLossError(absl::StrCat("cannot open ", aad, " (sealed with key ",
                                                    SealedKeyId(s.sealed),
                                                    "): ", plain.status().message()));
          }
          return keys->Seal(*plain, aad);
        });
    if (!m.ok()) {
      return absl::Status(m.status().code(),
                          absl::StrCat("rotation of the repository secrets failed, none was "
                                       "re-sealed (every other value was; every old key still "
                                       "opens): ",
                                       m.status().message()));
    }
    out.resealed += *m;
  }
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
  store::SecretStore secrets(&db);
  return RotateKey(&*keys, &repos, &secrets);
}

}  // namespace assay
