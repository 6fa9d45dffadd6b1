// build_image against a real database (issue 9, docs/images.md): the build step reaches the
// agent's Assignment, the images a result reports are stored under the attempt's token (a stale
// token stores none), and a later job's `image: ${{ jobs.build.image }}` is resolved at dispatch
// to <repository>@<digest> with the builder's registry_secret as its pull credential (none for
// an untrusted pipeline); a builder that pushed nothing fails the job naming it. A hostile
// agent's list (too many, a bad digest, an oversized reference) is dropped, the result kept.

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "assay/v1/agent.grpc.pb.h"
#include "server/agents/agent_service.h"
#include "server/metrics/metrics.h"
#include "server/scheduler/dispatcher.h"
#include "server/secrets/job_secrets.h"
#include "server/store/job_images.h"
#include "server/store/secrets.h"
#include "tests/db/agent_service_rig.h"
#include "tests/db/db_fixture.h"
#include "tests/db/fake_channel.h"

namespace assay::dbtest {
namespace {

const std::string kKey(32, '\x09');
const std::string kDigest = "sha256:" + std::string(64, 'c');
const std::string kDigestV1 = "sha256:" + std::string(64, 'd');

struct ImagesFixture : DbFixture {
  store::SecretStore secrets{&db};
  store::JobImageStore images{&db};
  KeyRing keys{kKey};
  Metrics metrics;
  std::unique_ptr<Dispatcher> dispatcher;
  std::shared_ptr<FakeChannel> channel = std::make_shared<FakeChannel>();
  int64_t agent_id = 0;

  ImagesFixture() {
    auto sealed = keys.Seal("robot:pa55word", SecretAad(repo_id, "", "REG"));
    REQUIRE(sealed.ok());
    REQUIRE(secrets.Put(repo_id, "", "REG", *sealed, 200).ok());
    DispatcherOptions o;
    o.secret_key = keys;
    o.secrets = &secrets;
    o.images = &images;
    dispatcher = std::make_unique<Dispatcher>(&jobs, &metrics, &clock, o);
    agent_id = Agent("a1");
    dispatcher->AgentConnected(Capacity(agent_id, "a1", 8), {}, channel);
  }

  // Dispatches and returns the assignments sent, by job name.
  std::map<std::string, v1::Assignment> Dispatch() {
    dispatcher->DispatchOnce();
    std::map<std::string, v1::Assignment> out;
    for (v1::Assignment& a : channel->TakeAssignments()) out[a.job_name()] = std::move(a);
    return out;
  }

  void Succeed(const v1::Assignment& a, std::vector<store::JobImage> pushed) {
    store::ResultReport r;
    r.job_id = a.job_id();
    r.attempt_token = a.attempt_token();
    r.state = "succeeded";
    r.exit_code = 0;
    r.images = std::move(pushed);
    auto out = jobs.Finish(r);
    REQUIRE(out.ok());
    REQUIRE(out->fence == store::Fence::kOk);
    dispatcher->JobReleased(agent_id, a.job_id());
  }
};

constexpr char kBuildSpec[] =
    R"({"steps":[{"name":"image","run":"","build_image":{"context":"docker","file":"",)"
    R"("tags":["127.0.0.1:5000/team/app","127.0.0.1:5000/team/app:v1"],"push":true,)"
    R"("registry_secret":"REG"}}],"env":{},"timeout_s":60,)"
    R"("secrets":[{"name":"REG","as":"env"}]})";

store::NewJob UseJob(const std::string& name, const std::string& builder, bool trusted = true) {
  store::NewJob j = Job(name, {builder});
  j.spec_json = std::string(R"({"steps":[{"name":"s","run":"cat /built.txt"}],"env":{},)") +
                R"("timeout_s":60,"image":{"name":"${{ jobs.)" + builder +
                R"(.image }}","pull":"if_missing"},"container_limits":{"cpus":1,"memory_mb":0})" +
                (trusted ? "" : R"(,"trusted":false)") + "}";
  return j;
}

TEST_CASE("build_image: step in the assignment, images stored, image pinned with its credential",
          "[db][build_image]") {
  ImagesFixture f;
  store::NewJob build = Job("build");
  build.spec_json = kBuildSpec;
  const int64_t p = f.CreatePipeline({build, UseJob("use", "build")});
  auto sent = f.Dispatch();
  REQUIRE(sent.size() == 1);
  const v1::Assignment& a = sent.at("build");
  REQUIRE(a.steps_size() == 1);
  REQUIRE(a.steps(0).has_build_image());
  const v1::BuildImageStep& b = a.steps(0).build_image();
  CHECK(b.context() == "docker");
  CHECK(b.file() == "");
  CHECK(std::vector<std::string>(b.tags().begin(), b.tags().end()) ==
        std::vector<std::string>{"127.0.0.1:5000/team/app", "127.0.0.1:5000/team/app:v1"});
  CHECK(b.push());
  CHECK(b.registry_secret() == "REG");
  REQUIRE(a.secrets_size() == 1);
  CHECK(a.secrets(0).value() == "robot:pa55word");

  f.Succeed(a, {{0, "127.0.0.1:5000/team/app:abc123", kDigest, true},
                {0, "127.0.0.1:5000/team/app:v1", kDigestV1, false}});
  const int64_t build_id = f.JobId(p, "build");
  CHECK(f.Query("SELECT attempt, seq, reference, digest, is_primary FROM job_images WHERE "
                "job_id = " +
                std::to_string(build_id) + " ORDER BY seq") ==
        Rows{{"1", "0", "127.0.0.1:5000/team/app:abc123", kDigest, "t"},
             {"1", "1", "127.0.0.1:5000/team/app:v1", kDigestV1, "f"}});
  CHECK(*f.images.ImagesOf(build_id) ==
        std::vector<store::JobImage>{{1, "127.0.0.1:5000/team/app:abc123", kDigest, true},
                                     {1, "127.0.0.1:5000/team/app:v1", kDigestV1, false}});

  sent = f.Dispatch();
  REQUIRE(sent.size() == 1);
  const v1::Assignment& use = sent.at("use");
  CHECK(use.image().name() == "127.0.0.1:5000/team/app@" + kDigest);
  REQUIRE(use.has_image_pull_credential());
  CHECK(use.image_pull_credential().registry() == "127.0.0.1:5000");
  CHECK(use.image_pull_credential().username() == "robot");
  CHECK(use.image_pull_credential().password() == "pa55word");
  CHECK(use.secrets_size() == 0);  // the credential is not one of the job's secrets
}

TEST_CASE(
    "build_image: a builder that pushed nothing fails the job that runs its image, an "
    "untrusted job gets no credential, a stale result stores no image",
    "[db][build_image]") {
  ImagesFixture f;
  store::NewJob build = Job("build");
  build.spec_json = kBuildSpec;
  store::NewJob quiet = Job("quiet");
  const int64_t p = f.CreatePipeline(
      {build, quiet, UseJob("use", "quiet"), UseJob("fork", "build", /*trusted=*/false)});
  auto sent = f.Dispatch();
  REQUIRE(sent.size() == 2);
  // A result under a token that is not the attempt's stores nothing.
  store::ResultReport stale;
  stale.job_id = sent.at("build").job_id();
  stale.attempt_token = "not-the-token";
  stale.state = "succeeded";
  stale.images = {{0, "127.0.0.1:5000/team/app:x", kDigest, true}};
  CHECK(f.jobs.Finish(stale)->fence == store::Fence::kStale);
  CHECK(f.Count("SELECT count(*) FROM job_images") == 0);

  f.Succeed(sent.at("quiet"), {});
  f.Succeed(sent.at("build"), {{0, "127.0.0.1:5000/team/app:abc", kDigest, true}});
  sent = f.Dispatch();
  REQUIRE(sent.size() == 1);
  const v1::Assignment& fork = sent.at("fork");
  CHECK(fork.image().name() == "127.0.0.1:5000/team/app@" + kDigest);
  CHECK(!fork.has_image_pull_credential());

  const int64_t use = f.JobId(p, "use");
  CHECK(f.Query("SELECT state, message FROM jobs WHERE id = " + std::to_string(use)) ==
        Rows{{"failed", "image: ${{ jobs.quiet.image }}: job quiet pushed no image"}});
  CHECK(f.jobs.ReadLog(use).value() ==
        "assay: image: ${{ jobs.quiet.image }}: job quiet pushed no image\n");
}

TEST_CASE("build_image: an agent's malformed image list is dropped whole, its result recorded",
          "[db][build_image]") {
  DbFixture f;
  AgentServiceRig rig(f);
  Dispatcher& dispatcher = *rig.dispatcher;
  const int64_t p =
      f.CreatePipeline({Job("too-many"), Job("bad-digest"), Job("long-reference"), Job("good")});
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    ctx.AddMetadata("authorization", std::string("Bearer ") + AgentServiceRig::kToken);
    auto stream = rig.stub->Connect(&ctx);
    v1::AgentMessage hello;
    hello.mutable_hello()->set_name("hostile");
    hello.mutable_hello()->set_cpu_slots(4);
    REQUIRE(stream->Write(hello));
    v1::ServerMessage in;
    REQUIRE(stream->Read(&in));
    REQUIRE(in.has_welcome());
    for (int i = 0; i < 2000 && dispatcher.ConnectedAgents() == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(dispatcher.DispatchOnce() == 4);
    for (int i = 0; i < 4; ++i) {
      REQUIRE(stream->Read(&in));
      REQUIRE(in.has_assignment());
      const v1::Assignment& a = in.assignment();
      v1::AgentMessage r;
      v1::JobResult* result = r.mutable_result();
      result->set_job_id(a.job_id());
      result->set_attempt_token(a.attempt_token());
      result->set_outcome(v1::JOB_OUTCOME_SUCCEEDED);
      auto add = [&](std::string reference, std::string digest) {
        v1::BuiltImage* image = result->add_images();
        image->set_reference(std::move(reference));
        image->set_digest(std::move(digest));
      };
      if (a.job_name() == "too-many") {
        for (size_t n = 0; n <= store::kMaxJobImages; ++n) {
          add("r/app:" + std::to_string(n), kDigest);
        }
      } else if (a.job_name() == "bad-digest") {
        add("r/app:ok", kDigest);
        add("r/app:bad", "sha256:" + std::string(64, 'C'));
      } else if (a.job_name() == "long-reference") {
        add("r/" + std::string(600, 'a'), kDigest);
      } else {
        add("r/app:good", kDigest);
      }
      REQUIRE(stream->Write(r));
    }
    int recorded = 0;
    while (recorded < 4 && stream->Read(&in)) {
      if (in.has_ack() && in.ack().result_recorded()) ++recorded;
    }
    CHECK(recorded == 4);
    stream->WritesDone();
    while (stream->Read(&in)) {
    }
    (void)stream->Finish();
  }
  CHECK(f.Query("SELECT name, state FROM jobs ORDER BY id") == Rows{{"too-many", "succeeded"},
                                                                    {"bad-digest", "succeeded"},
                                                                    {"long-reference", "succeeded"},
                                                                    {"good", "succeeded"}});
  CHECK(f.Query("SELECT job_id, reference FROM job_images") ==
        Rows{{std::to_string(f.JobId(p, "good")), "r/app:good"}});
}

TEST_CASE("build_image: pinned references", "[db][build_image]") {
  CHECK(store::PinnedReference("127.0.0.1:5000/team/app:v1", kDigest) ==
        "127.0.0.1:5000/team/app@" + kDigest);
  CHECK(store::PinnedReference("localhost:5000/app", kDigest) == "localhost:5000/app@" + kDigest);
  CHECK(store::IsImageDigest(kDigest));
  CHECK(!store::IsImageDigest("sha256:" + std::string(64, 'C')));
  CHECK(!store::IsImageDigest("sha256:" + std::string(63, 'c')));
}

}  // namespace
}  // namespace assay::dbtest
