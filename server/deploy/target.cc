#include "server/deploy/target.h"

#include <boost/json.hpp>

#include "absl/strings/str_cat.h"

namespace assay::deploy {
namespace {

namespace json = boost::json;

json::array ServersJson(const std::vector<TargetServer>& servers) {
  json::array a;
  for (const TargetServer& s : servers) a.push_back({{"name", s.name}, {"address", s.address}});
  return a;
}

std::string Addresses(const std::vector<TargetServer>& servers) {
  std::string out;
  for (const TargetServer& s : servers) absl::StrAppend(&out, out.empty() ? "" : " ", s.address);
  return out;
}

}  // namespace

std::string HaproxyBackendTarget::Describe() const {
  return absl::StrCat("haproxy backend '", haproxy_.backend(), "'");
}

std::string CommandTarget::Describe() const {
  return absl::StrCat("command target '", command_.empty() ? "" : command_[0], "'");
}

absl::StatusOr<int> CommandTarget::Call(const char* action, int weight, bool rolling,
                                        const std::vector<TargetServer>& fresh,
                                        const std::vector<TargetServer>& old) const {
  const Placeholders none;
  const Placeholders& p = context_ != nullptr ? *context_ : none;
  std::vector<std::string> argv = command_;
  for (size_t i = 1; i < argv.size(); ++i) argv[i] = Substitute(argv[i], p);
  json::object input{{"action", action},
                     {"weight", weight},
                     {"rolling", rolling},
                     {"new", ServersJson(fresh)},
                     {"old", ServersJson(old)},
                     {"environment", p.environment},
                     {"deployment", p.deployment},
                     {"version", p.version},
                     {"previous_version", p.previous_version}};
  auto r = hooks_->Run(argv,
                       {{"ASSAY_DEPLOY_ACTION", action},
                        {"ASSAY_DEPLOY_WEIGHT", std::to_string(weight)},
                        {"ASSAY_DEPLOY_ROLLING", rolling ? "1" : "0"},
                        {"ASSAY_DEPLOY_NEW", Addresses(fresh)},
                        {"ASSAY_DEPLOY_OLD", Addresses(old)},
                        {"ASSAY_ENVIRONMENT", p.environment},
                        {"ASSAY_DEPLOYMENT", p.deployment},
                        {"ASSAY_VERSION", p.version},
                        {"ASSAY_PREVIOUS_VERSION", p.previous_version}},
                       json::serialize(input), timeout_);
  if (!r.ok())
    return absl::Status(r.status().code(), absl::StrCat(Describe(), ": ", r.status().message()));
  if (r->exit_code == 0 || (r->exit_code == kHookTryAgain && r->term_signal == 0)) {
    return r->exit_code;
  }
  return absl::UnavailableError(
      absl::StrCat(Describe(), " (", action, " ", weight, "%): ", DescribeHookFailure(*r)));
}

absl::Status CommandTarget::Apply(int weight, const std::vector<TargetServer>& fresh,
                                  const std::vector<TargetServer>& old, bool rolling) const {
  auto code = Call("apply", weight, rolling, fresh, old);
  if (!code.ok()) return code.status();
  if (*code != 0) {
    return absl::UnavailableError(
        absl::StrCat(Describe(), " (apply ", weight, "%): exit ", *code, " is for a retire only"));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> CommandTarget::Retire(const std::vector<TargetServer>& servers) const {
  if (servers.empty()) return true;
  auto code = Call("retire", 0, false, {}, servers);
  if (!code.ok()) return code.status();
  return *code == 0;
}

}  // namespace assay::deploy
