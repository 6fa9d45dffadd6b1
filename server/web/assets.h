#pragma once
// The dashboard's files (issue 11, web/): index.html and the hashed assets web/build.mjs
// writes, read once at start-up from the web directory and served from memory. Only names
// read from that directory are ever served, so no request path reaches the file system.

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace assay::web {

struct Asset {
  std::string content_type;
  std::string body;
  std::optional<std::string> gzip;  // the precompressed copy (NAME.gz), when there is one
};

struct Assets {
  std::string dir;
  std::string index_html;
  std::map<std::string, Asset> files;  // "app-0123abcd.js" → its bytes
};

// Reads DIR/index.html and DIR/assets/* (regular files only, at most 512 of them and 64 MiB
// in all; a name must be [A-Za-z0-9._-]). kNotFound when DIR/index.html is missing;
// kInvalidArgument naming the file for anything over the bounds.
absl::StatusOr<Assets> LoadAssets(const std::string& dir);

// Where the dashboard is when --web-dir is not given: the first of EXE_DIR/../share/assay/web
// (an installed server) and EXE_DIR/../../web/dist (a build tree: build/server/assay-server)
// holding an index.html; "" when neither does.
std::string DefaultWebDir();

}  // namespace assay::web
