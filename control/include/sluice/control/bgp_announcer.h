// Announcing VIPs over BGP through BIRD 2. sluiced starts BIRD as its child, writes BIRD's
// whole config file (a static route per announced VIP address, exported to each peer) and
// applies each change with `configure` on BIRD's control socket, the interface that birdc uses.
//
// BIRD is the child of the thread that calls start(), with PR_SET_PDEATHSIG, so it gets SIGTERM
// when that thread ends, even when sluiced is killed with SIGKILL: no announcement outlives the
// load balancer that made it. Call every method but status() from that one thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "sluice/control/config.h"
#include "sluice/control/control_plane.h"
#include "sluice/ip_address.h"
#include "sluice/result.h"

namespace sluice::control {

// Addresses of the VIPs that can serve now: with at least one live backend (healthy, weight
// above 0). A VIP whose backends all failed their checks is not served, even when
// all_down: forward_to_all keeps them in its table. Several VIPs on one address (ports, protocols) share one route, announced while
// any of them can serve.
std::set<IpAddress> serving_vip_addresses(const std::vector<VipStatus>& vips);

// BIRD 2's config for announcing `addresses` to the peers of `bgp`.
std::string render_bird_config(const BgpConfig& bgp, const std::set<IpAddress>& addresses);

// Sends one command on BIRD's control socket and returns the reply's lines. A reply whose final
// code is not 0xxx (BIRD's success codes) is an error with BIRD's text.
Result<std::string> bird_command(const std::string& socket_path, const std::string& command,
                                 std::chrono::milliseconds timeout);

class BgpAnnouncer {
 public:
  explicit BgpAnnouncer(BgpConfig config);
  ~BgpAnnouncer();
  BgpAnnouncer(const BgpAnnouncer&) = delete;
  BgpAnnouncer& operator=(const BgpAnnouncer&) = delete;

  // Writes a config that announces nothing, starts BIRD and waits for its control socket.
  Status start();

  // Announces exactly `addresses`, withdrawing the others. Does nothing when they are the ones
  // announced. On an error, the announced set stays as BIRD last accepted it.
  Status announce(const std::set<IpAddress>& addresses);

  // Starts BIRD again when it has exited, at most once every 5 seconds. Its config file contains
  // the announced set, so it announces the same routes.
  void restart_if_exited();

  // Stops BIRD: SIGTERM, which makes it close its sessions with a Cease notification, then
  // SIGKILL after 5 seconds.
  void stop();

  // The announced addresses and BIRD's PID, for the stats report.
  nlohmann::json status() const;

 private:
  Status write_config(const std::set<IpAddress>& addresses) const;
  Status spawn();
  Status wait_for_socket();

  BgpConfig config_;
  mutable std::mutex mutex_;  // guards announced_ and pid_, which status() reads
  std::set<IpAddress> announced_;
  pid_t pid_ = -1;
  std::chrono::steady_clock::time_point last_spawn_{};
};

}  // namespace sluice::control
