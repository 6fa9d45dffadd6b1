#include "server/deploy/haproxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <cerrno>
#include <cstring>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/deploy/spec.h"
#include "common/net/address_policy.h"

namespace assay::deploy {
namespace {

constexpr size_t kMaxAnswer = 4 << 20;

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Closes the descriptor when it goes out of scope.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

int RemainingMs(absl::Time deadline) {
  return static_cast<int>(
      std::clamp<int64_t>(absl::ToInt64Milliseconds(deadline - absl::Now()), 0, 3600 * 1000));
}

}  // namespace

// "HOST:PORT" with HOST an IPv4 literal or a bracketed IPv6 one.
absl::StatusOr<std::pair<boost::asio::ip::address, uint16_t>> ParseEndpoint(
    std::string_view endpoint) {
  const size_t colon = endpoint.rfind(':');
  auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("haproxy runtime API '", AV(endpoint),
                     "' must be ADDRESS:PORT with an IP address (127.0.0.1:9999 or [::1]:9999)"));
  };
  if (colon == std::string_view::npos) return bad();
  std::string_view host = endpoint.substr(0, colon);
  if (absl::StartsWith(AV(host), "[") && absl::EndsWith(AV(host), "]")) {
    host = host.substr(1, host.size() - 2);
  }
  int port = 0;
  if (!absl::SimpleAtoi(AV(endpoint.substr(colon + 1)), &port) || port < 1 || port > 65535) {
    return bad();
  }
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(std::string(host), ec);
  if (ec) return bad();
  return std::make_pair(address, static_cast<uint16_t>(port));
}

bool ValidHaproxyName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == ':' ||
          c == '-')) {
      return false;
    }
  }
  return true;
}

absl::StatusOr<std::string> HaproxyRuntime::Command(const std::string& command) const {
  if (command.find_first_of("\r\n;") != std::string::npos) {
    return absl::InvalidArgumentError("a haproxy command must be one line without ';'");
  }
  auto ep = ParseEndpoint(endpoint_);
  if (!ep.ok()) return ep.status();
  const auto& [address, port] = *ep;
  if (policy_ != nullptr) {
    if (absl::Status s = policy_->Check(address.to_string(), address); !s.ok()) {
      return absl::PermissionDeniedError(
          absl::StrCat("haproxy runtime API ", endpoint_, ": ", s.message()));
    }
  }
  const absl::Time deadline = absl::Now() + timeout_;
  const std::string what = absl::StrCat("haproxy runtime API ", endpoint_);
  auto timed_out = [&] {
    return absl::DeadlineExceededError(absl::StrCat(what, ": no answer to '", command, "' within ",
                                                    absl::FormatDuration(timeout_)));
  };

  sockaddr_storage sa{};
  socklen_t sa_len = 0;
  if (address.is_v4()) {
    auto* in = reinterpret_cast<sockaddr_in*>(&sa);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    auto bytes = address.to_v4().to_bytes();
    std::memcpy(&in->sin_addr, bytes.data(), bytes.size());
    sa_len = sizeof(sockaddr_in);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&sa);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    auto bytes = address.to_v6().to_bytes();
    std::memcpy(&in6->sin6_addr, bytes.data(), bytes.size());
    sa_len = sizeof(sockaddr_in6);
  }
  Fd fd{socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
  if (fd.fd < 0) return absl::InternalError(absl::StrCat(what, ": socket: ", strerror(errno)));
  if (connect(fd.fd, reinterpret_cast<sockaddr*>(&sa), sa_len) != 0) {
    if (errno != EINPROGRESS) {
      return absl::UnavailableError(absl::StrCat(what, ": cannot connect: ", strerror(errno)));
    }
    pollfd p{fd.fd, POLLOUT, 0};
    int ready = poll(&p, 1, RemainingMs(deadline));
    if (ready == 0) return timed_out();
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (ready < 0 || err != 0) {
      return absl::UnavailableError(
          absl::StrCat(what, ": cannot connect: ", strerror(ready < 0 ? errno : err)));
    }
  }
  const std::string line = command + "\n";
  size_t sent = 0;
  while (sent < line.size()) {
    ssize_t n = send(fd.fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return absl::UnavailableError(absl::StrCat(what, ": sending failed: ", strerror(errno)));
    }
    pollfd p{fd.fd, POLLOUT, 0};
    if (poll(&p, 1, RemainingMs(deadline)) == 0) return timed_out();
  }
  // The answer ends when HAProxy closes the connection (non-interactive mode).
  std::string answer;
  char buf[16384];
  for (;;) {
    ssize_t n = recv(fd.fd, buf, sizeof(buf), 0);
    if (n == 0) break;
    if (n > 0) {
      answer.append(buf, static_cast<size_t>(n));
      if (answer.size() > kMaxAnswer) {
        return absl::ResourceExhaustedError(
            absl::StrCat(what, ": answer to '", command, "' exceeds ", kMaxAnswer, " bytes"));
      }
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) {
      return absl::UnavailableError(absl::StrCat(what, ": reading failed: ", strerror(errno)));
    }
    pollfd p{fd.fd, POLLIN, 0};
    if (poll(&p, 1, RemainingMs(deadline)) == 0) return timed_out();
  }
  return answer;
}

absl::StatusOr<std::vector<HaproxyServer>> HaproxyRuntime::Servers(
    const std::string& backend) const {
  if (!ValidHaproxyName(backend)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", backend, "' is not a haproxy backend name"));
  }
  auto answer = Command("show servers state " + backend);
  if (!answer.ok()) return answer.status();
  // "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight
  //  srv_iweight ... srv_fqdn srv_port ...\n3 llm 1 s1 127.0.0.1 2 0 1 1 ...\n"
  std::vector<HaproxyServer> out;
  bool header = false;
  for (absl::string_view line : absl::StrSplit(*answer, '\n', absl::SkipWhitespace())) {
    line = absl::StripAsciiWhitespace(line);
    if (absl::StartsWith(line, "# be_id")) {
      header = true;
      continue;
    }
    if (!header || absl::StartsWith(line, "#")) continue;
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 19) continue;
    HaproxyServer s;
    s.name = std::string(f[3]);
    s.address = absl::StrCat(f[4], ":", f[18]);
    if (!absl::SimpleAtoi(f[5], &s.op_state) || !absl::SimpleAtoi(f[6], &s.admin_state) ||
        !absl::SimpleAtoi(f[7], &s.weight)) {
      continue;
    }
    out.push_back(std::move(s));
  }
  if (!header) {
    std::string said(absl::StripAsciiWhitespace(*answer));
    if (said.size() > 200) said.resize(200);
    if (absl::StrContains(said, "Can't find backend")) {
      return absl::NotFoundError(absl::StrCat("haproxy backend '", backend, "' not found"));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "haproxy at ", endpoint_, " answered 'show servers state ", backend, "' with: ", said));
  }
  return out;
}

absl::Status HaproxyTarget::Expect(const std::string& command,
                                   std::initializer_list<std::string_view> ok) const {
  auto answer = runtime_->Command(command);
  if (!answer.ok()) return answer.status();
  std::string said(absl::StripAsciiWhitespace(*answer));
  if (said.empty()) return absl::OkStatus();
  for (std::string_view o : ok) {
    if (absl::StartsWith(said, AV(o))) return absl::OkStatus();
  }
  if (said.size() > 300) said.resize(300);
  return absl::FailedPreconditionError(
      absl::StrCat("haproxy at ", runtime_->endpoint(), " refused '", command, "': ", said));
}

absl::Status HaproxyTarget::Ensure(const TargetServer& s,
                                   const std::vector<HaproxyServer>& present) const {
  if (!ValidHaproxyName(s.name)) {
    return absl::InvalidArgumentError(absl::StrCat("'", s.name, "' is not a haproxy server name"));
  }
  for (const HaproxyServer& p : present) {
    if (p.name != s.name) continue;
    // A name reused for another address would keep the old one: refuse it.
    if (p.address != s.address) {
      return absl::FailedPreconditionError(
          absl::StrCat("haproxy backend '", backend_, "' has a server '", s.name, "' at ",
                       p.address, ", not at ", s.address, "; name the new server differently"));
    }
    return absl::OkStatus();
  }
  if (s.address.find_first_of(" \t;#") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("'", s.address, "' is not a server address"));
  }
  return Expect(absl::StrCat("add server ", backend_, "/", s.name, " ", s.address, " weight 0"),
                {"New server registered"});
}

absl::Status HaproxyTarget::Apply(int weight, const std::vector<TargetServer>& fresh,
                                  const std::vector<TargetServer>& old, bool rolling) const {
  auto present = runtime_->Servers(backend_);
  if (!present.ok()) return present.status();
  for (const auto* side : {&fresh, &old}) {
    for (const TargetServer& s : *side) {
      if (absl::Status st = Ensure(s, *present); !st.ok()) return st;
    }
  }
  // Per-server weights: the new side's and the old side's.
  std::map<std::string, int> want;
  if (rolling) {
    const int up = static_cast<int>((static_cast<int64_t>(weight) * fresh.size() + 99) / 100);
    const int down = static_cast<int>(static_cast<int64_t>(weight) * old.size() / 100);
    for (size_t i = 0; i < fresh.size(); ++i) want[fresh[i].name] = i < size_t(up) ? 100 : 0;
    for (size_t i = 0; i < old.size(); ++i) want[old[i].name] = i < size_t(down) ? 0 : 100;
  } else {
    ServerWeights w =
        SplitWeights(weight, static_cast<int>(fresh.size()), static_cast<int>(old.size()));
    for (const TargetServer& s : fresh) want[s.name] = w.new_each;
    for (const TargetServer& s : old) want[s.name] = w.old_each;
  }
  std::map<std::string, int> now;
  for (const HaproxyServer& p : *present) now[p.name] = p.maint() ? -1 : p.weight;
  // Servers whose share grows first, then those whose share shrinks: capacity never dips.
  std::vector<std::pair<std::string, int>> order(want.begin(), want.end());
  std::stable_sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
    auto grows = [&](const auto& e) {
      auto it = now.find(e.first);
      return it == now.end() || e.second > it->second;
    };
    return grows(a) && !grows(b);
  });
  for (const auto& [name, w] : order) {
    const std::string server = absl::StrCat(backend_, "/", name);
    if (absl::Status s = Expect(absl::StrCat("set server ", server, " weight ", w), {}); !s.ok()) {
      return s;
    }
    auto it = now.find(name);
    if (it == now.end() || it->second < 0) {
      if (absl::Status s = Expect("enable server " + server, {}); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> HaproxyTarget::Retire(const std::vector<TargetServer>& servers) const {
  auto present = runtime_->Servers(backend_);
  if (!present.ok()) return present.status();
  bool all_gone = true;
  for (const TargetServer& s : servers) {
    auto it = std::find_if(present->begin(), present->end(),
                           [&](const HaproxyServer& p) { return p.name == s.name; });
    if (it == present->end()) continue;
    const std::string server = absl::StrCat(backend_, "/", s.name);
    if (it->weight != 0) {
      if (absl::Status st = Expect(absl::StrCat("set server ", server, " weight 0"), {});
          !st.ok()) {
        return st;
      }
    }
    if (!it->maint()) {
      if (absl::Status st = Expect("disable server " + server, {}); !st.ok()) return st;
    }
    if (!absl::StartsWith(s.name, "assay-")) continue;
    auto answer = runtime_->Command("del server " + server);
    if (!answer.ok()) return answer.status();
    std::string said(absl::StripAsciiWhitespace(*answer));
    if (absl::StartsWith(said, "Server deleted")) continue;
    if (absl::StrContains(said, "connections attached") || absl::StrContains(said, "still")) {
      all_gone = false;  // in-flight requests finish first
      continue;
    }
    if (said.size() > 300) said.resize(300);
    return absl::FailedPreconditionError(absl::StrCat(
        "haproxy at ", runtime_->endpoint(), " refused 'del server ", server, "': ", said));
  }
  return all_gone;
}

}  // namespace assay::deploy
