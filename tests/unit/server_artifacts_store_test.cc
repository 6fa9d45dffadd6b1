// The S3 blob store's request signing (AWS Signature V4) against AWS's published example, the
// store's requests and answers over a recording transport, and the artifact path rule.

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/artifacts/path.h"
#include "common/crypto/crypto.h"
#include "server/artifacts/s3_blob_store.h"

namespace assay::artifacts {
namespace {

constexpr const char* kAccess = "AKIAIOSFODNN7EXAMPLE";
constexpr const char* kSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr const char* kEmptySha =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

TEST_CASE("s3: SigV4 signs AWS's documented GET Object example byte for byte", "[unit]") {
  // "Signature Calculations for the Authorization Header", Amazon S3 API reference: GET
  // /test.txt from examplebucket, Range bytes=0-9, at 20130524T000000Z in us-east-1.
  const absl::Time t =
      absl::FromCivil(absl::CivilSecond(2013, 5, 24, 0, 0, 0), absl::UTCTimeZone());
  CHECK(AmzDate(t) == "20130524T000000Z");
  SigV4Request r{"GET",
                 "/test.txt",
                 "",
                 {{"Host", "examplebucket.s3.amazonaws.com"},
                  {"Range", "bytes=0-9"},
                  {"x-amz-content-sha256", kEmptySha},
                  {"x-amz-date", "20130524T000000Z"}},
                 kEmptySha};
  CHECK(SigV4Authorization(r, t, "us-east-1", "s3", kAccess, kSecret) ==
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

struct Recorded {
  std::string method, url, body;
  Headers headers;
};

TEST_CASE("s3: the store sends signed PUT, HEAD, ranged GET and DELETE and reads the answers",
          "[unit]") {
  std::vector<Recorded> sent;
  std::vector<HttpClientResponse> answers;
  S3Options o;
  o.endpoint = "http://127.0.0.1:9000";
  o.bucket = "ci";
  o.access_key = kAccess;
  o.secret_key = kSecret;
  o.now = [] { return absl::FromUnixSeconds(1700000000); };
  o.transport = [&](const std::string& method, const std::string& url, const Headers& headers,
                    const std::string& body) -> absl::StatusOr<HttpClientResponse> {
    sent.push_back({method, url, body, headers});
    HttpClientResponse r = answers.front();
    answers.erase(answers.begin());
    return r;
  };
  auto store = S3BlobStore::Create(o);
  REQUIRE(store.ok());
  const std::string data = "chunk bytes";
  const std::string h = HexEncode(Sha256(data));
  answers = {{200, "", {}},    {200, "", {{"Content-Length", "11"}}},
             {206, "unk", {}}, {404, "", {}},
             {204, "", {}},    {403, "", {}}};
  REQUIRE((*store)->Put(h, data).ok());
  CHECK((*store)->Size(h).value() == 11);
  CHECK((*store)->Read(h, 2, 3).value() == "unk");
  CHECK((*store)->Has(h).value() == false);
  CHECK((*store)->Delete(h).ok());
  CHECK((*store)->Has(h).status().code() == absl::StatusCode::kPermissionDenied);
  REQUIRE(sent.size() == 6);
  const std::string url = "http://127.0.0.1:9000/ci/artifacts/sha256/" + h;
  CHECK(sent[0].method == "PUT");
  CHECK(sent[0].url == url);
  CHECK(sent[0].body == data);
  // The headers sent are exactly those signed, and the signature is SigV4's over them.
  const Headers put_headers = {{"Host", "127.0.0.1:9000"},
                               {"Content-Type", "application/octet-stream"},
                               {"x-amz-content-sha256", h},
                               {"x-amz-date", "20231114T221320Z"}};
  SigV4Request put{"PUT", "/ci/artifacts/sha256/" + h, "", put_headers, h};
  Headers want = put_headers;
  want.push_back({"Authorization", SigV4Authorization(put, absl::FromUnixSeconds(1700000000),
                                                      "us-east-1", "s3", kAccess, kSecret)});
  CHECK(sent[0].headers == want);
  CHECK(sent[2].method == "GET");
  CHECK(sent[2].headers[1] == std::pair<std::string, std::string>{"Range", "bytes=2-4"});
  CHECK(sent[3].method == "HEAD");
  CHECK(sent[4].method == "DELETE");
  // Names that are not hashes never reach the transport.
  CHECK((*store)->Put("../x", data).code() == absl::StatusCode::kInvalidArgument);
  CHECK(sent.size() == 6);
  o.endpoint = "s3.example.com";
  CHECK(S3BlobStore::Create(o).status().message() ==
        "--s3-endpoint must be http://HOST[:PORT] or https://HOST[:PORT]");
}

TEST_CASE("artifacts: the path rule", "[unit]") {
  for (const char* ok : {"a", "out/model.bin", "a/b/c.d", "..a", "a..", ".hidden/x"}) {
    INFO(ok);
    CHECK(ValidateArtifactPath(ok).ok());
  }
  CHECK(ValidateArtifactPath("a/../b").message() == "artifact path 'a/../b': has a '..' segment");
  CHECK(ValidateArtifactPath("/etc/passwd").message() ==
        "artifact path '/etc/passwd': is absolute");
  CHECK(ValidateArtifactPath("a//b").message() == "artifact path 'a//b': has an empty segment");
  CHECK(ValidateArtifactPath(std::string(4096, 'a')).ok());
  CHECK(ValidateArtifactPath(std::string(4097, 'a')).code() == absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace assay::artifacts
