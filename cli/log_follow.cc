#include "cli/log_follow.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace assay::cli {
namespace {

constexpr size_t kStampBytes = 28;  // server/logs/log_format.h

// A connected socket to host:port, or -1 with `why` set.
int Connect(const std::string& host, const std::string& port, std::string* why) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    *why = absl::StrCat("cannot resolve ", host, ": ", gai_strerror(rc));
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd >= 0 && ::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(res);
  if (fd < 0) *why = absl::StrCat("cannot connect to ", host, ":", port);
  // Why 90 s: above the server's 60 s idle end of a plain follow.
  timeval tv{90, 0};
  if (fd >= 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Reads from `fd` into `buf`; false on EOF or error.
bool Fill(int fd, std::string& buf) {
  char tmp[64 * 1024];
  for (;;) {
    ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf.append(tmp, static_cast<size_t>(n));
    return true;
  }
}

enum class Outcome { kEnded, kCut, kHttpError, kRetryLater };

}  // namespace

std::string StampedCounter::Feed(std::string_view bytes) {
  std::string out;
  for (char c : bytes) {
    if (timestamps_ && pending_) {
      pending_ = false;
      in_stamp_ = true;
    }
    if (in_stamp_) {
      stamp_ += c;
      if (stamp_.size() == kStampBytes) {
        out += stamp_;
        stamp_.clear();
        in_stamp_ = false;
      }
      continue;
    }
    out += c;
    ++raw_;
    pending_ = c == '\n';
  }
  return out;
}

int FollowLog(const FollowRequest& req, std::ostream& out, std::ostream& err) {
  absl::string_view rest(req.server);
  if (!absl::ConsumePrefix(&rest, "http://")) {
    err << "assay: logs -f needs an http:// server URL, got '" << req.server << "'\n";
    return 1;
  }
  rest = absl::StripSuffix(rest, "/");
  std::string host(rest), port = "80";
  if (const size_t colon = rest.rfind(':'); colon != absl::string_view::npos) {
    host = std::string(rest.substr(0, colon));
    port = std::string(rest.substr(colon + 1));
  }
  StampedCounter counter(req.timestamps);
  auto once = [&]() -> Outcome {
    std::string why;
    const int fd = Connect(host, port, &why);
    if (fd < 0) {
      err << "assay: " << why << "\n";
      return Outcome::kRetryLater;
    }
    const std::string target =
        absl::StrCat("/api/v1/jobs/", req.job_id, "/log?follow=1&offset=", counter.raw(),
                     req.timestamps ? "&timestamps=1" : "");
    std::string head = absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: ", host, ":", port,
                                    "\r\nAccept: text/plain\r\nConnection: close\r\n");
    if (!req.token.empty()) absl::StrAppend(&head, "Authorization: Bearer ", req.token, "\r\n");
    head += "\r\n";
    if (::send(fd, head.data(), head.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(head.size())) {
      ::close(fd);
      return Outcome::kCut;
    }
    std::string buf;
    size_t end = std::string::npos;
    while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
      if (buf.size() > 64 * 1024 || !Fill(fd, buf)) {
        ::close(fd);
        return Outcome::kCut;
      }
    }
    const std::string headers = buf.substr(0, end);
    buf.erase(0, end + 4);
    int status = 0;
    if (headers.size() < 12 || !absl::SimpleAtoi(headers.substr(9, 3), &status)) {
      ::close(fd);
      err << "assay: unexpected response from the server\n";
      return Outcome::kHttpError;
    }
    const bool chunked = absl::StrContains(absl::AsciiStrToLower(headers), "chunked");
    if (status != 200 || !chunked) {
      while (buf.size() < 64 * 1024 && Fill(fd, buf)) {
      }
      ::close(fd);
      if (status == 503) return Outcome::kRetryLater;
      err << "assay: " << status << ": " << buf << "\n";
      return Outcome::kHttpError;
    }
    // Chunked body: size line, data, CRLF; 0 ends it.
    for (;;) {
      size_t eol;
      while ((eol = buf.find("\r\n")) == std::string::npos) {
        if (buf.size() > 1024 || !Fill(fd, buf)) {
          ::close(fd);
          counter.Cut();
          return Outcome::kCut;
        }
      }
      size_t size = 0;
      std::string hex = buf.substr(0, buf.find_first_of(";\r"));
      if (hex.empty() || hex.size() > 8 || !absl::SimpleHexAtoi(hex, &size)) {
        ::close(fd);
        counter.Cut();
        return Outcome::kCut;
      }
      buf.erase(0, eol + 2);
      if (size == 0) {
        ::close(fd);
        return Outcome::kEnded;
      }
      while (buf.size() < size + 2) {
        // Print what is there already: a live tail shows bytes as they come.
        const size_t now = std::min(buf.size(), size);
        if (now > 0) {
          const std::string shown = counter.Feed(std::string_view(buf).substr(0, now));
          out.write(shown.data(), static_cast<std::streamsize>(shown.size()));
          out.flush();
          buf.erase(0, now);
          size -= now;
        }
        if (buf.size() >= size + 2) break;
        if (!Fill(fd, buf)) {
          ::close(fd);
          counter.Cut();
          return Outcome::kCut;
        }
      }
      const std::string shown = counter.Feed(std::string_view(buf).substr(0, size));
      out.write(shown.data(), static_cast<std::streamsize>(shown.size()));
      out.flush();
      buf.erase(0, size + 2);
    }
  };
  auto backoff = std::chrono::milliseconds(250);
  for (int attempt = 0; attempt <= req.max_reconnects; ++attempt) {
    switch (once()) {
      case Outcome::kHttpError: return 1;
      case Outcome::kEnded:
        // The server also ends a plain follow after a long idle time: go on while the job runs.
        if (!req.job_live || !req.job_live()) return 0;
        backoff = std::chrono::milliseconds(250);
        continue;
      case Outcome::kCut:
      case Outcome::kRetryLater:
        std::this_thread::sleep_for(backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
        continue;
    }
  }
  err << "assay: gave up following job " << req.job_id << " after " << req.max_reconnects
      << " reconnects\n";
  return 1;
}

}  // namespace assay::cli
