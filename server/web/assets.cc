#include "server/web/assets.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace assay::web {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxFiles = 512;
constexpr uintmax_t kMaxBytes = 64 << 20;

bool PlainName(const std::string& name) {
  if (name.empty() || name.size() > 128 || name[0] == '.') return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-')) {
      return false;
    }
  }
  return true;
}

std::string TypeOf(const std::string& name) {
  if (absl::EndsWith(name, ".js")) return "text/javascript; charset=utf-8";
  if (absl::EndsWith(name, ".css")) return "text/css; charset=utf-8";
  if (absl::EndsWith(name, ".svg")) return "image/svg+xml";
  if (absl::EndsWith(name, ".png")) return "image/png";
  if (absl::EndsWith(name, ".woff2")) return "font/woff2";
  if (absl::EndsWith(name, ".map")) return "application/json";
  return "application/octet-stream";
}

absl::StatusOr<std::string> ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", p.string()));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

absl::StatusOr<Assets> LoadAssets(const std::string& dir) {
  Assets a;
  a.dir = dir;
  std::error_code ec;
  if (!fs::is_regular_file(fs::path(dir) / "index.html", ec)) {
    return absl::NotFoundError(absl::StrCat("no dashboard in ", dir, " (no index.html)"));
  }
  auto index = ReadAll(fs::path(dir) / "index.html");
  if (!index.ok()) return index.status();
  a.index_html = *std::move(index);
  uintmax_t total = a.index_html.size();
  const fs::path assets = fs::path(dir) / "assets";
  if (!fs::is_directory(assets, ec)) return a;
  size_t count = 0;
  for (const auto& e : fs::directory_iterator(assets, ec)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file(ec) || e.is_symlink(ec)) continue;  // only plain files are served
    if (++count > kMaxFiles) {
      return absl::InvalidArgumentError(
          absl::StrCat(assets.string(), " holds more than ", kMaxFiles, " files"));
    }
    if (!PlainName(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(e.path().string(), ": a dashboard file name must be [A-Za-z0-9._-]"));
    }
    total += e.file_size(ec);
    if (total > kMaxBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(assets.string(), " holds more than ", kMaxBytes >> 20, " MiB"));
    }
    auto body = ReadAll(e.path());
    if (!body.ok()) return body.status();
    if (absl::EndsWith(name, ".gz")) {
      a.files[name.substr(0, name.size() - 3)].gzip = *std::move(body);
    } else {
      Asset& f = a.files[name];
      f.content_type = TypeOf(name);
      f.body = *std::move(body);
    }
  }
  // A .gz without its plain file is not served.
  for (auto it = a.files.begin(); it != a.files.end();) {
    it = it->second.content_type.empty() ? a.files.erase(it) : std::next(it);
  }
  return a;
}

std::string DefaultWebDir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  for (const fs::path& candidate : {exe.parent_path() / ".." / "share" / "assay" / "web",
                                    exe.parent_path() / ".." / ".." / "web" / "dist"}) {
    if (fs::is_regular_file(candidate / "index.html", ec)) {
      return fs::weakly_canonical(candidate, ec).string();
    }
  }
  return "";
}

}  // namespace assay::web
