// DiscoverGpus: NVML through dlopen, nvidia-smi as the fallback. See agent/gpu_inventory.h.
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/gpu_inventory.h"
#include "common/proc/subprocess.h"

namespace assay {
namespace {

// The few NVML declarations we need, matching nvml.h (ABI-stable since NVML 5).
using NvmlReturn = int;  // nvmlReturn_t; 0 is NVML_SUCCESS
struct NvmlDeviceOpaque;
using NvmlDevice = NvmlDeviceOpaque*;
struct NvmlMemory {  // nvmlMemory_t (v1): bytes; `used` includes driver-reserved memory
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
struct NvmlUtilization {  // nvmlUtilization_t
  unsigned int gpu;
  unsigned int memory;
};
constexpr unsigned int kNvmlStringSize = 96;  // >= NVML_DEVICE_NAME_V2_BUFFER_SIZE, UUID, driver

struct NvmlApi {
  NvmlReturn (*init)();
  NvmlReturn (*shutdown)();
  NvmlReturn (*get_count)(unsigned int*);
  NvmlReturn (*get_handle)(unsigned int, NvmlDevice*);
  NvmlReturn (*get_name)(NvmlDevice, char*, unsigned int);
  NvmlReturn (*get_uuid)(NvmlDevice, char*, unsigned int);
  NvmlReturn (*get_memory)(NvmlDevice, NvmlMemory*);
  NvmlReturn (*get_driver)(char*, unsigned int);
  NvmlReturn (*get_utilization)(NvmlDevice, NvmlUtilization*);  // optional
};

template <typename Fn>
bool Resolve(void* lib, const char* symbol, Fn* out) {
  *out = reinterpret_cast<Fn>(dlsym(lib, symbol));
  return *out != nullptr;
}

// Loads NVML and reads every device. nullopt when the library cannot be loaded (no driver);
// otherwise the devices, or kUnavailable "NVML <function> failed with error <code>".
std::optional<absl::StatusOr<std::vector<GpuInfo>>> DiscoverWithNvml(const std::string& lib_name) {
  void* lib = dlopen(lib_name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) return std::nullopt;
  NvmlApi api{};
  const char* missing = nullptr;
  if (!Resolve(lib, "nvmlInit_v2", &api.init))
    missing = "nvmlInit_v2";
  else if (!Resolve(lib, "nvmlShutdown", &api.shutdown))
    missing = "nvmlShutdown";
  else if (!Resolve(lib, "nvmlDeviceGetCount_v2", &api.get_count))
    missing = "nvmlDeviceGetCount_v2";
  else if (!Resolve(lib, "nvmlDeviceGetHandleByIndex_v2", &api.get_handle)) {
    missing = "nvmlDeviceGetHandleByIndex_v2";
  } else if (!Resolve(lib, "nvmlDeviceGetName", &api.get_name))
    missing = "nvmlDeviceGetName";
  else if (!Resolve(lib, "nvmlDeviceGetUUID", &api.get_uuid))
    missing = "nvmlDeviceGetUUID";
  else if (!Resolve(lib, "nvmlDeviceGetMemoryInfo", &api.get_memory)) {
    missing = "nvmlDeviceGetMemoryInfo";
  } else if (!Resolve(lib, "nvmlSystemGetDriverVersion", &api.get_driver)) {
    missing = "nvmlSystemGetDriverVersion";
  }
  if (missing) {
    dlclose(lib);
    return absl::StatusOr<std::vector<GpuInfo>>(
        absl::UnavailableError(absl::StrCat("NVML library ", lib_name, " lacks symbol ", missing)));
  }
  Resolve(lib, "nvmlDeviceGetUtilizationRates", &api.get_utilization);

  auto failed = [](const char* fn, NvmlReturn rc) {
    return absl::UnavailableError(absl::StrCat("NVML ", fn, " failed with error ", rc));
  };
  absl::StatusOr<std::vector<GpuInfo>> result;
  NvmlReturn rc = api.init();
  if (rc != 0) {
    result = failed("nvmlInit_v2", rc);
  } else {
    result = [&]() -> absl::StatusOr<std::vector<GpuInfo>> {
      char driver[kNvmlStringSize] = {};
      if (NvmlReturn r = api.get_driver(driver, sizeof driver); r != 0) {
        return failed("nvmlSystemGetDriverVersion", r);
      }
      unsigned int count = 0;
      if (NvmlReturn r = api.get_count(&count); r != 0) return failed("nvmlDeviceGetCount_v2", r);
      std::vector<GpuInfo> gpus;
      for (unsigned int i = 0; i < count; ++i) {
        NvmlDevice dev = nullptr;
        if (NvmlReturn r = api.get_handle(i, &dev); r != 0) {
          return failed("nvmlDeviceGetHandleByIndex_v2", r);
        }
        char name[kNvmlStringSize] = {};
        char uuid[kNvmlStringSize] = {};
        NvmlMemory mem{};
        if (NvmlReturn r = api.get_name(dev, name, sizeof name); r != 0) {
          return failed("nvmlDeviceGetName", r);
        }
        if (NvmlReturn r = api.get_uuid(dev, uuid, sizeof uuid); r != 0) {
          return failed("nvmlDeviceGetUUID", r);
        }
        if (NvmlReturn r = api.get_memory(dev, &mem); r != 0) {
          return failed("nvmlDeviceGetMemoryInfo", r);
        }
        GpuInfo gpu;
        gpu.index = i;
        gpu.name = name;
        gpu.uuid = uuid;
        gpu.driver_version = driver;
        gpu.memory_total_mb = mem.total / (1024 * 1024);
        gpu.memory_used_mb = mem.used / (1024 * 1024);
        NvmlUtilization util{};
        if (api.get_utilization && api.get_utilization(dev, &util) == 0) {
          gpu.utilization_pct = static_cast<int>(std::min(util.gpu, 100u));
        }
        gpus.push_back(std::move(gpu));
      }
      return gpus;
    }();
    api.shutdown();
  }
  dlclose(lib);
  return result;
}

// The executable `name` in the ':'-separated `path` (or `name` itself when it holds a '/').
std::optional<std::string> FindExecutable(const std::string& name, const std::string& path) {
  auto usable = [](const std::string& file) {
    struct stat st;
    return stat(file.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(file.c_str(), X_OK) == 0;
  };
  if (name.find('/') != std::string::npos) {
    if (usable(name)) return name;
    return std::nullopt;
  }
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    std::string file = absl::StrCat(dir, "/", name);
    if (usable(file)) return file;
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<std::vector<GpuInfo>> DiscoverGpus(const GpuDiscoveryOptions& opts) {
  std::optional<absl::StatusOr<std::vector<GpuInfo>>> nvml = DiscoverWithNvml(opts.nvml_library);
  if (nvml && nvml->ok()) return std::move(*nvml);

  std::string path = opts.path;
  if (path.empty()) {
    const char* env = std::getenv("PATH");
    path = env ? env : "";
  }
  std::optional<std::string> smi = FindExecutable(opts.nvidia_smi, path);
  if (!smi) {
    if (nvml) {
      return absl::UnavailableError(
          absl::StrCat(nvml->status().message(), " and ", opts.nvidia_smi, " not on PATH"));
    }
    return absl::NotFoundError(absl::StrCat("no NVIDIA GPU found (", opts.nvml_library,
                                            " not loadable and ", opts.nvidia_smi,
                                            " not on PATH)"));
  }
  std::vector<std::string> argv = {*smi, absl::StrCat("--query-gpu=", kNvidiaSmiQueryColumns),
                                   "--format=csv,noheader,nounits"};
  absl::StatusOr<CommandResult> run = RunCommand(argv, {}, {}, {}, absl::Seconds(30));
  if (!run.ok()) {
    return absl::Status(run.status().code(), absl::StrCat("nvidia-smi: ", run.status().message()));
  }
  if (run->exit_code != 0) {
    std::string said = run->out + run->err;
    absl::string_view first = absl::StripAsciiWhitespace(said);
    first = first.substr(0, first.find('\n'));
    return absl::UnavailableError(
        absl::StrCat("nvidia-smi exited with status ", run->exit_code, ": ", first));
  }
  absl::StatusOr<std::vector<GpuInfo>> gpus = ParseNvidiaSmiCsv(run->out);
  if (!gpus.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("nvidia-smi output: ", gpus.status().message()));
  }
  std::sort(gpus->begin(), gpus->end(),
            [](const GpuInfo& a, const GpuInfo& b) { return a.index < b.index; });
  return gpus;
}

}  // namespace assay
