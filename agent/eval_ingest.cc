// An eval that ingests what a test suite wrote (issue 10, docs/evals.md "Ingest"): JUnit XML
// or lm-evaluation-harness results, turned into an EvalReport whose examples and metrics gate
// like any eval's (absolute bounds, and a paired bootstrap against a baseline's examples).

#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "agent/artifact_paths.h"
#include "agent/eval_step.h"
#include "common/base/status.h"
#include "common/crypto/crypto.h"
#include "common/evals/data/ingest.h"
#include "common/evals/metrics/stats.h"
#include "common/proc/spawn.h"

namespace assay {
namespace {

constexpr size_t kMaxIngestFileBytes = size_t{64} << 20;
constexpr size_t kMaxIngestFiles = 1000;
constexpr size_t kKept = 4096;

std::string Cut(const std::string& s) { return s.size() > kKept ? s.substr(0, kKept) : s; }

absl::StatusOr<std::string> ReadWhole(int root, const std::string& rel,
                                      std::optional<uid_t> owner) {
  absl::StatusOr<UniqueFd> fd = OpenArtifactSource(root, rel, owner);
  if (!fd.ok())
    return absl::Status(fd.status().code(), absl::StrCat(rel, ": ", fd.status().message()));
  std::string out;
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd->get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::InternalError(absl::StrCat(rel, ": cannot read"));
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > kMaxIngestFileBytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat(rel, ": larger than ", kMaxIngestFileBytes >> 20, " MiB"));
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

EvalMetricSummary Count(const char* name, int64_t v) {
  return {name, static_cast<double>(v), static_cast<double>(v), static_cast<double>(v), v};
}

}  // namespace

absl::StatusOr<EvalReport> IngestReport(const evals::EvalSpec& spec, const std::string& workspace,
                                        std::optional<uid_t> owner) {
  CollectOptions o;
  o.owner = owner;
  o.max_files = kMaxIngestFiles;
  absl::StatusOr<CollectResult> found = CollectArtifactFiles(workspace, {spec.ingest_path}, o);
  if (!found.ok()) return found.status();
  if (found->files.empty()) {
    return absl::NotFoundError(absl::StrCat("ingest: no file matches '", spec.ingest_path,
                                            "' (did the step that runs the suite write it?)"));
  }
  UniqueFd root(::open(workspace.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root.valid()) return absl::InternalError("ingest: cannot open the workspace");
  EvalReport r;
  r.name = spec.name;
  r.dataset_path = spec.ingest_path;
  Sha256Stream digest;
  if (spec.ingest_format == "junit") {
    std::set<std::string> ids;
    std::vector<double> pass;
    int64_t tests = 0, passed = 0, failures = 0, errors = 0, skipped = 0;
    double time_s = 0;
    for (const CollectedFile& f : found->files) {
      ASSAY_ASSIGN_OR_RETURN(std::string xml, ReadWhole(root.get(), f.source, owner));
      digest.Update(xml);
      ASSAY_ASSIGN_OR_RETURN(evals::JunitReport rep, evals::ParseJunitXml(xml, f.path));
      for (const evals::JunitCase& c : rep.cases) {
        EvalExampleOutcome e;
        e.index = static_cast<int>(r.examples.size());
        std::string id = absl::StrCat(c.suite, "::", c.classname, "::", c.name);
        for (int n = 2; !ids.insert(id).second; ++n) {
          id = absl::StrCat(c.suite, "::", c.classname, "::", c.name, " #", n);
        }
        e.example_id = std::move(id);
        e.input = Cut(c.classname.empty() ? c.name : absl::StrCat(c.classname, ".", c.name));
        e.expected = "passed";
        // The failure's message and traceback are the "output" (the diff shows them); `error`
        // stays for cases that were not run, which a report does not have.
        std::string out = c.message.empty() ? c.status : absl::StrCat(c.status, ": ", c.message);
        if (!c.details.empty()) absl::StrAppend(&out, "\n", c.details);
        e.output = Cut(out);
        e.passed = c.status != "failed" && c.status != "error";
        e.answered = 1;
        e.passes = e.passed ? 1 : 0;
        e.latency_ms = c.time_s * 1000;
        ++tests;
        time_s += c.time_s;
        if (c.status == "skipped") {
          ++skipped;
        } else {
          e.scores.emplace_back("pass_rate", e.passed ? 1.0 : 0.0);
          pass.push_back(e.passed ? 1.0 : 0.0);
          if (c.status == "passed") ++passed;
          if (c.status == "failed") ++failures;
          if (c.status == "error") ++errors;
        }
        r.examples.push_back(std::move(e));
      }
    }
    const evals::Interval rate = evals::MeanInterval(pass);
    r.metrics = {Count("tests", tests),
                 Count("passed", passed),
                 Count("failures", failures),
                 Count("errors", errors),
                 Count("skipped", skipped),
                 {"pass_rate", rate.mean, rate.lo, rate.hi, rate.n},
                 {"time_s", time_s, time_s, time_s, tests}};
  } else {
    std::map<std::string, std::string> where;  // metric -> the file it came from
    for (const CollectedFile& f : found->files) {
      ASSAY_ASSIGN_OR_RETURN(std::string text, ReadWhole(root.get(), f.source, owner));
      digest.Update(text);
      ASSAY_ASSIGN_OR_RETURN(std::vector<evals::IngestedMetric> ms,
                             evals::ParseLmEvalResults(text, f.path));
      for (const evals::IngestedMetric& m : ms) {
        std::string name = absl::StrCat(m.task, "/", m.metric);
        if (m.filter != "none" && !m.filter.empty()) absl::StrAppend(&name, ",", m.filter);
        if (auto [it, fresh] = where.emplace(name, f.path); !fresh) {
          return absl::InvalidArgumentError(
              absl::StrCat("ingest: metric ", name, " is in both ", it->second, " and ", f.path));
        }
        EvalExampleOutcome e;
        e.index = static_cast<int>(r.examples.size());
        e.example_id = name;
        e.input = Cut(m.alias.empty() ? m.task : m.alias);
        e.output = absl::StrCat(m.value);
        e.passed = true;
        e.answered = 1;
        e.passes = 1;
        e.scores.emplace_back(name, m.value);
        r.examples.push_back(std::move(e));
        const double half = m.stderr_value.has_value() ? 1.96 * *m.stderr_value : 0;
        r.metrics.push_back({name, m.value, m.value - half, m.value + half, 1});
      }
    }
  }
  r.dataset_sha256 = digest.Hex();
  return r;
}

std::shared_ptr<StepDriver> MakeIngestDriver(evals::EvalSpec spec, EvalStepContext ctx) {
  auto shared = std::make_shared<std::pair<evals::EvalSpec, EvalStepContext>>(std::move(spec),
                                                                              std::move(ctx));
  auto driver = std::make_shared<StepDriver>();
  driver->start = []() -> absl::StatusOr<std::string> { return std::string(":"); };
  driver->drive = [shared](const std::atomic<bool>&, CancelFlag&) -> absl::Status {
    const auto& [spec, ctx] = *shared;
    std::optional<uid_t> owner;
    if (ctx.user.has_value()) owner = ctx.user->uid;
    absl::StatusOr<EvalReport> r = IngestReport(spec, ctx.workspace, owner);
    if (!r.ok()) return r.status();
    return ConcludeEval(spec, ctx, *r, absl::OkStatus());
  };
  return driver;
}

}  // namespace assay
