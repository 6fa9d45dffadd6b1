// The store side of triggers: repo settings, the pipeline columns they add, one pipeline per
// schedule slot, and canceling superseded push pipelines.

#include <boost/json.hpp>

#include "absl/strings/str_cat.h"
#include "server/store/schedules.h"
#include "tests/db/db_fixture.h"

namespace assay {
namespace {

using dbtest::Rows;

TEST_CASE("repo settings: defaults, partial updates, unknown repository", "[db][triggers]") {
  dbtest::DbFixture f;
  auto repo = f.repos.Get(f.repo_id);
  REQUIRE(repo.ok());
  CHECK(repo->default_branch == "main");
  CHECK(repo->cancel_superseded == false);
  store::RepoSettings set;
  set.cancel_superseded = true;
  auto after = f.repos.Update(f.repo_id, set);
  REQUIRE(after.ok());
  CHECK(after->default_branch == "main");
  CHECK(after->cancel_superseded);
  set = {};
  set.default_branch = "trunk";
  after = f.repos.Update(f.repo_id, set);
  REQUIRE(after.ok());
  CHECK(after->default_branch == "trunk");
  CHECK(after->cancel_superseded);
  CHECK(f.repos.Update(999, set).status() == absl::NotFoundError("repository 999 does not exist"));
}

TEST_CASE("pipelines: trusted, pr_number, inputs, one pipeline per schedule slot",
          "[db][triggers]") {
  dbtest::DbFixture f;
  store::NewPipeline pr = f.Pipeline({dbtest::Job("a")});
  pr.event = "pull_request";
  pr.ref = "refs/pull/7/head";
  pr.trusted = false;
  pr.pr_number = 7;
  auto id = f.pipelines.Create(pr);
  REQUIRE(id.ok());
  auto row = f.pipelines.Get(*id);
  REQUIRE(row.ok());
  CHECK_FALSE(row->trusted);
  CHECK(row->pr_number == std::optional<int64_t>(7));
  CHECK(row->inputs_json.empty());
  CHECK(row->scheduled_for == absl::InfinitePast());

  store::NewPipeline manual = f.Pipeline({dbtest::Job("a")});
  manual.event = "manual";
  manual.inputs_json = R"({"b": "2", "a": "1"})";
  id = f.pipelines.Create(manual);
  REQUIRE(id.ok());
  row = f.pipelines.Get(*id);
  REQUIRE(row.ok());
  CHECK(row->trusted);
  CHECK(boost::json::parse(row->inputs_json) == boost::json::parse(R"({"a": "1", "b": "2"})"));

  store::ScheduleStore schedules(&f.db, &f.clock);
  REQUIRE(schedules.Replace(f.repo_id, {{"0 3 * * *", ""}}).ok());
  auto rows = schedules.List(f.repo_id);
  REQUIRE(rows.ok());
  REQUIRE(rows->size() == 1);
  store::NewPipeline s = f.Pipeline({dbtest::Job("a")});
  s.event = "schedule";
  s.schedule_id = (*rows)[0].id;
  s.scheduled_for = absl::FromUnixSeconds(1700017200);
  auto first = f.pipelines.Create(s);
  auto again = f.pipelines.Create(s);
  REQUIRE(first.ok());
  REQUIRE(again.ok());
  CHECK(*first == *again);
  CHECK(f.Count("SELECT count(*) FROM pipelines WHERE event = 'schedule'") == 1);
  CHECK(f.Count("SELECT count(*) FROM jobs WHERE pipeline_id = " + std::to_string(*first)) == 1);

  // A claim moves next_run_at only from the value the caller saw.
  const absl::Time next = (*rows)[0].next_run_at;
  CHECK(*schedules.Claim((*rows)[0].id, next, next + absl::Hours(24)));
  CHECK_FALSE(*schedules.Claim((*rows)[0].id, next, next + absl::Hours(48)));
  CHECK((*schedules.List(f.repo_id))[0].next_run_at == next + absl::Hours(24));
  CHECK(schedules.Replace(f.repo_id, {{"61 * * * *", ""}}).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(schedules.List(f.repo_id)->size() == 1);  // unchanged by the refused replacement
}

TEST_CASE("cancel superseded: older running push pipelines of the same ref only",
          "[db][triggers]") {
  dbtest::DbFixture f;
  const int64_t agent = f.Agent("a1");
  const int64_t older = f.CreatePipeline({dbtest::Job("build"), dbtest::Job("test", {"build"})});
  store::ClaimedJob live = f.ClaimOne(agent);
  REQUIRE(live.pipeline_id == older);
  store::NewPipeline other = f.Pipeline({dbtest::Job("x")});
  other.ref = "refs/heads/dev";
  const int64_t dev = *f.pipelines.Create(other);
  store::NewPipeline pr = f.Pipeline({dbtest::Job("x")});
  pr.event = "pull_request";
  const int64_t pr_id = *f.pipelines.Create(pr);
  const int64_t newer = f.CreatePipeline({dbtest::Job("build")});

  std::vector<int64_t> canceled;
  auto attempts = f.pipelines.CancelSuperseded(f.repo_id, "refs/heads/main", newer, &canceled);
  REQUIRE(attempts.ok());
  CHECK(canceled == std::vector<int64_t>{older});
  REQUIRE(attempts->size() == 1);
  CHECK((*attempts)[0].job_id == live.job_id);
  CHECK((*attempts)[0].agent_id == agent);
  CHECK((*attempts)[0].attempt_token == live.attempt_token);
  const std::string why = absl::StrCat("superseded by pipeline ", newer);
  CHECK(f.Query(absl::StrCat("SELECT state, message FROM pipelines WHERE id = ", older)) ==
        Rows{{"canceled", why}});
  CHECK(f.Query(absl::StrCat("SELECT name, state, message FROM jobs WHERE pipeline_id = ", older,
                             " ORDER BY id")) ==
        Rows{{"build", "canceled", why}, {"test", "canceled", why}});
  for (int64_t id : {dev, pr_id, newer}) CHECK(f.PipelineState(id) == "running");
  // Nothing left to supersede.
  attempts = f.pipelines.CancelSuperseded(f.repo_id, "refs/heads/main", newer, &canceled);
  REQUIRE(attempts.ok());
  CHECK(attempts->empty());
  CHECK(canceled.empty());
}

}  // namespace
}  // namespace assay
