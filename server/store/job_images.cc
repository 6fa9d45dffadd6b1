#include "server/store/job_images.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace assay::store {
namespace {

const Query kInsertImage{
    "job_images_insert",
    "INSERT INTO job_images (job_id, attempt, seq, reference, digest, is_primary) "
    "SELECT id, attempt, $3::int, $4::text, $5::text, $6::boolean FROM jobs "
    "WHERE id = $1 AND attempt_token = $2"};
const Query kImagesOf{
    "job_images_of",
    "SELECT attempt, reference, digest, is_primary FROM job_images WHERE job_id = $1 AND "
    "attempt = (SELECT max(attempt) FROM job_images WHERE job_id = $1) ORDER BY seq"};
const Query kPinned{
    "job_images_pinned",
    "SELECT i.reference, i.digest, j.spec::text FROM job_images i JOIN jobs j ON j.id = i.job_id "
    "WHERE j.pipeline_id = $1 AND j.name = $2 AND i.is_primary "
    "ORDER BY i.attempt DESC, i.seq DESC LIMIT 1"};

}  // namespace

bool IsImageDigest(const std::string& d) {
  return d.size() == 71 && d.rfind("sha256:", 0) == 0 &&
         std::all_of(d.begin() + 7, d.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string PinnedReference(const std::string& reference, const std::string& digest) {
  const size_t slash = reference.rfind('/');
  const size_t colon = reference.rfind(':');
  std::string repo = reference;
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    repo = reference.substr(0, colon);
  }
  return absl::StrCat(repo, "@", digest);
}

void InsertJobImages(pqxx::transaction_base& tx, Connection& c, int64_t job_id,
                     const std::string& token, const std::vector<JobImage>& images) {
  for (size_t i = 0; i < images.size(); ++i) {
    Exec(tx, c, kInsertImage,
         {job_id, token, static_cast<int64_t>(i), images[i].reference, images[i].digest,
          images[i].primary});
  }
}

absl::StatusOr<std::vector<JobImage>> JobImageStore::ImagesOf(int64_t job_id) {
  std::vector<JobImage> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    for (const auto& r : Exec(tx, c, kImagesOf, {job_id})) {
      out.push_back(
          {r[0].as<int>(), r[1].as<std::string>(), r[2].as<std::string>(), r[3].as<bool>()});
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::optional<JobImageStore::Pinned>> JobImageStore::PinnedImage(
    int64_t pipeline_id, const std::string& job_name) {
  std::optional<Pinned> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.reset();
    auto res = Exec(tx, c, kPinned, {pipeline_id, job_name});
    if (!res.empty()) {
      out = Pinned{PinnedReference(res[0][0].as<std::string>(), res[0][1].as<std::string>()),
                   res[0][2].as<std::string>()};
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace assay::store
