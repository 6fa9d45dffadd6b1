// LLM-as-judge (issue 10, docs/evals.md): reading a judge's reply and scoring with it (the
// judge: key's lint is in pipeline_spec_eval_test.cc).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "agent/eval_step.h"

namespace assay {
namespace {

TEST_CASE("judge: the score in a reply, alone, fenced or in prose, or a pass flag") {
  CHECK(ParseJudgeReply(R"({"score": 0.75, "reason": "close"})").value() == 0.75);
  CHECK(ParseJudgeReply("```json\n{\"score\": 1}\n```").value() == 1.0);
  CHECK(ParseJudgeReply("Here you go: {\"score\": 0, \"reason\": \"wrong\"} Thanks.").value() == 0);
  CHECK(ParseJudgeReply(R"({"pass": true, "reason": "ok"})").value() == 1.0);
  CHECK(ParseJudgeReply(R"({"pass": false})").value() == 0.0);
  CHECK(ParseJudgeReply("no json").status().message() ==
        "the judge's reply holds no JSON object: no json");
  CHECK(ParseJudgeReply("{not: json}").status().message() ==
        "the judge's reply is not JSON: {not: json}");
  CHECK(ParseJudgeReply(R"({"score": 7})").status().message() ==
        "the judge's score 7 is not in [0, 1]");
  CHECK(ParseJudgeReply(R"({"score": "high"})").status().message() ==
        R"(the judge's reply has no "score" or "pass": {"score": "high"})");
  const std::string big(1000, 'x');
  CHECK(ParseJudgeReply(big).status().message().size() == 40 + 200);
}

TEST_CASE("judge: the judge metric scores an output with the judge's score and its threshold") {
  evals::EvalSpec spec;
  spec.metrics = {"exact_match", "judge"};
  spec.judge = evals::EvalJudgeSpec{"http://127.0.0.1:1/v1/chat/completions", "", "r", "", "", 0.6};
  evals::Example e;
  e.expected = "4";
  bool passed = true;
  // Without a judge score (ScoreOutput has none): 0, not passed.
  auto scores = ScoreOutput(spec, e, "4", &passed);
  CHECK(scores == std::vector<std::pair<std::string, double>>{{"exact_match", 1}, {"judge", 0}});
  CHECK_FALSE(passed);
}

}  // namespace
}  // namespace assay
