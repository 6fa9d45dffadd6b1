#include "tests/support/registry.h"

#include <crypt.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"
#include "common/net/http_client.h"

namespace assay::testing {
namespace {

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// A bcrypt hash of `password` ($2b$, cost 5: fast enough for a test, accepted by distribution).
absl::StatusOr<std::string> Bcrypt(const std::string& password) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$2b$", 5, nullptr, 0, salt, sizeof(salt)) == nullptr) {
    return absl::InternalError("crypt_gensalt_rn($2b$) failed");
  }
  crypt_data data{};
  const char* hash = crypt_r(password.c_str(), salt, &data);
  if (hash == nullptr || hash[0] == '*') return absl::InternalError("bcrypt failed");
  return std::string(hash);
}

}  // namespace

absl::StatusOr<std::unique_ptr<TestRegistry>> TestRegistry::Start(const std::string& dir,
                                                                  const std::string& user,
                                                                  const std::string& password) {
  constexpr const char* kBinary = "/usr/bin/docker-registry";
  if (access(kBinary, X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(kBinary, " is not installed (Debian package docker-registry)"));
  }
  std::error_code ec;
  std::filesystem::create_directories(dir + "/data", ec);
  if (ec) return absl::InternalError(absl::StrCat("mkdir ", dir, ": ", ec.message()));
  absl::StatusOr<std::string> hash = Bcrypt(password);
  if (!hash.ok()) return hash.status();
  if (absl::Status s = WriteText(dir + "/htpasswd", absl::StrCat(user, ":", *hash, "\n"));
      !s.ok()) {
    return s;
  }
  std::unique_ptr<TestRegistry> r(new TestRegistry());
  r->dir_ = dir;
  r->user_ = user;
  r->password_ = password;
  for (int attempt = 0; attempt < 3; ++attempt) {
    r->port_ = FreePort();
    if (r->port_ == 0) continue;
    const std::string config = absl::StrCat(dir, "/config-", attempt, ".yml");
    if (absl::Status s =
            WriteText(config, absl::StrCat("version: 0.1\nlog: {level: info}\n"
                                           "storage: {filesystem: {rootdirectory: ",
                                           dir, "/data}}\n", "http: {addr: ", r->host(), "}\n",
                                           "auth: {htpasswd: {realm: assay-test, path: ", dir,
                                           "/htpasswd}}\n"));
        !s.ok()) {
      return s;
    }
    absl::StatusOr<std::unique_ptr<Process>> p = Process::Start(
        {kBinary, "serve", config}, absl::StrCat(dir, "/registry-", attempt, ".out"));
    if (!p.ok()) return p.status();
    const absl::Time deadline = absl::Now() + absl::Seconds(15);
    bool up = false;
    while (!up && absl::Now() < deadline && !(*p)->Exited()) {
      auto res =
          HttpFetch("GET", absl::StrCat("http://", r->host(), "/v2/"), {}, {}, absl::Seconds(2));
      up = res.ok() && res->status == 401;
      if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (up) {
      r->process_ = std::move(*p);
      r->registries_conf_ = dir + "/registries.conf";
      if (absl::Status s = WriteText(
              r->registries_conf_,
              absl::StrCat("[[registry]]\nlocation = \"", r->host(), "\"\ninsecure = true\n"));
          !s.ok()) {
        return s;
      }
      return r;
    }
  }
  return absl::InternalError(absl::StrCat("docker-registry did not start; see ", dir));
}

std::string TestRegistry::host() const { return absl::StrCat("127.0.0.1:", port_); }

absl::StatusOr<std::string> TestRegistry::ManifestDigest(const std::string& repo,
                                                         const std::string& tag) {
  const std::string auth = absl::Base64Escape(absl::StrCat(user_, ":", password_));
  auto res = HttpFetch("GET", absl::StrCat("http://", host(), "/v2/", repo, "/manifests/", tag),
                       {{"Authorization", absl::StrCat("Basic ", auth)},
                        {"Accept",
                         "application/vnd.oci.image.manifest.v1+json, "
                         "application/vnd.docker.distribution.manifest.v2+json, "
                         "application/vnd.oci.image.index.v1+json, "
                         "application/vnd.docker.distribution.manifest.list.v2+json"}},
                       {}, absl::Seconds(10));
  if (!res.ok()) return res.status();
  if (res->status == 404) return absl::NotFoundError(absl::StrCat(repo, ":", tag));
  if (res->status != 200) {
    return absl::InternalError(absl::StrCat("GET manifest: HTTP ", res->status, ": ", res->body));
  }
  return absl::StrCat("sha256:", HexEncode(Sha256(res->body)));
}

}  // namespace assay::testing
