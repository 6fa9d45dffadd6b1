#pragma once
// The TLS identity of the agent gRPC listener. Either the operator's certificate and key
// (--tls-cert/--tls-key), or, when none is given, a CA and a server certificate the server
// creates in its data dir at first start and reuses afterwards:
//   DATA_DIR/tls/ca.pem      the CA agents pin (--server-ca); copy it to every agent
//   DATA_DIR/tls/ca.key      its private key (mode 0600); never leaves the server
//   DATA_DIR/tls/server.pem  the server certificate, signed by the CA, with the names below
//   DATA_DIR/tls/server.key  its private key (mode 0600)
// Deleting server.pem and server.key makes the next start issue a new server certificate from
// the same CA (e.g. for new --tls-hostnames); agents keep working. Deleting ca.* makes a new CA
// that every agent must be given again.

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace assay {

struct ServerTlsMaterial {
  std::string cert_chain_pem;
  std::string private_key_pem;
  std::string ca_path;    // the generated CA's file; empty when the operator gave the certificate
  std::string ca_sha256;  // hex SHA-256 of the CA certificate (DER), for the start log
};

// Reads the operator's files when `cert_file` is set (both must be), else loads or creates the
// material under `data_dir`/tls. The generated server certificate names localhost, 127.0.0.1,
// ::1, this host's name and each of `hostnames` (IP addresses become IP names). ECDSA P-256,
// SHA-256; the CA is valid 10 years, the server certificate 2 years. kFailedPrecondition naming
// the file on any error; key files are created with mode 0600 and never overwritten.
absl::StatusOr<ServerTlsMaterial> LoadOrCreateServerTls(const std::string& data_dir,
                                                        const std::string& cert_file,
                                                        const std::string& key_file,
                                                        const std::vector<std::string>& hostnames);

// The whole file, or kFailedPrecondition naming it (what for: `what`). At most 1 MiB.
absl::StatusOr<std::string> ReadPemFile(const std::string& path, const char* what);

}  // namespace assay
