// /api/v1/jobs/{id}/artifacts (listing), /api/v1/jobs/{id}/artifacts/{path...} (download,
// single byte ranges) and /api/v1/artifacts/usage (bytes per repository).

#include <boost/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/artifacts/path.h"
#include "server/api/json.h"
#include "server/api/routes.h"
#include "server/http/json_util.h"

namespace assay::api {
namespace {

using http::ErrorResponse;
using http::JsonResponse;
using http::Request;
using http::Response;
namespace json = boost::json;

// A file of at most this many bytes (one chunk) is answered from memory; larger ones are
// streamed a chunk at a time. Both carry a Content-Length.
constexpr int64_t kWholeBodyBytes = 4 << 20;

Response Unavailable() {
  return ErrorResponse(503, "unavailable", "artifacts are not enabled on this server");
}

std::string ModeText(int mode) { return mode == 0755 ? "0755" : "0644"; }

// A byte range [first, last] of a file of `size` bytes.
struct ByteRange {
  int64_t first = 0, last = 0;
};

// Parses one "bytes=a-b" / "bytes=a-" / "bytes=-n" range (RFC 9110 14.1.2). nullopt: no
// usable Range (absent, malformed, or several ranges: the whole file is sent, as the RFC
// allows). `unsatisfiable` is set when the range lies past the end.
std::optional<ByteRange> ParseRange(const std::string& header, int64_t size, bool* unsatisfiable) {
  *unsatisfiable = false;
  absl::string_view v(header);
  if (!absl::ConsumePrefix(&v, "bytes=")) return std::nullopt;
  if (v.find(',') != absl::string_view::npos) return std::nullopt;
  size_t dash = v.find('-');
  if (dash == absl::string_view::npos) return std::nullopt;
  absl::string_view a = v.substr(0, dash), b = v.substr(dash + 1);
  int64_t x = 0, y = 0;
  if (a.empty()) {  // suffix: the last y bytes
    if (b.empty() || !absl::SimpleAtoi(b, &y) || y < 0) return std::nullopt;
    if (y == 0 || size == 0) {
      *unsatisfiable = true;
      return std::nullopt;
    }
    return ByteRange{std::max<int64_t>(0, size - y), size - 1};
  }
  if (!absl::SimpleAtoi(a, &x) || x < 0) return std::nullopt;
  if (b.empty()) {
    y = size - 1;
  } else if (!absl::SimpleAtoi(b, &y) || y < x) {
    return std::nullopt;
  }
  if (x >= size) {
    *unsatisfiable = true;
    return std::nullopt;
  }
  return ByteRange{x, std::min(y, size - 1)};
}

// Reads bytes [pos, pos + remaining) of a file made of `chunks` one piece (at most one chunk)
// per call; "" at the end.
struct FileReader {
  artifacts::BlobStore* blobs;
  std::vector<std::string> chunks;
  std::vector<int64_t> sizes;
  size_t index = 0;
  int64_t pos = 0;  // within chunks[index]
  int64_t remaining = 0;

  absl::StatusOr<std::string> Next() {
    if (remaining <= 0) return std::string();
    while (index < chunks.size() && pos >= sizes[index]) {
      pos -= sizes[index];
      ++index;
    }
    if (index >= chunks.size())
      return absl::DataLossError("artifact file is shorter than its size");
    auto piece = blobs->Read(chunks[index], pos, std::min(remaining, sizes[index] - pos));
    if (!piece.ok()) return piece.status();
    if (piece->empty()) return absl::DataLossError("artifact chunk is shorter than recorded");
    pos += static_cast<int64_t>(piece->size());
    remaining -= static_cast<int64_t>(piece->size());
    return piece;
  }
};

}  // namespace

Response ServeArtifactFile(const ApiDeps& d, const Request& req, const store::ArtifactFileRow& f) {
  const std::string etag = absl::StrCat("\"", f.sha256, "\"");
  Response r;
  r.content_type = "application/octet-stream";
  r.headers.push_back({"ETag", etag});
  r.headers.push_back({"Accept-Ranges", "bytes"});
  bool unsatisfiable = false;
  std::optional<ByteRange> range;
  const std::string if_range = req.Header("If-Range");
  if (!req.Header("Range").empty() && (if_range.empty() || if_range == etag)) {
    range = ParseRange(req.Header("Range"), f.size, &unsatisfiable);
  }
  if (unsatisfiable) {
    Response e = ErrorResponse(416, "range_not_satisfiable",
                               absl::StrCat("the file has ", f.size, " bytes"));
    e.headers.push_back({"Content-Range", absl::StrCat("bytes */", f.size)});
    return e;
  }
  ByteRange want{0, f.size - 1};
  if (range.has_value()) {
    want = *range;
    r.status = 206;
    r.headers.push_back(
        {"Content-Range", absl::StrCat("bytes ", want.first, "-", want.last, "/", f.size)});
  }
  auto sizes = d.artifacts->ChunkSizes(f.chunks);
  if (!sizes.ok()) return http::StatusToResponse(sizes.status());
  auto reader = std::make_shared<FileReader>();
  reader->blobs = d.blobs;
  reader->chunks = f.chunks;
  reader->sizes = std::move(*sizes);
  reader->pos = want.first;
  reader->remaining = f.size == 0 ? 0 : want.last - want.first + 1;
  if (reader->remaining <= kWholeBodyBytes) {
    // Small: whole, so the client gets a Content-Length.
    while (true) {
      auto piece = reader->Next();
      if (!piece.ok()) return http::StatusToResponse(piece.status());
      if (piece->empty()) break;
      r.body += *piece;
    }
    return r;
  }
  // Why streamed: a file may be many GiB; one chunk per connection is in memory.
  r.stream = [reader] { return reader->Next(); };
  r.stream_length = static_cast<uint64_t>(reader->remaining);
  r.stream_read_ahead = true;
  return r;
}

void RegisterArtifactRoutes(http::Router& router, const ApiDeps& d) {
  router.Add(
      "GET", "/api/v1/jobs/{id}/artifacts", Authed(d, auth::Need::Read(), [&d](Request& req) {
        if (d.artifacts == nullptr) return Unavailable();
        auto id = PathId(req);
        if (!id.ok()) return http::StatusToResponse(id.status());
        auto summary = d.artifacts->Summary(*id);
        if (!summary.ok()) return http::StatusToResponse(summary.status());
        if (!summary->has_value()) {
          return ErrorResponse(404, "not_found", absl::StrCat("job ", *id, " has no artifacts"));
        }
        auto files = d.artifacts->Files(*id);
        if (!files.ok()) return http::StatusToResponse(files.status());
        json::array list;
        for (const auto& f : *files) {
          list.push_back(json::object{{"path", f.path},
                                      {"size", f.size},
                                      {"mode", ModeText(f.mode)},
                                      {"sha256", f.sha256}});
        }
        const auto& s = **summary;
        return JsonResponse(200, {{"job_id", s.job_id},
                                  {"attempt", s.attempt},
                                  {"files", std::move(list)},
                                  {"bytes", s.bytes},
                                  {"created_at", TimeJson(s.created_at)},
                                  {"expire_at", TimeJson(s.expire_at)}});
      }));
  router.Add("GET", "/api/v1/jobs/{id}/artifacts/{path...}",
             Authed(d, auth::Need::Read(), [&d](Request& req) {
               if (d.artifacts == nullptr || d.blobs == nullptr) return Unavailable();
               auto id = PathId(req);
               if (!id.ok()) return http::StatusToResponse(id.status());
               const std::string path = req.path_params["path"];
               if (absl::Status s = artifacts::ValidateArtifactPath(path); !s.ok()) {
                 return ErrorResponse(400, "invalid_argument", std::string(s.message()));
               }
               auto file = d.artifacts->File(*id, path);
               if (!file.ok()) return http::StatusToResponse(file.status());
               if (!file->has_value()) {
                 return ErrorResponse(404, "not_found",
                                      absl::StrCat("job ", *id, " has no artifact '", path, "'"));
               }
               return ServeArtifactFile(d, req, **file);
             }));
  router.Add("GET", "/api/v1/artifacts/usage", Authed(d, auth::Need::Read(), [&d](Request&) {
               if (d.artifacts == nullptr) return Unavailable();
               auto usage = d.artifacts->BytesPerRepo();
               if (!usage.ok()) return http::StatusToResponse(usage.status());
               json::array repos;
               for (const auto& u : *usage) {
                 repos.push_back(json::object{{"repo_id", u.repo_id},
                                              {"repo", u.repo},
                                              {"artifact_bytes", u.bytes},
                                              {"jobs_with_artifacts", u.count}});
               }
               return JsonResponse(200, {{"repos", std::move(repos)}});
             }));
}

}  // namespace assay::api
