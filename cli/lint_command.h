#pragma once

#include <ostream>
#include <string>

namespace assay::cli {

// `assay lint FILE`: validates the pipeline file offline.
// Valid: prints "FILE: ok (N jobs)" to `out`, returns 0. Invalid: prints one
// "FILE:LINE:COL: KEY: MESSAGE" line per problem to `out`, returns 1. Unreadable:
// prints "assay: cannot read FILE: REASON" to `err`, returns 2.
int LintCommand(const std::string& path, std::ostream& out, std::ostream& err);

}  // namespace assay::cli
