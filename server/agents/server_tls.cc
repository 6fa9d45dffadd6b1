#include "server/agents/server_tls.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/crypto/crypto.h"

namespace assay {
namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Free>;
using CertPtr = std::unique_ptr<X509, Free>;
using BioPtr = std::unique_ptr<BIO, Free>;

absl::Status Fail(const std::string& what) {
  return absl::FailedPreconditionError(absl::StrCat("TLS: ", what));
}

std::string BioText(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

std::string KeyPem(EVP_PKEY* k) {
  BioPtr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr);
  return BioText(b.get());
}

std::string CertPem(X509* c) {
  BioPtr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(b.get(), c);
  return BioText(b.get());
}

// Creates `path` with `mode` (never replacing a file), writes and syncs it.
absl::Status WriteNew(const std::string& path, const std::string& data, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return Fail(absl::StrCat("cannot create ", path, ": ", strerror(errno)));
  bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  ok = ::fsync(fd) == 0 && ok;
  ::close(fd);
  if (!ok) return Fail(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

bool AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// A certificate for `key` named `cn`, signed by `issuer_key` (issuer: `issuer`, or itself).
absl::StatusOr<CertPtr> MakeCert(EVP_PKEY* key, const std::string& cn, X509* issuer,
                                 EVP_PKEY* issuer_key, long days, bool is_ca,
                                 const std::string& san) {
  CertPtr c(X509_new());
  if (!c) return Fail("X509_new failed");
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof(serial)) != 1) return Fail("RAND_bytes failed");
  serial[0] &= 0x7f;  // a positive serial number
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  bool ok = X509_set_version(c.get(), 2) == 1 && bn != nullptr &&
            BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c.get())) != nullptr;
  BN_free(bn);
  // Why an hour back: a clock slightly behind on an agent must not reject a fresh certificate.
  ok = ok && X509_gmtime_adj(X509_getm_notBefore(c.get()), -3600) != nullptr &&
       X509_gmtime_adj(X509_getm_notAfter(c.get()), days * 24 * 3600) != nullptr &&
       X509_set_pubkey(c.get(), key) == 1;
  X509_NAME* name = X509_get_subject_name(c.get());
  ok =
      ok &&
      X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>("Assay"), -1, -1, 0) == 1 &&
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) == 1;
  X509* iss = issuer != nullptr ? issuer : c.get();
  ok = ok && X509_set_issuer_name(c.get(), X509_get_subject_name(iss)) == 1;
  if (is_ca) {
    ok = ok && AddExt(c.get(), iss, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
         AddExt(c.get(), iss, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    ok = ok && AddExt(c.get(), iss, NID_basic_constraints, "critical,CA:FALSE") &&
         AddExt(c.get(), iss, NID_key_usage, "critical,digitalSignature,keyEncipherment") &&
         AddExt(c.get(), iss, NID_ext_key_usage, "serverAuth") &&
         AddExt(c.get(), iss, NID_subject_alt_name, san);
  }
  ok = ok && AddExt(c.get(), iss, NID_subject_key_identifier, "hash") &&
       X509_sign(c.get(), issuer_key, EVP_sha256()) > 0;
  if (!ok) return Fail(absl::StrCat("cannot make the certificate '", cn, "'"));
  return c;
}

absl::StatusOr<KeyPtr> ReadKey(const std::string& pem, const std::string& path) {
  BioPtr b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  KeyPtr k(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
  if (!k) return Fail(absl::StrCat(path, " holds no PEM private key"));
  return k;
}

absl::StatusOr<CertPtr> ReadCert(const std::string& pem, const std::string& path) {
  BioPtr b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  CertPtr c(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  if (!c) return Fail(absl::StrCat(path, " holds no PEM certificate"));
  return c;
}

std::string SanOf(const std::vector<std::string>& hostnames) {
  std::vector<std::string> names = {"localhost", "127.0.0.1", "::1"};
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) == 0 && host[0] != '\0') names.push_back(host);
  names.insert(names.end(), hostnames.begin(), hostnames.end());
  std::string san;
  for (const auto& n : names) {
    if (n.empty()) continue;
    unsigned char buf[16];
    bool ip = inet_pton(AF_INET, n.c_str(), buf) == 1 || inet_pton(AF_INET6, n.c_str(), buf) == 1;
    absl::StrAppend(&san, san.empty() ? "" : ",", ip ? "IP:" : "DNS:", n);
  }
  return san;
}

std::string DerSha256(X509* c) {
  unsigned char* der = nullptr;
  int n = i2d_X509(c, &der);
  if (n <= 0) return "";
  std::string out = HexEncode(Sha256(std::string_view(reinterpret_cast<char*>(der), n)));
  OPENSSL_free(der);
  return out;
}

}  // namespace

absl::StatusOr<std::string> ReadPemFile(const std::string& path, const char* what) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) return Fail(absl::StrCat(what, ": cannot read ", path, ": ", ec.message()));
  if (size > (1u << 20)) return Fail(absl::StrCat(what, ": ", path, " is over 1 MiB"));
  std::ifstream in(path, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return Fail(absl::StrCat(what, ": cannot read ", path));
  return data;
}

absl::StatusOr<ServerTlsMaterial> LoadOrCreateServerTls(const std::string& data_dir,
                                                        const std::string& cert_file,
                                                        const std::string& key_file,
                                                        const std::vector<std::string>& hostnames) {
  ServerTlsMaterial out;
  if (!cert_file.empty() || !key_file.empty()) {
    if (cert_file.empty() || key_file.empty()) {
      return Fail("--tls-cert and --tls-key go together");
    }
    auto cert = ReadPemFile(cert_file, "--tls-cert");
    if (!cert.ok()) return cert.status();
    auto key = ReadPemFile(key_file, "--tls-key");
    if (!key.ok()) return key.status();
    auto c = ReadCert(*cert, cert_file);
    if (!c.ok()) return c.status();
    auto k = ReadKey(*key, key_file);
    if (!k.ok()) return k.status();
    if (X509_check_private_key(c->get(), k->get()) != 1) {
      return Fail(absl::StrCat(key_file, " is not the key of the certificate in ", cert_file));
    }
    out.cert_chain_pem = *cert;
    out.private_key_pem = *key;
    return out;
  }
  const std::string dir = data_dir + "/tls";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Fail(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  ::chmod(dir.c_str(), 0700);
  const std::string ca_pem = dir + "/ca.pem", ca_key = dir + "/ca.key";
  const std::string srv_pem = dir + "/server.pem", srv_key = dir + "/server.key";
  auto exists = [](const std::string& p) { return std::filesystem::exists(p); };

  KeyPtr ca_k;
  CertPtr ca_c;
  if (exists(ca_pem) || exists(ca_key)) {
    auto cp = ReadPemFile(ca_pem, "the agent CA");
    if (!cp.ok()) return cp.status();
    auto kp = ReadPemFile(ca_key, "the agent CA key");
    if (!kp.ok()) return kp.status();
    auto c = ReadCert(*cp, ca_pem);
    if (!c.ok()) return c.status();
    auto k = ReadKey(*kp, ca_key);
    if (!k.ok()) return k.status();
    ca_c = std::move(*c);
    ca_k = std::move(*k);
  } else {
    ca_k.reset(EVP_EC_gen("P-256"));
    if (!ca_k) return Fail("cannot generate a key");
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    auto c = MakeCert(ca_k.get(), absl::StrCat("Assay agent CA (", host, ")"), nullptr, ca_k.get(),
                      3650, true, "");
    if (!c.ok()) return c.status();
    ca_c = std::move(*c);
    // The key first: a crash between the two leaves no CA without its key.
    if (auto s = WriteNew(ca_key, KeyPem(ca_k.get()), 0600); !s.ok()) return s;
    if (auto s = WriteNew(ca_pem, CertPem(ca_c.get()), 0644); !s.ok()) return s;
    LogInfo("server", "created the agent CA ", ca_pem, " (give it to agents as --server-ca)");
  }
  if (!exists(srv_pem) || !exists(srv_key)) {
    std::filesystem::remove(srv_pem, ec);
    std::filesystem::remove(srv_key, ec);
    KeyPtr k(EVP_EC_gen("P-256"));
    if (!k) return Fail("cannot generate a key");
    const std::string san = SanOf(hostnames);
    auto c = MakeCert(k.get(), "assay-server", ca_c.get(), ca_k.get(), 730, false, san);
    if (!c.ok()) return c.status();
    if (auto s = WriteNew(srv_key, KeyPem(k.get()), 0600); !s.ok()) return s;
    if (auto s = WriteNew(srv_pem, CertPem(c->get()), 0644); !s.ok()) return s;
    LogInfo("server", "created the server certificate ", srv_pem, " for ", san);
  }
  auto cert = ReadPemFile(srv_pem, "the server certificate");
  if (!cert.ok()) return cert.status();
  auto key = ReadPemFile(srv_key, "the server key");
  if (!key.ok()) return key.status();
  out.cert_chain_pem = *cert;
  out.private_key_pem = *key;
  out.ca_path = ca_pem;
  out.ca_sha256 = DerSha256(ca_c.get());
  return out;
}

}  // namespace assay
