// The dashboard's files (server/web/assets.h): what is loaded and served, and what a hostile
// or broken web directory gets (refused names, links, too many or too big files).

#include "server/web/assets.h"

#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

namespace assay::web {
namespace {

namespace fs = std::filesystem;

struct Dir {
  std::string path;
  Dir() {
    char tmpl[] = "/tmp/assay-web-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
    fs::create_directories(path + "/assets");
  }
  ~Dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  void Write(const std::string& rel, const std::string& data) {
    std::ofstream(path + "/" + rel, std::ios::binary) << data;
  }
};

TEST_CASE("web assets: index, hashed files, their gzip copies and content types", "[web]") {
  Dir d;
  d.Write("index.html", "<!doctype html><title>Assay</title>");
  d.Write("assets/app-1.js", "console.log(1)");
  d.Write("assets/app-1.js.gz", "GZ");
  d.Write("assets/app-1.css", "body{}");
  d.Write("assets/orphan.js.gz", "GZ");  // no plain file: not served
  auto a = LoadAssets(d.path);
  REQUIRE(a.ok());
  CHECK(a->index_html == "<!doctype html><title>Assay</title>");
  REQUIRE(a->files.size() == 2);
  CHECK(a->files.at("app-1.js").content_type == "text/javascript; charset=utf-8");
  CHECK(a->files.at("app-1.js").body == "console.log(1)");
  CHECK(a->files.at("app-1.js").gzip == "GZ");
  CHECK(a->files.at("app-1.css").content_type == "text/css; charset=utf-8");
  CHECK_FALSE(a->files.at("app-1.css").gzip.has_value());
}

TEST_CASE("web assets: a missing index, odd names, links and too many files", "[web][security]") {
  {
    Dir d;
    CHECK(LoadAssets(d.path).status().code() == absl::StatusCode::kNotFound);
    CHECK(LoadAssets("/nonexistent/dir").status().code() == absl::StatusCode::kNotFound);
  }
  {
    Dir d;
    d.Write("index.html", "x");
    d.Write("assets/a b.js", "x");
    CHECK(LoadAssets(d.path).status().message() ==
          d.path + "/assets/a b.js: a dashboard file name must be [A-Za-z0-9._-]");
  }
  {
    // A link out of the directory is not followed, and never served.
    Dir d;
    d.Write("index.html", "x");
    fs::create_symlink("/etc/passwd", d.path + "/assets/passwd.js");
    auto a = LoadAssets(d.path);
    REQUIRE(a.ok());
    CHECK(a->files.empty());
  }
  {
    Dir d;
    d.Write("index.html", "x");
    for (int i = 0; i < 513; ++i) d.Write("assets/f" + std::to_string(i) + ".js", "x");
    CHECK(LoadAssets(d.path).status().message() == d.path + "/assets holds more than 512 files");
  }
  {
    Dir d;
    d.Write("index.html", "x");
    d.Write("assets/big.js", std::string((64 << 20) + 1, 'x'));
    CHECK(LoadAssets(d.path).status().message() == d.path + "/assets holds more than 64 MiB");
  }
}

}  // namespace
}  // namespace assay::web
