// The OTLP exporter's delivery (server/trace/otlp_exporter.h) against a real PostgreSQL and a
// local collector that records what it was sent: a batch is marked sent only when the collector
// took it (2xx) or refused it for good (400); 503 and a collector that never answers leave it
// due, within the request's time bound; what finished long ago is skipped; a pipeline retried
// in place is due again when it finishes again; two exporters never send the same pipeline at
// once.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <deque>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/http/http_server.h"
#include "server/store/traces.h"
#include "server/trace/otlp_exporter.h"
#include "tests/db/db_fixture.h"
#include "tests/support/recording_server.h"

namespace assay::dbtest {
namespace {

using testing::RecordingServer;

// What the collector was sent, in order.
std::vector<std::string> Bodies(RecordingServer& collector) {
  std::vector<std::string> out;
  for (const http::Request& r : collector.requests()) out.push_back(r.body);
  return out;
}

// Finished pipelines of the fixture's repository, created `age_s` seconds ago.
int64_t FinishedPipeline(DbFixture& f, int age_s) {
  return std::stoll(f.One(absl::StrCat(
      "INSERT INTO pipelines (repo_id, event, ref, commit_sha, state, created_at, finished_at) "
      "VALUES (",
      f.repo_id, ", 'push', 'refs/heads/main', repeat('b', 40), 'succeeded', now() - interval '",
      age_s + 5, " seconds', now() - interval '", age_s, " seconds') RETURNING id")));
}

trace::OtlpExporterOptions Options(const std::string& url) {
  trace::OtlpExporterOptions o;
  o.endpoint = url + "/v1/traces";
  o.instance = "test:1";
  o.timeout = absl::Seconds(2);
  return o;
}

TEST_CASE("traces: a batch is marked sent only when the collector took it or refused it for good",
          "[db][trace]") {
  DbFixture f;
  store::TraceStore store(&f.db);
  const int64_t p1 = FinishedPipeline(f, 10);
  const int64_t p2 = FinishedPipeline(f, 5);
  auto due = [&] {
    return f.Count(
        "SELECT count(*) FROM pipelines WHERE finished_at IS NOT NULL AND traced_at IS DISTINCT "
        "FROM finished_at");
  };
  REQUIRE(due() == 2);

  RecordingServer busy({{503, "{}"}, {502, "{}"}, {429, "{}"}});
  trace::OtlpExporter exporter(&store, nullptr, Options(busy.url()));
  for (int i = 0; i < 3; ++i) {
    auto r = exporter.ExportOnce();
    CHECK(r.status().code() == absl::StatusCode::kUnavailable);
    CHECK(due() == 2);  // nothing lost
  }
  auto fourth = exporter.ExportOnce();
  REQUIRE(fourth.ok());
  CHECK(*fourth == 2);
  // The fourth request was taken: both pipelines in one batch, oldest first.
  CHECK(due() == 0);
  std::vector<std::string> sent = Bodies(busy);
  REQUIRE(sent.size() == 4);
  CHECK(sent[0] == sent[3]);  // the same spans each time
  CHECK(sent[3].find(absl::StrCat("\"intValue\":\"", p1, "\"")) <
        sent[3].find(absl::StrCat("\"intValue\":\"", p2, "\"")));

  // Retried in place and finished again: due again, a new trace.
  f.Exec(
      absl::StrCat("UPDATE pipelines SET state = 'running', finished_at = NULL WHERE id = ", p1));
  CHECK(due() == 0);
  f.Exec(
      absl::StrCat("UPDATE pipelines SET state = 'failed', finished_at = now() WHERE id = ", p1));
  CHECK(due() == 1);
  RecordingServer refusing({{400, "{}"}});
  trace::OtlpExporter strict(&store, nullptr, Options(refusing.url()));
  auto r = strict.ExportOnce();
  REQUIRE(r.ok());
  CHECK(*r == 1);  // refused for good: logged, counted, not sent again
  CHECK(due() == 0);
  REQUIRE(Bodies(refusing).size() == 1);
  CHECK(Bodies(refusing)[0] != sent[3]);
}

TEST_CASE("traces: a collector that never answers costs one request's time bound, loses nothing",
          "[db][trace]") {
  DbFixture f;
  store::TraceStore store(&f.db);
  FinishedPipeline(f, 1);
  // A socket that accepts connections (the kernel's backlog) and never reads or answers.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  REQUIRE(listen(fd, 8) == 0);
  socklen_t len = sizeof(a);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  trace::OtlpExporterOptions o = Options(absl::StrCat("http://127.0.0.1:", ntohs(a.sin_port)));
  o.timeout = absl::Milliseconds(300);
  trace::OtlpExporter silent(&store, nullptr, o);
  auto r = silent.ExportOnce();
  close(fd);
  CHECK(r.status().code() == absl::StatusCode::kUnavailable);
  CHECK(f.Count("SELECT count(*) FROM pipelines WHERE finished_at IS NOT NULL AND traced_at IS "
                "DISTINCT FROM finished_at") == 1);
}

TEST_CASE("traces: what finished long before it was seen is skipped, not sent", "[db][trace]") {
  DbFixture f;
  store::TraceStore store(&f.db);
  const int64_t old = FinishedPipeline(f, 7200);
  const int64_t fresh = FinishedPipeline(f, 1);
  RecordingServer c;
  trace::OtlpExporter exporter(&store, nullptr, Options(c.url()));
  auto r = exporter.ExportOnce();
  REQUIRE(r.ok());
  CHECK(*r == 1);
  REQUIRE(Bodies(c).size() == 1);
  CHECK(absl::StrContains(Bodies(c)[0], absl::StrCat("\"intValue\":\"", fresh, "\"")));
  CHECK_FALSE(absl::StrContains(Bodies(c)[0], absl::StrCat("\"intValue\":\"", old, "\"")));
  CHECK(f.Count("SELECT count(*) FROM pipelines WHERE finished_at IS NOT NULL AND traced_at IS "
                "DISTINCT FROM finished_at") == 0);
}

TEST_CASE("traces: two exporters at once never hold the same pipeline", "[db][trace]") {
  DbFixture f;
  store::TraceStore store(&f.db);
  const int64_t p = FinishedPipeline(f, 1);
  // The first claims the pipeline and, while it holds it, the second finds nothing due.
  int inner = -1;
  auto outer = store.ExportPipelines(10, [&](const std::vector<store::PipelineTrace>& batch) {
    REQUIRE(batch.size() == 1);
    CHECK(batch[0].id == p);
    auto second = store.ExportPipelines(10, [&](const std::vector<store::PipelineTrace>& b) {
      inner = static_cast<int>(b.size());
      return absl::OkStatus();
    });
    REQUIRE(second.ok());
    CHECK(*second == 0);
    return absl::OkStatus();
  });
  REQUIRE(outer.ok());
  CHECK(*outer == 1);
  CHECK(inner == -1);  // the second never got a batch to send
}

}  // namespace
}  // namespace assay::dbtest
