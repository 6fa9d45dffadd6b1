// Request helpers, response builders and the Router (declared in http_server.h).

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <stdexcept>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/http/http_server.h"

namespace assay::http {
namespace {

// Debian's Abseil has its own absl::string_view, distinct from std::string_view.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Splits "/a/b/c" into {"a","b","c"}; "/" gives {}; "/a/" gives {"a",""}.
std::vector<std::string_view> SplitPath(std::string_view path) {
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  if (path.empty()) return {};
  std::vector<std::string_view> parts;
  for (;;) {
    const size_t slash = path.find('/');
    parts.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) return parts;
    path.remove_prefix(slash + 1);
  }
}

// `s` with each byte that is not part of a well-formed UTF-8 sequence replaced by U+FFFD.
// Why: error messages quote request paths, which may percent-decode to any bytes, and
// a JSON body must stay valid UTF-8.
std::string ValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b < 0x80) {
      len = 1;
    } else if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      if (b == 0xE0) lo = 0xA0;  // no overlong forms
      if (b == 0xED) hi = 0x9F;  // no surrogates
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
    }
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      ok = k == 1 ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xBF);
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return out;
}

}  // namespace

std::string Request::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, AV(name))) return value;
  }
  return "";
}

std::optional<std::string> Request::Query(std::string_view name) const {
  for (const auto& [key, value] : query) {
    if (key == name) return value;
  }
  return std::nullopt;
}

Response JsonResponse(int status, const boost::json::value& v) {
  Response res;
  res.status = status;
  res.body = boost::json::serialize(v);
  return res;
}

Response InternalErrorResponse() {
  boost::json::object error;
  error["code"] = "internal";
  error["message"] = "internal server error";
  error["request_id"] = CurrentRequestId();
  boost::json::object root;
  root["error"] = std::move(error);
  return JsonResponse(500, root);
}

Response ErrorResponse(int status, std::string_view code, std::string_view message) {
  boost::json::object error;
  error["code"] = code;
  error["message"] = ValidUtf8(message);
  boost::json::object root;
  root["error"] = std::move(error);
  return JsonResponse(status, root);
}

void Router::Add(std::string method, std::string pattern, Handler h, HeadHandler head) {
  if (pattern.empty() || pattern.front() != '/') {
    throw std::invalid_argument(absl::StrCat("route pattern '", pattern, "' must start with '/'"));
  }
  Route route;
  route.method = std::move(method);
  route.pattern = pattern;
  route.handler = std::move(h);
  route.head = std::move(head);
  for (std::string_view segment : SplitPath(pattern)) {
    Segment s;
    if (segment.size() >= 2 && segment.front() == '{' && segment.back() == '}') {
      s.is_param = true;
      s.text = std::string(segment.substr(1, segment.size() - 2));
      // "{name...}": the rest of the path, one segment or more, '/' kept (last segment only).
      if (s.text.size() > 3 && s.text.ends_with("...")) {
        s.text.resize(s.text.size() - 3);
        s.rest = true;
      }
      if (s.text.empty() || s.text.find_first_of("{}") != std::string::npos) {
        throw std::invalid_argument(
            absl::StrCat("route pattern '", pattern, "' has a bad parameter '", AV(segment), "'"));
      }
    } else {
      if (segment.find_first_of("{}") != std::string_view::npos) {
        throw std::invalid_argument(absl::StrCat("route pattern '", pattern,
                                                 "': a parameter must be a whole segment, got '",
                                                 AV(segment), "'"));
      }
      s.text = std::string(segment);
      ++route.literal_count;
    }
    route.segments.push_back(std::move(s));
  }
  for (size_t i = 0; i + 1 < route.segments.size(); ++i) {
    if (route.segments[i].rest) {
      throw std::invalid_argument(
          absl::StrCat("route pattern '", pattern, "': a {name...} parameter must come last"));
    }
  }
  routes_.push_back(std::move(route));
}

const Router::Route* Router::Match(Request& req, std::vector<std::string>* allowed) const {
  const std::vector<std::string_view> parts = SplitPath(req.path);
  auto matches = [&parts](const Route& route) {
    const bool rest = !route.segments.empty() && route.segments.back().rest;
    if (rest ? parts.size() < route.segments.size() : route.segments.size() != parts.size()) {
      return false;
    }
    for (size_t i = 0; i < route.segments.size(); ++i) {
      if (route.segments[i].rest) return true;  // the rest may hold empty segments
      const Segment& s = route.segments[i];
      if (s.is_param ? parts[i].empty() : s.text != parts[i]) return false;
    }
    return true;
  };
  const Route* best = nullptr;
  for (const Route& route : routes_) {
    if (!matches(route)) continue;
    allowed->push_back(route.method);
    if (route.method == req.method &&
        (best == nullptr || route.literal_count > best->literal_count)) {
      best = &route;
    }
  }
  if (best != nullptr) {
    req.path_params.clear();
    for (size_t i = 0; i < best->segments.size(); ++i) {
      if (best->segments[i].rest) {
        std::string tail;
        for (size_t k = i; k < parts.size(); ++k) {
          if (k > i) tail += '/';
          tail += parts[k];
        }
        req.path_params[best->segments[i].text] = std::move(tail);
      } else if (best->segments[i].is_param) {
        req.path_params[best->segments[i].text] = std::string(parts[i]);
      }
    }
    return best;
  }
  std::sort(allowed->begin(), allowed->end());
  allowed->erase(std::unique(allowed->begin(), allowed->end()), allowed->end());
  return nullptr;
}

std::vector<std::pair<std::string, std::string>> Router::Routes() const {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(routes_.size());
  for (const Route& r : routes_) out.emplace_back(r.method, r.pattern);
  return out;
}

Response Router::Dispatch(Request& req) const {
  std::vector<std::string> allowed;
  if (const Route* route = Match(req, &allowed); route != nullptr) return route->handler(req);
  if (allowed.empty()) {
    return ErrorResponse(404, "not_found", absl::StrCat("no route for ", req.path));
  }
  Response res = ErrorResponse(405, "method_not_allowed",
                               absl::StrCat("method ", req.method, " is not allowed for ", req.path,
                                            "; allowed: ", absl::StrJoin(allowed, ", ")));
  res.headers.emplace_back("Allow", absl::StrJoin(allowed, ", "));
  return res;
}

bool Router::HasHead(Request& req) const {
  std::vector<std::string> allowed;
  const Route* route = Match(req, &allowed);
  return route != nullptr && route->head;
}

Admission Router::Admit(Request& req) const {
  std::vector<std::string> allowed;
  const Route* route = Match(req, &allowed);
  if (route == nullptr || !route->head) return {};
  return route->head(req);
}

}  // namespace assay::http
