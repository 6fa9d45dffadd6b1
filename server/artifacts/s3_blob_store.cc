#include "server/artifacts/s3_blob_store.h"

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/crypto/crypto.h"
#include "common/net/https_client.h"

namespace assay::artifacts {

std::string AmzDate(absl::Time t) {
  return absl::FormatTime("%Y%m%dT%H%M%SZ", t, absl::UTCTimeZone());
}

std::string SigV4Authorization(const SigV4Request& r, absl::Time t, const std::string& region,
                               const std::string& service, const std::string& access_key,
                               const std::string& secret_key) {
  // Canonical headers: lowercase names, sorted, values trimmed (inner runs of spaces folded).
  std::map<std::string, std::string> canon;
  for (const auto& [name, value] : r.headers) {
    std::string v(absl::StripAsciiWhitespace(value));
    std::string folded;
    for (char c : v) {
      if (c == ' ' && !folded.empty() && folded.back() == ' ') continue;
      folded += c;
    }
    std::string& slot = canon[absl::AsciiStrToLower(name)];
    slot = slot.empty() ? folded : absl::StrCat(slot, ",", folded);
  }
  std::string headers_block, signed_headers;
  for (const auto& [name, value] : canon) {
    absl::StrAppend(&headers_block, name, ":", value, "\n");
    absl::StrAppend(&signed_headers, signed_headers.empty() ? "" : ";", name);
  }
  const std::string canonical_request =
      absl::StrCat(r.method, "\n", r.path, "\n", r.query, "\n", headers_block, "\n", signed_headers,
                   "\n", r.payload_sha256);
  const std::string date = absl::FormatTime("%Y%m%d", t, absl::UTCTimeZone());
  const std::string scope = absl::StrCat(date, "/", region, "/", service, "/aws4_request");
  const std::string string_to_sign = absl::StrCat("AWS4-HMAC-SHA256\n", AmzDate(t), "\n", scope,
                                                  "\n", HexEncode(Sha256(canonical_request)));
  std::string key = HmacSha256("AWS4" + secret_key, date);
  key = HmacSha256(key, region);
  key = HmacSha256(key, service);
  key = HmacSha256(key, "aws4_request");
  return absl::StrCat("AWS4-HMAC-SHA256 Credential=", access_key, "/", scope,
                      ",SignedHeaders=", signed_headers,
                      ",Signature=", HexEncode(HmacSha256(key, string_to_sign)));
}

absl::StatusOr<std::unique_ptr<S3BlobStore>> S3BlobStore::Create(S3Options o) {
  absl::string_view rest(o.endpoint);
  std::string scheme;
  if (absl::ConsumePrefix(&rest, "https://")) {
    scheme = "https";
  } else if (absl::ConsumePrefix(&rest, "http://")) {
    scheme = "http";
  } else {
    return absl::InvalidArgumentError(
        "--s3-endpoint must be http://HOST[:PORT] or https://HOST[:PORT]");
  }
  absl::ConsumeSuffix(&rest, "/");
  if (rest.empty() || rest.find_first_of("/?#@ ") != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--s3-endpoint '", o.endpoint, "' must have a host and no path"));
  }
  if (o.region.empty()) return absl::InvalidArgumentError("--s3-region is required");
  if (o.access_key.empty() || o.secret_key.empty()) {
    return absl::InvalidArgumentError(
        "the S3 artifact store needs --s3-access-key and --s3-secret-key (file or env)");
  }
  if (o.bucket.find_first_of("/?#% ") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--s3-bucket '", o.bucket, "' is not valid"));
  }
  return std::unique_ptr<S3BlobStore>(
      new S3BlobStore(std::move(o), std::move(scheme), std::string(rest)));
}

S3BlobStore::Signed S3BlobStore::Sign(const std::string& method, const std::string& sha256,
                                      const Headers& extra, std::string_view body) const {
  const std::string path =
      absl::StrCat(o_.bucket.empty() ? "" : "/" + o_.bucket, "/", o_.prefix, sha256);
  const absl::Time t = o_.now ? o_.now() : absl::Now();
  const std::string payload = HexEncode(Sha256(body));
  Headers h = {{"Host", host_}};
  for (const auto& e : extra) h.push_back(e);
  h.push_back({"x-amz-content-sha256", payload});
  h.push_back({"x-amz-date", AmzDate(t)});
  SigV4Request r{method, path, "", h, payload};
  h.push_back(
      {"Authorization", SigV4Authorization(r, t, o_.region, "s3", o_.access_key, o_.secret_key)});
  return {absl::StrCat(scheme_, "://", host_, path), std::move(h)};
}

absl::StatusOr<HttpClientResponse> S3BlobStore::Send(const std::string& method,
                                                     const std::string& sha256,
                                                     const Headers& extra, std::string_view body) {
  if (!IsSha256Hex(sha256)) {
    return absl::InvalidArgumentError("a blob name must be 64 lowercase hex digits");
  }
  Signed s = Sign(method, sha256, extra, body);
  absl::StatusOr<HttpClientResponse> res =
      o_.transport ? o_.transport(method, s.url, s.headers, std::string(body))
                   : FetchHttpOrHttps(method, s.url, s.headers, body, o_.timeout);
  if (!res.ok()) return res.status();
  if (res->status >= 500 || res->status == 429) {
    return absl::UnavailableError(absl::StrCat("S3 ", method, " ", s.url, ": HTTP ", res->status));
  }
  if (res->status == 401 || res->status == 403) {
    return absl::PermissionDeniedError(absl::StrCat("S3 ", method, " ", s.url, ": HTTP ",
                                                    res->status, " (check the keys and region)"));
  }
  return res;
}

absl::Status S3BlobStore::Put(const std::string& sha256, std::string_view data) {
  // Why no temp object: an S3 PUT is atomic (a reader sees the old object or the whole new one).
  auto res = Send("PUT", sha256, {{"Content-Type", "application/octet-stream"}}, data);
  if (!res.ok()) return res.status();
  if (res->status != 200) {
    return absl::InternalError(absl::StrCat("S3 PUT ", sha256, ": HTTP ", res->status));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> S3BlobStore::Has(const std::string& sha256) {
  auto res = Send("HEAD", sha256, {}, "");
  if (!res.ok()) return res.status();
  if (res->status == 200) return true;
  if (res->status == 404) return false;
  return absl::InternalError(absl::StrCat("S3 HEAD ", sha256, ": HTTP ", res->status));
}

absl::StatusOr<int64_t> S3BlobStore::Size(const std::string& sha256) {
  auto res = Send("HEAD", sha256, {}, "");
  if (!res.ok()) return res.status();
  if (res->status == 404)
    return absl::NotFoundError(absl::StrCat("blob ", sha256, " does not exist"));
  int64_t n = 0;
  if (res->status != 200 || !absl::SimpleAtoi(res->Header("Content-Length"), &n)) {
    return absl::InternalError(
        absl::StrCat("S3 HEAD ", sha256, ": HTTP ", res->status, " without a Content-Length"));
  }
  return n;
}

absl::StatusOr<std::string> S3BlobStore::Read(const std::string& sha256, int64_t offset,
                                              int64_t length) {
  if (length == 0) return std::string();
  Headers extra;
  if (offset != 0 || length > 0) {
    extra.push_back({"Range", length > 0 ? absl::StrCat("bytes=", offset, "-", offset + length - 1)
                                         : absl::StrCat("bytes=", offset, "-")});
  }
  auto res = Send("GET", sha256, extra, "");
  if (!res.ok()) return res.status();
  if (res->status == 404)
    return absl::NotFoundError(absl::StrCat("blob ", sha256, " does not exist"));
  if (res->status == 416) {
    return absl::OutOfRangeError(
        absl::StrCat("offset ", offset, " is past the end of blob ", sha256));
  }
  if (res->status != 200 && res->status != 206) {
    return absl::InternalError(absl::StrCat("S3 GET ", sha256, ": HTTP ", res->status));
  }
  return std::move(res->body);
}

absl::Status S3BlobStore::Delete(const std::string& sha256) {
  auto res = Send("DELETE", sha256, {}, "");
  if (!res.ok()) return res.status();
  if (res->status == 204 || res->status == 200 || res->status == 404) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("S3 DELETE ", sha256, ": HTTP ", res->status));
}

}  // namespace assay::artifacts
