#include "agent/eval_step.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/artifact_paths.h"
#include "common/base/status.h"
#include "common/crypto/crypto.h"
#include "common/evals/data/assertions.h"
#include "common/evals/data/dataset.h"
#include "common/evals/data/json_strict.h"
#include "common/evals/data/prompt_template.h"
#include "common/evals/data/safe_regex.h"
#include "common/evals/metrics/stats.h"
#include "common/evals/metrics/text_metrics.h"
#include "common/net/http_client.h"
#include "common/proc/spawn.h"

namespace assay {
namespace {

namespace json = boost::json;
using evals::EvalSpec;
using evals::Example;

// ---- Reading the workspace. ----

absl::StatusOr<std::string> ReadWorkspaceFile(const EvalStepContext& ctx, const std::string& rel,
                                              size_t max, std::string_view key) {
  UniqueFd root(open(ctx.workspace.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root.valid()) {
    return absl::InternalError(absl::StrCat("cannot open the workspace: ", strerror(errno)));
  }
  absl::StatusOr<UniqueFd> fd = OpenArtifactSource(
      root.get(), rel, ctx.user.has_value() ? std::optional<uid_t>(ctx.user->uid) : std::nullopt);
  if (!fd.ok()) {
    return absl::Status(fd.status().code(),
                        absl::StrCat(std::string(key), " '", rel, "': ", fd.status().message()));
  }
  std::string bytes;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = read(fd->get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::InternalError(
          absl::StrCat(std::string(key), " '", rel, "': read: ", strerror(errno)));
    }
    if (n == 0) break;
    bytes.append(buf, static_cast<size_t>(n));
    if (bytes.size() > max) {
      return absl::InvalidArgumentError(absl::StrCat(
          std::string(key), " '", rel, "' is larger than the limit of ", max, " bytes"));
    }
  }
  return bytes;
}

std::string Cut(std::string_view s) {
  return std::string(s.substr(0, std::min(s.size(), kMaxEvalKeptText)));
}

// ---- Requests and answers. ----

struct Item {
  int example = 0;
  int repeat = 0;
  std::string prompt;  // the rendered template, or the example's input
};

struct Answer {
  bool done = false;  // answered or given up
  bool ok = false;
  std::string output;
  std::string error;
  double latency_ms = 0;
  int64_t input_tokens = 0, output_tokens = 0;
  std::optional<double> judge;  // the judge's score of `output`, with the judge metric
  std::string judge_error;      // why there is none
};

// The usage of a reply ({"input_tokens","output_tokens"} or OpenAI's prompt/completion names);
// absent: EstimateTokens of the texts.
void TakeUsage(const json::object* usage, std::string_view prompt, Answer& a) {
  auto number = [&](std::initializer_list<std::string_view> names) -> std::optional<int64_t> {
    if (usage == nullptr) return std::nullopt;
    for (std::string_view n : names) {
      const json::value* v = usage->if_contains(n);
      if (v != nullptr && v->is_number()) return v->to_number<int64_t>();
    }
    return std::nullopt;
  };
  a.input_tokens =
      number({"input_tokens", "prompt_tokens"}).value_or(evals::EstimateTokens(prompt));
  a.output_tokens =
      number({"output_tokens", "completion_tokens"}).value_or(evals::EstimateTokens(a.output));
}

json::object RequestObject(const Example& e, const Item& item) {
  json::object o{{"prompt", item.prompt}, {"input", e.input}};
  if (!e.messages.empty()) {
    json::array messages;
    for (const auto& m : e.messages) {
      messages.push_back(json::object{{"role", m.role}, {"content", m.content}});
    }
    o["messages"] = std::move(messages);
  }
  json::object vars;
  for (const auto& [k, v] : e.vars) vars[k] = v;
  o["vars"] = std::move(vars);
  return o;
}

// The shared bookkeeping of attempts: which item goes next, retries, the final answers.
class Ledger {
 public:
  Ledger(const EvalSpec& spec, size_t items) : spec_(spec), answers_(items), attempts_(items) {}

  // A failed attempt of `item`: retried (true) or given up with `error`.
  bool Failed(size_t item, std::string error) {
    if (attempts_[item] <= spec_.retries) return true;
    answers_[item].done = true;
    answers_[item].error = std::move(error);
    return false;
  }
  int NextAttempt(size_t item) { return ++attempts_[item]; }
  Answer& answer(size_t item) { return answers_[item]; }
  std::vector<Answer> Take() { return std::move(answers_); }

 private:
  const EvalSpec& spec_;
  std::vector<Answer> answers_;
  std::vector<int> attempts_;
};

// ---- The model as a command speaking JSONL over two FIFOs. ----

class CommandModel {
 public:
  // Makes the FIFOs in the workspace and opens the reply side (so that the command's `>OUT`
  // does not block). Returns the shell text of the step.
  absl::StatusOr<std::string> Start(const EvalStepContext& ctx, const std::string& command) {
    UniqueFd root(open(ctx.workspace.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!root.valid()) {
      return absl::InternalError(absl::StrCat("cannot open the workspace: ", strerror(errno)));
    }
    const std::string base = absl::StrCat(".assay-eval-", RandomHexToken(8));
    in_name_ = base + ".in";
    out_name_ = base + ".out";
    root_ = std::move(root);
    for (const std::string* name : {&in_name_, &out_name_}) {
      // mkfifoat never follows a symlink at the name: an existing entry is EEXIST.
      if (mkfifoat(root_.get(), name->c_str(), 0600) != 0) {
        return absl::InternalError(
            absl::StrCat("cannot make the FIFO ", *name, ": ", strerror(errno)));
      }
      if (ctx.user.has_value() && fchownat(root_.get(), name->c_str(), ctx.user->uid, ctx.user->gid,
                                           AT_SYMLINK_NOFOLLOW) != 0) {
        return absl::InternalError(
            absl::StrCat("cannot give the FIFO ", *name, " to the job user: ", strerror(errno)));
      }
    }
    out_ = UniqueFd(
        openat(root_.get(), out_name_.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC));
    if (!out_.valid()) {
      return absl::InternalError(
          absl::StrCat("cannot open the FIFO ", out_name_, ": ", strerror(errno)));
    }
    return absl::StrCat("{\n", command, "\n} <'", in_name_, "' >'", out_name_, "'");
  }

  ~CommandModel() {
    if (root_.valid()) {
      unlinkat(root_.get(), in_name_.c_str(), 0);
      unlinkat(root_.get(), out_name_.c_str(), 0);
    }
  }

  // Sends every item, `concurrency` at a time, and collects the replies. An error ends the run
  // (the answers so far stay in `ledger`).
  absl::Status Run(const EvalSpec& spec, const std::vector<Example>& examples,
                   const std::vector<Item>& items, Ledger& ledger, const std::atomic<bool>& exited,
                   CancelFlag& cancel) {
    // The command opens IN for reading when it starts; until then a non-blocking open fails
    // with ENXIO. Bounded by the request timeout.
    const absl::Time open_deadline = absl::Now() + absl::Milliseconds(spec.timeout_ms);
    while (!in_.valid()) {
      in_ = UniqueFd(
          openat(root_.get(), in_name_.c_str(), O_WRONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC));
      if (in_.valid()) break;
      if (errno != ENXIO) {
        return absl::InternalError(
            absl::StrCat("cannot open the FIFO ", in_name_, ": ", strerror(errno)));
      }
      if (cancel.canceled()) return absl::CancelledError("canceled");
      if (exited.load()) {
        return absl::FailedPreconditionError("the model command exited before it read its input");
      }
      if (absl::Now() >= open_deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            "the model command did not open its input within ", spec.timeout_ms / 1000.0, "s"));
      }
      usleep(5000);
    }
    struct Flight {
      size_t item;
      absl::Time sent;
    };
    std::map<std::string, Flight> flights;  // request id -> attempt
    std::vector<size_t> queue;              // items to send, back first
    for (size_t i = items.size(); i-- > 0;) queue.push_back(i);
    std::string pending;  // bytes written but not yet accepted by the FIFO
    std::string buffer;   // reply bytes not yet a whole line
    size_t lines = 0, finished = 0;
    char chunk[1 << 16];
    const absl::Duration timeout = absl::Milliseconds(spec.timeout_ms);
    auto give_up_or_retry = [&](size_t item, std::string why) {
      if (ledger.Failed(item, std::move(why))) {
        queue.push_back(item);
      } else {
        ++finished;
      }
    };
    while (finished < items.size()) {
      if (cancel.canceled()) return absl::CancelledError("canceled");
      while (pending.size() < (1 << 20) && !queue.empty() &&
             flights.size() < static_cast<size_t>(spec.concurrency)) {
        const size_t item = queue.back();
        queue.pop_back();
        const std::string id = absl::StrCat(item, "-", ledger.NextAttempt(item));
        json::object req = RequestObject(examples[items[item].example], items[item]);
        req["id"] = id;
        pending += json::serialize(req);
        pending += '\n';
        flights[id] = {item, absl::Now()};
      }
      pollfd fds[2] = {{out_.get(), POLLIN, 0}, {in_.get(), POLLOUT, 0}};
      const int n = poll(fds, pending.empty() ? 1 : 2, 50);
      if (n < 0 && errno != EINTR)
        return absl::InternalError(absl::StrCat("poll: ", strerror(errno)));
      if (!pending.empty() && n > 0 && fds[1].revents != 0) {
        const ssize_t w = write(in_.get(), pending.data(), pending.size());
        if (w > 0) {
          pending.erase(0, static_cast<size_t>(w));
        } else if (w < 0 && errno == EPIPE) {
          return absl::FailedPreconditionError(
              absl::StrCat("the model command closed its input after ", finished, " of ",
                           items.size(), " requests"));
        }
      }
      bool eof = false;
      if (n > 0 && fds[0].revents != 0) {
        for (;;) {
          const ssize_t r = read(out_.get(), chunk, sizeof chunk);
          if (r > 0) {
            buffer.append(chunk, static_cast<size_t>(r));
            if (buffer.size() > kMaxEvalReplyLine && buffer.find('\n') == std::string::npos) {
              return absl::InvalidArgumentError(
                  absl::StrCat("line ", lines + 1, " of the model command's output is longer than ",
                               kMaxEvalReplyLine, " bytes"));
            }
            continue;
          }
          if (r == 0) eof = true;
          break;
        }
      }
      size_t start = 0;
      for (size_t nl; (nl = buffer.find('\n', start)) != std::string::npos; start = nl + 1) {
        ++lines;
        std::string_view line(buffer.data() + start, nl - start);
        if (line.empty()) continue;
        json::value v;
        boost::system::error_code ec;
        v = json::parse(line, ec);
        const json::object* o = ec ? nullptr : v.if_object();
        const json::value* idv = o != nullptr ? o->if_contains("id") : nullptr;
        if (o == nullptr || idv == nullptr || !idv->is_string()) {
          return absl::InvalidArgumentError(
              absl::StrCat("line ", lines,
                           " of the model command's output is not a JSON reply with an "
                           "\"id\": ",
                           Cut(line.substr(0, 120))));
        }
        auto it = flights.find(std::string(idv->as_string()));
        if (it == flights.end()) continue;  // a late reply to an attempt that timed out
        const size_t item = it->second.item;
        const double ms = absl::ToDoubleMilliseconds(absl::Now() - it->second.sent);
        flights.erase(it);
        const json::value* out = o->if_contains("output");
        const json::value* err = o->if_contains("error");
        if (out != nullptr && out->is_string()) {
          Answer& a = ledger.answer(item);
          a.done = a.ok = true;
          a.output = std::string(out->as_string());
          a.latency_ms = ms;
          const json::value* usage = o->if_contains("usage");
          TakeUsage(usage != nullptr ? usage->if_object() : nullptr, items[item].prompt, a);
          ++finished;
        } else if (err != nullptr) {
          give_up_or_retry(item, absl::StrCat("the model answered an error: ",
                                              err->is_string() ? std::string(err->as_string())
                                                               : json::serialize(*err)));
        } else {
          return absl::InvalidArgumentError(
              absl::StrCat("line ", lines,
                           " of the model command's output has neither \"output\" (a "
                           "string) nor \"error\""));
        }
      }
      buffer.erase(0, start);
      const absl::Time now = absl::Now();
      for (auto it = flights.begin(); it != flights.end();) {
        if (now - it->second.sent < timeout) {
          ++it;
          continue;
        }
        const size_t item = it->second.item;
        it = flights.erase(it);
        give_up_or_retry(item, absl::StrCat("no reply within ", spec.timeout_ms / 1000.0, "s"));
      }
      if (finished < items.size() && (eof || exited.load())) {
        return absl::FailedPreconditionError(
            absl::StrCat("the model command ", exited.load() ? "exited" : "closed its output",
                         " after answering ", finished, " of ", items.size(), " requests"));
      }
    }
    in_.Reset();  // EOF: the command may end by itself now
    return absl::OkStatus();
  }

 private:
  UniqueFd root_, in_, out_;
  std::string in_name_, out_name_;
};

// ---- The model as an OpenAI-shaped HTTP endpoint. ----

absl::Status RunHttp(const EvalSpec& spec, const EvalStepContext& ctx,
                     const std::vector<Example>& examples, const std::vector<Item>& items,
                     Ledger& ledger, const std::atomic<bool>& exited, CancelFlag& cancel) {
  std::vector<std::pair<std::string, std::string>> headers;
  if (!spec.model.api_key_secret.empty()) {
    std::optional<std::string> key =
        ctx.secret ? ctx.secret(spec.model.api_key_secret) : std::nullopt;
    if (!key.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "model.api_key_secret '", spec.model.api_key_secret, "' is not a secret of this job"));
    }
    headers.emplace_back("Authorization", "Bearer " + *key);
  }
  // A served endpoint is up when it answers at all (any status); bounded by the timeout.
  if (!spec.model.serve.empty()) {
    const absl::Time deadline = absl::Now() + absl::Milliseconds(spec.timeout_ms);
    for (;;) {
      if (cancel.canceled()) return absl::CancelledError("canceled");
      if (exited.load()) {
        return absl::FailedPreconditionError(
            absl::StrCat("model.serve exited before ", spec.model.url, " answered"));
      }
      if (HttpFetch("GET", spec.model.url, headers, {}, absl::Seconds(1)).ok()) break;
      if (absl::Now() >= deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat(spec.model.url, " did not answer within ", spec.timeout_ms / 1000.0, "s"));
      }
      usleep(50'000);
    }
  }
  absl::Mutex mu;
  size_t next = 0;
  std::vector<size_t> retry;
  auto work = [&] {
    for (;;) {
      size_t item;
      {
        absl::MutexLock l(&mu);
        if (cancel.canceled() || exited.load()) return;
        if (!retry.empty()) {
          item = retry.back();
          retry.pop_back();
        } else if (next < items.size()) {
          item = next++;
        } else {
          return;
        }
        ledger.NextAttempt(item);
      }
      const Example& e = examples[items[item].example];
      json::object body;
      if (!spec.model.name.empty()) body["model"] = spec.model.name;
      if (spec.model.api == "chat") {
        json::array messages;
        if (!e.messages.empty() && spec.prompt.empty()) {
          for (const auto& m : e.messages) {
            messages.push_back(json::object{{"role", m.role}, {"content", m.content}});
          }
        } else {
          messages.push_back(json::object{{"role", "user"}, {"content", items[item].prompt}});
        }
        body["messages"] = std::move(messages);
      } else {
        body["prompt"] = items[item].prompt;
      }
      const absl::Time sent = absl::Now();
      absl::StatusOr<HttpClientResponse> res =
          HttpFetch("POST", spec.model.url, headers, json::serialize(body),
                    absl::Milliseconds(spec.timeout_ms));
      const double ms = absl::ToDoubleMilliseconds(absl::Now() - sent);
      std::string error;
      std::string output;
      const json::object* usage = nullptr;
      json::value parsed;
      if (!res.ok()) {
        error = std::string(res.status().message());
      } else if (res->status != 200) {
        error = absl::StrCat("HTTP ", res->status, ": ", Cut(res->body.substr(0, 200)));
      } else {
        boost::system::error_code ec;
        parsed = json::parse(res->body, ec);
        const json::object* o = ec ? nullptr : parsed.if_object();
        const json::value* choices = o != nullptr ? o->if_contains("choices") : nullptr;
        const json::value* text = nullptr;
        if (choices != nullptr && choices->is_array() && !choices->as_array().empty() &&
            choices->as_array()[0].is_object()) {
          const json::object& c = choices->as_array()[0].as_object();
          if (spec.model.api == "chat") {
            const json::value* m = c.if_contains("message");
            text = m != nullptr && m->is_object() ? m->as_object().if_contains("content") : nullptr;
          } else {
            text = c.if_contains("text");
          }
        }
        if (text == nullptr || !text->is_string()) {
          error = absl::StrCat("the reply is not an OpenAI ", spec.model.api,
                               " completion: ", Cut(res->body.substr(0, 200)));
        } else {
          output = std::string(text->as_string());
          const json::value* u = o->if_contains("usage");
          usage = u != nullptr ? u->if_object() : nullptr;
        }
      }
      absl::MutexLock l(&mu);
      if (error.empty()) {
        Answer& a = ledger.answer(item);
        a.done = a.ok = true;
        a.output = std::move(output);
        a.latency_ms = ms;
        TakeUsage(usage, items[item].prompt, a);
      } else if (ledger.Failed(item, std::move(error))) {
        retry.push_back(item);
      }
    }
  };
  std::vector<std::thread> workers;
  for (int i = 0; i < spec.concurrency; ++i) workers.emplace_back(work);
  for (std::thread& t : workers) t.join();
  if (cancel.canceled()) return absl::CancelledError("canceled");
  if (exited.load() && !spec.model.serve.empty()) {
    size_t done = 0;
    for (size_t i = 0; i < items.size(); ++i) done += ledger.answer(i).done ? 1 : 0;
    if (done < items.size()) {
      return absl::FailedPreconditionError(absl::StrCat("model.serve exited after ", done, " of ",
                                                        items.size(), " requests were answered"));
    }
  }
  return absl::OkStatus();
}

// ---- Scoring. ----

bool Binary(std::string_view metric) {
  return metric == "exact_match" || metric == "contains" || metric == "regex" ||
         metric == "json_valid" || metric == "assertions";
}

bool PerExample(std::string_view metric) {
  return Binary(metric) || metric == "bleu" || metric == "chrf" || metric == "rouge_l" ||
         metric == "edit_similarity" || metric == "judge";
}

bool NeedsExpected(std::string_view metric) {
  return metric == "exact_match" || metric == "contains" || metric == "bleu" || metric == "chrf" ||
         metric == "rouge_l" || metric == "edit_similarity";
}

evals::NormalizeOptions NormalizeOf(const EvalSpec& spec) {
  evals::NormalizeOptions n;
  n.lowercase = spec.normalize.lowercase;
  n.strip = spec.normalize.strip;
  n.collapse_whitespace = spec.normalize.collapse_whitespace;
  n.remove_punctuation = spec.normalize.remove_punctuation;
  return n;
}

std::string Fixed(double v) { return absl::StrFormat("%.4f", v); }

// An example's assertions with their values rendered as templates (promptfoo's `{{ expected }}`),
// compiled.
absl::StatusOr<evals::AssertionSet> CompileAssertions(const Example& e) {
  absl::StatusOr<std::vector<evals::Assertion>> rendered =
      evals::RenderAssertionValues(e.asserts, e);
  if (!rendered.ok()) return rendered.status();
  return evals::AssertionSet::Compile(*std::move(rendered));
}

// ScoreOutput with the regex metric's pattern and the example's assertions compiled by the
// caller (once per run and once per example, not once per output); null where not used.
std::vector<std::pair<std::string, double>> ScoreCompiled(
    const EvalSpec& spec, const Example& e, std::string_view output, const evals::SafeRegex* regex,
    const evals::AssertionSet* asserts, bool* passed, std::optional<double> judge = {}) {
  std::vector<std::pair<std::string, double>> scores;
  bool all = true;
  const std::string expected = e.expected.value_or("");
  const evals::NormalizeOptions norm = NormalizeOf(spec);
  for (const std::string& m : spec.metrics) {
    double s = 0;
    if (m == "exact_match") {
      s = evals::ExactMatch(output, expected, norm) ? 1 : 0;
    } else if (m == "contains") {
      s = evals::Normalize(output, norm).find(evals::Normalize(expected, norm)) != std::string::npos
              ? 1
              : 0;
    } else if (m == "regex") {
      s = regex != nullptr && regex->PartialMatch(output) ? 1 : 0;
    } else if (m == "json_valid") {
      s = evals::IsJson(output) ? 1 : 0;
    } else if (m == "bleu") {
      s = evals::SentenceBleu(output, {expected}).score;
    } else if (m == "chrf") {
      s = evals::SentenceChrf(output, {expected});
    } else if (m == "rouge_l") {
      s = evals::RougeL(expected, output).fmeasure;
    } else if (m == "edit_similarity") {
      s = evals::EditSimilarity(output, expected);
    } else if (m == "assertions") {
      if (e.asserts.empty()) continue;
      s = asserts != nullptr && asserts->Run(output).pass ? 1 : 0;
    } else if (m == "judge") {
      s = judge.value_or(0);  // no score (the judge failed): 0, as for an unanswered example
      if (!spec.judge.has_value() || s < spec.judge->threshold) all = false;
    } else {
      continue;  // a run-level metric (latency, tokens, cost, error_rate)
    }
    if (Binary(m) && s < 1) all = false;
    scores.emplace_back(m, s);
  }
  if (passed != nullptr) *passed = all;
  return scores;
}

// ---- LLM-as-judge. ----

constexpr char kJudgeSystem[] =
    "You grade an answer against a rubric. Reply with only a JSON object: "
    "{\"score\": <a number from 0 to 1>, \"reason\": \"<one sentence>\"}.";

// The judge's reply text as a score: a JSON object (alone, or inside a ``` fence or other
// text) with "score" in [0, 1], or else "pass": true/false (1/0).
absl::StatusOr<double> JudgeScore(std::string_view content) {
  const size_t open = content.find('{');
  const size_t close = content.rfind('}');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    return absl::InvalidArgumentError(
        absl::StrCat("the judge's reply holds no JSON object: ", Cut(content.substr(0, 200))));
  }
  boost::system::error_code ec;
  json::value v = json::parse(content.substr(open, close - open + 1), ec);
  if (ec || !v.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the judge's reply is not JSON: ", Cut(content.substr(0, 200))));
  }
  const json::object& o = v.as_object();
  if (const json::value* s = o.if_contains("score"); s != nullptr && s->is_number()) {
    const double d = s->to_number<double>();
    if (!(d >= 0 && d <= 1)) {
      return absl::InvalidArgumentError(absl::StrCat("the judge's score ", d, " is not in [0, 1]"));
    }
    return d;
  }
  if (const json::value* p = o.if_contains("pass"); p != nullptr && p->is_bool()) {
    return p->get_bool() ? 1.0 : 0.0;
  }
  return absl::InvalidArgumentError(absl::StrCat("the judge's reply has no \"score\" or \"pass\": ",
                                                 Cut(content.substr(0, 200))));
}

// Asks the judge about every answered item, `spec.concurrency` at a time, with the model's
// timeout and retries; fills Answer::judge or Answer::judge_error.
absl::Status RunJudge(const EvalSpec& spec, const EvalStepContext& ctx,
                      const std::vector<Example>& examples, const std::vector<Item>& items,
                      std::vector<Answer>& answers, CancelFlag& cancel) {
  const evals::EvalJudgeSpec& j = *spec.judge;
  std::string rubric = j.rubric;
  if (!j.rubric_file.empty()) {
    ASSAY_ASSIGN_OR_RETURN(
        rubric, ReadWorkspaceFile(ctx, j.rubric_file, kMaxEvalPromptBytes, "rubric_file"));
  }
  std::vector<std::pair<std::string, std::string>> headers;
  if (!j.api_key_secret.empty()) {
    std::optional<std::string> key = ctx.secret ? ctx.secret(j.api_key_secret) : std::nullopt;
    if (!key.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat("judge.api_key_secret '", j.api_key_secret,
                                                        "' is not a secret of this job"));
    }
    headers.emplace_back("Authorization", "Bearer " + *key);
  }
  absl::Mutex mu;
  size_t next = 0;
  auto work = [&] {
    for (;;) {
      size_t i;
      {
        absl::MutexLock l(&mu);
        while (next < items.size() && !answers[next].ok) ++next;
        if (next >= items.size() || cancel.canceled()) return;
        i = next++;
      }
      const Example& e = examples[items[i].example];
      json::object body{
          {"messages",
           json::array{
               json::object{{"role", "system"}, {"content", kJudgeSystem}},
               json::object{{"role", "user"},
                            {"content",
                             absl::StrCat("Rubric:\n", rubric, "\n\nQuestion:\n", items[i].prompt,
                                          "\n\nReference answer:\n", e.expected.value_or("(none)"),
                                          "\n\nAnswer to grade:\n", answers[i].output)}}}},
          {"temperature", 0}};
      if (!j.model.empty()) body["model"] = j.model;
      const std::string text = json::serialize(body);
      std::string error;
      std::optional<double> score;
      for (int attempt = 0; attempt <= spec.retries && !score.has_value(); ++attempt) {
        absl::StatusOr<HttpClientResponse> res =
            HttpFetch("POST", j.url, headers, text, absl::Milliseconds(spec.timeout_ms));
        if (!res.ok()) {
          error = std::string(res.status().message());
          continue;
        }
        if (res->status != 200) {
          error = absl::StrCat("HTTP ", res->status, ": ", Cut(res->body.substr(0, 200)));
          continue;
        }
        boost::system::error_code ec;
        json::value parsed = json::parse(res->body, ec);
        const json::value* content = nullptr;
        if (!ec && parsed.is_object()) {
          const json::value* choices = parsed.as_object().if_contains("choices");
          if (choices != nullptr && choices->is_array() && !choices->as_array().empty() &&
              choices->as_array()[0].is_object()) {
            const json::value* m = choices->as_array()[0].as_object().if_contains("message");
            content =
                m != nullptr && m->is_object() ? m->as_object().if_contains("content") : nullptr;
          }
        }
        if (content == nullptr || !content->is_string()) {
          error = absl::StrCat("the judge's reply is not an OpenAI chat completion: ",
                               Cut(res->body.substr(0, 200)));
          continue;
        }
        absl::StatusOr<double> s = JudgeScore(std::string_view(content->as_string()));
        if (s.ok()) {
          score = *s;
        } else {
          error = std::string(s.status().message());
        }
      }
      absl::MutexLock l(&mu);
      if (score.has_value()) {
        answers[i].judge = score;
      } else {
        answers[i].judge_error = std::move(error);
      }
    }
  };
  std::vector<std::thread> workers;
  for (int w = 0; w < spec.concurrency; ++w) workers.emplace_back(work);
  for (std::thread& t : workers) t.join();
  if (cancel.canceled()) return absl::CancelledError("canceled");
  return absl::OkStatus();
}

// The per-example metrics of `spec` for `e`, each 0: an example without an answer.
std::vector<std::pair<std::string, double>> ZeroScores(const EvalSpec& spec, const Example& e) {
  std::vector<std::pair<std::string, double>> scores;
  for (const std::string& m : spec.metrics) {
    if (!PerExample(m) || (m == "assertions" && e.asserts.empty())) continue;
    scores.emplace_back(m, 0);
  }
  return scores;
}

}  // namespace

absl::StatusOr<double> ParseJudgeReply(std::string_view content) { return JudgeScore(content); }

std::vector<std::pair<std::string, double>> ScoreOutput(const EvalSpec& spec, const Example& e,
                                                        std::string_view output, bool* passed) {
  absl::StatusOr<evals::SafeRegex> regex = evals::SafeRegex::Compile(spec.regex);
  absl::StatusOr<evals::AssertionSet> asserts = CompileAssertions(e);
  return ScoreCompiled(spec, e, output, regex.ok() ? &*regex : nullptr,
                       asserts.ok() ? &*asserts : nullptr, passed);
}

void Summarize(const EvalSpec& spec, EvalReport& r) {
  std::vector<double> latencies, input_tokens, output_tokens, errors;
  int64_t in_total = 0, out_total = 0;
  for (const EvalExampleOutcome& e : r.examples) {
    in_total += e.input_tokens;
    out_total += e.output_tokens;
  }
  // Per-request figures live in the outcomes as means/sums; the request-level vectors are
  // rebuilt from them (one entry per answered repeat would need the raw answers: the mean
  // latency of an example stands for each of its answered repeats).
  for (const EvalExampleOutcome& e : r.examples) {
    for (int i = 0; i < e.answered; ++i) latencies.push_back(e.latency_ms);
    if (e.answered > 0) {
      input_tokens.push_back(static_cast<double>(e.input_tokens) / e.answered);
      output_tokens.push_back(static_cast<double>(e.output_tokens) / e.answered);
    }
    for (int i = 0; i < r.repeat; ++i) errors.push_back(i < e.answered ? 0 : 1);
  }
  auto add_mean = [&](const std::string& name, const std::vector<double>& values) {
    const evals::Interval iv = evals::MeanInterval(values, 0.95);
    r.metrics.push_back({name, iv.mean, iv.lo, iv.hi, iv.n});
  };
  for (const std::string& m : spec.metrics) {
    if (PerExample(m)) {
      std::vector<double> values;
      for (const EvalExampleOutcome& e : r.examples) {
        double v = 0;
        for (const auto& [name, s] : e.scores) {
          if (name == m) v = s;
        }
        values.push_back(v);  // an unanswered example scores 0
      }
      add_mean(m, values);
    } else if (m == "error_rate") {
      add_mean(m, errors);
    } else if (m == "latency_mean_ms") {
      add_mean(m, latencies);
    } else if (m == "latency_p50_ms" || m == "latency_p95_ms" || m == "latency_p99_ms") {
      const double p = m == "latency_p50_ms" ? 50 : m == "latency_p95_ms" ? 95 : 99;
      const double v = latencies.empty() ? 0 : evals::Percentile(latencies, p);
      r.metrics.push_back({m, v, v, v, static_cast<int64_t>(latencies.size())});
    } else if (m == "input_tokens") {
      add_mean(m, input_tokens);
    } else if (m == "output_tokens") {
      add_mean(m, output_tokens);
    } else if (m == "cost_usd") {
      const double v = static_cast<double>(in_total) * spec.price_input_per_mtok / 1e6 +
                       static_cast<double>(out_total) * spec.price_output_per_mtok / 1e6;
      r.metrics.push_back({m, v, v, v, static_cast<int64_t>(r.examples.size())});
    }
  }
  const bool asserted =
      std::find(spec.metrics.begin(), spec.metrics.end(), "assertions") != spec.metrics.end();
  if (asserted && r.repeat > 1) {
    double at = 0, hat = 0;
    for (const EvalExampleOutcome& e : r.examples) {
      at += evals::PassAtK(r.repeat, e.passes, r.repeat);
      hat += evals::PassHatK(r.repeat, e.passes, r.repeat);
    }
    const double n = r.examples.empty() ? 1 : static_cast<double>(r.examples.size());
    r.pass_at.emplace_back(absl::StrCat("pass@", r.repeat), at / n);
    r.pass_at.emplace_back(absl::StrCat("pass^", r.repeat), hat / n);
  }
}

void Judge(const EvalSpec& spec,
           const std::vector<std::pair<std::string, std::optional<EvalBaseline>>>& baselines,
           EvalReport& r) {
  r.passed = r.error.empty();
  for (const evals::EvalGate& g : spec.gates) {
    EvalGateVerdict v;
    v.gate = g;
    const EvalMetricSummary* m = nullptr;
    for (const EvalMetricSummary& s : r.metrics) {
      if (s.name == g.metric) m = &s;
    }
    if (m == nullptr) {
      v.passed = false;
      v.explanation = absl::StrCat("gate on ", g.metric, ": the metric was not computed");
      r.verdicts.push_back(std::move(v));
      r.passed = false;
      continue;
    }
    std::vector<std::string> parts;
    if (g.min.has_value()) {
      const bool ok = m->value >= *g.min;
      v.passed = v.passed && ok;
      parts.push_back(
          absl::StrCat(g.metric, " ", Fixed(m->value), ok ? " >= " : " < min ", Fixed(*g.min)));
    }
    if (g.max.has_value()) {
      const bool ok = m->value <= *g.max;
      v.passed = v.passed && ok;
      parts.push_back(
          absl::StrCat(g.metric, " ", Fixed(m->value), ok ? " <= " : " > max ", Fixed(*g.max)));
    }
    if (g.max_drop.has_value()) {
      const EvalBaseline* base = nullptr;
      for (const auto& [vs, b] : baselines) {
        if (vs == g.vs && b.has_value()) base = &*b;
      }
      if (base == nullptr) {
        parts.push_back(absl::StrCat(
            "no baseline: no successful run of eval '", r.name, "' on ",
            g.vs[0] == '@' ? absl::StrCat("the version at alias ", g.vs.substr(1)) : g.vs,
            " yet, so max_drop is not judged"));
      } else {
        const bool higher = evals::HigherIsBetter(g.metric);
        std::map<std::string, double> base_scores;
        for (const auto& [id, scores] : base->examples) {
          for (const auto& [name, s] : scores) {
            if (name == g.metric) base_scores[id] = s;
          }
        }
        std::vector<double> a, b;
        for (const EvalExampleOutcome& e : r.examples) {
          auto it = base_scores.find(e.example_id);
          if (it == base_scores.end()) continue;
          for (const auto& [name, s] : e.scores) {
            if (name == g.metric) {
              a.push_back(it->second);
              b.push_back(s);
            }
          }
        }
        if (a.empty()) {
          parts.push_back(absl::StrCat("no example in common with the baseline (run ", base->run_id,
                                       "), so max_drop is not judged"));
        } else {
          if (r.baseline_run_id == 0) r.baseline_run_id = base->run_id;
          const evals::PairedBootstrap pb =
              evals::PairedBootstrapMeans(a, b, g.confidence, 1000, 20261201);
          const evals::DropVerdict dv = evals::JudgeDrop(pb, *g.max_drop, higher);
          v.passed = v.passed && !dv.fail;
          parts.push_back(absl::StrCat(g.metric, " against ", g.vs, " (run ", base->run_id,
                                       ", commit ", base->commit_sha.substr(0, 12), "): ", dv.why));
        }
      }
    }
    for (size_t i = 0; i < parts.size(); ++i) {
      v.explanation += (i > 0 ? "; " : "") + parts[i];
    }
    if (!v.passed) r.passed = false;
    r.verdicts.push_back(std::move(v));
  }
}

std::string FormatEvalReport(const EvalReport& r) {
  std::string out;
  const std::string head = absl::StrCat("assay: eval ", r.name, ": ");
  int errors = 0;
  for (const EvalExampleOutcome& e : r.examples) errors += e.error.empty() ? 0 : 1;
  absl::StrAppend(&out, head, r.examples.size(), " examples",
                  r.dataset_path.empty() ? "" : absl::StrCat(" from ", r.dataset_path),
                  r.dataset_sha256.empty()
                      ? ""
                      : absl::StrCat(" (sha256 ", r.dataset_sha256.substr(0, 12), ")"),
                  r.repeat > 1 ? absl::StrCat(", each run ", r.repeat, " times") : "", ", ", errors,
                  errors == 1 ? " without an answer\n" : " without answers\n");
  for (const EvalMetricSummary& m : r.metrics) {
    absl::StrAppend(&out, head, m.name, " ", Fixed(m.value));
    if (m.lo != m.value || m.hi != m.value) {
      absl::StrAppend(&out, " (95 % interval ", Fixed(m.lo), " to ", Fixed(m.hi), ")");
    }
    absl::StrAppend(&out, ", n=", m.n, "\n");
  }
  for (const auto& [name, v] : r.pass_at) absl::StrAppend(&out, head, name, " ", Fixed(v), "\n");
  for (const EvalGateVerdict& v : r.verdicts) {
    absl::StrAppend(&out, head, "gate ", v.gate.metric,
                    v.passed ? " passed: " : " FAILED: ", v.explanation, "\n");
  }
  if (!r.error.empty()) absl::StrAppend(&out, head, "stopped early: ", r.error, "\n");
  int failed = 0;
  for (const EvalGateVerdict& v : r.verdicts) failed += v.passed ? 0 : 1;
  absl::StrAppend(
      &out, head,
      r.passed ? "passed"
               : absl::StrCat("FAILED", failed > 0 ? absl::StrCat(" (", failed, " of ",
                                                                  r.verdicts.size(), " gates)")
                                                   : ""),
      "\n");
  return out;
}

namespace {

// The driver's state, shared by start() and drive().
struct EvalRun {
  EvalSpec spec;
  EvalStepContext ctx;
  CommandModel command;

  absl::Status Drive(const std::atomic<bool>& exited, CancelFlag& cancel) {
    EvalReport report;
    report.name = spec.name;
    report.repeat = spec.repeat;
    // The dataset.
    std::vector<Example> examples;
    if (!spec.dataset.empty()) {
      absl::StatusOr<std::string> bytes =
          ReadWorkspaceFile(ctx, spec.dataset, kMaxEvalDatasetBytes, "dataset");
      if (!bytes.ok()) return bytes.status();
      report.dataset_path = spec.dataset;
      report.dataset_sha256 = evals::DatasetDigest(*bytes);
      absl::StatusOr<std::vector<Example>> parsed = evals::ParseJsonlDataset(*bytes, spec.dataset);
      if (!parsed.ok()) return parsed.status();
      examples = *std::move(parsed);
      if (examples.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("dataset '", spec.dataset, "' holds no examples"));
      }
    } else {
      examples = spec.tests;
    }
    bool any_asserts = false;
    for (const Example& e : examples) any_asserts = any_asserts || !e.asserts.empty();
    if (any_asserts &&
        std::find(spec.metrics.begin(), spec.metrics.end(), "assertions") == spec.metrics.end()) {
      spec.metrics.push_back("assertions");
    }
    for (const std::string& m : spec.metrics) {
      if (!NeedsExpected(m)) continue;
      for (const Example& e : examples) {
        if (!e.expected.has_value()) {
          return absl::InvalidArgumentError(
              absl::StrCat(spec.dataset.empty() ? "tests" : spec.dataset, ":", e.line, ": example ",
                           e.id, " has no \"expected\", which metric ", m, " compares with"));
        }
      }
    }
    // Compiled once here, used for every output.
    std::optional<evals::SafeRegex> regex;
    if (!spec.regex.empty()) {
      absl::StatusOr<evals::SafeRegex> re = evals::SafeRegex::Compile(spec.regex);
      if (!re.ok())
        return absl::InvalidArgumentError(absl::StrCat("regex: ", re.status().message()));
      regex = *std::move(re);
    }
    std::vector<std::optional<evals::AssertionSet>> asserts(examples.size());
    for (size_t i = 0; i < examples.size(); ++i) {
      const Example& e = examples[i];
      if (e.asserts.empty()) continue;
      absl::StatusOr<evals::AssertionSet> set = CompileAssertions(e);
      if (!set.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(spec.dataset.empty() ? "tests" : spec.dataset, ":", e.line, ": example ",
                         e.id, ": ", set.status().message()));
      }
      asserts[i] = *std::move(set);
    }
    // The prompts.
    std::string tmpl;
    if (!spec.prompt.empty()) {
      absl::StatusOr<std::string> t =
          ReadWorkspaceFile(ctx, spec.prompt, kMaxEvalPromptBytes, "prompt");
      if (!t.ok()) return t.status();
      tmpl = *std::move(t);
    }
    std::vector<Item> items;
    for (int i = 0; i < static_cast<int>(examples.size()); ++i) {
      std::string prompt = examples[i].input;
      if (!tmpl.empty()) {
        absl::StatusOr<std::string> rendered = evals::RenderTemplate(tmpl, examples[i]);
        if (!rendered.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat("prompt '", spec.prompt, "' for example ", examples[i].id, " (line ",
                           examples[i].line, "): ", rendered.status().message()));
        }
        prompt = *std::move(rendered);
      }
      for (int r = 0; r < spec.repeat; ++r) items.push_back({i, r, prompt});
    }
    // The model.
    Ledger ledger(spec, items.size());
    absl::Status ran = spec.model.command.empty()
                           ? RunHttp(spec, ctx, examples, items, ledger, exited, cancel)
                           : command.Run(spec, examples, items, ledger, exited, cancel);
    if (absl::IsCancelled(ran)) return ran;
    std::vector<Answer> answers = ledger.Take();
    if (spec.judge.has_value()) {
      if (absl::Status judged = RunJudge(spec, ctx, examples, items, answers, cancel);
          !judged.ok()) {
        return judged;
      }
    }
    // Scoring, per example over its repeats.
    for (int i = 0; i < static_cast<int>(examples.size()); ++i) {
      const Example& e = examples[i];
      EvalExampleOutcome o;
      o.index = i;
      o.example_id = e.id;
      o.input = Cut(items[static_cast<size_t>(i) * spec.repeat].prompt);
      o.expected = Cut(e.expected.value_or(""));
      std::map<std::string, double> sums;
      std::vector<std::string> order;
      double latency = 0;
      for (int r = 0; r < spec.repeat; ++r) {
        const Answer& a = answers[static_cast<size_t>(i) * spec.repeat + r];
        if (r == 0) o.output = Cut(a.output);
        bool passed = false;
        std::vector<std::pair<std::string, double>> scores;
        if (a.ok) {
          scores = ScoreCompiled(spec, e, a.output, regex ? &*regex : nullptr,
                                 asserts[i] ? &*asserts[i] : nullptr, &passed, a.judge);
          if (!a.judge_error.empty() && o.error.empty()) o.error = "judge: " + a.judge_error;
          ++o.answered;
          latency += a.latency_ms;
          o.input_tokens += a.input_tokens;
          o.output_tokens += a.output_tokens;
        } else {
          scores = ZeroScores(spec, e);
          o.error = a.error.empty() ? "not asked: the run stopped early" : a.error;
        }
        if (passed) ++o.passes;
        if (r == 0) o.passed = passed;
        for (const auto& [name, s] : scores) {
          if (!sums.contains(name)) order.push_back(name);
          sums[name] += s;
        }
      }
      for (const std::string& name : order) o.scores.emplace_back(name, sums[name] / spec.repeat);
      o.latency_ms = o.answered > 0 ? latency / o.answered : 0;
      report.examples.push_back(std::move(o));
    }
    if (!ran.ok()) report.error = std::string(ran.message());
    Summarize(spec, report);
    return ConcludeEval(spec, ctx, report, ran);
  }
};

}  // namespace

absl::Status ConcludeEval(const EvalSpec& spec, const EvalStepContext& ctx, EvalReport& report,
                          const absl::Status& ran) {
  std::vector<std::pair<std::string, std::optional<EvalBaseline>>> baselines;
  for (const evals::EvalGate& g : spec.gates) {
    if (g.vs.empty() || !ctx.baseline) continue;
    bool have = false;
    for (const auto& [vs, b] : baselines) have = have || vs == g.vs;
    if (have) continue;
    absl::StatusOr<std::optional<EvalBaseline>> b = ctx.baseline(spec.name, g.vs);
    if (!b.ok()) {
      return absl::UnavailableError(
          absl::StrCat("cannot fetch the baseline on ", g.vs, ": ", b.status().message()));
    }
    baselines.emplace_back(g.vs, *std::move(b));
  }
  Judge(spec, baselines, report);
  ctx.log(FormatEvalReport(report));
  if (ctx.record) {
    if (absl::Status recorded = ctx.record(report); !recorded.ok()) {
      return absl::UnavailableError(
          absl::StrCat("cannot record the eval's results: ", recorded.message()));
    }
  }
  if (!ran.ok()) return ran;
  if (!report.passed) {
    int failed = 0;
    std::string first;
    for (const EvalGateVerdict& v : report.verdicts) {
      if (v.passed) continue;
      if (failed++ == 0) first = v.explanation;
    }
    return absl::FailedPreconditionError(absl::StrCat("eval ", spec.name, ": ", failed, " of ",
                                                      report.verdicts.size(),
                                                      " gates failed: ", first));
  }
  return absl::OkStatus();
}

std::shared_ptr<StepDriver> MakeEvalDriver(EvalSpec spec, EvalStepContext ctx) {
  if (!spec.ingest_format.empty()) return MakeIngestDriver(std::move(spec), std::move(ctx));
  auto run = std::make_shared<EvalRun>();
  run->spec = std::move(spec);
  run->ctx = std::move(ctx);
  auto driver = std::make_shared<StepDriver>();
  driver->start = [run]() -> absl::StatusOr<std::string> {
    if (!run->spec.model.command.empty())
      return run->command.Start(run->ctx, run->spec.model.command);
    if (!run->spec.model.serve.empty()) return run->spec.model.serve;
    return std::string("while :; do sleep 3600; done");
  };
  driver->drive = [run](const std::atomic<bool>& exited, CancelFlag& cancel) {
    return run->Drive(exited, cancel);
  };
  // A model command ends at the EOF of its input; a server or the sleep never does.
  driver->stop_when_done = run->spec.model.command.empty();
  return driver;
}

}  // namespace assay
