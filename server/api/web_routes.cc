// The dashboard's pages and files (issue 11): / redirects to /ui/, every /ui/... page is
// index.html (the dashboard routes in the browser), /assets/NAME are the hashed bundles, and
// /badge/REPO/BRANCH.svg is a repository's latest pipeline state on a branch.

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/api/openapi.h"
#include "server/api/routes.h"
#include "server/http/json_util.h"
#include "server/web/assets.h"

namespace assay::api {
namespace {

using http::Request;
using http::Response;

constexpr char kNotBuilt[] =
    "<!doctype html><meta charset=utf-8><title>Assay</title><h1>The dashboard is not built</h1>"
    "<p>Build it with <code>npm --prefix web ci &amp;&amp; npm --prefix web run build</code>, "
    "or point <code>--web-dir</code> at a built one. The API is at <code>/api/v1</code>.</p>";

Response Shell(const ApiDeps& d) {
  Response r;
  r.content_type = "text/html; charset=utf-8";
  r.headers.emplace_back("Cache-Control", "no-cache");
  if (d.web == nullptr) {
    r.status = 503;
    r.body = kNotBuilt;
    return r;
  }
  r.body = d.web->index_html;
  return r;
}

bool AcceptsGzip(const Request& req) {
  return absl::StrContains(req.Header("accept-encoding"), "gzip");
}

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// A two-part badge: "pipeline | STATE", coloured by the state.
std::string BadgeSvg(const std::string& state) {
  const std::string color = state == "succeeded"                    ? "#2ea043"
                            : state == "failed" || state == "error" ? "#cf222e"
                            : state == "running"                    ? "#0969da"
                            : state == "canceled"                   ? "#8c959f"
                                                                    : "#9a6700";
  const int left = 56, right = 8 + 7 * static_cast<int>(state.size());
  const std::string s = Escape(state);
  return absl::StrCat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", left + right,
      "\" height=\"20\" role=\"img\" aria-label=\"pipeline: ", s, "\"><title>pipeline: ", s,
      "</title><rect width=\"", left, "\" height=\"20\" fill=\"#555\"/><rect x=\"", left,
      "\" width=\"", right, "\" height=\"20\" fill=\"", color,
      "\"/><g fill=\"#fff\" font-family=\"Verdana,DejaVu Sans,sans-serif\" font-size=\"11\">"
      "<text x=\"6\" y=\"14\">pipeline</text><text x=\"",
      left + 4, "\" y=\"14\">", s, "</text></g></svg>");
}

Response Badge(const ApiDeps& d, const Request& req) {
  auto it = req.path_params.find("path");
  std::string path = it == req.path_params.end() ? "" : it->second;
  Response r;
  r.content_type = "image/svg+xml";
  r.headers.emplace_back("Cache-Control", "no-cache");
  if (!absl::EndsWith(path, ".svg") || path.size() > 512) {
    return http::ErrorResponse(404, "not_found", "a badge is /badge/REPOSITORY/BRANCH.svg");
  }
  path.resize(path.size() - 4);
  // The repository is the longest prefix that names one (branches may hold '/' too).
  for (size_t slash = path.rfind('/'); slash != std::string::npos && slash > 0;
       slash = path.rfind('/', slash - 1)) {
    store::PipelineStore::Filter f;
    f.repo = path.substr(0, slash);
    f.ref = "refs/heads/" + path.substr(slash + 1);
    if (f.ref->size() == 11) continue;
    f.limit = 1;
    auto repo = d.repos->FindByAny({*f.repo});
    if (!repo.ok()) {
      if (repo.status().code() == absl::StatusCode::kNotFound) continue;
      return http::StatusToResponse(repo.status());
    }
    auto list = d.pipelines->List(f);
    if (!list.ok()) return http::StatusToResponse(list.status());
    if (list->empty()) {
      r.status = 404;
      r.body = BadgeSvg("none");
      return r;
    }
    r.body = BadgeSvg(list->front().state);
    return r;
  }
  r.status = 404;
  r.body = BadgeSvg("unknown");
  return r;
}

}  // namespace

void RegisterWebRoutes(http::Router& router, const ApiDeps& d) {
  router.Add("GET", "/", [](Request&) {
    Response r;
    r.status = 302;
    r.content_type = "";
    r.headers.emplace_back("Location", "/ui/");
    return r;
  });
  router.Add("GET", "/ui", [&d](Request&) { return Shell(d); });
  router.Add("GET", "/ui/{path...}", [&d](Request&) { return Shell(d); });
  router.Add("GET", "/assets/{name}", [&d](Request& req) {
    if (d.web == nullptr) return http::ErrorResponse(404, "not_found", "no such dashboard file");
    auto it = d.web->files.find(req.path_params["name"]);
    if (it == d.web->files.end()) {
      return http::ErrorResponse(404, "not_found", "no such dashboard file");
    }
    Response r;
    r.content_type = it->second.content_type;
    r.headers.emplace_back("Cache-Control", "public, max-age=31536000, immutable");
    r.headers.emplace_back("Vary", "Accept-Encoding");
    if (it->second.gzip && AcceptsGzip(req)) {
      r.headers.emplace_back("Content-Encoding", "gzip");
      r.body = *it->second.gzip;
    } else {
      r.body = it->second.body;
    }
    return r;
  });
  // Public: the document describes the API, it holds no data.
  router.Add("GET", "/api/v1/openapi.json", [](Request&) {
    Response r;
    r.body = OpenApiDocument();
    r.headers.emplace_back("Cache-Control", "no-cache");
    return r;
  });
  router.Add("GET", "/badge/{path...}",
             Authed(d, auth::Need::Read(), [&d](Request& req) { return Badge(d, req); }));
}

}  // namespace assay::api
