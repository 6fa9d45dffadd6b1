#include "server/scheduler/requirements.h"

#include <boost/json.hpp>

namespace assay {

std::string RequirementsJson(const RunsOnSpec& r, bool untrusted, std::string_view executor) {
  boost::json::object o{{"cpus", r.cpus}};
  if (r.memory_gb > 0) o["memory_gb"] = r.memory_gb;
  if (r.gpus > 0) o["gpus"] = r.gpus;
  if (r.gpu_shared) o["gpu_shared"] = true;
  if (r.gpu_memory_gb > 0) o["gpu_memory_gb"] = r.gpu_memory_gb;
  if (!r.gpu_model.empty()) o["gpu_model"] = r.gpu_model;
  if (untrusted) o["untrusted"] = true;
  if (!executor.empty()) o["executor"] = executor;
  return boost::json::serialize(o);
}

JobRequirements RequirementsFromJson(const std::vector<std::string>& labels,
                                     std::string_view json) {
  JobRequirements req;
  req.labels = labels;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(json, ec);
  if (ec || !v.is_object()) return req;
  const auto& o = v.get_object();
  auto number = [&](const char* key, double fallback) {
    const auto* f = o.if_contains(key);
    if (f == nullptr) return fallback;
    if (f->is_int64()) return static_cast<double>(f->get_int64());
    if (f->is_uint64()) return static_cast<double>(f->get_uint64());
    if (f->is_double()) return f->get_double();
    return fallback;
  };
  req.cpus = static_cast<int>(number("cpus", 1));
  req.memory_gb = number("memory_gb", 0);
  req.gpus = static_cast<int>(number("gpus", 0));
  req.gpu_memory_gb = number("gpu_memory_gb", 0);
  if (const auto* f = o.if_contains("gpu_shared"); f && f->is_bool())
    req.gpu_shared = f->get_bool();
  if (const auto* f = o.if_contains("untrusted"); f && f->is_bool()) req.untrusted = f->get_bool();
  if (const auto* f = o.if_contains("executor"); f && f->is_string()) {
    req.executor = std::string(f->get_string());
  }
  if (const auto* f = o.if_contains("gpu_model"); f && f->is_string()) {
    req.gpu_model = std::string(f->get_string());
  }
  return req;
}

}  // namespace assay
