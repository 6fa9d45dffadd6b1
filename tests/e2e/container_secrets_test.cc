// Secrets in containers (issue 9, docs/secrets.md, docs/executors.md): `as: env` values, single-
// and multi-line, reach the job container byte for byte (the multi-line ones through the
// runtime's environment, never an argv); `as: file` secrets are at /run/secrets/NAME, read-only,
// readable by the container's user even when the image names another user than the files'
// owner; values are masked in the stored log; a multi-line secret whose name the runtime itself
// reads is refused by name; a 64 KiB one-line secret (more than podman reads of an env file
// line) arrives whole. Both shapes of a container job: one step (the container's own
// command) and several (exec). Without podman these tests FAIL (CI installs it).
#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "common/crypto/crypto.h"
#include "tests/e2e/e2e.h"
#include "tests/support/container_image.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

constexpr char kApiKey[] = "s3cr3t value 'q' \"dq\" $HOME \\b #h";
constexpr char kCert[] = "-----BEGIN TEST-----\nline-two-bbbb\nline-three-cc\n";
constexpr char kCertFile[] = "file-line-one\nfile-line-two\n";
constexpr char kKeyFile[] = "key-file-value-1234";

std::string Hash(std::string_view v) { return HexEncode(Sha256(v)); }

// The log without its first line (the executor's line, which names a random container).
std::string AfterFirstLine(const std::string& log) {
  const size_t nl = log.find('\n');
  return nl == std::string::npos ? "" : log.substr(nl + 1);
}

void PutSecret(Cluster& c, const std::string& name, const std::string& value) {
  HttpClientResponse r = MUST(c.Api("PUT", "/api/v1/repos/1/secrets/" + name,
                                    json::serialize(json::object{{"value", value}})));
  INFO(r.body);
  REQUIRE(r.status == 201);
}

// What the script below prints for the container user `uid`, values masked.
std::string Expected(const std::string& uid) {
  return absl::StrCat(uid, "\n", Hash(kApiKey), "\n", Hash(kCert), "\n", Hash(kCertFile), "\n",
                      Hash(kKeyFile), "\n", "/run/secrets/CERTF /run/secrets/KEYF\n", "400 ", uid,
                      "\n400 ", uid, "\nread-only\n[***]\n<***>\n<***x>\n");
}

constexpr char kScript[] = R"sh(
          id -u
          printf %s "$API_KEY" | sha256sum | cut -c1-64
          printf %s "$CERT" | sha256sum | cut -c1-64
          sha256sum < "$CERTF_FILE" | cut -c1-64
          sha256sum < "$KEYF_FILE" | cut -c1-64
          echo "$CERTF_FILE $KEYF_FILE"
          stat -c '%a %u' "$CERTF_FILE" "$KEYF_FILE"
          touch /run/secrets/new 2>/dev/null || echo read-only
          echo "[$API_KEY]"
          printf '<%s>\n' "$CERT"
          printf '<%s>\n' "$(cat "$CERTF_FILE"; printf x)"
)sh";

TEST_CASE("container secrets: env and file, one line and many, exact bytes, masked",
          "[e2e][container][secrets]") {
  const std::string image = MUST(testing::BusyboxImage());
  ClusterOptions o = Options();
  o.executors = "container,host";
  Cluster c(o);
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1", {"--slots", "4"}));
  MUST(c.WaitForAgents(1));
  PutSecret(c, "API_KEY", kApiKey);
  PutSecret(c, "CERT", kCert);
  PutSecret(c, "CERTF", kCertFile);
  PutSecret(c, "KEYF", kKeyFile);
  PutSecret(c, "XDG_BLOB", "blob-line-1\nblob-line-2");
  // The largest value a secret may have, one line: longer than podman reads of an env file line.
  std::string big(64 * 1024, 'b');
  for (size_t i = 0; i < big.size(); i += 100) big[i] = static_cast<char>('a' + i % 26);
  PutSecret(c, "BIG", big);
  // The file is printed with "x" after it: `$(...)` drops trailing newlines, and the masker
  // needs the whole value.
  const std::string script = kScript;
  const std::string secrets = "[API_KEY, CERT, {name: CERTF, as: file}, {name: KEYF, as: file}]";
  const std::string file =
      absl::StrReplaceAll(R"yml(jobs:
  one:
    image: { name: IMAGE, user: "1234:1234" }
    secrets: SECRETS
    steps:
      - run: |SCRIPT
  two:
    image: IMAGE
    secrets: SECRETS
    steps:
      - run: id -u >/dev/null
      - run: |SCRIPT
  big:
    image: IMAGE
    secrets: [BIG]
    steps:
      - run: printf %s "$BIG" | wc -c; printf %s "$BIG" | sha256sum | cut -c1-64
  refused:
    image: IMAGE
    secrets: [XDG_BLOB]
    steps:
      - run: echo never
)yml",
                          {{"IMAGE", image}, {"SECRETS", secrets}, {"SCRIPT", script}});
  const int64_t pid = PushFiles(c, repo, {{".assay.yml", file}});
  json::object p = MUST(c.WaitForPipelineDone(pid));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  const std::string one = MUST(c.JobLog(JobId(p, "one")));
  const std::string two = MUST(c.JobLog(JobId(p, "two")));
  const std::string refused = MUST(c.JobLog(JobId(p, "refused")));
  INFO(one << "\n----\n" << two << "\n----\n" << refused);
  CHECK(JsonString(Job(p, "one"), "state") == "succeeded");
  CHECK(JsonString(Job(p, "two"), "state") == "succeeded");
  CHECK(AfterFirstLine(one) == Expected("1234"));
  CHECK(AfterFirstLine(two) == Expected("0"));
  CHECK(JsonString(Job(p, "big"), "state") == "succeeded");
  CHECK(AfterFirstLine(MUST(c.JobLog(JobId(p, "big")))) ==
        absl::StrCat("65536\n", Hash(big), "\n"));
  // A multi-line secret whose name the runtime reads: refused by name, before the step runs.
  CHECK(JsonString(Job(p, "refused"), "state") == "error");
  const std::string why =
      "secret XDG_BLOB has a multi-line value, which the container executor passes only through "
      "the runtime's own environment, and the runtime reads a variable of that name; deliver it "
      "with `as: file`";
  CHECK(absl::StrContains(JsonString(Job(p, "refused"), "message"), why));
  CHECK(!absl::StrContains(refused, "never"));
  // No value, nor any line of one, in any stored log or the processes' own logs.
  for (const std::string v :
       {kApiKey, kCert, kCertFile, kKeyFile, "line-two-bbbb", "file-line-one", "blob-line-1"}) {
    INFO(v);
    CHECK(!absl::StrContains(one + two + refused, v));
    CHECK(!absl::StrContains(c.LogTails(), v));
  }
}

}  // namespace
}  // namespace assay::e2e
