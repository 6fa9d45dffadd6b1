// The `build_image:` step of `.assay.yml` and `image: ${{ jobs.NAME.image }}` (issue 9).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/pipeline/spec.h"

namespace assay {
namespace {

using Lines = std::vector<std::string>;

// Each problem as "LINE:COL: KEY: MESSAGE" (the file name cut off).
Lines Lint(const std::string& yaml) {
  Lines lines;
  for (const SpecError& error : LintPipelineSpec(yaml, "f.yml")) {
    lines.push_back(error.ToString().substr(6));
  }
  return lines;
}

TEST_CASE("spec build_image: a build step and an image naming it parse to the exact model") {
  const std::string yaml = R"(jobs:
  build:
    secrets: [REG]
    steps:
      - name: image
        build_image:
          context: docker
          file: docker/Containerfile.app
          tags: [127.0.0.1:5000/team/app, "127.0.0.1:5000/team/app:v1"]
          push: true
          registry_secret: REG
      - echo done
  local:
    steps:
      - build_image: { tags: localhost/app }
  use:
    needs: [build]
    image: ${{ jobs.build.image }}
    steps: [cat /built.txt]
)";
  REQUIRE(Lint(yaml) == Lines{});
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec(yaml);
  REQUIRE(spec.ok());
  const StepSpec& step = spec->jobs[0].steps[0];
  CHECK(step.name == "image");
  CHECK(step.run.empty());
  REQUIRE(step.build_image.has_value());
  CHECK(*step.build_image ==
        BuildImageSpec{"docker",
                       "docker/Containerfile.app",
                       {"127.0.0.1:5000/team/app", "127.0.0.1:5000/team/app:v1"},
                       true,
                       "REG"});
  CHECK(spec->jobs[0].steps[1] == StepSpec{"step 2", "echo done", std::nullopt});
  CHECK(spec->jobs[1].steps[0].build_image ==
        BuildImageSpec{".", "", {"localhost/app"}, false, ""});
  REQUIRE(spec->jobs[2].image.has_value());
  CHECK(spec->jobs[2].image->name == "${{ jobs.build.image }}");
}

TEST_CASE("spec build_image: paths that leave the workspace are refused with key and value") {
  CHECK(Lint(R"(jobs:
  a:
    steps:
      - build_image:
          context: ../outside
          file: /etc/passwd
          tags: [localhost/app]
      - build_image: { context: "ctx/../../x", tags: localhost/app }
      - build_image: { file: "a/..", tags: localhost/app }
)") == Lines{
           "5:20: jobs.a.steps[0].build_image.context: context '../outside' escapes the "
           "workspace ('..' is not allowed)",
           "6:17: jobs.a.steps[0].build_image.file: file '/etc/passwd' must be relative to "
           "the workspace, not absolute",
           "8:33: jobs.a.steps[1].build_image.context: context 'ctx/../../x' escapes the "
           "workspace ('..' is not allowed)",
           "9:30: jobs.a.steps[2].build_image.file: file 'a/..' escapes the workspace ('..' "
           "is not allowed)",
       });
}

TEST_CASE("spec build_image: bad tags, run beside build_image, missing keys") {
  CHECK(Lint(R"(jobs:
  a:
    steps:
      - build_image: { tags: ["Team/App", "localhost/app@sha256:abc", "-x", "localhost/a:.b"] }
      - build_image: { tags: [localhost/app, localhost/app] }
      - { run: make, build_image: { tags: localhost/app } }
      - { name: nothing }
      - build_image: { push: yes, tags: [] }
      - build_image: "localhost/app"
)") == Lines{
           "4:31: jobs.a.steps[0].build_image.tags[0]: invalid tag 'Team/App': repository "
           "path components are lowercase letters and digits separated by . _ or -",
           "4:43: jobs.a.steps[0].build_image.tags[1]: invalid tag "
           "'localhost/app@sha256:abc': a digest cannot be built to; name a repository and "
           "an optional tag",
           "4:71: jobs.a.steps[0].build_image.tags[2]: invalid image name '-x': must start "
           "with a letter or digit",
           "4:77: jobs.a.steps[0].build_image.tags[3]: invalid tag 'localhost/a:.b': the tag "
           "after ':' must be 1 to 128 of A-Z a-z 0-9 _ . - (not starting with . or -)",
           "5:46: jobs.a.steps[1].build_image.tags[1]: tag 'localhost/app' is listed more "
           "than once",
           "6:9: jobs.a.steps[2].build_image: a step has one of run:, build_image:, eval:, train:, "
           "promote: and deploy:, not two",
           "7:9: jobs.a.steps[3].run: missing required key 'run'",
           "8:30: jobs.a.steps[4].build_image.push: push must be a boolean, got a string",
           "8:41: jobs.a.steps[4].build_image.tags: tags must be a list of 1 to 16 image "
           "references, got a list of 0",
           "9:22: jobs.a.steps[5].build_image: build_image must be a mapping with 'tags', got "
           "a string",
       });
}

TEST_CASE("spec build_image: push needs a listed registry_secret and registry-qualified tags") {
  CHECK(Lint(R"(jobs:
  a:
    secrets: [OTHER]
    steps:
      - build_image: { tags: [team/app], push: true }
      - build_image:
          tags: [reg.example/app, "other.example:5000/app:v1"]
          push: true
          registry_secret: REG
)") == Lines{
           "5:9: jobs.a.steps[0].build_image.registry_secret: push: true needs "
           "registry_secret (a secret listed in the job's secrets: whose value is "
           "user:password)",
           "5:9: jobs.a.steps[0].build_image.tags[0]: tag 'team/app' names no registry: with "
           "push: true every tag starts with its registry (host[:port]/...)",
           "6:9: jobs.a.steps[1].build_image.tags[1]: tag 'other.example:5000/app:v1' is on "
           "registry 'other.example:5000', tags[0] on 'reg.example': one build_image pushes "
           "to one registry",
           "9:28: jobs.a.steps[1].build_image.registry_secret: registry_secret 'REG' is not "
           "in the job's secrets: (list it there: the job is given only the secrets it lists)",
       });
}

TEST_CASE("spec build_image: image naming a job must name a needed job that pushes") {
  CHECK(Lint(R"(jobs:
  build:
    secrets: [REG]
    steps:
      - build_image: { tags: reg.example/app, push: true, registry_secret: REG }
  local:
    steps:
      - build_image: { tags: reg.example/app }
  wide:
    strategy: { matrix: { n: [1, 2] } }
    secrets: [REG]
    steps:
      - build_image: { tags: reg.example/app, push: true, registry_secret: REG }
  a:
    image: ${{ jobs.build.image }}
    steps: [x]
  b:
    needs: [local]
    image: { name: "${{jobs.local.image}}" }
    steps: [x]
  c:
    needs: [wide]
    image: ${{ jobs.wide.image }}
    steps: [x]
  d:
    needs: [build]
    image: localhost/base
    services: [{ name: s, image: "${{ jobs.build.image }}" }]
    steps: [x]
  e:
    image: ${{ jobs.build.other }}
    steps: [x]
)") == Lines{
           "15:12: jobs.a.image: '${{ jobs.build.image }}' names job 'build', which is not "
           "in this job's needs: (a job can run only an image pushed by a job it needs)",
           "19:12: jobs.b.image: '${{jobs.local.image}}' names job 'local', which has no "
           "build_image step with push: true",
           "23:12: jobs.c.image: '${{ jobs.wide.image }}' names job 'wide', which has a "
           "matrix: it has no single image",
           "28:16: jobs.d.services[0].image: '${{ jobs.build.image }}' is allowed only in a "
           "job's image:, not in a service's",
           "31:12: jobs.e.image: invalid image name '${{ jobs.build.other }}': must start "
           "with a letter or digit",
       });
}

}  // namespace
}  // namespace assay
