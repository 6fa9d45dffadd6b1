#pragma once
// The commands that talk to the server's REST API (/api/v1). Each returns the exit
// code: 0 on success, 1 when the request failed (message already on `err`).

#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cli/api_client.h"

namespace assay::cli {

struct RepoAddOptions {
  std::string name;
  std::string clone_url;
  // Unset ones are left out of the request.
  std::optional<std::string> provider;
  std::optional<std::string> webhook_secret;
  std::optional<std::string> html_url;
};

// POST /api/v1/repos; prints "created repo NAME (id ID)".
int RepoAdd(const ApiClient& api, const RepoAddOptions& options, std::ostream& out,
            std::ostream& err);

// GET /api/v1/repos; prints a table ID NAME PROVIDER CLONE_URL.
int RepoList(const ApiClient& api, std::ostream& out, std::ostream& err);

struct RepoCommitStatusOptions {
  std::string name;  // the repository's name
  bool off = false;  // true: turn commit statuses off; the rest is unused
  std::string api_url;
  std::string token;
  std::optional<std::string> repository;  // the forge's name for the repo, when not `name`
  std::optional<std::string> context;
};

// Finds the repo by name (GET /api/v1/repos), then PUT /api/v1/repos/ID/commit-status
// {"api_url","token"[,"repository"][,"context"]} or DELETE it (off). Prints
// "commit statuses for NAME: on (API_URL, repository R, context C)" or
// "commit statuses for NAME: off". "assay: no repository named 'NAME'" when none is.
int RepoCommitStatus(const ApiClient& api, const RepoCommitStatusOptions& options,
                     std::ostream& out, std::ostream& err);

// GET /api/v1/pipelines[?repo=R][&limit=N]; prints a table
// ID STATE REPO REF COMMIT CREATED (commit shortened to 12 characters).
int ListPipelines(const ApiClient& api, const std::optional<std::string>& repo,
                  std::optional<int> limit, std::ostream& out, std::ostream& err);

// GET /api/v1/pipelines/ID; prints the pipeline, its message's first line, then a
// table of its jobs.
int ShowPipeline(const ApiClient& api, std::string_view id, std::ostream& out, std::ostream& err);

// GET /api/v1/jobs/ID/log; writes the body to `out` byte for byte.
int ShowLog(const ApiClient& api, std::string_view job_id, std::ostream& out, std::ostream& err,
            bool timestamps = false);
// `assay artifacts JOB [PATH] [-o FILE]`: without PATH, one line per file ("MODE SIZE PATH");
// with PATH, the file's bytes to `output` (created 0644, replaced) or, when empty, to `out`.
int Artifacts(const ApiClient& api, std::string_view job_id, const std::string& path,
              const std::string& output, std::ostream& out, std::ostream& err);

struct RepoSetOptions {
  std::string repo;  // a name, or an id when no repository has that name
  std::optional<std::string> default_branch;
  std::optional<bool> cancel_superseded;
};

// PATCH /api/v1/repos/ID (the id found through GET /api/v1/repos); prints
// "repo NAME: default_branch=B cancel_superseded=true|false".
int RepoSet(const ApiClient& api, const RepoSetOptions& options, std::ostream& out,
            std::ostream& err);

struct RunOptions {
  std::string repo;  // a name, or an id when no repository has that name
  std::optional<std::string> branch;
  std::vector<std::pair<std::string, std::string>> inputs;  // in command-line order
};

// POST /api/v1/repos/ID/pipelines with {"branch", "inputs"}; prints the new pipeline's id
// alone on a line, so that scripts can capture it.
int RunPipeline(const ApiClient& api, const RunOptions& options, std::ostream& out,
                std::ostream& err);

// POST /api/v1/pipelines/ID/cancel; prints "cancel requested for pipeline ID".
int CancelPipeline(const ApiClient& api, std::string_view id, std::ostream& out, std::ostream& err);

// POST /api/v1/jobs/ID/cancel; prints "cancel requested for job ID".
int CancelJob(const ApiClient& api, std::string_view id, std::ostream& out, std::ostream& err);
// POST /api/v1/jobs/ID/retry: the finished job runs again (its skipped dependents after it).
int RetryJob(const ApiClient& api, std::string_view id, std::ostream& out, std::ostream& err);
// POST /api/v1/pipelines/ID/retry: every failed or canceled job of the pipeline runs again.
int RetryPipeline(const ApiClient& api, std::string_view id, std::ostream& out, std::ostream& err);
// POST /api/v1/pipelines/ID/rerun: a new pipeline of the same commit; prints its id.
int RerunPipeline(const ApiClient& api, std::string_view id, std::ostream& out, std::ostream& err);

// GET /api/v1/queue[?limit=N]; prints a table JOB STATE PRIO REPO PIPELINE NAME WAITING
// ("queue is empty" when nothing waits).
int ListQueue(const ApiClient& api, std::optional<int> limit, std::ostream& out, std::ostream& err);

}  // namespace assay::cli
