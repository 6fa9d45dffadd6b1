// Streamed responses (Response::stream): chunked, byte-exact, one piece in memory at a time
// (two with stream_read_ahead), the source never called twice at once.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "common/net/http_client.h"
#include "server/http/http_server.h"

namespace assay::http {
namespace {

// Piece i of a streamed body: `size` bytes that depend on i, so a lost or repeated piece
// shows in the comparison.
std::string Piece(int i, size_t size) {
  std::string s(size, '\0');
  for (size_t k = 0; k < size; ++k) s[k] = static_cast<char>('a' + (i * 7 + k) % 26);
  return s;
}

// A handler streaming `pieces` pieces of `size` bytes, counting calls of its source, with
// Response::stream_read_ahead and a Content-Length when asked. `overlaps` counts calls made
// while another call of the same source was still running (there must be none).
Handler Streaming(int pieces, size_t size, std::shared_ptr<std::atomic<int>> calls,
                  bool read_ahead = false, bool with_length = false,
                  std::shared_ptr<std::atomic<int>> overlaps = nullptr) {
  return [=](Request&) {
    Response r;
    r.content_type = "text/plain";
    r.body = "ignored";
    auto next = std::make_shared<int>(0);
    auto running = std::make_shared<std::atomic<bool>>(false);
    r.stream = [=]() -> absl::StatusOr<std::string> {
      if (running->exchange(true) && overlaps != nullptr) ++*overlaps;
      ++*calls;
      std::string piece = *next == pieces ? std::string() : Piece((*next)++, size);
      std::this_thread::sleep_for(std::chrono::microseconds(200));  // a disk read's while
      running->store(false);
      return piece;
    };
    r.stream_read_ahead = read_ahead;
    if (with_length) r.stream_length = static_cast<uint64_t>(pieces) * size;
    return r;
  };
}

TEST_CASE("stream: a streamed body arrives chunked and byte for byte", "[http]") {
  auto calls = std::make_shared<std::atomic<int>>(0);
  Server server({}, Streaming(40, 100 * 1024, calls));
  REQUIRE(server.Start().ok());
  auto got = HttpFetch("GET", "http://127.0.0.1:" + std::to_string(server.port()) + "/log");
  REQUIRE(got.ok());
  CHECK(got->status == 200);
  CHECK(got->Header("Transfer-Encoding") == "chunked");
  CHECK(got->Header("Content-Type") == "text/plain");
  std::string want;
  for (int i = 0; i < 40; ++i) want += Piece(i, 100 * 1024);
  CHECK(got->body.size() == want.size());
  CHECK(got->body == want);
  CHECK(calls->load() == 41);  // 40 pieces, then the empty one that ends the body
}

TEST_CASE("stream: read ahead gives the same bytes, chunked or with a length, one call at a time",
          "[http]") {
  for (const bool with_length : {false, true}) {
    INFO("Content-Length: " << with_length);
    auto calls = std::make_shared<std::atomic<int>>(0);
    auto overlaps = std::make_shared<std::atomic<int>>(0);
    Server server({}, Streaming(40, 100 * 1024, calls, true, with_length, overlaps));
    REQUIRE(server.Start().ok());
    const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/a";
    std::string want;
    for (int i = 0; i < 40; ++i) want += Piece(i, 100 * 1024);
    // Twice on one server: the second response must not see the first one's read-ahead state.
    for (int round = 0; round < 2; ++round) {
      auto got = HttpFetch("GET", url);
      REQUIRE(got.ok());
      CHECK(got->status == 200);
      CHECK(got->Header("Transfer-Encoding") == (with_length ? "" : "chunked"));
      CHECK(got->Header("Content-Length") == (with_length ? std::to_string(want.size()) : ""));
      CHECK(got->body == want);
    }
    // Chunked: 40 pieces and the empty one that ends the body. With a Content-Length the
    // source is not asked again once it is complete (asking after the client had every byte
    // made the count racy).
    CHECK(calls->load() == 2 * (with_length ? 40 : 41));
    CHECK(overlaps->load() == 0);
  }
}

TEST_CASE("stream: an empty stream is an empty chunked body, a source error truncates", "[http]") {
  auto calls = std::make_shared<std::atomic<int>>(0);
  Server empty({}, Streaming(0, 1, calls));
  REQUIRE(empty.Start().ok());
  auto got = HttpFetch("GET", "http://127.0.0.1:" + std::to_string(empty.port()) + "/");
  REQUIRE(got.ok());
  CHECK(got->status == 200);
  CHECK(got->body.empty());

  Server failing({}, [](Request&) {
    Response r;
    auto n = std::make_shared<int>(0);
    r.stream = [n]() -> absl::StatusOr<std::string> {
      if ((*n)++ == 0) return std::string("first piece");
      return absl::UnavailableError("database went away");
    };
    return r;
  });
  REQUIRE(failing.Start().ok());
  // The status line is out before the error: the client must see a broken body, not a
  // complete one (no last chunk).
  auto broken = HttpFetch("GET", "http://127.0.0.1:" + std::to_string(failing.port()) + "/");
  CHECK_FALSE(broken.ok());
}

TEST_CASE("stream: a client that does not read holds the server to a few pieces", "[http]") {
  const bool read_ahead = GENERATE(false, true);
  INFO("read ahead: " << read_ahead);
  auto calls = std::make_shared<std::atomic<int>>(0);
  constexpr int kPieces = 1000;  // 64 MiB in all
  constexpr size_t kSize = 64 * 1024;
  Server server({}, Streaming(kPieces, kSize, calls, read_ahead));
  REQUIRE(server.Start().ok());
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int small = 64 * 1024;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(server.port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  const std::string req = "GET /log HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  REQUIRE(::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size()));
  // Not reading: the server may fill the socket buffers, then must wait. Why a pause and no
  // timing assertion: a server that read ahead would reach all 1,000 pieces in this time; a
  // correct one stops at what the buffers hold (a few MiB on loopback) whatever the speed.
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  const int ahead = calls->load();
  INFO("pieces asked for while the client did not read: " << ahead);
  CHECK(ahead < 200);
  // Reading everything still gives every byte.
  std::string all;
  char buf[65536];
  while (true) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    all.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  const size_t head_end = all.find("\r\n\r\n");
  REQUIRE(head_end != std::string::npos);
  CHECK(all.substr(0, 15) == "HTTP/1.1 200 OK");
  // Undo the chunked encoding.
  std::string body;
  size_t pos = head_end + 4;
  while (true) {
    const size_t eol = all.find("\r\n", pos);
    REQUIRE(eol != std::string::npos);
    const size_t len = std::stoul(all.substr(pos, eol - pos), nullptr, 16);
    if (len == 0) break;
    body += all.substr(eol + 2, len);
    pos = eol + 2 + len + 2;
  }
  CHECK(body.size() == kPieces * kSize);
  bool same = true;
  for (int i = 0; i < kPieces && same; ++i) {
    same = body.compare(i * kSize, kSize, Piece(i, kSize)) == 0;
  }
  CHECK(same);
  CHECK(calls->load() == kPieces + 1);
}

}  // namespace
}  // namespace assay::http
