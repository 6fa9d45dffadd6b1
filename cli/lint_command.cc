#include "cli/lint_command.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "cli/cli.h"
#include "common/pipeline/spec.h"

namespace assay::cli {
namespace {

// Reads the whole file; on failure returns false with `reason` from errno.
bool ReadFile(const std::string& path, std::string& content, std::string& reason) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    reason = std::strerror(errno);
    return false;
  }
  char buffer[65536];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) content.append(buffer, n);
  const bool failed = std::ferror(file) != 0;
  const int error = errno;  // fread on a directory fails with EISDIR.
  std::fclose(file);
  if (failed) {
    reason = std::strerror(error);
    return false;
  }
  return true;
}

}  // namespace

int LintCommand(const std::string& path, std::ostream& out, std::ostream& err) {
  std::string content;
  std::string reason;
  if (!ReadFile(path, content, reason)) {
    err << "assay: cannot read " << path << ": " << reason << "\n";
    return kExitUsage;
  }
  const std::vector<SpecError> errors = LintPipelineSpec(content, path);
  if (!errors.empty()) {
    for (const SpecError& error : errors) out << error.ToString() << "\n";
    return kExitFailure;
  }
  // Valid, so parsing cannot fail; this only counts the jobs.
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec(content, path);
  const size_t jobs = spec.ok() ? spec->jobs.size() : 0;
  out << path << ": ok (" << jobs << (jobs == 1 ? " job)" : " jobs)") << "\n";
  return kExitOk;
}

}  // namespace assay::cli
