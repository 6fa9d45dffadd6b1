#pragma once
// A job's repository secrets on the agent (issue 9, docs/secrets.md): as environment variables
// or as files, and masked in everything the job writes to its log.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "agent/executor.h"
#include "agent/step_runner.h"
#include "assay/v1/agent.pb.h"
#include "common/base/secret_masker.h"

namespace assay {

// One per job run, on the job's thread. Not thread-safe.
class JobSecrets {
 public:
  JobSecrets() = default;
  ~JobSecrets();  // removes the files (RemoveFiles)
  JobSecrets(const JobSecrets&) = delete;
  JobSecrets& operator=(const JobSecrets&) = delete;

  // Writes "assay: secret NAME withheld: <why>\n" to `log` for each withheld entry; appends
  // NAME=value to `env` for each `as_file: false` entry and NAME_FILE=<dir>/NAME for each
  // file, written with mode 0400 into `dir` (made 0500; both owned by `user` when given, else
  // by the agent's user). Values never go on a command line. kInvalidArgument for an entry
  // whose name or value breaks the rules (common/base/secret_rules.h); kInternal when a file
  // cannot be written. Either way nothing is left in `dir`.
  absl::Status Prepare(const v1::Assignment& a, const std::string& dir, const JobIdentity* user,
                       std::vector<std::pair<std::string, std::string>>* env, const JobLogFn& log);

  // The job's output through the masker (common/base/secret_masker.h); what is final goes to
  // `log`. Flush() at the end hands over what it still holds.
  void Output(std::string_view bytes, const JobLogFn& log);
  void Flush(const JobLogFn& log);
  // `text` (a whole message, e.g. the job's) through a copy of the masker: the stream's own
  // state is untouched.
  std::string MaskText(std::string_view text) const;

  // Removes the secret files and their directory (idempotent).
  void RemoveFiles();

  // Removes every "*.secrets" directory under `jobs_dir` (left by an agent that died while a
  // job ran: its steps died with it). Returns how many. For the agent's start.
  static int RemoveStale(const std::string& jobs_dir);

 private:
  SecretMasker masker_;
  std::string dir_;  // "" : no files
};

}  // namespace assay
