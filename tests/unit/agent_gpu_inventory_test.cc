// GPU discovery: parsers checked against captures from real H100/H200 machines
// (tests/fixtures/gpu/), discovery through a fake nvidia-smi in a temp dir, and the
// no-GPU case of this machine.
#include "agent/gpu_inventory.h"
#include "agent/gpu_usage.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace assay {
namespace {

const std::string kFixtures = ASSAY_SOURCE_DIR "/tests/fixtures/gpu/";
const char kH100Uuid[] = "GPU-f59ac33c-6356-994b-b157-37f8419b3580";
const char kH200Uuid[] = "GPU-964672fc-6cf0-fc7b-0004-1057f80a90b1";
const char kNoNvml[] = "libassay-no-such-nvml.so.1";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/assay-gpu-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string Write(const std::string& name, const std::string& text, bool executable = false) {
    std::string file = path + "/" + name;
    std::ofstream(file) << text;
    if (executable) chmod(file.c_str(), 0755);
    return file;
  }
  std::string path;
};

void CheckH100(const GpuInfo& g) {
  CHECK(g.index == 0);
  CHECK(g.uuid == kH100Uuid);
  CHECK(g.name == "NVIDIA H100 80GB HBM3");
  CHECK(g.driver_version == "580.159.04");
  CHECK(g.memory_total_mb == 81559);
  CHECK(g.memory_used_mb == 0);
  CHECK(g.utilization_pct == 0);
}

void CheckH200Busy(const GpuInfo& g) {
  CHECK(g.index == 0);
  CHECK(g.uuid == kH200Uuid);
  CHECK(g.name == "NVIDIA H200");
  CHECK(g.driver_version == "580.159.04");
  CHECK(g.memory_total_mb == 143771);
  CHECK(g.memory_used_mb == 20085);
  CHECK(g.utilization_pct == 100);
}

std::string CsvError(const std::string& text) {
  auto r = ParseNvidiaSmiCsv(text);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(r.status().message());
}

std::string XmlError(const std::string& text) {
  auto r = ParseNvidiaSmiXml(text);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(r.status().message());
}

// Eight GPUs built from the one-GPU H100 capture: index i and the UUID's last digit set to i.
std::string EightH100Lines(bool reversed) {
  std::string line = ReadFile(kFixtures + "h100-nvidia-smi-query.csv");
  std::string out;
  for (int k = 0; k < 8; ++k) {
    int i = reversed ? 7 - k : k;
    std::string l = line;
    l.replace(0, 1, std::to_string(i));  // "0, GPU-..." → "i, GPU-..."
    l.replace(l.find("3580,"), 5, "358" + std::to_string(i) + ",");  // distinct UUIDs
    out += l;
  }
  return out;
}

}  // namespace

TEST_CASE("nvidia-smi CSV captures parse to exact values", "[gpu]") {
  SECTION("H100, noheader,nounits") {
    auto r = LoadGpuInventoryFile(kFixtures + "h100-nvidia-smi-query.csv");
    REQUIRE(r.ok());
    REQUIRE(r->size() == 1);
    CheckH100((*r)[0]);
  }
  SECTION("H100, header and units") {
    auto r = LoadGpuInventoryFile(kFixtures + "h100-nvidia-smi-query-header.csv");
    REQUIRE(r.ok());
    REQUIRE(r->size() == 1);
    CheckH100((*r)[0]);
  }
  SECTION("busy H200") {
    auto r = LoadGpuInventoryFile(kFixtures + "h200-busy-query.csv");
    REQUIRE(r.ok());
    REQUIRE(r->size() == 1);
    CheckH200Busy((*r)[0]);
  }
  SECTION("idle H200") {
    auto r = LoadGpuInventoryFile(kFixtures + "h200-idle-query.csv");
    REQUIRE(r.ok());
    REQUIRE(r->size() == 1);
    CHECK((*r)[0].memory_total_mb == 143771);
    CHECK((*r)[0].memory_used_mb == 0);
    CHECK((*r)[0].utilization_pct == 0);
  }
}

TEST_CASE("nvidia-smi -q -x captures parse to exact values", "[gpu]") {
  auto h100 = LoadGpuInventoryFile(kFixtures + "h100-nvidia-smi-q.xml");
  REQUIRE(h100.ok());
  REQUIRE(h100->size() == 1);
  CheckH100((*h100)[0]);
  auto busy = LoadGpuInventoryFile(kFixtures + "h200-busy-q.xml");
  REQUIRE(busy.ok());
  REQUIRE(busy->size() == 1);
  CheckH200Busy((*busy)[0]);
  auto idle = LoadGpuInventoryFile(kFixtures + "h200-idle-q.xml");
  REQUIRE(idle.ok());
  REQUIRE(idle->size() == 1);
  CHECK((*idle)[0].uuid == kH200Uuid);
  CHECK((*idle)[0].memory_used_mb == 0);
  CHECK((*idle)[0].utilization_pct == 0);
}

TEST_CASE("CSV header may name columns in another order", "[gpu]") {
  auto r = ParseNvidiaSmiCsv(
      "uuid, memory.used [MiB], index, name, utilization.gpu [%], memory.total [MiB], "
      "driver_version\r\n"
      "GPU-a, 5 MiB, 3, Tesla T4, [N/A], 15360 MiB, 535.1\r\n\r\n");
  REQUIRE(r.ok());
  REQUIRE(r->size() == 1);
  const GpuInfo& g = (*r)[0];
  CHECK(g.index == 3);
  CHECK(g.uuid == "GPU-a");
  CHECK(g.name == "Tesla T4");
  CHECK(g.driver_version == "535.1");
  CHECK(g.memory_total_mb == 15360);
  CHECK(g.memory_used_mb == 5);
  CHECK(g.utilization_pct == -1);
  auto empty = ParseNvidiaSmiCsv("\n  \n");
  REQUIRE(empty.ok());
  CHECK(empty->empty());
}

TEST_CASE("eight GPUs built from the H100 capture (distinct indices and UUIDs)", "[gpu]") {
  auto r = ParseNvidiaSmiCsv(EightH100Lines(false));
  REQUIRE(r.ok());
  REQUIRE(r->size() == 8);
  for (uint32_t i = 0; i < 8; ++i) {
    CHECK((*r)[i].index == i);
    CHECK((*r)[i].uuid == "GPU-f59ac33c-6356-994b-b157-37f8419b358" + std::to_string(i));
    CHECK((*r)[i].memory_total_mb == 81559);
  }
}

TEST_CASE("malformed CSV gives exact errors", "[gpu]") {
  CHECK(CsvError("0, GPU-a, H100\n") ==
        "line 1: expected at least 8 comma-separated fields, got 3");
  CHECK(CsvError("\n0, GPU-a, H100, 1.0, lots, 0, 0, 0\n") ==
        "line 2, field memory.total: expected a number of MiB, got \"lots\"");
  CHECK(CsvError("0, GPU-a, H100, 1.0, 80 GiB, 0, 0, 0\n") ==
        "line 1, field memory.total: expected a number of MiB, got \"80 GiB\"");
  CHECK(CsvError("x, GPU-a, H100, 1.0, 1, 0, 0, 0\n") ==
        "line 1, field index: expected a non-negative integer, got \"x\"");
  CHECK(CsvError("-1, GPU-a, H100, 1.0, 1, 0, 0, 0\n") ==
        "line 1, field index: expected a non-negative integer, got \"-1\"");
  CHECK(CsvError("0, GPU-a, H100, 1.0, 1, 0, 0, 7 W\n") ==
        "line 1, field utilization.gpu: expected a percentage, got \"7 W\"");
  CHECK(CsvError("0, GPU-a, H100, 1.0, 1, 0, 0, 101\n") ==
        "line 1, field utilization.gpu: expected a percentage, got \"101\"");
  CHECK(CsvError("0, , H100, 1.0, 1, 0, 0, 0\n") == "line 1, field uuid: empty");
  CHECK(CsvError("index, uuid, name, driver_version, memory.total [MiB], utilization.gpu [%]\n") ==
        "line 1: header lacks column memory.used");
}

TEST_CASE("malformed XML gives exact errors", "[gpu]") {
  CHECK(XmlError("<?xml version=\"1.0\" ?>\n<other/>\n") == "no <nvidia_smi_log> root element");
  CHECK(XmlError("<nvidia_smi_log>\n<gpu>\n<pci>\n</gpu>\n</nvidia_smi_log>\n") ==
        "line 4: expected </pci>, got </gpu>");
  CHECK(XmlError("<nvidia_smi_log>\n<gpu id=\"a>b\">\n") ==
        "unexpected end of document inside <gpu>");
  CHECK(XmlError("<nvidia_smi_log>\n<gpu\n") == "line 2: malformed tag");
  CHECK(XmlError("<nvidia_smi_log><gpu><uuid>GPU-a</uuid><product_name>X</product_name>"
                 "</gpu></nvidia_smi_log>") == "gpu 0: missing fb_memory_usage/total");
  CHECK(XmlError("<nvidia_smi_log><gpu><uuid>GPU-a</uuid><product_name>X</product_name>"
                 "<fb_memory_usage><total>80 GiB</total><used>0 MiB</used></fb_memory_usage>"
                 "</gpu></nvidia_smi_log>") ==
        "gpu 0, field fb_memory_usage/total: expected a number of MiB, got \"80 GiB\"");
  // Entities decode; bar1_memory_usage/total is not mistaken for fb_memory_usage/total;
  // a missing utilization is unknown.
  auto r = ParseNvidiaSmiXml(
      "<nvidia_smi_log><driver_version>1</driver_version><!-- c -->"
      "<gpu><uuid>GPU-a</uuid><product_name>A &amp; B</product_name>"
      "<bar1_memory_usage><total>9 MiB</total></bar1_memory_usage>"
      "<fb_memory_usage><total>7 MiB</total><used>1 MiB</used></fb_memory_usage></gpu>"
      "<gpu><uuid>GPU-b</uuid><product_name>C</product_name>"
      "<fb_memory_usage><total>8 MiB</total><used>2 MiB</used></fb_memory_usage>"
      "<utilization><gpu_util>N/A</gpu_util></utilization></gpu></nvidia_smi_log>");
  REQUIRE(r.ok());
  REQUIRE(r->size() == 2);
  CHECK((*r)[0].name == "A & B");
  CHECK((*r)[0].memory_total_mb == 7);
  CHECK((*r)[0].utilization_pct == -1);
  CHECK((*r)[1].index == 1);
  CHECK((*r)[1].uuid == "GPU-b");
  CHECK((*r)[1].driver_version == "1");
  CHECK((*r)[1].utilization_pct == -1);
}

TEST_CASE("LoadGpuInventoryFile names the file", "[gpu]") {
  TempDir dir;
  auto missing = LoadGpuInventoryFile(dir.path + "/nope.csv");
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK(missing.status().message() ==
        dir.path + "/nope.csv: cannot read: No such file or directory");
  std::string bad =
      dir.Write("bad.csv", "0, GPU-a, H100, 1.0, 1, 0, 0, 0\n1, GPU-b, H100, 1.0, ?, 0, 0, 0\n");
  auto r = LoadGpuInventoryFile(bad);
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(r.status().message() ==
        bad + ": line 2, field memory.total: expected a number of MiB, got \"?\"");
  std::string xml = dir.Write("bad.xml", "\n  <nvidia_smi_log>\n</gpu>");
  CHECK(LoadGpuInventoryFile(xml).status().message() ==
        xml + ": line 3: expected </nvidia_smi_log>, got </gpu>");
}

TEST_CASE("DiscoverGpus without NVML or nvidia-smi is kNotFound", "[gpu]") {
  TempDir empty;
  auto r = DiscoverGpus({kNoNvml, "nvidia-smi", empty.path});
  CHECK(r.status().code() == absl::StatusCode::kNotFound);
  CHECK(r.status().message() ==
        "no NVIDIA GPU found (libassay-no-such-nvml.so.1 not loadable and nvidia-smi not on PATH)");

  // The defaults on this machine. A machine with an NVIDIA driver finds its GPUs instead.
  void* nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  bool has_smi = std::system("command -v nvidia-smi >/dev/null 2>&1") == 0;
  if (nvml) dlclose(nvml);
  auto real = DiscoverGpus();
  if (!nvml && !has_smi) {
    CHECK(real.status().code() == absl::StatusCode::kNotFound);
    CHECK(real.status().message() ==
          "no NVIDIA GPU found (libnvidia-ml.so.1 not loadable and nvidia-smi not on PATH)");
  } else {
    CHECK(real.ok());
  }
}

TEST_CASE("DiscoverGpus falls back to nvidia-smi", "[gpu]") {
  TempDir dir;
  auto script = [&](const std::string& body) {
    dir.Write("nvidia-smi", "#!/bin/sh\n" + body, true);
  };
  std::string expected_args =
      std::string("--query-gpu=") + kNvidiaSmiQueryColumns + " --format=csv,noheader,nounits";
  SECTION("busy H200 capture") {
    script("[ \"$*\" = \"" + expected_args + "\" ] || { echo \"bad args: $*\"; exit 2; }\n" +
           "cat '" + kFixtures + "h200-busy-query.csv'\n");
    auto r = DiscoverGpus({kNoNvml, "nvidia-smi", "/nonexistent:" + dir.path});
    REQUIRE(r.ok());
    REQUIRE(r->size() == 1);
    CheckH200Busy((*r)[0]);
  }
  SECTION("eight H100s listed out of order come back sorted by index") {
    dir.Write("gpus.csv", EightH100Lines(true));
    script("cat '" + dir.path + "/gpus.csv'\n");
    auto r = DiscoverGpus({kNoNvml, "nvidia-smi", dir.path});
    REQUIRE(r.ok());
    REQUIRE(r->size() == 8);
    for (uint32_t i = 0; i < 8; ++i) CHECK((*r)[i].index == i);
    CHECK((*r)[7].uuid == "GPU-f59ac33c-6356-994b-b157-37f8419b3587");
  }
  SECTION("a failing nvidia-smi is kUnavailable with its first line") {
    script(
        "echo \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA "
        "driver.\"\necho second line\nexit 9\n");
    auto r = DiscoverGpus({kNoNvml, "nvidia-smi", dir.path});
    CHECK(r.status().code() == absl::StatusCode::kUnavailable);
    CHECK(r.status().message() ==
          "nvidia-smi exited with status 9: NVIDIA-SMI has failed because it couldn't "
          "communicate with the NVIDIA driver.");
  }
  SECTION("unparsable output") {
    script("echo garbage\n");
    auto r = DiscoverGpus({kNoNvml, "nvidia-smi", dir.path});
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(r.status().message() ==
          "nvidia-smi output: line 1: expected at least 8 comma-separated fields, got 1");
  }
}

TEST_CASE("GpuInventoryJson", "[gpu]") {
  auto busy = LoadGpuInventoryFile(kFixtures + "h200-busy-query.csv");
  REQUIRE(busy.ok());
  CHECK(GpuInventoryJson(*busy) ==
        "{\"gpus\":[{\"index\":0,\"uuid\":\"GPU-964672fc-6cf0-fc7b-0004-1057f80a90b1\","
        "\"name\":\"NVIDIA H200\",\"driver_version\":\"580.159.04\",\"memory_total_mb\":143771,"
        "\"memory_used_mb\":20085,\"utilization_pct\":100}]}");
  GpuInfo odd;
  odd.index = 2;
  odd.uuid = "GPU-\"q\"";
  CHECK(GpuInventoryJson({odd}) ==
        "{\"gpus\":[{\"index\":2,\"uuid\":\"GPU-\\\"q\\\"\",\"name\":\"\",\"driver_version\":\"\","
        "\"memory_total_mb\":0,\"memory_used_mb\":0,\"utilization_pct\":null}]}");
  CHECK(GpuInventoryJson({}) == "{\"gpus\":[]}");
}

}  // namespace assay

namespace assay {
namespace {

// Waits (bounded) until the sampler's newest sample is `want` GPUs long.
bool SampleSizeBecomes(const GpuUsageSampler& s, size_t want) {
  for (int i = 0; i < 500; ++i) {
    if (s.Latest().size() == want) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

TEST_CASE("GpuUsageSampler keeps the newest good sample, and none after a failed one",
          "[agent][gpu]") {
  absl::Mutex mu;
  absl::StatusOr<std::vector<GpuInfo>> next = std::vector<GpuInfo>(2);
  GpuUsageSampler sampler(
      [&]() -> absl::StatusOr<std::vector<GpuInfo>> {
        absl::MutexLock l(&mu);
        return next;
      },
      absl::Milliseconds(5));
  REQUIRE(SampleSizeBecomes(sampler, 2));
  {
    absl::MutexLock l(&mu);
    next = absl::UnavailableError("nvidia-smi exited with status 9");
  }
  // A stale sample must not pass for a fresh one.
  CHECK(SampleSizeBecomes(sampler, 0));
  {
    absl::MutexLock l(&mu);
    next = std::vector<GpuInfo>(1);
  }
  CHECK(SampleSizeBecomes(sampler, 1));
}

}  // namespace
}  // namespace assay
