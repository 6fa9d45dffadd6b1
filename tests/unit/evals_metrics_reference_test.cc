// BLEU, chrF and ROUGE against every case of tests/fixtures/metrics (numbers printed by the
// reference implementations' own tests and docs; see that folder's README.md). Each case is
// checked within its own tolerance, in its own units; a failure names the case id.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "common/evals/metrics/text_metrics.h"
#include "tests/unit/fixture.h"

namespace assay::evals {
namespace {

namespace json = boost::json;

json::array LoadCases(const std::string& name) {
  const std::string text = assay::testing::ReadFixture("tests/fixtures/metrics/" + name);
  return json::parse(text).as_array();
}

std::vector<std::string> Strings(const json::value& v) {
  std::vector<std::string> out;
  for (const json::value& s : v.as_array()) out.emplace_back(s.as_string());
  return out;
}

std::vector<std::vector<std::string>> Streams(const json::value& v) {
  std::vector<std::vector<std::string>> out;
  for (const json::value& s : v.as_array()) out.push_back(Strings(s));
  return out;
}

double Number(const json::value& v) { return v.to_number<double>(); }

BleuOptions BleuOptionsOf(const json::object& settings) {
  BleuOptions o;
  if (const auto* t = settings.if_contains("tokenize")) {
    o.tokenize = t->as_string() == "none" ? BleuTokenize::kNone : BleuTokenize::k13a;
    REQUIRE((t->as_string() == "none" || t->as_string() == "13a"));
  }
  const json::string& smooth = settings.at("smooth_method").as_string();
  if (smooth == "none") {
    o.smooth_method = BleuSmooth::kNone;
  } else if (smooth == "floor") {
    o.smooth_method = BleuSmooth::kFloor;
  } else if (smooth == "add-k") {
    o.smooth_method = BleuSmooth::kAddK;
  } else {
    REQUIRE(smooth == "exp");
    o.smooth_method = BleuSmooth::kExp;
  }
  if (!settings.at("smooth_value").is_null()) o.smooth_value = Number(settings.at("smooth_value"));
  if (const auto* l = settings.if_contains("lowercase")) o.lowercase = l->as_bool();
  o.effective_order = settings.at("use_effective_order").as_bool();
  REQUIRE(settings.at("max_ngram_order").to_number<int>() == 4);
  return o;
}

// Sentence-level cases have one hypothesis and one segment per stream.
std::vector<std::string> FirstOfEachStream(const std::vector<std::vector<std::string>>& s) {
  std::vector<std::string> refs;
  for (const auto& stream : s) refs.push_back(stream.at(0));
  return refs;
}

double InUnits(double percent, const json::object& c) {
  return c.at("units").as_string() == "fraction" ? percent / 100 : percent;
}

TEST_CASE("BLEU and chrF match every sacreBLEU case in bleu_chrf_cases.json", "[evals]") {
  const json::array cases = LoadCases("bleu_chrf_cases.json");
  REQUIRE(cases.size() == 20);
  int bleu = 0, chrf = 0;
  for (const json::value& v : cases) {
    const json::object& c = v.as_object();
    const std::string id(c.at("id").as_string());
    INFO("case " << id);
    const auto hyps = Strings(c.at("hypotheses"));
    const auto refs = Streams(c.at("references"));
    const json::object& settings = c.at("settings").as_object();
    const bool sentence = c.at("level").as_string() == "sentence";
    const double expected = Number(c.at("expected"));
    const double tolerance = Number(c.at("tolerance"));
    double actual = 0;
    if (c.at("metric").as_string() == "bleu") {
      ++bleu;
      const BleuOptions o = BleuOptionsOf(settings);
      BleuScore s;
      if (sentence) {
        REQUIRE(hyps.size() == 1);
        s = SentenceBleu(hyps[0], FirstOfEachStream(refs), o);
      } else {
        s = CorpusBleu(hyps, refs, o);
        // The corpus score is the score of the summed per-segment statistics.
        BleuStats sum;
        for (const BleuStats& one : CorpusBleuStats(hyps, refs, o)) sum += one;
        CHECK(BleuFromStats(sum, o).score == s.score);
      }
      actual = InUnits(s.score, c);
      if (const auto* d = c.if_contains("expected_details")) {
        const json::object& details = d->as_object();
        if (const auto* p = details.if_contains("precisions_1dp")) {
          for (size_t n = 0; n < 4; ++n) {
            CHECK(std::fabs(s.precisions[n] - Number(p->as_array()[n])) <= 0.05);
          }
        }
        if (const auto* bp = details.if_contains("bp_3dp")) {
          CHECK(std::fabs(s.bp - Number(*bp)) <= 0.0005);
        }
        if (const auto* l = details.if_contains("sys_len")) {
          CHECK(s.sys_len == l->to_number<int64_t>());
          CHECK(s.ref_len == details.at("ref_len").to_number<int64_t>());
        }
        if (const auto* counts = details.if_contains("counts")) {
          for (size_t n = 0; n < 4; ++n) {
            CHECK(s.counts[n] == counts->as_array()[n].to_number<int64_t>());
            CHECK(s.totals[n] == details.at("totals").as_array()[n].to_number<int64_t>());
          }
        }
      }
    } else {
      REQUIRE(c.at("metric").as_string() == "chrf");
      ++chrf;
      ChrfOptions o;
      o.char_order = settings.at("char_order").to_number<int>();
      o.word_order = settings.at("word_order").to_number<int>();
      o.beta = Number(settings.at("beta"));
      o.lowercase = settings.at("lowercase").as_bool();
      o.whitespace = settings.at("whitespace").as_bool();
      o.eps_smoothing = settings.at("eps_smoothing").as_bool();
      if (sentence) {
        REQUIRE(hyps.size() == 1);
        actual = InUnits(SentenceChrf(hyps[0], FirstOfEachStream(refs), o), c);
      } else {
        actual = InUnits(CorpusChrf(hyps, refs, o), c);
        ChrfStats sum;
        for (const ChrfStats& one : CorpusChrfStats(hyps, refs, o)) sum += one;
        CHECK(ChrfFromStats(sum, o) == CorpusChrf(hyps, refs, o));
      }
    }
    INFO("expected " << expected << " +- " << tolerance << ", got " << actual);
    CHECK(std::fabs(actual - expected) <= tolerance);
  }
  CHECK(bleu == 10);
  CHECK(chrf == 10);
}

TEST_CASE("BleuFromStats matches every sacreBLEU case in bleu_stats_cases.json", "[evals]") {
  const json::array cases = LoadCases("bleu_stats_cases.json");
  REQUIRE(cases.size() == 4);
  for (const json::value& v : cases) {
    const json::object& c = v.as_object();
    INFO("case " << c.at("id").as_string());
    std::array<int64_t, 4> correct{}, total{};
    for (size_t n = 0; n < 4; ++n) {
      correct[n] = c.at("correct").as_array()[n].to_number<int64_t>();
      total[n] = c.at("total").as_array()[n].to_number<int64_t>();
    }
    const BleuScore s = BleuFromStats(correct, total, c.at("sys_len").to_number<int64_t>(),
                                      c.at("ref_len").to_number<int64_t>(),
                                      BleuOptionsOf(c.at("settings").as_object()));
    const double actual = InUnits(s.score, c);
    const double expected = Number(c.at("expected"));
    INFO("expected " << expected << ", got " << actual);
    CHECK(std::fabs(actual - expected) <= Number(c.at("tolerance")));
  }
}

TEST_CASE("ROUGE matches every rouge_score case in rouge_cases.json", "[evals]") {
  const json::array cases = LoadCases("rouge_cases.json");
  REQUIRE(cases.size() == 10);
  for (const json::value& v : cases) {
    const json::object& c = v.as_object();
    INFO("case " << c.at("id").as_string());
    REQUIRE(c.at("settings").at("use_stemmer").as_bool() == false);
    const std::string prediction(c.at("hypotheses").as_array().at(0).as_string());
    const std::string target(c.at("references").as_array().at(0).as_array().at(0).as_string());
    const std::string metric(c.at("metric").as_string());
    RougeScore s;
    if (metric == "rougeL") {
      s = RougeL(target, prediction);
    } else if (metric == "rougeLsum") {
      s = RougeLsum(target, prediction);
    } else {
      REQUIRE((metric == "rouge1" || metric == "rouge2"));
      s = RougeN(target, prediction, metric == "rouge1" ? 1 : 2);
    }
    const json::object& expected = c.at("expected").as_object();
    const json::object& tolerance = c.at("tolerance").as_object();
    const auto check = [&](const char* field, double actual) {
      const double want = Number(expected.at(field));
      INFO(field << ": expected " << want << ", got " << actual);
      CHECK(std::fabs(actual - want) <= Number(tolerance.at(field)));
    };
    check("precision", s.precision);
    check("recall", s.recall);
    check("fmeasure", s.fmeasure);
  }
}

}  // namespace
}  // namespace assay::evals
