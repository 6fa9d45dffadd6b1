// End to end (issue 8, item 4): agents enroll with a one-time token and then present their own
// credential over TLS, pinned to the server's CA. Hostile agents: forged and revoked
// credentials, replayed and expired enrollment tokens, a Hello claiming another agent's name or
// more labels than allowed, reports carrying another agent's attempt token, a wrong CA.
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_split.h"
#include "assay/v1/agent.grpc.pb.h"
#include "common/crypto/agent_secret.h"
#include "common/proc/subprocess.h"
#include "server/agents/server_tls.h"
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;
using testing::Process;
using testing::ReadFileOrEmpty;

ClusterOptions Enrolling(std::vector<std::string> server_flags = {}) {
  ClusterOptions o = Options(std::move(server_flags));
  o.shared_token_agents = false;
  return o;
}

// `assay agents token create ARGS`: the token printed alone on stdout.
std::string CreateToken(Cluster& c, std::vector<std::string> args) {
  args.insert(args.begin(), {"agents", "token", "create"});
  CommandResult r = MUST(c.RunCli(args));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  REQUIRE(r.out.size() == 13 + 64 + 1);
  return r.out.substr(0, r.out.size() - 1);
}

std::string WriteSecretFile(Cluster& c, const std::string& name, const std::string& secret) {
  const std::string path = c.dir() + "/" + name;
  std::ofstream(path) << secret << "\n";
  ::chmod(path.c_str(), 0600);
  return path;
}

std::shared_ptr<grpc::Channel> TlsChannel(Cluster& c, const std::string& ca_path) {
  grpc::SslCredentialsOptions so;
  so.pem_root_certs = ReadFileOrEmpty(ca_path);
  return grpc::CreateChannel(c.grpc_address(), grpc::SslCredentials(so));
}

struct Answer {
  grpc::StatusCode code;
  std::string message;
  v1::EnrollResponse response;
};

Answer Enroll(const std::shared_ptr<grpc::Channel>& ch, const std::string& token,
              const std::string& name) {
  auto stub = v1::AgentService::NewStub(ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  v1::EnrollRequest req;
  req.set_enrollment_token(token);
  req.set_name(name);
  Answer a;
  grpc::Status s = stub->Enroll(&ctx, req, &a.response);
  a.code = s.error_code();
  a.message = s.error_message();
  return a;
}

v1::AgentMessage Hello(const std::string& name, std::vector<std::string> labels = {}) {
  v1::AgentMessage m;
  m.mutable_hello()->set_name(name);
  m.mutable_hello()->set_cpu_slots(1);
  for (auto& l : labels) m.mutable_hello()->add_labels(l);
  return m;
}

// Opens a Connect stream presenting `bearer`, sends `msgs`, reads until the server has sent
// `acks` acks (or ended the stream), half-closes and returns how the stream ended and the acks.
struct StreamEnd {
  grpc::StatusCode code;
  std::string message;
  std::vector<v1::Ack> acks;
};
StreamEnd Converse(const std::shared_ptr<grpc::Channel>& ch, const std::string& bearer,
                   const std::vector<v1::AgentMessage>& msgs, size_t acks = 0) {
  auto stub = v1::AgentService::NewStub(ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  if (!bearer.empty()) ctx.AddMetadata("authorization", "Bearer " + bearer);
  auto stream = stub->Connect(&ctx);
  for (const auto& m : msgs) stream->Write(m);
  StreamEnd end;
  v1::ServerMessage in;
  while (end.acks.size() < acks && stream->Read(&in)) {
    if (in.has_ack()) end.acks.push_back(in.ack());
  }
  stream->WritesDone();
  while (stream->Read(&in)) {
  }
  grpc::Status s = stream->Finish();
  end.code = s.error_code();
  end.message = s.error_message();
  return end;
}

// The whitespace-separated cells of the table row of `out` whose first cell is `first`.
std::vector<std::string> RowOf(const std::string& out, const std::string& first) {
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    std::vector<std::string> cells = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (!cells.empty() && cells[0] == first) return cells;
  }
  return {};
}

absl::StatusOr<std::string> MakeTempDirForTest() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "assay-certs-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) return absl::InternalError("mkdtemp failed");
  return tmpl;
}

std::string CredentialOf(Cluster& c, const std::string& agent) {
  std::string text = ReadFileOrEmpty(c.dir() + "/agent-" + agent + "/agent.credential");
  auto cred = ParseAgentSecret(text, AgentSecretKind::kCredential);
  REQUIRE(cred.ok());
  return *cred;
}

TEST_CASE(
    "an agent enrolls once with a one-time token and runs jobs over TLS with its own "
    "credential",
    "[e2e][enroll]") {
  Cluster c(Enrolling());
  MUST(c.StartServer());
  // The generated key files are private to the server.
  struct stat st;
  REQUIRE(::stat((c.dir() + "/server-data/tls/ca.key").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(::stat((c.dir() + "/server-data/tls/server.key").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  GitRepo repo = MakeRepo(c);
  const std::string token = CreateToken(c, {"--name", "e1", "--labels", "linux,gpu"});
  const std::string token_file = WriteSecretFile(c, "e1.token", token);
  Process* agent =
      MUST(c.StartAgent("e1", {"--server-ca", c.server_ca_path(), "--enroll-token-file", token_file,
                               "--labels", "linux"}));
  MUST(c.WaitForAgents(1));
  // The credential is kept with mode 0600; the server keeps only hashes of both secrets.
  const std::string cred_path = c.dir() + "/agent-e1/agent.credential";
  REQUIRE(::stat(cred_path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  const std::string cred = CredentialOf(c, "e1");
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM agents WHERE name = 'e1' AND credential_hash = "
                        "sha256(convert_to('" +
                        cred +
                        "', 'UTF8')) AND allowed_labels = "
                        "'{linux,gpu}'")) == 1);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM agent_enrollment_tokens WHERE token_hash = "
                        "sha256(convert_to('" +
                        token +
                        "', 'UTF8')) AND used_at IS NOT NULL "
                        "AND agent_id = (SELECT id FROM agents WHERE name = 'e1')")) == 1);
  CommandResult list = MUST(c.RunCli({"agents", "list"}));
  CHECK(RowOf(list.out, "e1") == std::vector<std::string>{"e1", "online", "enrolled", "linux", "1",
                                                          "no", RowOf(list.out, "e1").back()});

  int64_t p = PushFiles(c, repo,
                        {{".assay.yml",
                          "jobs:\n  b:\n    runs_on: {labels: [linux]}\n"
                          "    steps: [{run: \"echo over tls\"}]\n"}});
  json::object done = MUST(c.WaitForPipelineDone(p));
  CHECK(JsonString(done, "state") == "succeeded");
  CHECK(MUST(c.JobLog(JobId(done, "b"))) == "over tls\n");

  // A restart uses the stored credential; the used token is not needed (nor usable).
  agent->Stop();
  MUST(c.WaitForAgents(0));
  MUST(c.StartAgent("e1", {"--server-ca", c.server_ca_path(), "--labels", "linux"}));
  MUST(c.WaitForAgents(1));
  Answer replay = Enroll(TlsChannel(c, c.server_ca_path()), token, "e1");
  CHECK(replay.code == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(replay.message == "enrollment token is unknown, used or expired");
}

TEST_CASE("enrollment refuses forged, malformed, replayed, expired and oversized requests",
          "[e2e][enroll]") {
  Cluster c(Enrolling());
  MUST(c.StartServer());
  auto ch = TlsChannel(c, c.server_ca_path());
  const std::string kRefused = "enrollment token is unknown, used or expired";

  Answer forged = Enroll(ch, NewAgentSecret(AgentSecretKind::kEnrollmentToken), "x1");
  CHECK(forged.code == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(forged.message == kRefused);
  Answer malformed = Enroll(ch, "assay-enroll-nothex", "x1");
  CHECK(malformed.code == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(malformed.message ==
        "enrollment token must have 64 hex digits after 'assay-enroll-', "
        "found 6 characters");
  Answer huge = Enroll(ch, std::string(1 << 20, 'a'), "x1");
  CHECK(huge.code == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(huge.message == "enrollment token is too long (1048576 bytes; the format has 77)");
  // A credential is not an enrollment token.
  Answer wrong_kind = Enroll(ch, NewAgentSecret(AgentSecretKind::kCredential), "x1");
  CHECK(wrong_kind.code == grpc::StatusCode::INVALID_ARGUMENT);

  const std::string token = CreateToken(c, {"--labels", "linux"});
  Answer too_long = Enroll(ch, token, std::string(101, 'n'));
  CHECK(too_long.code == grpc::StatusCode::INVALID_ARGUMENT);
  Answer ok = Enroll(ch, token, "x1");
  REQUIRE(ok.code == grpc::StatusCode::OK);
  CHECK(ok.response.name() == "x1");
  CHECK(ParseAgentSecret(ok.response.credential(), AgentSecretKind::kCredential).ok());
  CHECK(std::vector<std::string>(ok.response.allowed_labels().begin(),
                                 ok.response.allowed_labels().end()) ==
        std::vector<std::string>{"linux"});
  Answer replayed = Enroll(ch, token, "x2");
  CHECK(replayed.code == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(replayed.message == kRefused);
  Answer taken = Enroll(ch, CreateToken(c, {}), "x1");
  CHECK(taken.code == grpc::StatusCode::ALREADY_EXISTS);

  const std::string expiring = CreateToken(c, {"--expires", "1m"});
  MUST(
      c.Query("UPDATE agent_enrollment_tokens SET expires_at = now() - interval '1 second' "
              "WHERE used_at IS NULL AND expires_at < now() + interval '2 minutes'"));
  Answer expired = Enroll(ch, expiring, "x3");
  CHECK(expired.code == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(expired.message == kRefused);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM agents")) == 1);

  // The admin API's limits on what a token grants.
  auto create = [&](const std::string& body) {
    return MUST(c.Api("POST", "/api/v1/agents/enrollment-tokens", body)).status;
  };
  json::array many;
  for (int i = 0; i < 65; ++i) many.push_back(json::value(absl::StrCat("l", i)));
  CHECK(create(json::serialize(json::object{{"labels", many}})) == 400);
  CHECK(create(json::serialize(json::object{{"labels", json::array{std::string(101, 'l')}}})) ==
        400);
  CHECK(create(R"({"labels":["has space"]})") == 400);
  CHECK(create(json::serialize(json::object{{"name", std::string(101, 'n')}})) == 400);
  CHECK(create(R"({"name":"../etc"})") == 400);
  CHECK(create(R"({"expires_in":"0s"})") == 400);
  CHECK(create(R"({"expires_in":"1000h"})") == 400);
  CHECK(create(R"({"other":1})") == 400);
  CHECK(MUST(c.Fetch("POST", "/api/v1/agents/enrollment-tokens", {}, "{}")).status == 401);
}

TEST_CASE("a stream with a forged, foreign, over-labelled or revoked credential is refused",
          "[e2e][enroll]") {
  Cluster c(Enrolling());
  MUST(c.StartServer());
  auto ch = TlsChannel(c, c.server_ca_path());
  Answer e1 = Enroll(ch, CreateToken(c, {"--labels", "linux"}), "e1");
  Answer e2 = Enroll(ch, CreateToken(c, {}), "e2");
  REQUIRE(e1.code == grpc::StatusCode::OK);
  REQUIRE(e2.code == grpc::StatusCode::OK);
  const std::string& cred1 = e1.response.credential();

  StreamEnd forged = Converse(ch, NewAgentSecret(AgentSecretKind::kCredential), {Hello("e1")});
  CHECK(forged.code == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(forged.message == "unknown or revoked agent credential");
  StreamEnd garbled = Converse(ch, "assay-agent-zz", {Hello("e1")});
  CHECK(garbled.code == grpc::StatusCode::UNAUTHENTICATED);
  // No shared token on this server: any other bearer is refused.
  StreamEnd shared = Converse(ch, testing::kAgentToken, {Hello("e1")});
  CHECK(shared.code == grpc::StatusCode::UNAUTHENTICATED);

  StreamEnd claims_e2 = Converse(ch, cred1, {Hello("e2")});
  CHECK(claims_e2.code == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(claims_e2.message == "this credential belongs to agent 'e1', not 'e2'");
  StreamEnd extra = Converse(ch, cred1, {Hello("e1", {"linux", "gpu", "h100"})});
  CHECK(extra.code == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(extra.message == "labels not allowed for agent 'e1': gpu,h100 (allowed: linux)");
  std::vector<std::string> many(65, "linux");
  StreamEnd too_many = Converse(ch, cred1, {Hello("e1", many)});
  CHECK(too_many.code == grpc::StatusCode::INVALID_ARGUMENT);
  StreamEnd too_long = Converse(ch, cred1, {Hello("e1", {std::string(101, 'l')})});
  CHECK(too_long.code == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM agents WHERE state = 'online'")) == 0);
  CHECK(MUST(c.QueryInt("SELECT generation FROM agents WHERE name = 'e1'")) == 0);

  CommandResult revoked = MUST(c.RunCli({"agents", "revoke", "e1"}));
  CHECK(revoked.out == "agent e1: revoked\n");
  StreamEnd after = Converse(ch, cred1, {Hello("e1", {"linux"})});
  CHECK(after.code == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(after.message == "unknown or revoked agent credential");
  CHECK(MUST(c.RunCli({"agents", "revoke", "nobody"})).exit_code == 1);
}

TEST_CASE("revoke and disable close the agent's stream and refuse it until enabled",
          "[e2e][enroll]") {
  Cluster c(Enrolling());
  MUST(c.StartServer());
  const std::string ca = c.server_ca_path();
  Process* a1 =
      MUST(c.StartAgent("e1", {"--server-ca", ca, "--enroll-token-file",
                               WriteSecretFile(c, "e1.token", CreateToken(c, {"--name", "e1"}))}));
  Process* a2 =
      MUST(c.StartAgent("e2", {"--server-ca", ca, "--enroll-token-file",
                               WriteSecretFile(c, "e2.token", CreateToken(c, {"--name", "e2"}))}));
  MUST(c.WaitForAgents(2));
  const std::string cred1 = CredentialOf(c, "e1"), cred2 = CredentialOf(c, "e2");

  CHECK(MUST(c.RunCli({"agents", "revoke", "e1"})).out == "agent e1: revoked\n");
  // The agent is told at once and does not come back (it exits: retrying cannot help).
  std::optional<int> code1 = a1->Wait(absl::Seconds(30));
  REQUIRE(code1.has_value());
  CHECK(*code1 == 1);
  CHECK(ReadFileOrEmpty(a1->log_path())
            .find("server refused this agent: agent 'e1' was revoked by an admin") !=
        std::string::npos);
  MUST(c.WaitForAgents(1));
  CHECK(Converse(TlsChannel(c, ca), cred1, {Hello("e1")}).code ==
        grpc::StatusCode::UNAUTHENTICATED);

  CHECK(MUST(c.RunCli({"agents", "disable", "e2"})).out == "agent e2: disabled\n");
  std::optional<int> code2 = a2->Wait(absl::Seconds(30));
  REQUIRE(code2.has_value());
  CHECK(*code2 == 1);
  MUST(c.WaitForAgents(0));
  StreamEnd disabled = Converse(TlsChannel(c, ca), cred2, {Hello("e2")});
  CHECK(disabled.code == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(disabled.message == "agent 'e2' is disabled (assay agents enable e2)");
  CHECK(MUST(c.RunCli({"agents", "enable", "e2"})).out == "agent e2: enabled\n");
  MUST(c.StartAgent("e2", {"--server-ca", ca}));
  MUST(c.WaitForAgents(1));
  CommandResult list = MUST(c.RunCli({"agents", "list"}));
  CHECK(RowOf(list.out, "e1").at(2) == "revoked");
  CHECK(RowOf(list.out, "e2").at(1) == "online");
  CHECK(RowOf(list.out, "e2").at(2) == "enrolled");
}

TEST_CASE("reports carrying another agent's attempt token are refused and change nothing",
          "[e2e][enroll]") {
  Cluster c(Enrolling());
  MUST(c.StartServer());
  const std::string ca = c.server_ca_path();
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("e1", {"--server-ca", ca, "--enroll-token-file",
                           WriteSecretFile(c, "e1.token", CreateToken(c, {"--name", "e1"}))}));
  MUST(c.WaitForAgents(1));
  auto ch = TlsChannel(c, ca);
  Answer e2 = Enroll(ch, CreateToken(c, {}), "e2");
  REQUIRE(e2.code == grpc::StatusCode::OK);

  const std::string go = c.dir() + "/go";
  int64_t p = PushFiles(
      c, repo,
      {{".assay.yml", absl::StrCat("jobs:\n  b:\n    timeout: 60s\n    steps:\n      - run: |\n"
                                   "          echo started\n"
                                   "          for i in $(seq 600); do [ -f ",
                                   go,
                                   " ] && break; sleep 0.1; done\n"
                                   "          echo finished\n")}});
  MUST(c.WaitForJobState(p, "b", "running"));
  auto row = MUST(c.Query("SELECT id, attempt_token FROM jobs WHERE name = 'b'"));
  const int64_t job = std::stoll(*row[0][0]);
  const std::string token = *row[0][1];

  // Another agent's credential with e1's name: refused, e1 keeps its stream and its job.
  StreamEnd takeover = Converse(ch, e2.response.credential(), {Hello("e1")});
  CHECK(takeover.code == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(takeover.message == "this credential belongs to agent 'e2', not 'e1'");

  v1::AgentMessage rejected, log, result, heartbeat;
  rejected.mutable_rejected()->set_job_id(job);
  rejected.mutable_rejected()->set_attempt_token(token);
  rejected.mutable_rejected()->set_reason("forged");
  heartbeat.mutable_heartbeat()->add_running()->set_job_id(job);
  heartbeat.mutable_heartbeat()->mutable_running(0)->set_attempt_token(token);
  log.mutable_log()->set_job_id(job);
  log.mutable_log()->set_attempt_token(token);
  log.mutable_log()->set_seq(1);
  log.mutable_log()->set_data("forged log\n");
  result.mutable_result()->set_job_id(job);
  result.mutable_result()->set_attempt_token(token);
  result.mutable_result()->set_outcome(v1::JOB_OUTCOME_FAILED);
  result.mutable_result()->set_exit_code(66);
  StreamEnd forged =
      Converse(ch, e2.response.credential(), {Hello("e2"), rejected, heartbeat, log, result}, 2);
  REQUIRE(forged.acks.size() == 2);
  for (const auto& ack : forged.acks) {
    CHECK(ack.refused());
    CHECK(!ack.result_recorded());
    CHECK(ack.message() == "this attempt was given to another agent");
  }
  // Still e1's first attempt, running; the forged chunk and result were not stored.
  CHECK(MUST(c.QueryInt(absl::StrCat("SELECT count(*) FROM jobs WHERE id = ", job,
                                     " AND state = 'running' AND attempt = 1 AND attempt_token = '",
                                     token, "'"))) == 1);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM log_chunks WHERE data = "
                        "convert_to('forged log' || chr(10), 'UTF8')")) == 0);

  std::ofstream(go) << "go\n";
  json::object done = MUST(c.WaitForPipelineDone(p));
  CHECK(JsonString(done, "state") == "succeeded");
  CHECK(JsonString(Job(done, "b"), "agent") == "e1");
  CHECK(Job(done, "b").at("attempt").as_int64() == 1);
  CHECK(MUST(c.JobLog(job)) == "started\nfinished\n");
}

TEST_CASE("an agent pinned to another CA refuses the server: a clear log line, nothing assigned",
          "[e2e][enroll]") {
  Cluster c(Enrolling());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  // Another CA, made the way a server makes its own.
  auto other = LoadOrCreateServerTls(c.dir() + "/other", "", "", {});
  REQUIRE(other.ok());
  const std::string token = CreateToken(c, {"--name", "e1"});
  Process* agent = MUST(c.StartAgent("e1", {"--server-ca", other->ca_path, "--enroll-token-file",
                                            WriteSecretFile(c, "e1.token", token)}));
  int64_t p = PushFiles(c, repo, {{".assay.yml", "jobs:\n  b:\n    steps: [{run: \"true\"}]\n"}});
  MUST(c.WaitUntil("the agent to say it cannot connect", [&](std::string& seen) {
    seen = agent->LogTail();
    return seen.find("cannot connect to the server at " + c.grpc_address()) != std::string::npos &&
           seen.find("is its certificate signed by the CA given as --server-ca") !=
               std::string::npos;
  }));
  CHECK(!agent->Exited());  // it keeps trying, in case the server's certificate is fixed
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM agents")) == 0);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM agent_enrollment_tokens WHERE used_at IS NULL")) ==
        1);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM job_attempts")) == 0);
  CHECK(JsonString(Job(MUST(c.ApiObject("GET", absl::StrCat("/api/v1/pipelines/", p))), "b"),
                   "state") == "queued");
}

// A client CA and a certificate it signed for TLS client authentication, made with the openssl
// command line in `dir`: dir/client-ca.pem, dir/client.pem, dir/client.key.
void MakeClientCertificate(const std::string& dir) {
  std::ofstream(dir + "/client.ext") << "extendedKeyUsage=clientAuth\n";
  const std::vector<std::vector<std::string>> steps = {
      {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", "client-ca.key", "-out", "client-ca.pem", "-days", "2", "-subj",
       "/CN=assay e2e client CA"},
      {"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=e1"},
      {"openssl", "x509", "-req", "-in", "client.csr", "-CA", "client-ca.pem", "-CAkey",
       "client-ca.key", "-CAcreateserial", "-out", "client.pem", "-days", "2", "-extfile",
       "client.ext"}};
  for (const auto& argv : steps) {
    CommandResult r = MUST(RunCommand(argv, dir, {}, {}, absl::Seconds(60)));
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
  }
}

TEST_CASE("with --tls-client-ca, only an agent presenting a client certificate connects",
          "[e2e][enroll]") {
  const std::string certs = MUST(MakeTempDirForTest());
  MakeClientCertificate(certs);
  Cluster c(Enrolling({"--tls-client-ca", certs + "/client-ca.pem"}));
  MUST(c.StartServer());
  const std::string ca = c.server_ca_path();
  const std::string token = CreateToken(c, {"--name", "e1"});
  // Without a client certificate the handshake fails: the token is never sent.
  Process* bare = MUST(c.StartAgent(
      "e1", {"--server-ca", ca, "--enroll-token-file", WriteSecretFile(c, "e1.token", token)}));
  MUST(c.WaitUntil("the agent to say it cannot connect", [&](std::string& seen) {
    seen = bare->LogTail();
    return seen.find("cannot connect to the server at") != std::string::npos;
  }));
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM agent_enrollment_tokens WHERE used_at IS NULL")) ==
        1);
  bare->Stop();
  MUST(c.StartAgent("e1",
                    {"--server-ca", ca, "--enroll-token-file", c.dir() + "/e1.token", "--tls-cert",
                     certs + "/client.pem", "--tls-key", certs + "/client.key"}));
  MUST(c.WaitForAgents(1));
  std::error_code ec;
  std::filesystem::remove_all(certs, ec);
}

TEST_CASE(
    "on a shared-token network, a Hello claiming an enrolled agent's name is refused and "
    "does not take its job",
    "[e2e][enroll]") {
  Cluster c(Options());  // shared token and plaintext gRPC, as on a trusted network
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("e1", {"--enroll-token-file",
                           WriteSecretFile(c, "e1.token", CreateToken(c, {"--name", "e1"}))}));
  MUST(c.WaitForAgents(1));
  const std::string go = c.dir() + "/go";
  int64_t p = PushFiles(
      c, repo,
      {{".assay.yml", absl::StrCat("jobs:\n  b:\n    timeout: 60s\n    steps:\n      - run: |\n"
                                   "          for i in $(seq 600); do [ -f ",
                                   go,
                                   " ] && break; sleep 0.1; done\n"
                                   "          echo done\n")}});
  MUST(c.WaitForJobState(p, "b", "running"));
  auto ch = grpc::CreateChannel(c.grpc_address(), grpc::InsecureChannelCredentials());
  StreamEnd impostor = Converse(ch, testing::kAgentToken, {Hello("e1")});
  CHECK(impostor.code == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(impostor.message == "agent 'e1' is enrolled: it must connect with its own credential");
  std::ofstream(go) << "go\n";
  json::object done = MUST(c.WaitForPipelineDone(p));
  CHECK(JsonString(done, "state") == "succeeded");
  CHECK(Job(done, "b").at("attempt").as_int64() == 1);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM job_attempts")) == 1);
}

}  // namespace
}  // namespace assay::e2e

namespace assay::e2e {
namespace {

TEST_CASE("revoking through one replica closes the agent's stream on another", "[e2e][enroll]") {
  Cluster c(Options());  // plaintext: each replica would otherwise make its own CA
  MUST(c.StartServer());
  const int replica = MUST(c.StartReplica());
  Process* agent =
      MUST(c.StartAgent("e1", {"--server", c.replica_grpc_address(replica), "--enroll-token-file",
                               WriteSecretFile(c, "e1.token", CreateToken(c, {"--name", "e1"}))}));
  MUST(c.WaitUntil("e1 online", [&](std::string& seen) {
    auto rows = c.Query("SELECT state FROM agents WHERE name = 'e1'");
    seen = rows.ok() && !rows->empty() && (*rows)[0][0] ? *(*rows)[0][0] : "";
    return seen == "online";
  }));
  // The first server has no stream of e1: the replica finds the revocation in its access check.
  CHECK(MUST(c.RunCli({"agents", "revoke", "e1"})).out == "agent e1: revoked\n");
  std::optional<int> code = agent->Wait(absl::Seconds(30));
  REQUIRE(code.has_value());
  CHECK(*code == 1);
  CHECK(ReadFileOrEmpty(agent->log_path())
            .find("server refused this agent: this agent was revoked or disabled") !=
        std::string::npos);
}

}  // namespace
}  // namespace assay::e2e
