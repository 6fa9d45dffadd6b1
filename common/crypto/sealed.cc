#include "common/crypto/sealed.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/crypto/crypto.h"

namespace assay {
namespace {

constexpr std::string_view kMagic = "ASK1";
constexpr size_t kHeader = 8;

std::string Header(uint32_t id) {
  std::string h(kMagic);
  for (int shift = 24; shift >= 0; shift -= 8) h += static_cast<char>((id >> shift) & 0xff);
  return h;
}

absl::StatusOr<std::string> ReadKeyFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::FailedPreconditionError(absl::StrCat("cannot read ", path));
  std::string key((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (key.size() != 32) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": secret key must be exactly 32 bytes, found ", key.size()));
  }
  return key;
}

}  // namespace

std::string RowAad(std::string_view table, int64_t id, std::string_view column) {
  return absl::StrCat(std::string(table), "/", id, "/", std::string(column));
}

absl::StatusOr<std::string> Seal(const SecretKey& key, std::string_view plaintext,
                                 std::string_view aad) {
  if (key.id == 0) return absl::InvalidArgumentError("secret key id must be at least 1");
  const std::string header = Header(key.id);
  auto body = SealWithAad(key.bytes, plaintext, header + std::string(aad));
  if (!body.ok()) return body.status();
  return header + *body;
}

uint32_t SealedKeyId(std::string_view sealed) {
  if (sealed.size() < kHeader || sealed.substr(0, kMagic.size()) != kMagic) return 0;
  uint32_t id = 0;
  for (size_t i = kMagic.size(); i < kHeader; ++i) {
    id = (id << 8) | static_cast<unsigned char>(sealed[i]);
  }
  return id;
}

absl::StatusOr<std::string> Open(const SecretKey& key, std::string_view sealed,
                                 std::string_view aad) {
  const uint32_t id = SealedKeyId(sealed);
  if (id == 0) return absl::DataLossError("sealed secret has no key id header");
  if (id != key.id) {
    return absl::DataLossError(absl::StrCat("sealed secret names key ", id, ", not key ", key.id));
  }
  return OpenWithAad(key.bytes, sealed.substr(kHeader),
                     std::string(sealed.substr(0, kHeader)) + std::string(aad));
}

struct KeyRing::State {
  absl::Mutex mu;
  std::string dir;  // "" when not loaded from a directory
  std::map<uint32_t, std::string> keys ABSL_GUARDED_BY(mu);

  // REQUIRES: mu held.
  absl::Status Reload() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::map<uint32_t, std::string> found;
    const std::string first = dir + "/secret.key";
    std::error_code ec;
    if (std::filesystem::exists(first, ec)) {
      auto k = ReadKeyFile(first);
      if (!k.ok()) return k.status();
      found[1] = *k;
    }
    for (const auto& e : std::filesystem::directory_iterator(dir + "/keys", ec)) {
      const std::string name = e.path().filename().string();
      uint32_t id = 0;
      if (name.size() <= 4 || name.substr(name.size() - 4) != ".key" ||
          !absl::SimpleAtoi(name.substr(0, name.size() - 4), &id) || id < 2) {
        continue;  // not a key file (a temporary file of AddNewKey, an operator's note)
      }
      auto k = ReadKeyFile(e.path().string());
      if (!k.ok()) return k.status();
      found[id] = *k;
    }
    if (found.empty()) {
      return absl::FailedPreconditionError(absl::StrCat("no secret key in ", dir));
    }
    keys = std::move(found);
    return absl::OkStatus();
  }
};

KeyRing::KeyRing() : state_(std::make_shared<State>()) {}

KeyRing::KeyRing(std::string key_1) : KeyRing() {
  absl::MutexLock l(&state_->mu);
  state_->keys[1] = std::move(key_1);
}

absl::StatusOr<KeyRing> KeyRing::LoadDir(const std::string& data_dir) {
  KeyRing ring;
  ring.state_->dir = data_dir;
  absl::MutexLock l(&ring.state_->mu);
  absl::Status s = ring.state_->Reload();
  if (!s.ok()) return s;
  return ring;
}

absl::StatusOr<uint32_t> KeyRing::AddNewKey() {
  State& s = *state_;
  absl::MutexLock l(&s.mu);
  if (s.dir.empty()) return absl::FailedPreconditionError("key ring has no directory");
  std::error_code ec;
  std::filesystem::create_directories(s.dir + "/keys", ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", s.dir, "/keys: ", ec.message()));
  }
  const uint32_t id = s.keys.empty() ? 1 : s.keys.rbegin()->first + 1;
  const std::string path = absl::StrCat(s.dir, "/keys/", id, ".key");
  const std::string key = RandomBytes(32);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return absl::FailedPreconditionError(absl::StrCat("cannot create ", path));
  bool ok = ::write(fd, key.data(), key.size()) == static_cast<ssize_t>(key.size());
  ok = ::fsync(fd) == 0 && ok;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    return absl::FailedPreconditionError(absl::StrCat("cannot write ", path));
  }
  s.keys[id] = key;
  return id;
}

uint32_t KeyRing::current_id() const {
  absl::MutexLock l(&state_->mu);
  return state_->keys.empty() ? 0 : state_->keys.rbegin()->first;
}

absl::StatusOr<std::string> KeyRing::Seal(std::string_view plaintext, std::string_view aad) const {
  SecretKey key;
  {
    absl::MutexLock l(&state_->mu);
    if (state_->keys.empty()) return absl::FailedPreconditionError("no secret key loaded");
    key.id = state_->keys.rbegin()->first;
    key.bytes = state_->keys.rbegin()->second;
  }
  return assay::Seal(key, plaintext, aad);
}

absl::StatusOr<std::string> KeyRing::Open(std::string_view sealed, std::string_view aad) const {
  const uint32_t id = SealedKeyId(sealed);
  SecretKey key;
  {
    absl::MutexLock l(&state_->mu);
    const uint32_t want = id == 0 ? 1 : id;
    auto it = state_->keys.find(want);
    if (it == state_->keys.end() && !state_->dir.empty()) {
      // Why reload: `rotate-key` may have added the key while this server ran.
      absl::Status s = state_->Reload();
      if (!s.ok()) return s;
      it = state_->keys.find(want);
    }
    if (it == state_->keys.end()) {
      return absl::DataLossError(
          absl::StrCat("sealed secret needs key ", want, ", which this server does not have"));
    }
    key.id = want;
    key.bytes = it->second;
  }
  if (id == 0) return OpenSecret(key.bytes, sealed);
  auto opened = assay::Open(key, sealed, aad);
  if (opened.ok() || sealed.size() < 28) return opened;
  // An old-format value whose random nonce happens to begin with the header (1 in 2^32):
  // try it as such before giving up.
  SecretKey first;
  {
    absl::MutexLock l(&state_->mu);
    auto it = state_->keys.find(1);
    if (it == state_->keys.end()) return opened;
    first.bytes = it->second;
  }
  auto legacy = OpenSecret(first.bytes, sealed);
  return legacy.ok() ? legacy : opened;
}

}  // namespace assay
