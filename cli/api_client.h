#pragma once
// The CLI's view of the REST API: builds URLs, adds the bearer token, and turns
// transport failures and non-2xx answers into one-line messages for stderr.

#include <boost/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include "cli/cli.h"

namespace assay::cli {

class ApiClient {
 public:
  // `fetch` must outlive this client. `server` is http://host:port with an optional
  // trailing slash; `token` may be empty (no Authorization header).
  ApiClient(const FetchFn& fetch, std::string server, std::string token,
            const DownloadFn* download = nullptr);

  // Sends `method` to server + `path_and_query` (already escaped). Returns the body of
  // a 2xx answer. Otherwise writes "assay: ..." to `err` and returns nullopt:
  //   non-2xx:  "assay: <status> <code>: <message>" from {"error":{"code","message"}},
  //             or "assay: <status>: <body>" when the body is not of that shape;
  //   transport: "assay: <HttpFetch's message>", plus " (check --server or
  //             ASSAY_SERVER)" when the server is unreachable or its URL is bad.
  std::optional<std::string> Call(std::string_view method, std::string_view path_and_query,
                                  std::string_view json_body, std::string_view accept,
                                  std::ostream& err) const;

  // Call(), then parses the body as JSON (an empty body is null). A body that is not
  // JSON is reported as "assay: unexpected response from the server: ...".
  // GET `path_and_query`; a 2xx body goes to `sink` piece by piece (with no DownloadFn, in one
  // piece through `fetch`). false, with Call's messages on `err`, on any failure, and when the
  // sink returned false (then nothing more is written to `err`).
  bool Download(std::string_view path_and_query, const std::function<bool(std::string_view)>& sink,
                std::ostream& err) const;

  // The body of the last 2xx answer (`assay --json` prints it instead of a table).
  const std::optional<std::string>& last_body() const { return last_body_; }
  std::optional<boost::json::value> CallJson(std::string_view method,
                                             std::string_view path_and_query,
                                             std::string_view json_body, std::ostream& err) const;

 private:
  // Writes Call's message for a failed or non-2xx `response` and returns true; false if 2xx.
  bool Failed(const absl::StatusOr<HttpClientResponse>& response, std::ostream& err) const;

  const FetchFn& fetch_;
  const DownloadFn* download_;
  std::string server_;
  std::string token_;
  mutable std::optional<std::string> last_body_;
};

// Percent-encodes everything except A-Z a-z 0-9 - . _ ~ (for a path segment or a
// query value).
std::string UrlEscape(std::string_view text);

// A JSON field as table text: strings as is, numbers and booleans printed, null or
// missing as "-", anything else serialized. `object` may be null.
std::string Field(const boost::json::object* object, std::string_view key);

// The id of the repository named `repo` (or, when none has that name and `repo` is a number,
// that id), from GET /api/v1/repos. Reports to `err` and returns nullopt when there is none.
std::optional<std::string> FindRepoId(const ApiClient& api, const std::string& repo,
                                      std::ostream& err);

}  // namespace assay::cli
