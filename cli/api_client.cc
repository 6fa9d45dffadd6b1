#include "cli/api_client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace assay::cli {
namespace {

std::string Trim(std::string_view text) {
  const size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return "";
  const size_t end = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(begin, end - begin + 1));
}

// "<code>: <message>" from {"error":{"code","message"}}, or "" when `body` differs.
std::string ErrorDetail(std::string_view body) {
  boost::system::error_code ec;
  const boost::json::value value = boost::json::parse(body, ec);
  if (ec || !value.is_object()) return "";
  const boost::json::value* error = value.as_object().if_contains("error");
  if (error == nullptr || !error->is_object()) return "";
  const boost::json::object& object = error->as_object();
  return absl::StrCat(Field(&object, "code"), ": ", Field(&object, "message"));
}

}  // namespace

ApiClient::ApiClient(const FetchFn& fetch, std::string server, std::string token,
                     const DownloadFn* download)
    : fetch_(fetch), download_(download), server_(std::move(server)), token_(std::move(token)) {
  while (!server_.empty() && server_.back() == '/') server_.pop_back();
}

std::optional<std::string> ApiClient::Call(std::string_view method, std::string_view path_and_query,
                                           std::string_view json_body, std::string_view accept,
                                           std::ostream& err) const {
  HttpHeaders headers = {{"Accept", std::string(accept)}};
  if (!token_.empty()) headers.emplace_back("Authorization", absl::StrCat("Bearer ", token_));
  const std::string url = server_ + std::string(path_and_query);
  absl::StatusOr<HttpClientResponse> response = fetch_(method, url, headers, json_body);
  if (Failed(response, err)) return std::nullopt;
  last_body_ = response->body;
  return std::move(response->body);
}

bool ApiClient::Download(std::string_view path_and_query,
                         const std::function<bool(std::string_view)>& sink,
                         std::ostream& err) const {
  if (download_ == nullptr || !*download_) {
    std::optional<std::string> body = Call("GET", path_and_query, "", "*/*", err);
    return body.has_value() && sink(*body);
  }
  HttpHeaders headers = {{"Accept", "*/*"}};
  if (!token_.empty()) headers.emplace_back("Authorization", absl::StrCat("Bearer ", token_));
  bool stopped = false;
  absl::StatusOr<HttpClientResponse> response =
      (*download_)(server_ + std::string(path_and_query), headers, [&](std::string_view piece) {
        stopped = !sink(piece);
        return !stopped;
      });
  if (stopped) return false;
  return !Failed(response, err);
}

bool ApiClient::Failed(const absl::StatusOr<HttpClientResponse>& response,
                       std::ostream& err) const {
  if (!response.ok()) {
    const absl::Status& status = response.status();
    // HttpFetch's messages already name the method, URL and cause.
    err << "assay: " << status.message();
    if (status.code() == absl::StatusCode::kUnavailable ||
        status.code() == absl::StatusCode::kInvalidArgument) {
      err << " (check --server or ASSAY_SERVER)";
    }
    err << "\n";
    return true;
  }
  if (response->status < 200 || response->status > 299) {
    const std::string detail = ErrorDetail(response->body);
    if (!detail.empty()) {
      err << "assay: " << response->status << " " << detail << "\n";
    } else {
      std::string body = Trim(response->body);
      if (body.size() > 200) body = body.substr(0, 200) + "...";
      err << "assay: " << response->status << (body.empty() ? "" : ": ") << body << "\n";
    }
    return true;
  }
  return false;
}

std::optional<boost::json::value> ApiClient::CallJson(std::string_view method,
                                                      std::string_view path_and_query,
                                                      std::string_view json_body,
                                                      std::ostream& err) const {
  std::optional<std::string> body =
      Call(method, path_and_query, json_body, "application/json", err);
  if (!body.has_value()) return std::nullopt;
  if (Trim(*body).empty()) return boost::json::value(nullptr);
  boost::system::error_code ec;
  boost::json::value value = boost::json::parse(*body, ec);
  if (ec) {
    err << "assay: unexpected response from the server: not JSON (" << ec.message() << ")\n";
    return std::nullopt;
  }
  return value;
}

std::string UrlEscape(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string escaped;
  for (unsigned char c : text) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      escaped += static_cast<char>(c);
    } else {
      escaped += '%';
      escaped += kHex[c >> 4];
      escaped += kHex[c & 15];
    }
  }
  return escaped;
}

std::string Field(const boost::json::object* object, std::string_view key) {
  if (object == nullptr) return "-";
  const boost::json::value* value = object->if_contains(key);
  if (value == nullptr || value->is_null()) return "-";
  if (value->is_string()) return std::string(value->as_string());
  if (value->is_int64()) return absl::StrCat(value->as_int64());
  if (value->is_uint64()) return absl::StrCat(value->as_uint64());
  if (value->is_double()) return absl::StrCat(value->as_double());
  if (value->is_bool()) return value->as_bool() ? "true" : "false";
  return boost::json::serialize(*value);
}

std::optional<std::string> FindRepoId(const ApiClient& api, const std::string& repo,
                                      std::ostream& err) {
  std::optional<boost::json::value> reply = api.CallJson("GET", "/api/v1/repos", "", err);
  if (!reply) return std::nullopt;
  const boost::json::value* list =
      reply->is_object() ? reply->as_object().if_contains("repos") : nullptr;
  if (list == nullptr || !list->is_array()) {
    err << "assay: unexpected response from the server: no 'repos' list\n";
    return std::nullopt;
  }
  for (bool by_id : {false, true}) {
    for (const boost::json::value& item : list->as_array()) {
      const boost::json::object* r = item.is_object() ? &item.as_object() : nullptr;
      if (Field(r, by_id ? "id" : "name") == repo) return Field(r, "id");
    }
  }
  err << "assay: no repository named '" << repo << "'\n";
  return std::nullopt;
}

}  // namespace assay::cli
