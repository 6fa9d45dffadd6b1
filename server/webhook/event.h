#pragma once
// The forge-neutral event that every webhook adapter (GitHub, GitLab, Gitea/Forgejo) produces
// from a verified delivery. Parsing is pure: no I/O, no clock; the caller owns the body and the
// returned value. What to build is `after`; whether to build at all is `kind`:
//
//   kind            meaning                                             after        deleted
//   "push"          a branch was pushed (or created)                    the new head false
//   "push"/"tag"    a branch/tag was deleted: nothing to build          000...0      true
//   "tag"           a tag was pushed                                    the tagged commit
//   "pull_request"  a PR/MR was opened, got new commits, or reopened    the PR head  false
//   "ping"          the forge tests the hook (GitHub ping)              ""           false
//   "ignored"       anything else; ignore_reason says why (exact text in each adapter's header)

#include <cstdint>
#include <string>
#include <vector>

namespace assay::webhook {

struct ForgeEvent {
  std::string provider;     // "github", "gitlab", "gitea"
  std::string kind;         // "push", "tag", "pull_request", "ping", "ignored"
  std::string delivery_id;  // the forge's delivery id header, as given (dedupe key)
  std::string ref;          // "refs/heads/main", "refs/tags/v1", PRs: "refs/pull/2/head"
                            // (GitLab: "refs/merge-requests/2/head"): fetchable from the base repo
  std::string branch;       // pushes: the branch; PRs: the head (source) branch
  std::string tag;          // tag pushes only
  std::string before;       // previous head when the payload says (40 hex), else ""
  std::string after;        // the commit to build (40 hex) for push/tag/pull_request
  std::string pr_action;    // the forge's own action word ("opened", "synchronize", "update"...)
  std::string base_branch;  // PRs: the target branch
  std::string head_branch;  // PRs: the source branch
  int64_t pr_number = 0;    // PRs: the number users see (GitHub/Gitea number, GitLab iid)
  bool fork = false;        // PR from another repository: never gets secrets
  // URLs and full names of the repository the event belongs to (for PRs: the base/target), in
  // the adapter's documented order, to match against a registered repository.
  std::vector<std::string> repo_candidates;
  // Sorted, de-duplicated union of added/modified/removed over the pushed commits, when the
  // payload lists commits (pushes only; empty otherwise — "unknown", not "nothing changed").
  std::vector<std::string> changed_paths;
  bool deleted = false;
  std::string ignore_reason;  // set only when kind == "ignored"
  // The repository's default branch when the payload names it (GitHub and Gitea:
  // repository.default_branch; GitLab: project.default_branch), else "". Filled by
  // ParseDelivery (forge.h) for every provider.
  std::string default_branch;
};

}  // namespace assay::webhook
