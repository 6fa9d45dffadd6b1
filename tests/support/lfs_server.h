#pragma once
// A Git LFS endpoint on 127.0.0.1 for tests (tests/support/lfs_server.py): objects stored by
// sha256, every request recorded. A stand-in for a forge's LFS service, which tests cannot
// reach; see the script for what it answers.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "boost/json.hpp"
#include "tests/support/process.h"

namespace assay::testing {

// The pointer file git-lfs would commit for `bytes` (spec v1).
std::string LfsPointerText(const std::string& bytes);

class LfsServer {
 public:
  // Starts the server with its store and logs under `dir` (created), and waits (at most 10 s)
  // until it listens.
  static absl::StatusOr<std::unique_ptr<LfsServer>> Start(const std::string& dir);

  // Stores `bytes`; returns the pointer text that names them.
  absl::StatusOr<std::string> AddObject(const std::string& bytes);
  // Stores `bytes` under the object id of `claimed` (a server that serves wrong bytes).
  absl::Status AddForgedObject(const std::string& claimed, const std::string& bytes);

  // The batch endpoint for `.lfsconfig`'s lfs.url.
  std::string url() const;
  // Every request so far, in order: {"method", "path", "authorization", "body"}.
  std::vector<boost::json::object> Requests() const;

 private:
  LfsServer() = default;
  std::string dir_;
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

}  // namespace assay::testing
