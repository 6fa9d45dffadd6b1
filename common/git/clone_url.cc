#include "common/git/clone_url.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace assay {
namespace {

constexpr const char* kAllowed = "(only https://, ssh:// and user@host:path are allowed)";

absl::Status Refuse(std::string_view why) { return absl::InvalidArgumentError(std::string(why)); }

absl::Status RefuseLocal() {
  return Refuse(
      "is a local repository (file:// or a path), refused unless the server runs with "
      "--allow-local-repos");
}

bool IsHostChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

// A DNS name or IPv4 address, or an IPv6 literal in brackets; never starting with '-'.
bool IsHost(std::string_view host) {
  if (host.empty() || host[0] == '-') return false;
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return false;
    for (char c : host.substr(1, host.size() - 2)) {
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') {
        return false;
      }
    }
    return true;
  }
  for (char c : host) {
    if (!IsHostChar(c)) return false;
  }
  return true;
}

// host[:port], the port 1-65535.
bool IsHostPort(std::string_view hostport) {
  std::string_view host = hostport;
  std::string_view port;
  const size_t close = hostport.rfind(']');
  const size_t colon = hostport.rfind(':');
  if (colon != std::string_view::npos && (close == std::string_view::npos || colon > close)) {
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
    if (port.empty() || port.size() > 5) return false;
    int value = 0;
    for (char c : port) {
      if (c < '0' || c > '9') return false;
      value = value * 10 + (c - '0');
    }
    if (value < 1 || value > 65535) return false;
  }
  return IsHost(host);
}

bool IsUserName(std::string_view user) {
  if (user.empty() || user[0] == '-') return false;
  for (char c : user) {
    if (!IsHostChar(c)) return false;
  }
  return true;
}

absl::StatusOr<std::string> PercentDecode(std::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (i + 2 >= in.size() || hex(in[i + 1]) < 0 || hex(in[i + 2]) < 0) {
      return Refuse("has a malformed percent-escape in its credentials");
    }
    const char c = static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2]));
    if (c == '\0' || c == '\n') return Refuse("has a NUL or newline in its credentials");
    out += c;
    i += 2;
  }
  return out;
}

}  // namespace

absl::StatusOr<CloneUrl> ParseCloneUrl(std::string_view url, bool allow_local) {
  if (url.empty()) return Refuse("must not be empty");
  if (url.size() > kMaxCloneUrlBytes) {
    return Refuse(absl::StrCat("must be at most ", kMaxCloneUrlBytes, " bytes"));
  }
  for (char c : url) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == ' ') {
      return Refuse("must not contain spaces or control characters");
    }
  }
  if (url[0] == '-') return Refuse("must not start with '-'");

  CloneUrl out;
  const size_t sep = url.find("://");
  if (sep != std::string_view::npos) {
    const std::string scheme = absl::AsciiStrToLower(std::string(url.substr(0, sep)));
    const std::string_view rest = url.substr(sep + 3);
    if (scheme == "file") {
      if (!allow_local) return RefuseLocal();
      if (rest.empty() || rest[0] != '/') return Refuse("must be file:///absolute/path");
      out.kind = CloneUrl::Kind::kLocal;
      out.url = std::string(url);
      return out;
    }
    if (scheme == "http") {
      return Refuse("must use https://, not http:// (code and credentials would travel in clear)");
    }
    if (scheme != "https" && scheme != "ssh") {
      std::string shown = scheme.size() > 20 ? scheme.substr(0, 20) + "..." : scheme;
      return Refuse(absl::StrCat("must not use the ", shown, ":// scheme ", kAllowed));
    }
    const size_t auth_end = rest.find_first_of("/?#");
    if (auth_end == std::string_view::npos || rest[auth_end] != '/' ||
        auth_end + 1 == rest.size()) {
      return Refuse("must name a repository path after the host");
    }
    const std::string_view authority = rest.substr(0, auth_end);
    const size_t at = authority.rfind('@');
    const std::string_view hostport =
        at == std::string_view::npos ? authority : authority.substr(at + 1);
    if (!IsHostPort(hostport)) {
      return Refuse("must have a valid host (letters, digits, '.', '-', not starting with '-')");
    }
    if (scheme == "ssh") {
      out.kind = CloneUrl::Kind::kSsh;
      if (at != std::string_view::npos && !IsUserName(authority.substr(0, at))) {
        return Refuse(
            "must not carry a password in an ssh:// URL (use a key); the user is letters, "
            "digits, '.', '_', '-'");
      }
      out.url = std::string(url);
      return out;
    }
    out.kind = CloneUrl::Kind::kHttps;
    if (at != std::string_view::npos) {
      const std::string_view userinfo = authority.substr(0, at);
      const size_t colon = userinfo.find(':');
      auto user = PercentDecode(userinfo.substr(0, colon));
      if (!user.ok()) return user.status();
      std::string password;
      if (colon != std::string_view::npos) {
        auto pass = PercentDecode(userinfo.substr(colon + 1));
        if (!pass.ok()) return pass.status();
        password = std::move(*pass);
      }
      if (user->empty() && password.empty()) return Refuse("has an empty user before '@'");
      out.username = std::move(*user);
      out.password = std::move(password);
    }
    out.url = absl::StrCat("https://", std::string(hostport), std::string(rest.substr(auth_end)));
    return out;
  }

  // Transport helpers: "<transport>::<address>" (ext::, fd::, and any remote helper).
  if (const size_t helper = url.find("::"); helper != std::string_view::npos) {
    std::string shown(url.substr(0, std::min<size_t>(helper, 20)));
    return Refuse(absl::StrCat("must not use the ", shown, ":: transport ", kAllowed));
  }
  if (url[0] == '/') {
    if (!allow_local) return RefuseLocal();
    out.kind = CloneUrl::Kind::kLocal;
    out.url = std::string(url);
    return out;
  }
  // scp-like [user@]host:path, recognized as git does: a ':' before any '/'.
  const size_t colon = url.find(':');
  const size_t slash = url.find('/');
  if (colon == std::string_view::npos || (slash != std::string_view::npos && slash < colon)) {
    return allow_local ? Refuse(absl::StrCat("must be an https:// or ssh:// URL, user@host:path "
                                             "or an absolute path"))
                       : Refuse(absl::StrCat("must be an https:// or ssh:// URL or "
                                             "user@host:path ",
                                             kAllowed));
  }
  const std::string_view user_host = url.substr(0, colon);
  const size_t at = user_host.find('@');
  if (at != std::string_view::npos && !IsUserName(user_host.substr(0, at))) {
    return Refuse(
        "must have a user of letters, digits, '.', '_', '-' before '@' in user@host:path");
  }
  const std::string_view host = at == std::string_view::npos ? user_host : user_host.substr(at + 1);
  if (!IsHost(host) || host.front() == '[') {
    return Refuse("must have a valid host (letters, digits, '.', '-', not starting with '-')");
  }
  if (colon + 1 == url.size()) return Refuse("must name a repository path after the host");
  out.kind = CloneUrl::Kind::kSsh;
  out.url = std::string(url);
  return out;
}

std::string JoinCloneCredential(std::string_view username, std::string_view password) {
  return absl::StrCat(std::string(username), "\n", std::string(password));
}

std::pair<std::string, std::string> SplitCloneCredential(std::string_view joined) {
  const size_t nl = joined.find('\n');
  if (nl == std::string_view::npos) return {std::string(joined), ""};
  return {std::string(joined.substr(0, nl)), std::string(joined.substr(nl + 1))};
}

std::string RedactCloneUrl(std::string_view url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  const size_t host_start = scheme + 3;
  const size_t at = url.find('@', host_start);
  const size_t slash = url.find('/', host_start);
  if (at == std::string_view::npos || (slash != std::string_view::npos && at > slash)) {
    return std::string(url);
  }
  return absl::StrCat(std::string(url.substr(0, host_start)), "***", std::string(url.substr(at)));
}

}  // namespace assay
