// HttpsFetch against a local TLS server on 127.0.0.1 whose certificates the test makes with the
// `openssl` CLI: a private CA and a leaf it signs (localhost, 127.0.0.1), a self-signed leaf, and a
// CA-signed leaf for another name.
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/net/https_client.h"
#include "tests/unit/tls_test_server.h"

namespace assay {
namespace {

using namespace tls_test;  // NOLINT: test helpers

const std::vector<std::pair<std::string, std::string>> kJson = {
    {"Content-Type", "application/json"}};

TEST_CASE("https: a certificate from the extra CA file is trusted, SNI and Host are sent",
          "[unit][https]") {
  const Certs& certs = TestCerts();
  TlsServer server(certs.path("leaf.pem"), certs.path("leaf.key"));
  const std::string url = absl::StrCat("https://localhost:", server.port(), "/repos/a/b?x=1");
  auto r = HttpsFetch("POST", url, kJson, R"({"state":"success"})", absl::Seconds(10),
                      {certs.path("ca.pem")});
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(r->status == 201);
  CHECK(r->body == R"({"ok":true})");
  CHECK(r->Header("content-type") == "application/json");
  // By IP address: the certificate's IP SAN matches; no SNI for an IP literal (RFC 6066).
  auto by_ip = FetchHttpOrHttps("POST", absl::StrCat("https://127.0.0.1:", server.port(), "/ip"),
                                kJson, "{}", absl::Seconds(10), {certs.path("ca.pem")});
  INFO(by_ip.status().ToString());
  REQUIRE(by_ip.ok());
  CHECK(by_ip->status == 201);
  auto seen = server.seen();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].sni == "localhost");
  CHECK(seen[0].method == "POST");
  CHECK(seen[0].target == "/repos/a/b?x=1");
  CHECK(seen[0].host == absl::StrCat("localhost:", server.port()));
  CHECK(seen[0].body == R"({"state":"success"})");
  CHECK(seen[1].sni == "");
  CHECK(seen[1].target == "/ip");
}

TEST_CASE("https: untrusted, self-signed and wrong-name certificates fail with the reason",
          "[unit][https]") {
  const Certs& certs = TestCerts();
  {
    TlsServer server(certs.path("leaf.pem"), certs.path("leaf.key"));
    const std::string url = absl::StrCat("https://localhost:", server.port(), "/x");
    auto r = HttpsFetch("POST", url, kJson, "{}", absl::Seconds(10));  // system CAs only
    CHECK(r.status().code() == absl::StatusCode::kUnavailable);
    CHECK(r.status().message() ==
          absl::StrCat("POST ", url, ": TLS handshake with localhost:", server.port(),
                       " failed: certificate verify failed (unable to get local issuer "
                       "certificate)"));
    CHECK(server.seen().empty());
  }
  {
    TlsServer server(certs.path("self.pem"), certs.path("self.key"));
    const std::string url = absl::StrCat("https://localhost:", server.port(), "/x");
    auto r = HttpsFetch("GET", url, {}, "", absl::Seconds(10), {certs.path("ca.pem")});
    CHECK(r.status().code() == absl::StatusCode::kUnavailable);
    CHECK(r.status().message() ==
          absl::StrCat("GET ", url, ": TLS handshake with localhost:", server.port(),
                       " failed: certificate verify failed (self-signed certificate)"));
  }
  {
    TlsServer server(certs.path("other.pem"), certs.path("other.key"));
    const std::string url = absl::StrCat("https://localhost:", server.port(), "/x");
    auto r = HttpsFetch("GET", url, {}, "", absl::Seconds(10), {certs.path("ca.pem")});
    CHECK(r.status().code() == absl::StatusCode::kUnavailable);
    CHECK(r.status().message() ==
          absl::StrCat("GET ", url, ": TLS handshake with localhost:", server.port(),
                       " failed: certificate verify failed (hostname mismatch)"));
    CHECK(server.seen().empty());
  }
}

TEST_CASE("https: bad CA file, bad URL, timeout", "[unit][https]") {
  auto missing =
      HttpsFetch("GET", "https://localhost:1/", {}, "", absl::Seconds(5), {"/nonexistent/ca.pem"});
  CHECK(missing.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(missing.status().message() ==
        "cannot load CA file '/nonexistent/ca.pem': No such file or directory");
  CHECK(CheckCaFile("/nonexistent/ca.pem").message() == missing.status().message());
  CHECK(CheckCaFile(TestCerts().path("ca.pem")).ok());
  CHECK(!CheckCaFile(TestCerts().path("leaf.ext")).ok());

  auto plain = HttpsFetch("GET", "http://localhost:1/", {}, "", absl::Seconds(5));
  CHECK(plain.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(plain.status().message() ==
        "unsupported URL scheme 'http' in 'http://localhost:1/': only https:// is supported");

  // A listener that never answers the handshake: the whole exchange is bounded by the timeout.
  net::io_context ioc;
  tcp::acceptor silent(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  const std::string url = absl::StrCat("https://127.0.0.1:", silent.local_endpoint().port(), "/");
  auto slow = HttpsFetch("GET", url, {}, "", absl::Milliseconds(200));
  CHECK(slow.status().code() == absl::StatusCode::kDeadlineExceeded);
  CHECK(slow.status().message() == absl::StrCat("GET ", url, ": timed out after 200ms"));
}

}  // namespace
}  // namespace assay
