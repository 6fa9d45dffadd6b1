#pragma once
// PUT and DELETE /api/v1/repos/{id}/commit-status: turn commit statuses on (with the forge API's
// base URL and a token, sealed at rest) or off for one repository.

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <functional>

#include "server/api/api.h"
#include "server/store/repos.h"

namespace assay {

// How the API shows a repository (api.cc's RepoJson).
using RepoJsonFn = std::function<boost::json::object(const store::Repo&)>;

// PUT body {"api_url": "https://api.github.com", "token": "...", "repository": "owner/name",
// "context": "assay"} (repository and context optional). 200 with the repo; 400 with an exact
// message for bad input (nothing is written then); 404 for an unknown repo.
http::Response PutCommitStatus(const ApiDeps& d, http::Request& req, const RepoJsonFn& repo_json);
// 200 with the repo (commit_status null); 404 for an unknown repo.
http::Response DeleteCommitStatus(const ApiDeps& d, http::Request& req,
                                  const RepoJsonFn& repo_json);

// The repo JSON's "commit_status": null, or {"api_url", "has_token", "repository", "context"}
// with the repository and context in effect. Never the token.
boost::json::value CommitStatusJson(const store::Repo& r);

}  // namespace assay
