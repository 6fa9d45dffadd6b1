// The build_image step on the agent (agent/image_build.h): the references it tags, the auth
// file, the exact command line, and the refusals (untrusted push, missing secret, a file or
// context that leaves the workspace, no builder), each as a process that prints why.

#include "agent/image_build.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace assay {
namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/assay-image-build-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

const std::string kSha = "0123456789abcdef0123456789abcdef01234567";

v1::Assignment BuildAssignment(bool push, bool untrusted = false) {
  v1::Assignment a;
  a.set_commit_sha(kSha);
  a.set_untrusted(untrusted);
  v1::Step* step = a.add_steps();
  step->set_name("image");
  v1::BuildImageStep* b = step->mutable_build_image();
  b->set_context("docker");
  b->add_tags("reg.example:5000/team/app");
  b->add_tags("reg.example:5000/team/app:v1");
  b->add_tags("reg.example:5000/other:latest");
  b->set_push(push);
  b->set_registry_secret("REG");
  v1::JobSecret* s = a.add_secrets();
  s->set_name("REG");
  if (untrusted) {
    s->set_withheld("untrusted");
  } else {
    s->set_value("robot:pa55word");
  }
  return a;
}

std::string Read(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const ImageBuildTool kBuildah{ImageBuildTool::Kind::kBuildah, "/usr/bin/buildah"};

// The message a refusing process prints (its last argument).
std::string Refusal(const StepProcess& p) {
  REQUIRE(p.argv.size() == 5);
  CHECK(p.argv[0] == "/bin/sh");
  CHECK(p.argv[2] == "printf '%s\\n' \"$1\"; exit 1");
  return p.argv[4];
}

TEST_CASE("image build: references, registry hosts and the auth file", "[unit][build_image]") {
  v1::Assignment a = BuildAssignment(true);
  CHECK(BuildReferences(a.steps(0).build_image(), kSha) ==
        std::vector<std::string>{"reg.example:5000/team/app:" + kSha,
                                 "reg.example:5000/other:" + kSha, "reg.example:5000/team/app:v1",
                                 "reg.example:5000/other:latest"});
  CHECK(RegistryHost("reg.example:5000/team/app:v1") == "reg.example:5000");
  CHECK(RegistryHost("localhost/app") == "localhost");
  CHECK(RegistryHost("team/app") == "docker.io");
  CHECK(*AuthFileText({"reg.example:5000"}, "robot:pa55:word") ==
        "{\"auths\":{\"reg.example:5000\":{\"auth\":\"cm9ib3Q6cGE1NTp3b3Jk\"}}}");
  CHECK(AuthFileText({"r"}, "no-colon").status().message() == "its value must be user:password");
  CHECK(AuthFileText({"r"}, ":pw").status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("image build: a push step's command, auth file mode and removal", "[unit][build_image]") {
  TempDir tmp;
  const std::string ws = tmp.path + "/ws";
  std::filesystem::create_directories(ws + "/docker");
  std::ofstream(ws + "/docker/Containerfile") << "FROM scratch\n";
  v1::Assignment a = BuildAssignment(true);
  const std::string priv = tmp.path + "/ws.build";
  {
    ImageBuilds builds(a, ws, priv, kBuildah);
    StepProcess p = *builds.Command(0);
    const std::string root = std::filesystem::canonical(ws).string();
    const std::string auth = priv + "/step-0/auth/config.json";
    CHECK(p.argv == std::vector<std::string>{
                        "/bin/sh", "-e", "-c", kBuildScript, "assay-build-image", "buildah",
                        "/usr/bin/buildah", root + "/docker", root + "/docker/Containerfile", "",
                        auth, priv + "/step-0/digests", priv + "/step-0/reason",
                        "reg.example:5000/team/app:" + kSha, "reg.example:5000/other:" + kSha,
                        "reg.example:5000/team/app:v1", "reg.example:5000/other:latest"});
    CHECK(!p.as_job_user);
    CHECK(p.cwd == ws);
    // The password is in the 0600 file only, never on the command line or in the environment.
    CHECK(Read(auth) == "{\"auths\":{\"reg.example:5000\":{\"auth\":\"cm9ib3Q6cGE1NXdvcmQ=\"}}}");
    struct stat st {};
    REQUIRE(stat(auth.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    REQUIRE(stat(priv.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    for (const std::string& arg : p.argv) CHECK(arg.find("pa55word") == std::string::npos);
    for (const std::string& e : p.env) CHECK(e.find("pa55word") == std::string::npos);
    // Digest files as the script writes them: the first two pushes happened, the third not.
    std::ofstream(priv + "/step-0/digests/0") << "sha256:" << std::string(64, 'a');
    std::ofstream(priv + "/step-0/digests/1") << "sha256:" << std::string(64, 'b') << "\n";
    std::vector<v1::BuiltImage> pushed = builds.Pushed();
    REQUIRE(pushed.size() == 2);
    CHECK(pushed[0].reference() == "reg.example:5000/team/app:" + kSha);
    CHECK(pushed[0].digest() == "sha256:" + std::string(64, 'a'));
    CHECK(pushed[0].primary());
    CHECK(pushed[1].reference() == "reg.example:5000/other:" + kSha);
    CHECK(!pushed[1].primary());
    // Why the step failed, as its script wrote it: one line, control characters blanked, cut.
    CHECK(builds.FailureReason(0).empty());
    CHECK(builds.FailureReason(1).empty());  // not a step that ran
    std::ofstream(priv + "/step-0/reason")
        << "build_image: push of r to registry h failed (exit status 125): denied\tno\n"
        << "second line\n";
    CHECK(builds.FailureReason(0) ==
          "build_image: push of r to registry h failed (exit status 125): denied no");
    std::ofstream(priv + "/step-0/reason") << std::string(5000, 'x') << "\n";
    CHECK(builds.FailureReason(0) == std::string(1000, 'x'));
  }
  CHECK(!std::filesystem::exists(priv));  // removed with the ImageBuilds
}

TEST_CASE("image build: untrusted push, missing secret, escapes and no builder are refused",
          "[unit][build_image]") {
  TempDir tmp;
  const std::string ws = tmp.path + "/ws";
  std::filesystem::create_directories(ws + "/docker");
  std::ofstream(ws + "/docker/Containerfile") << "FROM scratch\n";
  {
    v1::Assignment a = BuildAssignment(true, /*untrusted=*/true);
    ImageBuilds builds(a, ws, tmp.path + "/b1", kBuildah);
    CHECK(Refusal(*builds.Command(0)) ==
          "assay: build_image: push: true is refused: this pipeline is untrusted (a fork's pull "
          "request), and untrusted pipelines never get registry credentials");
    CHECK(builds.FailureReason(0) ==
          "build_image: push: true is refused: this pipeline is untrusted (a fork's pull "
          "request), and untrusted pipelines never get registry credentials");
    CHECK(!std::filesystem::exists(tmp.path + "/b1"));
  }
  {
    v1::Assignment a = BuildAssignment(true);
    a.mutable_secrets()->Clear();
    ImageBuilds builds(a, ws, tmp.path + "/b2", kBuildah);
    CHECK(Refusal(*builds.Command(0)) ==
          "assay: build_image: registry_secret 'REG' was not given to this job");
  }
  {
    v1::Assignment a = BuildAssignment(true);
    a.mutable_secrets(0)->set_value("no-colon-here");
    ImageBuilds builds(a, ws, tmp.path + "/b3", kBuildah);
    CHECK(Refusal(*builds.Command(0)) ==
          "assay: build_image: registry_secret 'REG': its value must be user:password");
  }
  {
    v1::Assignment a = BuildAssignment(false);
    a.mutable_steps(0)->mutable_build_image()->set_file("docker/Dockerfile");
    ImageBuilds builds(a, ws, tmp.path + "/b4", kBuildah);
    CHECK(Refusal(*builds.Command(0)) ==
          "assay: build_image: file 'docker/Dockerfile' does not exist in the workspace");
  }
  {
    std::filesystem::create_symlink("/etc", ws + "/out");
    std::filesystem::create_symlink("/etc/hostname", ws + "/docker/Linked");
    v1::Assignment a = BuildAssignment(false);
    a.mutable_steps(0)->mutable_build_image()->set_context("out");
    ImageBuilds builds(a, ws, tmp.path + "/b5", kBuildah);
    CHECK(Refusal(*builds.Command(0)) ==
          "assay: build_image: context 'out' leads out of the workspace");
    a.mutable_steps(0)->mutable_build_image()->set_context("docker");
    a.mutable_steps(0)->mutable_build_image()->set_file("docker/Linked");
    CHECK(Refusal(*builds.Command(0)) ==
          "assay: build_image: file 'docker/Linked' leads out of the workspace");
  }
  {
    v1::Assignment a = BuildAssignment(false);
    ImageBuilds builds(a, ws, tmp.path + "/b6", ImageBuildTool{});
    CHECK(Refusal(*builds.Command(0)) ==
          "assay: build_image: this agent has neither buildah nor a container runtime (podman "
          "or docker)");
  }
  {
    // Without push: no auth file, no digest dir; the private directory holds the reason only.
    v1::Assignment a = BuildAssignment(false);
    ImageBuilds builds(a, ws, tmp.path + "/b7", kBuildah);
    StepProcess p = *builds.Command(0);
    REQUIRE(p.argv.size() == 17);
    CHECK(p.argv[10] == "");
    CHECK(p.argv[11] == "");
    CHECK(p.argv[12] == tmp.path + "/b7/step-0/reason");
    CHECK(std::filesystem::is_directory(tmp.path + "/b7/step-0"));
    CHECK(!std::filesystem::exists(tmp.path + "/b7/step-0/auth"));
    CHECK(!std::filesystem::exists(tmp.path + "/b7/step-0/digests"));
    CHECK(builds.Pushed().empty());
  }
}

}  // namespace
}  // namespace assay
