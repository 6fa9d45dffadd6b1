#pragma once
// The `assay` command line: argument parsing and dispatch. main.cpp only calls Run.

#include <functional>
#include <istream>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/net/http_client.h"

namespace assay::cli {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;
// Same contract as assay::HttpFetch with its default timeout; tests pass a fake.
using FetchFn = std::function<absl::StatusOr<HttpClientResponse>(
    std::string_view method, std::string_view url, const HttpHeaders& headers,
    std::string_view body)>;
// GET `url` with its body given to `sink` piece by piece: cli/http_download.h HttpDownload.
using DownloadFn = std::function<absl::StatusOr<HttpClientResponse>(
    std::string_view url, const HttpHeaders& headers,
    const std::function<bool(std::string_view)>& sink)>;

// What the CLI takes from its surroundings, so that tests can supply it.
struct CliContext {
  std::string default_server = "http://127.0.0.1:8080";  // Used when --server is absent.
  std::string default_token;                             // The API token ("" sends none).
  FetchFn fetch;                                         // Required.
  // Downloads of files (`assay artifacts ... PATH`); unset (tests): through `fetch`, whole.
  DownloadFn download;
  // ASSAY_WEBHOOK_SECRET: `repo add`'s webhook secret when --secret-file is absent.
  std::optional<std::string> webhook_secret;
  // `secret set`'s value when --from-file is absent (std::cin for the real CLI); null: none.
  std::istream* in = nullptr;
  // $USER: the actor `assay models alias` claims in the audit ("" : none).
  std::string user;
  // Where `assay login` saves its API token, and where the CLI reads one when neither
  // ASSAY_TOKEN nor ASSAY_TOKEN_FILE is set: $XDG_CONFIG_HOME/assay/token, else
  // ~/.config/assay/token ("" : login cannot save).
  std::string token_path;
};

// The file `assay login` writes: TOKEN_PATH's directory is made 0700 and the file 0600,
// written whole to a temporary name first and renamed over the old one.
absl::Status SaveToken(const std::string& path, const std::string& token);

// Exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // Lint errors, API errors, server unreachable.
inline constexpr int kExitUsage = 2;    // Bad command line, unreadable input file.

// `args` excludes the program name. Writes results to `out`, diagnostics to `err`.
int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        const CliContext& context);

// As above with the real environment: ASSAY_SERVER, ASSAY_TOKEN (else the file named by
// ASSAY_TOKEN_FILE; exit 2 when it is unusable, see LoadSecretFile), ASSAY_WEBHOOK_SECRET and
// assay::HttpFetch.
int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// For main(): argv[0] is skipped; uses std::cout and std::cerr.
int Run(int argc, char** argv);

}  // namespace assay::cli
