// Hand-checked cases for the text metrics (common/evals/metrics/text_metrics.h): what the
// reference fixtures do not reach (normalisation, 13a details, smoothing, chrF++ punctuation,
// ROUGE-Lsum's backtracking, code points), and hostile inputs (caps, empty, invalid UTF-8).
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "common/evals/metrics/text_metrics.h"

namespace assay::evals {
namespace {

std::string Repeat(std::string_view s, size_t times) {
  std::string out;
  out.reserve(s.size() * times);
  for (size_t i = 0; i < times; ++i) out.append(s);
  return out;
}

NormalizeOptions All() {
  NormalizeOptions o;
  o.lowercase = o.strip = o.collapse_whitespace = o.remove_punctuation = o.remove_articles = true;
  return o;
}

TEST_CASE("Normalize: each option on UTF-8 text", "[evals]") {
  CHECK(Normalize("  Hello\tWorld \n", NormalizeOptions()) == "Hello\tWorld");
  NormalizeOptions none;
  none.strip = false;
  CHECK(Normalize(" \xff A\xc3 ", none) == " \xff A\xc3 ");

  NormalizeOptions lower;
  lower.lowercase = true;
  CHECK(Normalize("ÀÉÎ İstanbul ȘȚ ΣΟΦΟΣ ПРИВЕТ Ёж ẞ ＡＢ", lower) ==
        "àéî i\xcc\x87stanbul șț σοφος привет ёж ß ａｂ");
  // Beyond the common blocks: Vietnamese Ơ Ư (Latin Extended-B), Deseret 𐐀 (U+10400).
  CHECK(Normalize("ƠƯ 𐐀 ΑΣ'", lower) == "ơư 𐐨 ας'");
  // Final sigma looks past case-ignorable code points (apostrophe, combining acute).
  CHECK(Normalize("Α'Σ ΑΣ\u0301Α ΣΑΣ\u0301.", lower) == "α'ς ασ\u0301α σας\u0301.");
  CHECK(Normalize("A\xff"
                  "B",
                  lower) ==
        "a\xff"
        "b");

  NormalizeOptions punct;
  punct.remove_punctuation = true;
  CHECK(Normalize("Hello, “world”… ¿qué? a-b", punct) == "Hello world qué ab");

  NormalizeOptions ws;
  ws.collapse_whitespace = true;
  CHECK(Normalize("a\u00a0\u3000b \t\n c ", ws) == "a b c");

  NormalizeOptions articles;
  articles.remove_articles = true;
  articles.strip = false;
  CHECK(Normalize("The cat, an apple; theory a", articles) == "  cat,   apple; theory  ");

  CHECK(Normalize("  The  Apple! ", All()) == "apple");
  CHECK(Normalize("An \xe2\x80\x9c"
                  "A\xe2\x80\x9d the-end",
                  All()) == "theend");
}

TEST_CASE("ExactMatch compares the normalised texts byte for byte", "[evals]") {
  CHECK(ExactMatch(" Paris\n", "Paris", NormalizeOptions()));
  CHECK_FALSE(ExactMatch("paris", "Paris", NormalizeOptions()));
  CHECK(ExactMatch("The Paris.", "paris", All()));
  CHECK(ExactMatch("", "  ", NormalizeOptions()));
  CHECK_FALSE(ExactMatch("\xff", "\xfe", All()));
}

TEST_CASE("EditSimilarity counts code points", "[evals]") {
  CHECK(EditSimilarity("kitten", "sitting") == Approx(1.0 - 3.0 / 7.0).epsilon(1e-15));
  CHECK(EditSimilarity("", "") == 1.0);
  CHECK(EditSimilarity("abc", "") == 0.0);
  CHECK(EditSimilarity("café", "cafe") == 0.75);  // Bytes would give 1 - 2/5.
  CHECK(EditSimilarity("👍", "👎") == 0.0);
  CHECK(EditSimilarity("\xff", "\xfe") == 0.0);
  CHECK(EditSimilarity("\xff", "\xff") == 1.0);
  CHECK(EditSimilarity("\xc3", "\xc3\xa9") == 0.0);  // A lone lead byte is not é.
}

TEST_CASE("EditSimilarity reads at most kMaxEditCodePoints of each side", "[evals]") {
  REQUIRE(kMaxEditCodePoints == 20'000);
  const std::string a = Repeat("a", 20'000) + Repeat("b", 10'000);
  CHECK(EditSimilarity(a, Repeat("a", 20'000)) == 1.0);
  CHECK(EditSimilarity(Repeat("é", 30'000), Repeat("ü", 30'000)) == 0.0);
}

TEST_CASE("EstimateTokens is ceil(code points / 4), Cost is per million tokens", "[evals]") {
  CHECK(EstimateTokens("") == 0);
  CHECK(EstimateTokens("abcd") == 1);
  CHECK(EstimateTokens("abcde") == 2);
  CHECK(EstimateTokens("héllo") == 2);
  CHECK(EstimateTokens("日本語") == 1);
  CHECK(EstimateTokens("\xff\xfe\xfd\xfc\xfb") == 2);
  CHECK(Cost(1'000'000, 500'000, Price{3, 15}) == 10.5);
  CHECK(Cost(-5, 2'000'000, Price{3, 15}) == 30.0);
  CHECK(Cost(0, 0, Price{}) == 0.0);
}

TEST_CASE("BLEU 13a tokenisation", "[evals]") {
  // It wasn't 3.5 - 4 , ( ok ) .
  const std::string text = "It wasn't 3.5-4, (ok).";
  CHECK(SentenceBleuStats(text, {text}).sys_len == 10);
  CHECK(SentenceBleu(text, {text}).score == Approx(100.0).epsilon(1e-14));
  BleuOptions none = SentenceBleuOptions();
  none.tokenize = BleuTokenize::kNone;
  CHECK(SentenceBleuStats(text, {text}, none).sys_len == 4);
  CHECK(SentenceBleuStats("a &amp; b", {}).sys_len == 3);
  CHECK(SentenceBleuStats("a&lt;b<skipped>", {}).sys_len == 3);
  CHECK(SentenceBleuStats("well-\nknown\nfact", {}).sys_len == 2);
}

TEST_CASE("BLEU statistics: clipping, closest reference length, no references", "[evals]") {
  const BleuStats clip = SentenceBleuStats("the the the", {"the cat", "the the dog"});
  CHECK(clip.counts[0] == 2);
  CHECK(clip.totals == std::array<int64_t, 4>{3, 2, 1, 0});
  CHECK(SentenceBleuStats("a b c d", {"a b c", "a b c d e"}).ref_len == 3);  // Tie: shorter.
  CHECK(SentenceBleuStats("a b c d", {"a b c d e", "a b c"}).ref_len == 3);
  const BleuStats alone = SentenceBleuStats("a b", {});
  CHECK(alone == BleuStats{2, 0, {0, 0, 0, 0}, {2, 1, 0, 0}});
  CHECK(SentenceBleu("a b", {}).score == 0.0);
  BleuOptions lower = SentenceBleuOptions();
  lower.lowercase = true;
  CHECK(SentenceBleu("HELLO World", {"hello world"}, lower).score == Approx(100.0).epsilon(1e-14));
  CHECK(SentenceBleu("HELLO World", {"hello world"}).score == 0.0);
}

TEST_CASE("BLEU smoothing and effective order", "[evals]") {
  // p1 = 3/4, p2 = 1/3, no 3- or 4-gram matches out of 2 and 1.
  BleuOptions o;
  o.tokenize = BleuTokenize::kNone;
  const BleuScore exp = CorpusBleu({"a b c d"}, {{"a b x d"}}, o);
  CHECK(exp.precisions[2] == 25.0);  // 100 / (2 · 2)
  CHECK(exp.precisions[3] == 25.0);  // 100 / (4 · 1)
  CHECK(exp.score == Approx(std::pow(75.0 * 100 / 3 * 25 * 25, 0.25)).epsilon(1e-12));
  o.smooth_method = BleuSmooth::kFloor;
  CHECK(CorpusBleu({"a b c d"}, {{"a b x d"}}, o).score ==
        Approx(std::pow(75.0 * 100 / 3 * 5 * 10, 0.25)).epsilon(1e-12));
  o.smooth_method = BleuSmooth::kAddK;
  CHECK(CorpusBleu({"a b c d"}, {{"a b x d"}}, o).score ==
        Approx(std::pow(75.0 * 50 * 100 / 3 * 50, 0.25)).epsilon(1e-12));
  o.smooth_method = BleuSmooth::kNone;
  CHECK(CorpusBleu({"a b c d"}, {{"a b x d"}}, o).score == 0.0);
  // Two tokens: without effective order the missing 3- and 4-grams give 0.
  CHECK(SentenceBleu("hello world", {"hello world"}).score == Approx(100.0).epsilon(1e-14));
  CHECK(CorpusBleu({"hello world"}, {{"hello world"}}).score == 0.0);
}

TEST_CASE("chrF and chrF++ details", "[evals]") {
  ChrfOptions pp;
  pp.word_order = 2;
  // One punctuation character comes off the end of a word, or else off its start.
  CHECK(SentenceChrf("(hi", {"( hi"}, pp) == 100.0);
  CHECK(SentenceChrf("hi.", {"hi ."}, pp) == 100.0);
  CHECK(SentenceChrf("(hi)", {"( hi )"}, pp) < 100.0);
  // Word 1-grams of the hypothesis (stats 18..20 follow the 6 character orders).
  const auto words = [&](std::string_view hyp) {
    return SentenceChrfStats(hyp, {"v w x y z"}, pp).values.at(18);
  };
  CHECK(words("(hi)") == 2);  // "(hi" ")"
  CHECK(words("...") == 2);   // ".." "."
  CHECK(words("( a") == 2);   // One character: kept whole.
  CHECK(words("hi") == 1);
  // The best reference by F-score gives the statistics.
  CHECK(SentenceChrf("abc", {"xyz", "abc"}) == 100.0);
  CHECK(SentenceChrfStats("abc", {"xyz", "abc"}) == SentenceChrfStats("abc", {"abc"}));
  // Whitespace (any of Python's) is removed before character n-grams unless kept.
  CHECK(SentenceChrf("a\u3000b", {"ab"}) == 100.0);
  ChrfOptions keep;
  keep.whitespace = true;
  CHECK(SentenceChrf("a b", {"ab"}, keep) < 100.0);
  // Code points: 1-grams p = 1/2, r = 1; no reference 2-gram. F2 = 5 · 0.5 / 3.
  CHECK(SentenceChrf("ΩΩ", {"Ω"}) == Approx(250.0 / 3).epsilon(1e-14));
  CHECK(SentenceChrf("", {"abc"}) == 0.0);
  CHECK(SentenceChrf("", {""}) == 0.0);
  CHECK(SentenceChrf("abc", {}) == 0.0);
}

TEST_CASE("ROUGE tokens, LCS and the summary-level union LCS", "[evals]") {
  const RougeScore same = RougeN("Hello, World! café", "hello world caf", 1);
  CHECK(same.precision == 1.0);
  CHECK(same.recall == 1.0);
  CHECK(RougeN("İstanbul", "i stanbul", 1).fmeasure == 1.0);
  const RougeScore l = RougeL("a b c d e", "a c e x");
  CHECK(l.precision == 0.75);
  CHECK(l.recall == 0.6);
  CHECK(RougeN("a b", "a b", 0).fmeasure == 0.0);
  CHECK(RougeN("a b", "a b", 3).precision == 0.0);
  // rouge_score's backtracking keeps 'a' of "b a" (it moves up on ties), then "b" adds 'b'.
  const RougeScore sum = RougeLsum("a b", "b a\nb");
  CHECK(sum.precision == Approx(2.0 / 3).epsilon(1e-15));
  CHECK(sum.recall == 1.0);
  CHECK(sum.fmeasure == Approx(0.8).epsilon(1e-15));
  const RougeScore empty = RougeLsum("\n\n", "a");
  CHECK(empty.fmeasure == 0.0);
  CHECK(RougeL("", "").fmeasure == 0.0);
}

TEST_CASE("Hostile inputs: caps apply, empty and invalid UTF-8 are scored", "[evals]") {
  REQUIRE(kMaxMetricTextBytes == 256 * 1024);
  const std::string huge = Repeat("x ", 200'000);  // 400,000 bytes
  CHECK(SentenceBleuStats(huge, {"x"}).sys_len == 131'072);
  CHECK(SentenceChrfStats(huge, {"x"}).values.at(0) == 131'072);

  REQUIRE(kMaxRougeTokens == 10'000);
  const std::string ab = Repeat("a ", 10'000) + Repeat("b ", 10'000);
  CHECK(RougeL(ab, Repeat("a ", 10'000)).recall == 1.0);  // Uncapped: 0.5.
  CHECK(RougeN(ab, Repeat("a ", 10'000), 1).recall == 1.0);
  CHECK(RougeLsum(Repeat("a ", 10'000) + "\n" + Repeat("b ", 10'000), "a").recall == 1e-4);

  const std::string bad = "\xff\xfe \xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80";
  CHECK(SentenceBleu(bad, {bad}).score == Approx(100.0).epsilon(1e-14));
  CHECK(SentenceChrf(bad, {bad}) == 100.0);
  CHECK(SentenceChrf("\xc3", {"\xc3\xa9"}) == 0.0);
  CHECK(RougeL(bad, bad).fmeasure == 0.0);  // Only "28" -> '(' ... no [a-z0-9] tokens.
  CHECK(EditSimilarity(bad, bad) == 1.0);

  CHECK(CorpusBleu({}, {}).score == 0.0);
  CHECK(CorpusChrf({}, {}) == 0.0);
  CHECK(SentenceBleu("", {""}).score == 0.0);
  // A reference stream shorter than the hypotheses: the rest have no reference.
  const auto stats = CorpusBleuStats({"a b", "c d"}, {{"a b"}});
  REQUIRE(stats.size() == 2);
  CHECK(stats[1] == BleuStats{2, 0, {0, 0, 0, 0}, {2, 1, 0, 0}});
  // Options from a pipeline file are clamped.
  ChrfOptions wild;
  wild.char_order = 1'000'000;
  wild.word_order = -3;
  CHECK(SentenceChrfStats("abc", {"abc"}, wild).values.size() == 3 * 16);
  wild.beta = std::nan("");
  CHECK(SentenceChrf("abcd", {"abce"}, wild) == SentenceChrf("abcd", {"abce"}, ChrfOptions{16}));
  BleuOptions floor = SentenceBleuOptions();
  floor.smooth_method = BleuSmooth::kFloor;
  const double by_default = SentenceBleu("a b c", {"a b d"}, floor).score;
  floor.smooth_value = -1;
  CHECK(SentenceBleu("a b c", {"a b d"}, floor).score == by_default);
  floor.smooth_value = std::nan("");
  CHECK(SentenceBleu("a b c", {"a b d"}, floor).score == by_default);
}

}  // namespace
}  // namespace assay::evals
