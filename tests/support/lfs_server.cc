#include "tests/support/lfs_server.h"

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/crypto/crypto.h"

namespace assay::testing {

std::string LfsPointerText(const std::string& bytes) {
  return absl::StrCat("version https://git-lfs.github.com/spec/v1\noid sha256:",
                      HexEncode(Sha256(bytes)), "\nsize ", bytes.size(), "\n");
}

absl::StatusOr<std::unique_ptr<LfsServer>> LfsServer::Start(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir + "/store", ec);
  if (ec) return absl::InternalError(absl::StrCat("mkdir ", dir, ": ", ec.message()));
  std::unique_ptr<LfsServer> s(new LfsServer());
  s->dir_ = dir;
  for (int attempt = 0; attempt < 3; ++attempt) {
    s->port_ = FreePort();
    if (s->port_ == 0) continue;
    const std::string out = absl::StrCat(dir, "/server-", attempt, ".out");
    absl::StatusOr<std::unique_ptr<Process>> p = Process::Start(
        {"/usr/bin/python3", ASSAY_SOURCE_DIR "/tests/support/lfs_server.py", "--store",
         dir + "/store", "--port", std::to_string(s->port_), "--log", dir + "/requests.jsonl"},
        out);
    if (!p.ok()) return p.status();
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline && !(*p)->Exited() &&
           ReadFileOrEmpty(out).find("listening") == std::string::npos) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (ReadFileOrEmpty(out).find("listening") != std::string::npos) {
      s->process_ = std::move(*p);
      return s;
    }
  }
  return absl::InternalError(absl::StrCat("the LFS server did not start; see ", dir));
}

absl::StatusOr<std::string> LfsServer::AddObject(const std::string& bytes) {
  if (absl::Status s = AddForgedObject(bytes, bytes); !s.ok()) return s;
  return LfsPointerText(bytes);
}

absl::Status LfsServer::AddForgedObject(const std::string& claimed, const std::string& bytes) {
  std::ofstream f(absl::StrCat(dir_, "/store/", HexEncode(Sha256(claimed))), std::ios::binary);
  f << bytes;
  f.close();
  if (!f) return absl::InternalError("cannot write an LFS object");
  return absl::OkStatus();
}

std::string LfsServer::url() const {
  return absl::StrCat("http://127.0.0.1:", port_, "/repo.git/info/lfs");
}

std::vector<boost::json::object> LfsServer::Requests() const {
  std::vector<boost::json::object> out;
  for (absl::string_view line :
       absl::StrSplit(ReadFileOrEmpty(dir_ + "/requests.jsonl"), '\n', absl::SkipEmpty())) {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(std::string(line), ec);
    if (!ec && v.is_object()) out.push_back(v.as_object());
  }
  return out;
}

}  // namespace assay::testing
