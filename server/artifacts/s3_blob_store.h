#pragma once
// Blobs in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, R2...): one object per blob,
// PREFIX<sha256>, over plain REST (PUT, GET with Range, HEAD, DELETE) signed with AWS
// Signature Version 4 (header-based, signed payload), through common/net's http(s) client.

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/net/http_client.h"
#include "server/artifacts/blob_store.h"

namespace assay::artifacts {

using Headers = std::vector<std::pair<std::string, std::string>>;

// The pieces SigV4 signs. `path` is the URI path exactly as sent (already percent-encoded);
// `headers` are the headers to sign (any case; Host among them); `payload_sha256` the hex
// SHA-256 of the body (also sent as x-amz-content-sha256, which must be among `headers`).
struct SigV4Request {
  std::string method;
  std::string path;
  std::string query;  // canonical query string ("" for none)
  Headers headers;
  std::string payload_sha256;
};

// The Authorization header value for `r` at time `t` (x-amz-date must be in r.headers and
// equal t as YYYYMMDD'T'HHMMSS'Z').
std::string SigV4Authorization(const SigV4Request& r, absl::Time t, const std::string& region,
                               const std::string& service, const std::string& access_key,
                               const std::string& secret_key);
// YYYYMMDD'T'HHMMSS'Z' in UTC.
std::string AmzDate(absl::Time t);

struct S3Options {
  // scheme://host[:port] with no path. With `bucket` set, requests are path-style
  // (ENDPOINT/BUCKET/KEY); empty bucket: the endpoint names it (virtual-hosted style).
  std::string endpoint;
  std::string bucket;
  std::string region = "us-east-1";
  std::string access_key, secret_key;
  std::string prefix = "artifacts/sha256/";
  absl::Duration timeout = absl::Seconds(60);
  // Sends a request; FetchHttpOrHttps when unset. Tests record and answer here.
  std::function<absl::StatusOr<HttpClientResponse>(const std::string& method,
                                                   const std::string& url, const Headers& headers,
                                                   const std::string& body)>
      transport;
  std::function<absl::Time()> now;  // absl::Now when unset
};

class S3BlobStore final : public BlobStore {
 public:
  // kInvalidArgument for a malformed endpoint or a missing region or key.
  static absl::StatusOr<std::unique_ptr<S3BlobStore>> Create(S3Options o);

  absl::Status Put(const std::string& sha256, std::string_view data) override;
  absl::StatusOr<bool> Has(const std::string& sha256) override;
  absl::StatusOr<std::string> Read(const std::string& sha256, int64_t offset,
                                   int64_t length) override;
  absl::Status Delete(const std::string& sha256) override;
  absl::StatusOr<int64_t> Size(const std::string& sha256) override;

  // The signed request for `method` on blob `sha256` with `extra` headers and `body`: what
  // the transport receives (for tests).
  struct Signed {
    std::string url;
    Headers headers;
  };
  Signed Sign(const std::string& method, const std::string& sha256, const Headers& extra,
              std::string_view body) const;

 private:
  explicit S3BlobStore(S3Options o, std::string scheme, std::string host)
      : o_(std::move(o)), scheme_(std::move(scheme)), host_(std::move(host)) {}
  absl::StatusOr<HttpClientResponse> Send(const std::string& method, const std::string& sha256,
                                          const Headers& extra, std::string_view body);

  S3Options o_;
  std::string scheme_, host_;
};

}  // namespace assay::artifacts
