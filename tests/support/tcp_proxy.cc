#include "tests/support/tcp_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace assay::testing {
namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// Closes with a reset (SO_LINGER 0), as a cut network link looks to the peer soon enough.
void Reset(int fd) {
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(fd);
}

struct Pair {
  int client = -1, server = -1;
  std::string to_server, to_client;  // bytes read but not yet written
};

// Writes what it can of `buf` to `fd` (non-blocking); false on error.
bool Flush(int fd, std::string& buf) {
  while (!buf.empty()) {
    ssize_t n = ::send(fd, buf.data(), buf.size(), MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf.erase(0, static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

absl::Status TcpProxy::Start() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd_ < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  sockaddr_in a = Loopback(0);
  socklen_t len = sizeof a;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    return absl::InternalError(absl::StrCat("proxy listen: ", strerror(errno)));
  }
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void TcpProxy::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
}

int TcpProxy::CutAll() {
  const int want = cut_requests_.fetch_add(1) + 1;
  absl::MutexLock l(&mu_);
  auto done = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return cut_done_ >= want || stop_; };
  mu_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(5));
  return cut_count_;
}

void TcpProxy::Run() {
  std::vector<Pair> pairs;
  constexpr size_t kMaxBuffered = 4 << 20;  // per direction; beyond it a side is not read
  while (!stop_) {
    if (const int want = cut_requests_.load(); want > last_cut_) {
      const int n = static_cast<int>(pairs.size());
      for (auto& p : pairs) {
        Reset(p.client);
        Reset(p.server);
      }
      pairs.clear();
      last_cut_ = want;
      absl::MutexLock l(&mu_);
      cut_done_ = want;
      cut_count_ = n;
    }
    std::vector<pollfd> fds;
    fds.push_back({listen_fd_, POLLIN, 0});
    for (auto& p : pairs) {
      short cin = p.to_server.size() < kMaxBuffered ? POLLIN : 0;
      short sin = p.to_client.size() < kMaxBuffered ? POLLIN : 0;
      fds.push_back({p.client, static_cast<short>(cin | (p.to_client.empty() ? 0 : POLLOUT)), 0});
      fds.push_back({p.server, static_cast<short>(sin | (p.to_server.empty() ? 0 : POLLOUT)), 0});
    }
    if (::poll(fds.data(), fds.size(), 100) < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (c >= 0) {
        int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in t = Loopback(target_port_);
        if (s >= 0 && ::connect(s, reinterpret_cast<sockaddr*>(&t), sizeof t) == 0) {
          ::fcntl(s, F_SETFL, ::fcntl(s, F_GETFL) | O_NONBLOCK);
          int one = 1;
          ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          pairs.push_back({c, s, {}, {}});
          ++accepted_;
        } else {
          if (s >= 0) ::close(s);
          Reset(c);
        }
      }
    }
    std::vector<Pair> keep;
    char buf[64 * 1024];
    const size_t polled = (fds.size() - 1) / 2;
    for (size_t i = 0; i < pairs.size(); ++i) {
      Pair& p = pairs[i];
      if (i >= polled) {  // accepted in this round: not polled yet
        keep.push_back(std::move(p));
        continue;
      }
      const pollfd& fc = fds[1 + 2 * i];
      const pollfd& fs = fds[2 + 2 * i];
      bool alive = true;
      auto pump = [&](int from, const pollfd& pf, std::string& into) {
        if (!(pf.revents & (POLLIN | POLLHUP | POLLERR))) return;
        ssize_t n = ::recv(from, buf, sizeof buf, 0);
        if (n > 0) {
          into.append(buf, static_cast<size_t>(n));
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          alive = false;
        }
      };
      pump(p.client, fc, p.to_server);
      pump(p.server, fs, p.to_client);
      if (alive) alive = Flush(p.server, p.to_server) && Flush(p.client, p.to_client);
      if (alive) {
        keep.push_back(std::move(p));
      } else {
        Reset(p.client);
        Reset(p.server);
      }
    }
    pairs = std::move(keep);
  }
  for (auto& p : pairs) {
    Reset(p.client);
    Reset(p.server);
  }
  absl::MutexLock l(&mu_);
  cut_done_ = cut_requests_.load();
}

}  // namespace assay::testing
