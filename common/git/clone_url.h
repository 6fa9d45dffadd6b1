#pragma once
// The clone-URL policy: which remotes Assay lets git fetch from, and the split of a URL into
// what may be stored and shown (no password) and the credential (sealed, handed to git through
// a credential helper, never on a command line or in a config file). Pure; no I/O.
//
// Allowed: https://[user[:password]@]host[:port]/path, ssh://[user@]host[:port]/path and the
// scp-like [user@]host:path. With allow_local (the server's and agent's --allow-local-repos)
// also file:///absolute/path and /absolute/path. Everything else is refused: http://, git://,
// relative paths, transport helpers ("ext::", "fd::", any "<name>::"), other schemes, control
// characters or spaces, a leading '-' (an option to git or ssh), a host starting with '-'.

#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"

namespace assay {

struct CloneUrl {
  enum class Kind { kHttps, kSsh, kLocal };
  Kind kind = Kind::kHttps;
  // The URL without "user:password@" (https: without any userinfo; ssh keeps its user, which is
  // no secret). What is stored, logged, shown by the API and written into a mirror's config.
  std::string url;
  // https only: the userinfo, percent-decoded. Both empty when the URL had none.
  std::string username;
  std::string password;
};

// At most this many bytes.
inline constexpr size_t kMaxCloneUrlBytes = 2048;

// kInvalidArgument with a reason that reads after "field 'clone_url' ", e.g.
//   "must not use the ext:: transport (only https://, ssh:// and user@host:path are allowed)"
//   "is a local repository (file:// or a path), refused unless the server runs with
//    --allow-local-repos"
// The message never contains the password.
absl::StatusOr<CloneUrl> ParseCloneUrl(std::string_view url, bool allow_local);

// How a credential is sealed at rest: "username\npassword" (neither can hold a newline).
std::string JoinCloneCredential(std::string_view username, std::string_view password);
std::pair<std::string, std::string> SplitCloneCredential(std::string_view joined);

// `url` with any "user:password@" of an https URL replaced by "***@", for messages about a URL
// that may not have passed ParseCloneUrl (e.g. a row stored before it existed).
std::string RedactCloneUrl(std::string_view url);

}  // namespace assay
