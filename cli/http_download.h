#pragma once
// A GET whose body goes to a sink piece by piece (at most 1 MiB in memory), for `assay
// artifacts` of files of any size. Plain http only, like common/net/http_client.h.

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/net/http_client.h"

namespace assay::cli {

// Receives each piece of a 2xx body in order; false stops the download (kAborted).
using DownloadSink = std::function<bool(std::string_view)>;

// GET `url` (http://host[:port]/path) with `headers` (Host, User-Agent and Connection: close
// are set). A 2xx body goes to `sink` (the returned body is empty); any other status's body is
// returned, at most 64 KiB of it, and `sink` is not called. A body shorter than its
// Content-Length, or cut, is an error. Errors: kInvalidArgument (URL), kUnavailable (resolve,
// connect, reset or malformed response before the body), kDataLoss (the body was cut),
// kDeadlineExceeded (no byte for `idle`), kAborted (the sink said stop).
absl::StatusOr<HttpClientResponse> HttpDownload(
    std::string_view url, const std::vector<std::pair<std::string, std::string>>& headers,
    const DownloadSink& sink, absl::Duration idle = absl::Seconds(60));

}  // namespace assay::cli
