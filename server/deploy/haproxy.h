#pragma once
// HAProxy as a deployment target (docs/deployments.md "HAProxy"), driven through its runtime
// API (a `stats socket ipv4@HOST:PORT level admin` line in haproxy.cfg): one command per
// connection, as `socat` would send it. The new version's servers are added to the backend as
// dynamic servers (HAProxy 2.5 or later: 2.4 needs `experimental-mode on` first), their weights and
// the old servers' weights set so that the new ones take the deployment's share, and the losing
// side drained and removed (only servers Assay added are deleted; servers of haproxy.cfg are put in
// maintenance).
//
// Every operation is idempotent, so that a controller that died in the middle of one does it
// again from the start: adding a server that exists is skipped, weights are set absolutely.

#include <boost/asio/ip/address.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace assay {
class AddressPolicy;
}

namespace assay::deploy {

// One server line of `show servers state BACKEND`.
struct HaproxyServer {
  std::string name, address;  // address: "127.0.0.1:8101"
  int op_state = 0;           // 0 stopped, 1 starting, 2 running, 3 stopping
  // srv_admin_state: 0x01 forced maintenance (disable server), 0x02 inherited (track), 0x04
  // from haproxy.cfg (`disabled`), 0x08/0x10 drain, 0x20 resolution failure, 0x40 hostname.
  int admin_state = 0;
  int weight = 0;  // srv_uweight
  bool maint() const { return (admin_state & 0x67) != 0; }
};

class HaproxyRuntime {
 public:
  // `endpoint` "ADDRESS:PORT" (an IPv4 literal, or an IPv6 one in brackets); `policy` (may be
  // null: any)
  // says whether the server may connect there. `timeout` bounds each command (connect, send,
  // answer).
  HaproxyRuntime(std::string endpoint, const AddressPolicy* policy,
                 absl::Duration timeout = absl::Seconds(5))
      : endpoint_(std::move(endpoint)), policy_(policy), timeout_(timeout) {}

  // Sends one command and returns HAProxy's answer (at most 4 MiB). kUnavailable naming the
  // endpoint when it cannot be reached; kDeadlineExceeded; kInvalidArgument for a command with
  // a newline or ';' (one command per call, never a command list).
  absl::StatusOr<std::string> Command(const std::string& command) const;

  // The backend's servers. kNotFound "haproxy backend 'B' not found" when it has none by that
  // name.
  absl::StatusOr<std::vector<HaproxyServer>> Servers(const std::string& backend) const;

  const std::string& endpoint() const { return endpoint_; }

 private:
  std::string endpoint_;
  const AddressPolicy* policy_;
  absl::Duration timeout_;
};

// A server of a deployment: the name HAProxy knows it by and where it listens.
struct TargetServer {
  std::string name, address;
};

// What a deployment does on a backend.
class HaproxyTarget {
 public:
  HaproxyTarget(const HaproxyRuntime* runtime, std::string backend)
      : runtime_(runtime), backend_(std::move(backend)) {}

  // Sends `weight` percent of requests to `fresh` and the rest to `old`: servers missing from
  // the backend are added (dynamic, in maintenance, then enabled), every server of a side that
  // gets traffic is enabled, and weights are set, the side that gains first. `rolling`:
  // instead of weights, ceil(weight% of fresh) fresh servers are enabled at full weight and
  // floor(weight% of old) old ones drained (weight 0).
  absl::Status Apply(int weight, const std::vector<TargetServer>& fresh,
                     const std::vector<TargetServer>& old, bool rolling) const;

  // Takes `servers` out of the backend: weight 0, maintenance, and `del server` for those
  // Assay added (names starting "assay-"). Returns false while one still has connections
  // (HAProxy refuses to delete it then): call again later.
  absl::StatusOr<bool> Retire(const std::vector<TargetServer>& servers) const;

  const std::string& backend() const { return backend_; }

 private:
  absl::Status Ensure(const TargetServer& s, const std::vector<HaproxyServer>& present) const;
  absl::Status Expect(const std::string& command, std::initializer_list<std::string_view> ok) const;

  const HaproxyRuntime* runtime_;
  std::string backend_;
};

// "ADDRESS:PORT" (HaproxyRuntime's endpoint) parsed; kInvalidArgument otherwise.
absl::StatusOr<std::pair<boost::asio::ip::address, uint16_t>> ParseEndpoint(
    std::string_view endpoint);

// A name HAProxy accepts for a server or backend: [A-Za-z0-9_.:-]{1,64}.
bool ValidHaproxyName(std::string_view name);

}  // namespace assay::deploy
