#pragma once
// GPU discovery on the agent: which NVIDIA GPUs this machine has, for the Hello's capabilities
// and for `assay-agent --print-gpus`.
//
// Sources, in the order DiscoverGpus tries them:
//   1. NVML, loaded at run time with dlopen("libnvidia-ml.so.1") so the agent builds and runs on
//      machines without the driver (no link-time dependency, nvml.h is not included);
//   2. `nvidia-smi --query-gpu=<kNvidiaSmiQueryColumns> --format=csv,noheader,nounits`, parsed
//      by ParseNvidiaSmiCsv.
// The parsers also read saved captures (LoadGpuInventoryFile), which is how the tests check
// them against output of real H100/H200 machines (tests/fixtures/gpu/). Parsers and JSON:
// gpu_inventory.cc; discovery: gpu_discovery.cc.
//
// Units: memory in MiB exactly as nvidia-smi and NVML report it (NVML's bytes / 1048576);
// utilization in percent, -1 when unknown (NVML without the call, "[N/A]", "[Not Supported]").

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace assay {

struct GpuInfo {
  uint32_t index = 0;            // nvidia-smi / NVML index (PCI bus order)
  std::string uuid;              // "GPU-964672fc-6cf0-fc7b-0004-1057f80a90b1"
  std::string name;              // "NVIDIA H200"
  std::string driver_version;    // "580.159.04"
  uint64_t memory_total_mb = 0;  // MiB
  uint64_t memory_used_mb = 0;   // MiB
  int utilization_pct = -1;      // 0..100, -1 unknown
};

// The columns DiscoverGpus asks nvidia-smi for (the column set of the fixtures).
inline constexpr char kNvidiaSmiQueryColumns[] =
    "index,uuid,name,driver_version,memory.total,memory.used,memory.free,utilization.gpu,"
    "temperature.gpu,power.draw";

// Parses `nvidia-smi --query-gpu=... --format=csv[,noheader][,nounits]` output.
// - With a header line (recognised by a column named "index" or "uuid"; units in brackets such
//   as "memory.total [MiB]" are ignored), columns are found by name in any order; the header
//   must name index, uuid, name, driver_version, memory.total, memory.used and
//   utilization.gpu; other columns are ignored.
// - Without one, columns are in kNvidiaSmiQueryColumns order; a line needs at least the first 8.
// Values may carry units ("81559 MiB", "0 %"); a utilization of "[N/A]", "N/A" or
// "[Not Supported]" gives -1. Blank lines are skipped; no GPU lines gives an empty vector.
// Errors (kInvalidArgument), `N` the 1-based line number:
//   "line N: expected at least 8 comma-separated fields, got 3"
//   "line 1: header lacks column memory.used"
//   "line N, field memory.total: expected a number of MiB, got \"lots\""
//   "line N, field index: expected a non-negative integer, got \"x\""
//   "line N, field utilization.gpu: expected a percentage, got \"7 W\""
//   "line N, field uuid: empty"
absl::StatusOr<std::vector<GpuInfo>> ParseNvidiaSmiCsv(std::string_view text);

// Parses `nvidia-smi -q -x`. Each <gpu> element under <nvidia_smi_log> is one GPU, its index
// being its position (nvidia-smi lists GPUs in index order; <minor_number> is the /dev/nvidiaN
// number, which can differ from the index, so it is not used). Fields: uuid, product_name,
// fb_memory_usage/total and /used ("81559 MiB"), utilization/gpu_util ("100 %"), and the
// log's top-level driver_version. Errors (kInvalidArgument), `N` the 1-based line number:
//   "line N: malformed tag" / "line N: expected </gpu>, got </pci>" / "unexpected end of
//   document inside <gpu>" / "no <nvidia_smi_log> root element"
//   "gpu 0: missing fb_memory_usage/total"
//   "gpu 0, field fb_memory_usage/total: expected a number of MiB, got \"80 GiB\""
absl::StatusOr<std::vector<GpuInfo>> ParseNvidiaSmiXml(std::string_view text);

// Reads a saved capture and parses it: XML when the first non-blank character is '<', else CSV.
// Errors: kNotFound "<path>: cannot read: No such file or directory" (other open failures:
// kFailedPrecondition with strerror's text); a parse error's message
// prefixed with "<path>: ", its code kept.
absl::StatusOr<std::vector<GpuInfo>> LoadGpuInventoryFile(const std::string& path);

// Where DiscoverGpus looks; the defaults are the real thing, tests point them elsewhere.
struct GpuDiscoveryOptions {
  std::string nvml_library = "libnvidia-ml.so.1";
  std::string nvidia_smi = "nvidia-smi";  // looked up in `path`
  std::string path;                       // empty: this process's $PATH
};

// NVML first, nvidia-smi second (see the top of this file). Results are sorted by index.
// Errors:
//   kNotFound "no NVIDIA GPU found (libnvidia-ml.so.1 not loadable and nvidia-smi not on PATH)"
//     when neither source exists (the names in the message follow `opts`);
//   kUnavailable when NVML loads but fails and nvidia-smi is absent:
//     "NVML nvmlInit_v2 failed with error 9 and nvidia-smi not on PATH";
//   kUnavailable "nvidia-smi exited with status 9: <first line of its output>";
//   kInvalidArgument for output nvidia-smi gives that ParseNvidiaSmiCsv rejects,
//     prefixed "nvidia-smi output: ".
// A driver that reports zero GPUs gives an empty vector, not an error.
absl::StatusOr<std::vector<GpuInfo>> DiscoverGpus(const GpuDiscoveryOptions& opts = {});

// The inventory as compact JSON for `assay-agent --print-gpus`, keys in this order:
// {"gpus":[{"index":0,"uuid":"GPU-...","name":"NVIDIA H200","driver_version":"580.159.04",
//   "memory_total_mb":143771,"memory_used_mb":20085,"utilization_pct":100}]}
// An unknown utilization is null.
std::string GpuInventoryJson(const std::vector<GpuInfo>& gpus);

}  // namespace assay
