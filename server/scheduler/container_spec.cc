#include "server/scheduler/container_spec.h"

#include <cmath>
#include <string>

namespace assay {
namespace {

boost::json::object ImageJson(const ImageSpec& image) {
  boost::json::object o{{"name", image.name}, {"pull", image.pull}};
  if (!image.user.empty()) o["user"] = image.user;
  if (!image.entrypoint.empty()) o["entrypoint"] = image.entrypoint;
  return o;
}

void ImageFromJson(const boost::json::value& v, v1::ContainerImage& out) {
  const boost::json::object& o = v.as_object();
  out.set_name(std::string(o.at("name").as_string()));
  const std::string pull(o.at("pull").as_string());
  out.set_pull(pull == "never"    ? v1::ContainerImage::PULL_NEVER
               : pull == "always" ? v1::ContainerImage::PULL_ALWAYS
                                  : v1::ContainerImage::PULL_IF_MISSING);
  if (const auto* user = o.if_contains("user")) out.set_user(std::string(user->as_string()));
  if (const auto* e = o.if_contains("entrypoint")) out.set_entrypoint(std::string(e->as_string()));
}

}  // namespace

void AddContainerSpec(const PlannedJob& job, boost::json::object& spec) {
  if (!job.image.has_value()) return;
  spec["image"] = ImageJson(*job.image);
  const double memory_mb = std::ceil(job.runs_on.memory_gb * 1024);
  spec["container_limits"] = boost::json::object{{"cpus", job.runs_on.cpus},
                                                 {"memory_mb", static_cast<int64_t>(memory_mb)}};
  if (job.services.empty()) return;
  boost::json::array services;
  for (const ServiceSpec& s : job.services) {
    boost::json::array env;  // pairs, to keep the file's order
    for (const auto& [k, v] : s.env) env.push_back(boost::json::array{k, v});
    boost::json::array command;
    for (const std::string& arg : s.command) command.push_back(boost::json::value(arg));
    boost::json::object o{{"name", s.name},
                          {"image", ImageJson(s.image)},
                          {"env", std::move(env)},
                          {"command", std::move(command)}};
    if (!s.health.cmd.empty()) {
      o["health"] = boost::json::object{{"cmd", s.health.cmd},
                                        {"interval_s", s.health.interval_s},
                                        {"retries", s.health.retries},
                                        {"timeout_s", s.health.timeout_s}};
    }
    services.push_back(std::move(o));
  }
  spec["services"] = std::move(services);
}

void ContainerSpecToAssignment(const boost::json::object& spec, v1::Assignment& a) {
  const auto* image = spec.if_contains("image");
  if (image == nullptr) return;
  ImageFromJson(*image, *a.mutable_image());
  if (const auto* limits = spec.if_contains("container_limits")) {
    const int64_t cpus = limits->as_object().at("cpus").to_number<int64_t>();
    const int64_t memory_mb = limits->as_object().at("memory_mb").to_number<int64_t>();
    a.set_cpus(cpus > 0 ? static_cast<uint32_t>(cpus) : 0);
    a.set_memory_mb(memory_mb > 0 ? static_cast<uint64_t>(memory_mb) : 0);
  }
  const auto* services = spec.if_contains("services");
  if (services == nullptr) return;
  for (const auto& sv : services->as_array()) {
    const boost::json::object& o = sv.as_object();
    v1::Service* s = a.add_services();
    s->set_name(std::string(o.at("name").as_string()));
    ImageFromJson(o.at("image"), *s->mutable_image());
    for (const auto& pair : o.at("env").as_array()) {
      const auto& kv = pair.as_array();
      (*s->mutable_env())[std::string(kv.at(0).as_string())] = std::string(kv.at(1).as_string());
    }
    for (const auto& arg : o.at("command").as_array()) {
      s->add_command(std::string(arg.as_string()));
    }
    if (const auto* h = o.if_contains("health")) {
      const boost::json::object& ho = h->as_object();
      v1::ServiceHealth* health = s->mutable_health();
      health->set_cmd(std::string(ho.at("cmd").as_string()));
      health->set_interval_ms(
          static_cast<uint32_t>(ho.at("interval_s").to_number<int64_t>() * 1000));
      health->set_retries(static_cast<uint32_t>(ho.at("retries").to_number<int64_t>()));
      health->set_timeout_ms(static_cast<uint32_t>(ho.at("timeout_s").to_number<int64_t>() * 1000));
    }
  }
}

boost::json::object BuildImageJson(const BuildImageSpec& b) {
  boost::json::array tags;
  for (const std::string& t : b.tags) tags.emplace_back(t);
  return {{"context", b.context},
          {"file", b.file},
          {"tags", std::move(tags)},
          {"push", b.push},
          {"registry_secret", b.registry_secret}};
}

void BuildImageFromJson(const boost::json::value& v, v1::BuildImageStep& out) {
  const boost::json::object& o = v.as_object();
  out.set_context(std::string(o.at("context").as_string()));
  out.set_file(std::string(o.at("file").as_string()));
  for (const auto& t : o.at("tags").as_array()) out.add_tags(std::string(t.as_string()));
  out.set_push(o.at("push").as_bool());
  out.set_registry_secret(std::string(o.at("registry_secret").as_string()));
}

}  // namespace assay
