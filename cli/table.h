#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace assay::cli {

// Writes `header` and `rows` as left-aligned columns separated by two spaces, one
// line each, without trailing spaces. Rows shorter than the header are padded.
void WriteTable(std::ostream& out, const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows);

}  // namespace assay::cli
