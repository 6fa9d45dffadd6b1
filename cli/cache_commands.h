#pragma once
// `assay cache list|rm` (issue 9, docs/caches.md). Each returns the exit code: 0, or 1 when the
// request failed (message already on `err`).

#include <ostream>
#include <string>

#include "cli/api_client.h"

namespace assay::cli {

// GET /api/v1/repos/ID/caches; prints a table ID SCOPE KEY FILES BYTES LAST_USED, newest
// first. `repo`: a name, or an id when no repository has that name.
int CacheList(const ApiClient& api, const std::string& repo, std::ostream& out, std::ostream& err);

// DELETE /api/v1/repos/ID/caches/ENTRY; prints "cache entry ENTRY of REPO: removed".
int CacheRemove(const ApiClient& api, const std::string& repo, const std::string& entry,
                std::ostream& out, std::ostream& err);

}  // namespace assay::cli
