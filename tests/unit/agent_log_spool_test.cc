// LogSpool: unacknowledged chunks in memory up to a bound, then in a file, replayed in order.

#include "agent/log_spool.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

namespace assay {
namespace {

std::string Data(uint64_t seq, size_t n) {
  return std::string(n, static_cast<char>('a' + seq % 26));
}

std::string Replay(const LogSpool& s, uint64_t after = 0) {
  std::string out;
  while (true) {
    auto next = s.Next(after);
    REQUIRE(next.ok());
    if (!next->has_value()) return out;
    out += std::to_string((*next)->first) + ":" + (*next)->second + " ";
    after = (*next)->first;
  }
}

TEST_CASE("spool: memory up to its bound, then the file, in seq order", "[unit][agent]") {
  const std::string path = std::filesystem::temp_directory_path() /
                           ("assay-spool-" + std::to_string(::getpid()) + ".log");
  {
    LogSpool s(path, 10);
    REQUIRE(s.Append(1, "abcd").ok());
    REQUIRE(s.Append(2, "efgh").ok());
    CHECK(s.memory_bytes() == 8);
    CHECK_FALSE(std::filesystem::exists(path));
    REQUIRE(s.Append(3, "ijk").ok());  // 11 > 10: to the file
    REQUIRE(s.Append(4, "l").ok());    // would fit in memory, but must stay behind 3
    CHECK(s.memory_bytes() == 8);
    CHECK(s.disk_chunks() == 2);
    CHECK(std::filesystem::file_size(path) == 4);
    CHECK(Replay(s) == "1:abcd 2:efgh 3:ijk 4:l ");
    CHECK(Replay(s, 2) == "3:ijk 4:l ");
    CHECK(Replay(s, 3) == "4:l ");

    s.AckUpTo(3);
    CHECK(s.memory_bytes() == 0);
    CHECK(Replay(s) == "4:l ");
    s.AckUpTo(4);
    CHECK(s.empty());
    CHECK_FALSE(std::filesystem::exists(path));  // removed once it holds nothing
    // Memory again once the file is empty.
    REQUIRE(s.Append(5, "mn").ok());
    CHECK(s.memory_bytes() == 2);
    REQUIRE(s.Append(6, std::string(20, 'z')).ok());
    CHECK(std::filesystem::exists(path));
  }
  CHECK_FALSE(std::filesystem::exists(path));  // and when the spool goes
}

TEST_CASE("spool: a long disconnect costs disk, not memory", "[unit][agent]") {
  const std::string path = std::filesystem::temp_directory_path() /
                           ("assay-spool-big-" + std::to_string(::getpid()) + ".log");
  LogSpool s(path, 64 * 1024);
  std::string want;
  for (uint64_t seq = 1; seq <= 2000; ++seq) {  // 2000 chunks of 4 KiB: 8 MiB
    REQUIRE(s.Append(seq, Data(seq, 4096)).ok());
  }
  CHECK(s.memory_bytes() == 64 * 1024);
  CHECK(s.disk_chunks() == 2000 - 16);
  uint64_t after = 0;
  bool in_order = true;
  for (uint64_t seq = 1; seq <= 2000; ++seq) {
    auto next = s.Next(after);
    REQUIRE(next.ok());
    REQUIRE(next->has_value());
    in_order = in_order && (*next)->first == seq && (*next)->second == Data(seq, 4096);
    after = seq;
  }
  CHECK(in_order);
  s.Clear();
  CHECK(s.empty());
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("spool: an unwritable spill file keeps the chunk in memory", "[unit][agent]") {
  LogSpool s("/nonexistent-dir/spool.log", 4);
  REQUIRE(s.Append(1, "abcd").ok());
  auto failed = s.Append(2, "efgh");
  CHECK(failed.code() == absl::StatusCode::kUnavailable);
  REQUIRE(s.Append(3, "ij").code() == absl::StatusCode::kUnavailable);
  CHECK(Replay(s) == "1:abcd 2:efgh 3:ij ");
}

}  // namespace
}  // namespace assay
