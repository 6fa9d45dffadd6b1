// The agent's side of a `train:` step (issue 10, agent/train_step.h): the metrics file's
// lines, DVC pointers, and the shell text with its environment, run through a real /bin/sh.
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "agent/train_step.h"
#include "common/proc/spawn.h"

namespace assay {
namespace {

using Point = TrainMetricsParser::Point;

std::vector<std::string> Show(const std::vector<Point>& points) {
  std::vector<std::string> out;
  for (const Point& p : points) {
    char buf[200];
    snprintf(buf, sizeof buf, "%s@%lld=%.17g", p.name.c_str(), static_cast<long long>(p.step),
             p.value);
    out.emplace_back(buf);
  }
  return out;
}

TEST_CASE("train metrics: lines split across reads give one point per numeric field") {
  TrainMetricsParser p;
  std::vector<Point> points;
  std::vector<std::string> notes;
  p.Feed(R"({"step": 10, "loss": 1.25, "lr": 0.003, "phase": "warmup", "ok": true})"
         "\n{\"step\": 2",
         points, notes);
  CHECK(Show(points) == std::vector<std::string>{"loss@10=1.25", "lr@10=0.0030000000000000001"});
  p.Feed("0, \"loss\": 1e-2}\n", points, notes);
  CHECK(Show(points).back() == "loss@20=0.01");
  CHECK(notes.empty());
  CHECK(p.lines() == 2);
  p.Feed(R"({"step": 30.0, "loss": 0.5})", points, notes);  // no newline yet
  CHECK(points.size() == 3);
  p.Finish(points, notes);
  CHECK(Show(points).back() == "loss@30=0.5");
}

TEST_CASE("train metrics: every number is read exactly, as Python wrote it") {
  TrainMetricsParser p;
  std::vector<Point> points;
  std::vector<std::string> notes;
  std::string lines;
  for (int i = 1; i <= 200; ++i) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", 1.0 / i);  // 17 digits, as repr() may write them
    lines += "{\"step\": " + std::to_string(i) + ", \"loss\": " + buf + "}\n";
  }
  lines += "{\"step\": 201, \"loss\": 0.09090909090909091, \"big\": 1e308, \"n\": -0.0}\n";
  p.Feed(lines, points, notes);
  REQUIRE(points.size() == 203);
  for (int i = 1; i <= 200; ++i) {
    INFO(i);
    CHECK(points[static_cast<size_t>(i - 1)].value == 1.0 / i);
  }
  CHECK(points[200].value == 1.0 / 11);
  CHECK(points[201].value == 1e308);
  CHECK(notes.empty());
}

TEST_CASE("train metrics: bad lines are notes naming the line, and nothing else is lost") {
  TrainMetricsParser p;
  std::vector<Point> points;
  std::vector<std::string> notes;
  p.Feed(
      "not json\n{\"loss\": 1}\n{\"step\": -1, \"loss\": 1}\n{\"step\": 1.5, \"x\": 1}\n"
      "[1,2]\n\n{\"step\": 3, \"loss\": 2}\n",
      points, notes);
  CHECK(Show(points) == std::vector<std::string>{"loss@3=2"});
  CHECK(notes == std::vector<std::string>{
                     R"(line 1 is not a JSON object with an integer "step" >= 0: not json)",
                     R"(line 2 is not a JSON object with an integer "step" >= 0: {\"loss\": 1})",
                     R"(line 3 is not a JSON object with an integer "step" >= 0: {\"step\": -1, )"
                     R"(\"loss\": 1})",
                     R"(line 4 is not a JSON object with an integer "step" >= 0: {\"step\": 1.5, )"
                     R"(\"x\": 1})",
                     R"(line 5 is not a JSON object with an integer "step" >= 0: [1,2])"});
}

TEST_CASE("train metrics: an over-long line is skipped whole, however it arrives") {
  TrainMetricsParser p;
  std::vector<Point> points;
  std::vector<std::string> notes;
  const std::string big = "{\"step\": 1, \"x\": \"" + std::string(70'000, 'a') + "\"}";
  for (size_t i = 0; i < big.size(); i += 1000) p.Feed(big.substr(i, 1000), points, notes);
  p.Feed("\n{\"step\": 2, \"loss\": 1}\n", points, notes);
  CHECK(Show(points) == std::vector<std::string>{"loss@2=1"});
  CHECK(notes == std::vector<std::string>{"line 1 is longer than 65536 bytes; skipped"});
}

TEST_CASE("train metrics: at most 64 series, names with control characters refused") {
  TrainMetricsParser p;
  std::vector<Point> points;
  std::vector<std::string> notes;
  std::string line = "{\"step\": 1";
  for (int i = 0; i < 70; ++i) line += ", \"m" + std::to_string(i) + "\": " + std::to_string(i);
  line += ", \"bad\\u0001\": 1, \"\": 2}\n";
  p.Feed(line, points, notes);
  p.Feed("{\"step\": 2, \"m0\": 5, \"m69\": 6}\n", points, notes);
  CHECK(points.size() == 65);
  CHECK(Show(points).back() == "m0@2=5");
  CHECK(notes == std::vector<std::string>{
                     R"(line 1: more than 64 series; "m64" and later new names are dropped)",
                     R"(line 1: field "bad\x01" is not a series name (1 to 128 bytes, no control )"
                     R"(characters); skipped)",
                     R"(line 1: field "" is not a series name (1 to 128 bytes, no control )"
                     R"(characters); skipped)"});
  // Bytes that are not UTF-8 make the line bad JSON; the line is named and skipped.
  notes.clear();
  p.Feed("{\"step\": 3, \"\xff\": 3}\n", points, notes);
  CHECK(points.size() == 65);
  CHECK(notes == std::vector<std::string>{
                     R"(line 3 is not a JSON object with an integer "step" >= 0: {\"step\": 3, )"
                     R"(\"\xff\": 3})"});
}

TEST_CASE("train: DVC pointers give the output's md5 and its path beside the pointer") {
  const std::string file =
      "outs:\n- md5: a304afb96060aad90176268345e10355\n  size: 12\n"
      "  hash: md5\n  path: corpus.txt\n- md5: ffffffffffffffffffffffffffffffff\n"
      "  path: other\n";
  absl::StatusOr<DvcOutput> out = ParseDvcPointer("data/corpus.txt.dvc", file);
  REQUIRE(out.ok());
  CHECK(out->path == "data/corpus.txt");
  CHECK(out->md5 == "a304afb96060aad90176268345e10355");

  out = ParseDvcPointer("imgs.dvc",
                        "# comment\nouts:\n  - path: 'images'\n    md5: "
                        "\"0123456789abcdef0123456789abcdef.dir\"\n    nfiles: 3\n");
  REQUIRE(out.ok());
  CHECK(out->path == "images/");
  CHECK(out->md5 == "0123456789abcdef0123456789abcdef");

  for (const char* bad : {"", "outs:\n- path: x\n", "outs:\n- md5: 123\n  path: x\n",
                          "outs:\n- md5: a304afb96060aad90176268345e10355\n  path: ../x\n",
                          "outs:\n- md5: a304afb96060aad90176268345e10355\n  path: /etc/x\n",
                          "deps:\n- md5: a304afb96060aad90176268345e10355\n  path: x\n"}) {
    absl::StatusOr<DvcOutput> r = ParseDvcPointer("d.dvc", bad);
    INFO(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message() ==
          "DVC file d.dvc: no output with an md5 (32 hex digits) and a relative path under outs:");
  }
}

TEST_CASE("train: the shell text sets the contract's variables, quoted, for the real /bin/sh") {
  evals::TrainSpec spec;
  spec.command = R"(printf '%s|%s|%s|%s|%s\n' "$ASSAY_MODEL_DIR" "$ASSAY_CHECKPOINT_DIR" )"
                 R"("$ASSAY_METRICS_FILE" "$ASSAY_PARAMS" "${ASSAY_RESUME_STEP-unset}"; )"
                 R"(test -d "$ASSAY_MODEL_DIR" && test -d "$ASSAY_CHECKPOINT_DIR" && )"
                 R"(test -f "$ASSAY_METRICS_FILE" && test ! -s "$ASSAY_METRICS_FILE")";
  spec.model = "m";
  spec.model_dir = "out/it's $HOME";
  spec.params_json = R"js({"q":"it's","d":"$(id)"})js";
  char tmpl[] = "/tmp/assay-train-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  auto run = [&](std::optional<int64_t> resume) {
    const std::string script = "cd " + dir + " && " + TrainShellText(spec, 2, resume);
    FILE* f = popen(("/bin/sh -e -c '" +
                     [&] {
                       std::string q;
                       for (char c : script)
                         q += c == '\'' ? std::string("'\\''") : std::string(1, c);
                       return q;
                     }() +
                     "'")
                        .c_str(),
                    "r");
    REQUIRE(f != nullptr);
    char buf[4096];
    std::string out;
    while (fgets(buf, sizeof buf, f) != nullptr) out += buf;
    CHECK(pclose(f) == 0);
    return out;
  };
  CHECK(run(std::nullopt) ==
        dir + "/out/it's $HOME|" + dir + "/.assay/train/2/checkpoints|" + dir +
            "/.assay/train/2/metrics.jsonl|{\"q\":\"it's\",\"d\":\"$(id)\"}|unset\n");
  CHECK(run(120) == dir + "/out/it's $HOME|" + dir + "/.assay/train/2/checkpoints|" + dir +
                        "/.assay/train/2/metrics.jsonl|{\"q\":\"it's\",\"d\":\"$(id)\"}|120\n");
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace assay
