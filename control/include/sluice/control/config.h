// The configuration model: one YAML file of the whole desired state, validated whole.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/flow_table.h"
#include "sluice/health/check_spec.h"
#include "sluice/ip_address.h"
#include "sluice/result.h"
#include "sluice/snapshot.h"

namespace sluice::control {

// Per-backend changes to its VIP's health check.
struct HealthCheckOverride {
  std::optional<uint16_t> port;
  std::optional<std::chrono::milliseconds> interval;
  std::optional<std::chrono::milliseconds> timeout;
  std::optional<uint32_t> rise;
  std::optional<uint32_t> fall;

  bool operator==(const HealthCheckOverride&) const = default;
};

struct BackendConfig {
  IpAddress address;
  uint32_t weight = 1;  // 0 drains the backend: existing flows stay, new flows go elsewhere
  HealthCheckOverride health_check;

  bool operator==(const BackendConfig&) const = default;
};

// The policy for new flows when every backend of a VIP with a weight above 0 is down.
enum class AllDownPolicy : uint8_t {
  kForwardToAll,  // keep all of them in the table and log an alert: one may still be alive
  kDrop,          // drop new flows (counted as no_backend)
};

struct VipConfig {
  VipKey key;
  uint32_t table_size = SLUICE_MAGLEV_DEFAULT_SIZE;
  sluice_encapsulation encapsulation = SLUICE_ENCAP_IPIP;
  // What the backend choice hashes: the 5-tuple ("connection"), or the client's address only
  // ("client"), so that every connection of a client reaches the same backend.
  sluice_persistence persistence = SLUICE_PERSISTENCE_CONNECTION;
  std::vector<BackendConfig> backends;
  // Absent: no checks, every backend serves. Present: a backend serves after its first passing
  // check, leaves after `fall` failures and returns after `rise` passes.
  std::optional<health::HealthCheckSpec> health_check;
  AllDownPolicy all_down = AllDownPolicy::kForwardToAll;

  // The check of one backend: the VIP's spec with the backend's overrides applied.
  health::HealthCheckSpec check_for(const BackendConfig& backend) const;

  bool operator==(const VipConfig&) const = default;
};

struct DpdkPortConfig {
  // A PCI address (0000:01:00.0) or a virtual device with its arguments
  // (net_af_packet0,iface=eth0).
  std::string device;
  std::optional<uint32_t> mtu;  // L3 MTU to set on the device; the device's own when absent
  // L3 MTU of the path to the backends, for the too-big check after encapsulation; the
  // device's MTU when absent. Drivers such as net_af_packet send frames larger than the MTU
  // they report, and this is how to use that.
  std::optional<uint32_t> egress_mtu;

  bool operator==(const DpdkPortConfig&) const = default;
};

struct DpdkConfig {
  uint32_t main_lcore = 0;
  std::vector<uint32_t> worker_lcores{1};
  std::vector<uint32_t> worker_cpus;  // CPU of each worker lcore; empty: the lcore's own id
  std::vector<std::string> eal_args;
  std::vector<DpdkPortConfig> ports;
  std::string exception_interface;  // TAP interface for traffic that is not for a VIP
  uint32_t mbufs_per_worker = 8192;
  uint16_t rx_descriptors = 1024;
  uint16_t tx_descriptors = 1024;

  bool operator==(const DpdkConfig&) const = default;
};

struct XdpConfig {
  std::vector<std::string> interfaces;  // the program is attached to each
  bool generic = false;                 // generic (SKB) mode instead of native
  bool generic_fallback = false;        // try native, and use generic if native fails
  // Forwarded packets leave through this interface with XDP_REDIRECT; empty: XDP_TX out of
  // the receiving interface (one arm).
  std::string egress_interface;
  std::optional<uint32_t> egress_mtu;  // too-big check; the egress interface's MTU when absent

  bool operator==(const XdpConfig&) const = default;
};

struct NextHopConfig {
  std::optional<MacAddress> mac;  // fixed next-hop MAC
  IpAddress ipv4;                 // or resolve this address through the exception interface

  bool operator==(const NextHopConfig&) const = default;
};

struct BgpPeerConfig {
  IpAddress address;
  uint32_t as = 0;
  std::optional<IpAddress> local_address;  // the session's source address; BIRD picks when absent

  bool operator==(const BgpPeerConfig&) const = default;
};

// The BIRD 2 daemon that sluiced starts as its child and reconfigures through its control
// socket. sluiced owns config_file and rewrites it on every change of the announced VIPs.
struct BirdConfig {
  std::string binary = "/usr/sbin/bird";
  std::string config_file = "/run/sluice/bird.conf";
  std::string control_socket = "/run/sluice/bird.ctl";
  std::string pid_file;  // empty: none
  std::string log_file;  // empty: BIRD logs to stderr, which is sluiced's

  bool operator==(const BirdConfig&) const = default;
};

// Announcing the VIPs over BGP. Absent from the config file: no BGP.
struct BgpConfig {
  bool enabled = false;
  uint32_t local_as = 0;
  IpAddress router_id;          // IPv4 form; lb.ipv4 when absent
  IpAddress next_hop_ipv4;      // of announced IPv4 VIPs; lb.ipv4 when absent
  IpAddress next_hop_ipv6;      // of announced IPv6 VIPs; lb.ipv6 when absent
  uint32_t hold_time_s = 9;     // BGP hold time (RFC 4271: 0 or at least 3); keepalives at a third
  uint32_t drain_time_s = 5;    // after withdrawing on a graceful stop, forward this long
  // After the start, a VIP with a backend that is down waits this long before it is announced,
  // so that checks that failed while the host's network came up are retried first.
  uint32_t settle_time_s = 10;
  std::vector<BgpPeerConfig> peers;
  BirdConfig bird;

  bool operator==(const BgpConfig&) const = default;
};

struct Config {
  std::string dataplane = "dpdk";  // "dpdk" or "xdp"
  DpdkConfig dpdk;
  XdpConfig xdp;
  IpAddress source_ipv4;
  IpAddress source_ipv6;
  uint16_t gue_port = SLUICE_GUE_DEFAULT_PORT;  // outer UDP destination port of GUE VIPs
  NextHopConfig next_hop;
  uint32_t seed = 0;
  uint32_t flow_table_size = 65536;  // entries per worker
  uint32_t new_flow_limit = 0;       // new flow entries per second per worker; 0: no limit
  FlowTimeouts timeouts;
  std::vector<VipConfig> vips;
  BgpConfig bgp;

  // Valid but probably unintended settings, for the caller to log.
  std::vector<std::string> warnings;

  bool operator==(const Config&) const = default;
};

// Parses and validates a whole config. An error names the field path and the reason, for
// example "vips[0].table_size: 65536 is not prime (use 65537)".
Result<Config> parse_config(std::string_view yaml_text);
Result<Config> load_config_file(const std::string& path);

// Parses one VIP with the fields of an entry of `vips`, from YAML or JSON, and checks its
// backends. Errors name the field under "vip", for example "vip.table_size".
Result<VipConfig> parse_vip_config(std::string_view text);

// Parses one backend ({address, weight}) from YAML or JSON; errors name "backend.FIELD".
Result<BackendConfig> parse_backend_config(std::string_view text);

// Checks the rules that span fields (duplicate VIPs, backend families, outer source addresses,
// limits) on a config built or changed in code, and refills config.warnings.
Status validate_config(Config& config);

// Parses a VIP written as 203.0.113.10:80/tcp or [2001:db8::10]:443/udp.
Result<VipKey> parse_vip_key(std::string_view text);

}  // namespace sluice::control
