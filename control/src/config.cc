#include "sluice/control/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <set>
#include <sstream>

#include "sluice/maglev.h"
#include "sluice/packet.h"

namespace sluice::control {
namespace {

// Thrown inside this file only, and turned into an Error at the boundary: validation stops
// at the first problem, and every helper can report it with its field path.
constexpr uint64_t kMaxLcore = 1023;

struct ConfigError {
  std::string message;
};

[[noreturn]] void fail(const std::string& path, const std::string& reason) {
  throw ConfigError{path + ": " + reason};
}

std::string join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

std::string index(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

void check_keys(const YAML::Node& node, const std::string& path,
                std::initializer_list<std::string_view> allowed) {
  if (!node.IsMap()) fail(path.empty() ? "config" : path, "expected a mapping");
  for (const auto& item : node) {
    const std::string key = item.first.as<std::string>();
    bool known = false;
    for (std::string_view name : allowed) known = known || key == name;
    if (!known) {
      std::string list;
      for (std::string_view name : allowed) list += (list.empty() ? "" : ", ") + std::string(name);
      fail(join(path, key), "unknown field (expected one of: " + list + ")");
    }
  }
}

std::string scalar(const YAML::Node& node, const std::string& path) {
  if (!node.IsScalar()) fail(path, "expected a single value");
  return node.Scalar();
}

uint64_t unsigned_integer(const YAML::Node& node, const std::string& path, uint64_t min,
                          uint64_t max) {
  const std::string text = scalar(node, path);
  uint64_t value = 0;
  size_t used = 0;
  try {
    if (text.empty() || text[0] == '-' || text[0] == '+') throw std::invalid_argument(text);
    value = std::stoull(text, &used, 0);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size()) {
    fail(path, "'" + text + "' is not a whole number from " + std::to_string(min) + " to " +
                   std::to_string(max));
  }
  if (value < min || value > max) {
    fail(path, std::to_string(value) + " is out of range (use " + std::to_string(min) + " to " +
                   std::to_string(max) + ")");
  }
  return value;
}

// Returns why `address` cannot be a VIP, backend or source address, or an empty string.
std::string non_unicast_reason(const IpAddress& address) {
  const auto& b = address.bytes;
  if (address.is_v4()) {
    if (b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 0) return "the unspecified address";
    if (b[0] >= 224 && b[0] <= 239) return "a multicast address";
    if (b[0] == 255 && b[1] == 255 && b[2] == 255 && b[3] == 255) return "the broadcast address";
    return "";
  }
  if (b[0] == 0xff) return "a multicast address";
  if (address == IpAddress{{}, 6}) return "the unspecified address";
  return "";
}

IpAddress address(const YAML::Node& node, const std::string& path, int family = 0) {
  const std::string text = scalar(node, path);
  Result<IpAddress> parsed = IpAddress::parse(text);
  const std::string expected =
      family == 0 ? "an IPv4 or IPv6 address" : "an IPv" + std::to_string(family) + " address";
  if (!parsed || (family != 0 && parsed->family != family)) {
    fail(path, "'" + text + "' is not " + expected);
  }
  if (const std::string reason = non_unicast_reason(*parsed); !reason.empty()) {
    fail(path, "'" + text + "' is " + reason + " (use a unicast address)");
  }
  return *parsed;
}

uint8_t protocol(const YAML::Node& node, const std::string& path) {
  const std::string text = scalar(node, path);
  if (text == "tcp") return kProtocolTcp;
  if (text == "udp") return kProtocolUdp;
  fail(path, "'" + text + "' is not a protocol (use tcp or udp)");
}

uint64_t seconds_to_ns(const YAML::Node& node, const std::string& path) {
  return unsigned_integer(node, path, 1, 86400) * 1'000'000'000ull;
}

std::chrono::milliseconds milliseconds(const YAML::Node& node, const std::string& path) {
  return std::chrono::milliseconds(unsigned_integer(node, path, 1, 3'600'000));
}

HealthCheckOverride parse_check_override(const YAML::Node& node, const std::string& path) {
  check_keys(node, path, {"port", "interval_ms", "timeout_ms", "rise", "fall"});
  HealthCheckOverride result;
  if (node["port"]) result.port = static_cast<uint16_t>(unsigned_integer(node["port"], join(path, "port"), 1, 65535));
  if (node["interval_ms"]) result.interval = milliseconds(node["interval_ms"], join(path, "interval_ms"));
  if (node["timeout_ms"]) result.timeout = milliseconds(node["timeout_ms"], join(path, "timeout_ms"));
  if (node["rise"]) result.rise = static_cast<uint32_t>(unsigned_integer(node["rise"], join(path, "rise"), 1, 100));
  if (node["fall"]) result.fall = static_cast<uint32_t>(unsigned_integer(node["fall"], join(path, "fall"), 1, 100));
  return result;
}

health::HealthCheckSpec parse_health_check(const YAML::Node& node, const std::string& path) {
  check_keys(node, path, {"type", "port", "path", "expected_status", "host", "payload",
                          "expected_reply", "interval_ms", "timeout_ms", "rise", "fall"});
  health::HealthCheckSpec spec;
  if (!node["type"]) fail(join(path, "type"), "missing (use tcp, http, udp or none)");
  const std::string type = scalar(node["type"], join(path, "type"));
  if (type == "tcp") {
    spec.kind = health::CheckKind::kTcp;
  } else if (type == "http") {
    spec.kind = health::CheckKind::kHttp;
  } else if (type == "udp") {
    spec.kind = health::CheckKind::kUdp;
  } else if (type == "none") {
    spec.kind = health::CheckKind::kNone;
  } else {
    fail(join(path, "type"), "'" + type + "' is not a check type (use tcp, http, udp or none)");
  }
  const HealthCheckOverride timing = parse_check_override(
      [&] {
        YAML::Node timing_node(YAML::NodeType::Map);
        for (const char* key : {"port", "interval_ms", "timeout_ms", "rise", "fall"}) {
          if (node[key]) timing_node[key] = node[key];
        }
        return timing_node;
      }(),
      path);
  spec.port = timing.port;
  if (timing.interval) spec.interval = *timing.interval;
  if (timing.timeout) spec.timeout = *timing.timeout;
  if (timing.rise) spec.rise = *timing.rise;
  if (timing.fall) spec.fall = *timing.fall;
  if (node["path"]) spec.http.path = scalar(node["path"], join(path, "path"));
  if (node["host"]) spec.http.host = scalar(node["host"], join(path, "host"));
  if (node["expected_status"]) {
    const YAML::Node& statuses = node["expected_status"];
    const std::string field = join(path, "expected_status");
    spec.http.expected_statuses.clear();
    if (statuses.IsSequence()) {
      for (size_t i = 0; i < statuses.size(); ++i) {
        spec.http.expected_statuses.insert(
            static_cast<int>(unsigned_integer(statuses[i], index(field, i), 100, 599)));
      }
    } else {
      spec.http.expected_statuses.insert(static_cast<int>(unsigned_integer(statuses, field, 100, 599)));
    }
  }
  if (node["payload"]) spec.udp.payload = scalar(node["payload"], join(path, "payload"));
  if (node["expected_reply"]) spec.udp.expected_reply = scalar(node["expected_reply"], join(path, "expected_reply"));
  if (Status status = health::validate(spec); !status) fail(path, status.error());
  return spec;
}

BackendConfig parse_backend(const YAML::Node& node, const std::string& path) {
  check_keys(node, path, {"address", "weight", "health_check"});
  if (!node["address"]) fail(join(path, "address"), "missing");
  BackendConfig backend;
  backend.address = address(node["address"], join(path, "address"));
  if (node["weight"]) {
    backend.weight =
        static_cast<uint32_t>(unsigned_integer(node["weight"], join(path, "weight"), 0, 65535));
  }
  if (node["health_check"]) {
    backend.health_check = parse_check_override(node["health_check"], join(path, "health_check"));
  }
  return backend;
}

std::vector<BackendConfig> parse_backends(const YAML::Node& node, const std::string& path) {
  if (!node.IsSequence()) fail(path, "expected a list of backends");
  std::vector<BackendConfig> backends;
  for (size_t i = 0; i < node.size(); ++i) backends.push_back(parse_backend(node[i], index(path, i)));
  return backends;
}

// Checks the rules within one VIP: backend families, duplicates, the table's room, and each
// backend's health check after its overrides.
void check_vip(const VipConfig& vip, const std::string& path) {
  if (vip.health_check) {
    if (vip.key.port == 0 && !vip.health_check->port) {
      fail(join(path, "health_check.port"), "missing: a port-0 VIP has no port to check");
    }
    for (size_t i = 0; i < vip.backends.size(); ++i) {
      if (Status status = health::validate(vip.check_for(vip.backends[i])); !status) {
        fail(join(index(join(path, "backends"), i), "health_check"), status.error());
      }
    }
  }
  std::set<IpAddress> seen;
  for (size_t i = 0; i < vip.backends.size(); ++i) {
    const std::string field = join(index(join(path, "backends"), i), "address");
    const IpAddress& backend = vip.backends[i].address;
    // IPv4 datagrams travel in IPv4 or IPv6 (IPv4 in IPv6). IPv6 datagrams travel only in
    // IPv6, because a router may not fragment them.
    if (vip.key.address.is_v6() && backend.is_v4()) {
      fail(field, backend.to_string() + " is IPv4, and an IPv6 VIP needs IPv6 backends (IPv6 "
                                        "packets are not sent in IPv4)");
    }
    if (backend == vip.key.address) fail(field, backend.to_string() + " is the VIP's own address");
    if (!seen.insert(backend).second) {
      fail(field, backend.to_string() + " is listed twice in this VIP");
    }
  }
  if (vip.backends.size() > vip.table_size) {
    fail(join(path, "backends"), std::to_string(vip.backends.size()) +
                                     " backends do not fit a table of " +
                                     std::to_string(vip.table_size) + " slots");
  }
}

VipConfig parse_vip(const YAML::Node& node, const std::string& path) {
  check_keys(node, path,
             {"address", "port", "protocol", "table_size", "encapsulation", "persistence",
              "backends", "health_check", "all_down"});
  for (const char* required : {"address", "port", "protocol"}) {
    if (!node[required]) fail(join(path, required), "missing");
  }
  VipConfig vip;
  vip.key.address = address(node["address"], join(path, "address"));
  vip.key.port = static_cast<uint16_t>(unsigned_integer(node["port"], join(path, "port"), 0, 65535));
  vip.key.protocol = protocol(node["protocol"], join(path, "protocol"));
  if (node["table_size"]) {
    const std::string field = join(path, "table_size");
    const uint64_t size =
        unsigned_integer(node["table_size"], field, SLUICE_MAGLEV_MIN_SIZE, SLUICE_MAGLEV_MAX_SIZE);
    if (!is_valid_maglev_size(size)) {
      fail(field, std::to_string(size) + " is not prime (Maglev needs a prime table size; use " +
                      std::to_string(SLUICE_MAGLEV_DEFAULT_SIZE) + ")");
    }
    vip.table_size = static_cast<uint32_t>(size);
  }
  if (node["encapsulation"]) {
    const std::string text = scalar(node["encapsulation"], join(path, "encapsulation"));
    if (text == "ipip") {
      vip.encapsulation = SLUICE_ENCAP_IPIP;
    } else if (text == "gue") {
      vip.encapsulation = SLUICE_ENCAP_GUE;
    } else {
      fail(join(path, "encapsulation"), "'" + text + "' is not an encapsulation (use ipip or gue)");
    }
  }
  if (node["persistence"]) {
    const std::string field = join(path, "persistence");
    const std::string text = scalar(node["persistence"], field);
    if (text == "connection") {
      vip.persistence = SLUICE_PERSISTENCE_CONNECTION;
    } else if (text == "client") {
      vip.persistence = SLUICE_PERSISTENCE_CLIENT;
    } else {
      fail(field, "'" + text + "' is not a persistence (use connection or client)");
    }
  }
  if (node["backends"]) vip.backends = parse_backends(node["backends"], join(path, "backends"));
  if (node["health_check"]) {
    vip.health_check = parse_health_check(node["health_check"], join(path, "health_check"));
  }
  if (node["all_down"]) {
    const std::string policy = scalar(node["all_down"], join(path, "all_down"));
    if (policy == "forward_to_all") {
      vip.all_down = AllDownPolicy::kForwardToAll;
    } else if (policy == "drop") {
      vip.all_down = AllDownPolicy::kDrop;
    } else {
      fail(join(path, "all_down"), "'" + policy + "' is not a policy (use forward_to_all or drop)");
    }
  }
  return vip;
}

DpdkConfig parse_dpdk(const YAML::Node& node, const std::string& path) {
  check_keys(node, path,
             {"main_lcore", "worker_lcores", "worker_cpus", "eal_args", "ports", "exception",
              "mbufs_per_worker",
              "rx_descriptors", "tx_descriptors"});
  DpdkConfig dpdk;
  if (node["main_lcore"]) {
    dpdk.main_lcore = static_cast<uint32_t>(
        unsigned_integer(node["main_lcore"], join(path, "main_lcore"), 0, kMaxLcore));
  }
  if (node["worker_lcores"]) {
    const std::string field = join(path, "worker_lcores");
    if (!node["worker_lcores"].IsSequence() || node["worker_lcores"].size() == 0) {
      fail(field, "expected a non-empty list of lcore ids");
    }
    dpdk.worker_lcores.clear();
    std::set<uint32_t> seen{dpdk.main_lcore};
    for (size_t i = 0; i < node["worker_lcores"].size(); ++i) {
      const uint32_t lcore = static_cast<uint32_t>(
          unsigned_integer(node["worker_lcores"][i], index(field, i), 0, kMaxLcore));
      if (!seen.insert(lcore).second) {
        fail(index(field, i), "lcore " + std::to_string(lcore) +
                                  " is used twice (the main lcore and each worker need their own)");
      }
      dpdk.worker_lcores.push_back(lcore);
    }
  }
  if (node["worker_cpus"]) {
    const std::string field = join(path, "worker_cpus");
    if (!node["worker_cpus"].IsSequence() ||
        node["worker_cpus"].size() != dpdk.worker_lcores.size()) {
      fail(field, "expected a list with one CPU for each of the " +
                      std::to_string(dpdk.worker_lcores.size()) + " worker lcores");
    }
    for (size_t i = 0; i < node["worker_cpus"].size(); ++i) {
      dpdk.worker_cpus.push_back(static_cast<uint32_t>(
          unsigned_integer(node["worker_cpus"][i], index(field, i), 0, kMaxLcore)));
    }
  }
  if (node["eal_args"]) {
    const std::string field = join(path, "eal_args");
    if (!node["eal_args"].IsSequence()) fail(field, "expected a list of strings");
    for (size_t i = 0; i < node["eal_args"].size(); ++i) {
      const std::string arg = scalar(node["eal_args"][i], index(field, i));
      for (const char* owned : {"-l", "--lcores", "-c", "--main-lcore", "--vdev", "-a"}) {
        if (arg == owned) {
          fail(index(field, i), "'" + arg + "' is set by sluiced from main_lcore, worker_lcores "
                                "and ports; remove it");
        }
      }
      dpdk.eal_args.push_back(arg);
    }
    const auto has = [&](const char* arg) {
      return std::find(dpdk.eal_args.begin(), dpdk.eal_args.end(), arg) != dpdk.eal_args.end();
    };
    if (has("--no-huge") && has("--in-memory")) {
      fail(field, "--no-huge and --in-memory cannot be combined in DPDK 22.11 (use --no-huge "
                  "with --no-shconf, or hugepages with --in-memory)");
    }
  }
  if (!node["ports"] || !node["ports"].IsSequence() || node["ports"].size() == 0) {
    fail(join(path, "ports"), "expected a non-empty list of ports");
  }
  for (size_t i = 0; i < node["ports"].size(); ++i) {
    const std::string item = index(join(path, "ports"), i);
    check_keys(node["ports"][i], item, {"device", "mtu", "egress_mtu"});
    if (!node["ports"][i]["device"]) fail(join(item, "device"), "missing");
    DpdkPortConfig port;
    port.device = scalar(node["ports"][i]["device"], join(item, "device"));
    if (port.device.empty()) fail(join(item, "device"), "empty");
    if (node["ports"][i]["mtu"]) {
      port.mtu = static_cast<uint32_t>(
          unsigned_integer(node["ports"][i]["mtu"], join(item, "mtu"), SLUICE_MIN_EGRESS_MTU, 9702));
    }
    if (node["ports"][i]["egress_mtu"]) {
      port.egress_mtu = static_cast<uint32_t>(
          unsigned_integer(node["ports"][i]["egress_mtu"], join(item, "egress_mtu"), SLUICE_MIN_EGRESS_MTU, 9702));
    }
    dpdk.ports.push_back(port);
  }
  if (node["exception"]) {
    const std::string field = join(path, "exception");
    check_keys(node["exception"], field, {"interface"});
    if (!node["exception"]["interface"]) fail(join(field, "interface"), "missing");
    dpdk.exception_interface = scalar(node["exception"]["interface"], join(field, "interface"));
    // Linux allows 15 characters; port N > 0 gets N appended to this name, so 14 leaves
    // room for one digit.
    if (dpdk.exception_interface.empty() || dpdk.exception_interface.size() > 14) {
      fail(join(field, "interface"),
           "'" + dpdk.exception_interface +
               "' is not a valid interface name (1 to 14 characters, so that a port number "
               "can be appended within Linux's limit of 15)");
    }
  }
  if (node["mbufs_per_worker"]) {
    dpdk.mbufs_per_worker = static_cast<uint32_t>(unsigned_integer(
        node["mbufs_per_worker"], join(path, "mbufs_per_worker"), 1024, 1u << 22));
  }
  if (node["rx_descriptors"]) {
    dpdk.rx_descriptors = static_cast<uint16_t>(
        unsigned_integer(node["rx_descriptors"], join(path, "rx_descriptors"), 64, 16384));
  }
  if (node["tx_descriptors"]) {
    dpdk.tx_descriptors = static_cast<uint16_t>(
        unsigned_integer(node["tx_descriptors"], join(path, "tx_descriptors"), 64, 16384));
  }
  return dpdk;
}

std::string interface_name(const YAML::Node& node, const std::string& path) {
  const std::string name = scalar(node, path);
  if (name.empty() || name.size() > 15 || name.find_first_of("/ \t") != std::string::npos) {
    fail(path, "'" + name + "' is not a valid interface name (1 to 15 characters, no '/' or spaces)");
  }
  return name;
}

XdpConfig parse_xdp(const YAML::Node& node, const std::string& path) {
  check_keys(node, path, {"interfaces", "mode", "generic_fallback", "egress_interface", "egress_mtu"});
  XdpConfig xdp;
  const std::string interfaces = join(path, "interfaces");
  if (!node["interfaces"] || !node["interfaces"].IsSequence() || node["interfaces"].size() == 0) {
    fail(interfaces, "expected a non-empty list of interface names");
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < node["interfaces"].size(); ++i) {
    const std::string name = interface_name(node["interfaces"][i], index(interfaces, i));
    if (!seen.insert(name).second) fail(index(interfaces, i), "'" + name + "' is listed twice");
    xdp.interfaces.push_back(name);
  }
  if (node["mode"]) {
    const std::string mode = scalar(node["mode"], join(path, "mode"));
    if (mode != "native" && mode != "generic") {
      fail(join(path, "mode"), "'" + mode + "' is not an XDP mode (use native or generic)");
    }
    xdp.generic = mode == "generic";
  }
  if (node["generic_fallback"]) {
    const std::string text = scalar(node["generic_fallback"], join(path, "generic_fallback"));
    if (text != "true" && text != "false") {
      fail(join(path, "generic_fallback"), "'" + text + "' is not true or false");
    }
    xdp.generic_fallback = text == "true";
  }
  if (node["egress_interface"]) {
    xdp.egress_interface = interface_name(node["egress_interface"], join(path, "egress_interface"));
  }
  if (node["egress_mtu"]) {
    xdp.egress_mtu = static_cast<uint32_t>(
        unsigned_integer(node["egress_mtu"], join(path, "egress_mtu"), SLUICE_MIN_EGRESS_MTU, 9702));
  }
  return xdp;
}

void parse_lb(const YAML::Node& node, Config& config) {
  check_keys(node, "lb", {"ipv4", "ipv6", "gue_port", "next_hop"});
  if (node["ipv4"]) config.source_ipv4 = address(node["ipv4"], "lb.ipv4", 4);
  if (node["ipv6"]) config.source_ipv6 = address(node["ipv6"], "lb.ipv6", 6);
  if (node["gue_port"]) {
    config.gue_port = static_cast<uint16_t>(unsigned_integer(node["gue_port"], "lb.gue_port", 1, 65535));
  }
  if (!node["next_hop"]) fail("lb.next_hop", "missing (give mac, or ipv4 to resolve it)");
  check_keys(node["next_hop"], "lb.next_hop", {"mac", "ipv4"});
  if (node["next_hop"]["mac"]) {
    const std::string text = scalar(node["next_hop"]["mac"], "lb.next_hop.mac");
    Result<MacAddress> mac = MacAddress::parse(text);
    if (!mac) fail("lb.next_hop.mac", mac.error());
    config.next_hop.mac = *mac;
  }
  if (node["next_hop"]["ipv4"]) {
    config.next_hop.ipv4 = address(node["next_hop"]["ipv4"], "lb.next_hop.ipv4", 4);
  }
  if (!config.next_hop.mac && !config.next_hop.ipv4.is_set()) {
    fail("lb.next_hop", "give mac, or ipv4 to resolve it through the exception interface");
  }
  if (config.next_hop.mac && config.next_hop.ipv4.is_set()) {
    fail("lb.next_hop", "give either mac or ipv4, not both");
  }
}

void parse_flow_table(const YAML::Node& node, Config& config) {
  check_keys(node, "flow_table",
             {"size", "tcp_timeout_s", "tcp_closing_timeout_s", "udp_timeout_s", "new_flow_limit_per_s"});
  if (node["new_flow_limit_per_s"]) {
    config.new_flow_limit = static_cast<uint32_t>(
        unsigned_integer(node["new_flow_limit_per_s"], "flow_table.new_flow_limit_per_s", 0, 1'000'000'000));
  }
  if (node["size"]) {
    config.flow_table_size =
        static_cast<uint32_t>(unsigned_integer(node["size"], "flow_table.size", 1024, 1u << 28));
  }
  if (node["tcp_timeout_s"]) config.timeouts.tcp_ns = seconds_to_ns(node["tcp_timeout_s"], "flow_table.tcp_timeout_s");
  if (node["tcp_closing_timeout_s"]) {
    config.timeouts.tcp_closing_ns =
        seconds_to_ns(node["tcp_closing_timeout_s"], "flow_table.tcp_closing_timeout_s");
  }
  if (node["udp_timeout_s"]) config.timeouts.udp_ns = seconds_to_ns(node["udp_timeout_s"], "flow_table.udp_timeout_s");
  if (config.timeouts.tcp_closing_ns > config.timeouts.tcp_ns) {
    fail("flow_table.tcp_closing_timeout_s",
         "is longer than tcp_timeout_s, so a FIN or RST would lengthen a flow's life");
  }
}

std::string absolute_path(const YAML::Node& node, const std::string& path) {
  const std::string text = scalar(node, path);
  if (text.empty() || text.front() != '/' || text.find_first_of("\"\n") != std::string::npos) {
    fail(path, "'" + text + "' is not an absolute file path without quotes or newlines");
  }
  return text;
}

// BGP sessions need an AS number; 0 is reserved (RFC 7607) and 23456 is AS_TRANS (RFC 6793).
uint32_t as_number(const YAML::Node& node, const std::string& path) {
  const auto value = static_cast<uint32_t>(unsigned_integer(node, path, 1, UINT32_MAX));
  if (value == 23456) fail(path, "23456 is AS_TRANS, not an AS number (RFC 6793)");
  return value;
}

void parse_bird(const YAML::Node& node, BirdConfig& bird) {
  const std::string path = "bgp.bird";
  check_keys(node, path, {"binary", "config_file", "control_socket", "pid_file", "log_file"});
  if (node["binary"]) bird.binary = absolute_path(node["binary"], join(path, "binary"));
  if (node["config_file"]) bird.config_file = absolute_path(node["config_file"], join(path, "config_file"));
  if (node["control_socket"]) {
    bird.control_socket = absolute_path(node["control_socket"], join(path, "control_socket"));
    // sockaddr_un::sun_path is 108 bytes long, with the terminating zero.
    if (bird.control_socket.size() > 107) {
      fail(join(path, "control_socket"), "longer than the 107 bytes a Unix socket path allows");
    }
  }
  if (node["pid_file"]) bird.pid_file = absolute_path(node["pid_file"], join(path, "pid_file"));
  if (node["log_file"]) bird.log_file = absolute_path(node["log_file"], join(path, "log_file"));
}

void parse_bgp(const YAML::Node& node, Config& config) {
  check_keys(node, "bgp", {"local_as", "router_id", "next_hop", "hold_time_s", "drain_time_s",
                           "settle_time_s", "peers", "bird"});
  BgpConfig& bgp = config.bgp;
  bgp.enabled = true;
  if (!node["local_as"]) fail("bgp.local_as", "missing");
  bgp.local_as = as_number(node["local_as"], "bgp.local_as");
  if (node["router_id"]) bgp.router_id = address(node["router_id"], "bgp.router_id", 4);

  if (node["next_hop"]) {
    check_keys(node["next_hop"], "bgp.next_hop", {"ipv4", "ipv6"});
    if (node["next_hop"]["ipv4"]) {
      bgp.next_hop_ipv4 = address(node["next_hop"]["ipv4"], "bgp.next_hop.ipv4", 4);
    }
    if (node["next_hop"]["ipv6"]) {
      bgp.next_hop_ipv6 = address(node["next_hop"]["ipv6"], "bgp.next_hop.ipv6", 6);
    }
  }

  if (node["hold_time_s"]) {
    bgp.hold_time_s = static_cast<uint32_t>(unsigned_integer(node["hold_time_s"], "bgp.hold_time_s", 3, 65535));
  }
  if (node["drain_time_s"]) {
    bgp.drain_time_s = static_cast<uint32_t>(unsigned_integer(node["drain_time_s"], "bgp.drain_time_s", 0, 3600));
  }
  if (node["settle_time_s"]) {
    bgp.settle_time_s = static_cast<uint32_t>(unsigned_integer(node["settle_time_s"], "bgp.settle_time_s", 0, 3600));
  }

  if (!node["peers"] || !node["peers"].IsSequence() || node["peers"].size() == 0) {
    fail("bgp.peers", "expected a non-empty list of peers, each with address and as");
  }
  std::set<IpAddress> seen;
  for (size_t i = 0; i < node["peers"].size(); ++i) {
    const YAML::Node& item = node["peers"][i];
    const std::string path = index("bgp.peers", i);
    check_keys(item, path, {"address", "as", "local_address"});
    if (!item["address"]) fail(join(path, "address"), "missing");
    if (!item["as"]) fail(join(path, "as"), "missing");
    BgpPeerConfig peer;
    peer.address = address(item["address"], join(path, "address"));
    peer.as = as_number(item["as"], join(path, "as"));
    if (item["local_address"]) {
      peer.local_address = address(item["local_address"], join(path, "local_address"));
      if (peer.local_address->family != peer.address.family) {
        fail(join(path, "local_address"), "not of the peer address's family");
      }
    }
    if (!seen.insert(peer.address).second) {
      fail(join(path, "address"), peer.address.to_string() + " is listed twice");
    }
    bgp.peers.push_back(peer);
  }

  if (node["bird"]) parse_bird(node["bird"], bgp.bird);
}

void check_bgp(Config& config) {
  BgpConfig& bgp = config.bgp;
  if (!bgp.enabled) return;
  if (!bgp.router_id.is_set()) {
    if (!config.source_ipv4.is_set()) fail("bgp.router_id", "missing, and there is no lb.ipv4 to use");
    bgp.router_id = config.source_ipv4;
  }
  if (!bgp.next_hop_ipv4.is_set()) bgp.next_hop_ipv4 = config.source_ipv4;
  if (!bgp.next_hop_ipv6.is_set()) bgp.next_hop_ipv6 = config.source_ipv6;
  for (size_t i = 0; i < config.vips.size(); ++i) {
    const VipKey& key = config.vips[i].key;
    if (key.address.is_v4() && !bgp.next_hop_ipv4.is_set()) {
      fail("bgp.next_hop.ipv4", "missing: VIP " + key.to_string() + " is announced with an IPv4 next hop");
    }
    if (key.address.is_v6() && !bgp.next_hop_ipv6.is_set()) {
      fail("bgp.next_hop.ipv6", "missing: VIP " + key.to_string() + " is announced with an IPv6 next hop");
    }
  }
}

void check_cross_fields(Config& config) {
  std::set<VipKey> seen;
  size_t backends = 0;
  config.warnings.clear();
  for (size_t i = 0; i < config.vips.size(); ++i) {
    const VipConfig& vip = config.vips[i];
    check_vip(vip, index("vips", i));
    if (!seen.insert(vip.key).second) {
      fail(index("vips", i), "VIP " + vip.key.to_string() + " is defined twice");
    }
    // The outer source is of the backend's family. A VIP without backends needs the source of
    // its own family, because its first backends will most likely be of that family.
    bool needs_ipv4 = vip.backends.empty() && vip.key.address.is_v4();
    bool needs_ipv6 = vip.backends.empty() && vip.key.address.is_v6();
    for (const BackendConfig& backend : vip.backends) {
      needs_ipv4 = needs_ipv4 || backend.address.is_v4();
      needs_ipv6 = needs_ipv6 || backend.address.is_v6();
    }
    if (needs_ipv4 && !config.source_ipv4.is_set()) {
      fail("lb.ipv4", "missing: VIP " + vip.key.to_string() + " needs an IPv4 outer source address");
    }
    if (needs_ipv6 && !config.source_ipv6.is_set()) {
      fail("lb.ipv6", "missing: VIP " + vip.key.to_string() + " needs an IPv6 outer source address");
    }
    backends += vip.backends.size();
    const bool serves = std::any_of(vip.backends.begin(), vip.backends.end(),
                                    [](const BackendConfig& backend) { return backend.weight > 0; });
    if (!serves) {
      config.warnings.push_back(index("vips", i) + ": VIP " + vip.key.to_string() +
                                " has no backend with a weight above 0, so new flows to it are "
                                "dropped (counted as no_backend)");
    }
  }
  for (size_t i = 0; i < config.dpdk.ports.size(); ++i) {
    const DpdkPortConfig& port = config.dpdk.ports[i];
    if (port.mtu && port.egress_mtu && *port.egress_mtu > *port.mtu) {
      config.warnings.push_back(index("dataplane.dpdk.ports", i) + ".egress_mtu: " +
                                std::to_string(*port.egress_mtu) + " is above the port's mtu " +
                                std::to_string(*port.mtu) + ", so packets that the port cannot send pass "
                                "the too-big check");
    }
  }
  if (config.vips.size() > SLUICE_MAX_VIPS) {
    fail("vips", std::to_string(config.vips.size()) + " VIPs exceed the limit of " +
                     std::to_string(SLUICE_MAX_VIPS));
  }
  if (backends > SLUICE_MAX_BACKENDS) {
    fail("vips", std::to_string(backends) + " backends in all exceed the limit of " +
                     std::to_string(SLUICE_MAX_BACKENDS));
  }
  check_bgp(config);
}

Config parse_root(const YAML::Node& root) {
  check_keys(root, "", {"dataplane", "lb", "seed", "flow_table", "vips", "bgp"});
  Config config;
  if (!root["dataplane"]) fail("dataplane", "missing");
  check_keys(root["dataplane"], "dataplane", {"type", "dpdk", "xdp"});
  if (!root["dataplane"]["type"]) fail("dataplane.type", "missing (use dpdk or xdp)");
  config.dataplane = scalar(root["dataplane"]["type"], "dataplane.type");
  if (config.dataplane != "dpdk" && config.dataplane != "xdp") {
    fail("dataplane.type", "'" + config.dataplane + "' is not a data plane (use dpdk or xdp)");
  }
  if (!root["dataplane"][config.dataplane]) {
    fail("dataplane." + config.dataplane, "missing: dataplane.type selects it");
  }
  if (config.dataplane == "dpdk") {
    config.dpdk = parse_dpdk(root["dataplane"]["dpdk"], "dataplane.dpdk");
  } else {
    config.xdp = parse_xdp(root["dataplane"]["xdp"], "dataplane.xdp");
  }

  if (!root["lb"]) fail("lb", "missing");
  parse_lb(root["lb"], config);
  if (config.dataplane == "dpdk" && config.next_hop.ipv4.is_set() &&
      config.dpdk.exception_interface.empty()) {
    fail("dataplane.dpdk.exception", "missing: resolving lb.next_hop.ipv4 needs it");
  }
  if (root["seed"]) config.seed = static_cast<uint32_t>(unsigned_integer(root["seed"], "seed", 0, UINT32_MAX));
  if (root["flow_table"]) parse_flow_table(root["flow_table"], config);
  if (root["bgp"]) parse_bgp(root["bgp"], config);

  if (root["vips"]) {
    if (!root["vips"].IsSequence()) fail("vips", "expected a list of VIPs");
    for (size_t i = 0; i < root["vips"].size(); ++i) {
      config.vips.push_back(parse_vip(root["vips"][i], index("vips", i)));
    }
  }
  check_cross_fields(config);
  return config;
}

// Runs `parse` on the YAML (or JSON) text and turns every failure into an Error.
template <typename T, typename Parse>
Result<T> parse_text(std::string_view text, Parse parse) {
  try {
    const YAML::Node root = YAML::Load(std::string(text));
    return parse(root);
  } catch (const ConfigError& error) {
    return Error{error.message};
  } catch (const YAML::Exception& error) {
    return Error{"invalid YAML at line " + std::to_string(error.mark.line + 1) + ", column " +
                 std::to_string(error.mark.column + 1) + ": " + error.msg};
  }
}

}  // namespace

health::HealthCheckSpec VipConfig::check_for(const BackendConfig& backend) const {
  health::HealthCheckSpec spec = health_check.value_or(health::HealthCheckSpec{});
  const HealthCheckOverride& change = backend.health_check;
  if (change.port) spec.port = change.port;
  if (change.interval) spec.interval = *change.interval;
  if (change.timeout) spec.timeout = *change.timeout;
  if (change.rise) spec.rise = *change.rise;
  if (change.fall) spec.fall = *change.fall;
  return spec;
}

Result<Config> parse_config(std::string_view yaml_text) {
  return parse_text<Config>(yaml_text, parse_root);
}

Result<VipConfig> parse_vip_config(std::string_view text) {
  return parse_text<VipConfig>(text, [](const YAML::Node& node) {
    VipConfig vip = parse_vip(node, "vip");
    check_vip(vip, "vip");
    return vip;
  });
}

Result<BackendConfig> parse_backend_config(std::string_view text) {
  return parse_text<BackendConfig>(text, [](const YAML::Node& node) {
    return parse_backend(node, "backend");
  });
}

Status validate_config(Config& config) {
  try {
    check_cross_fields(config);
    return {};
  } catch (const ConfigError& error) {
    return Error{error.message};
  }
}

Result<VipKey> parse_vip_key(std::string_view text) {
  const std::string input(text);
  const size_t slash = input.rfind('/');
  const size_t colon = input.rfind(':', slash);
  const std::string usage = " (write ADDRESS:PORT/PROTOCOL, for example 203.0.113.10:80/tcp or "
                            "[2001:db8::10]:443/udp)";
  if (slash == std::string::npos || colon == std::string::npos || colon == 0) {
    return Error{"invalid VIP '" + input + "'" + usage};
  }
  std::string host = input.substr(0, colon);
  const bool bracketed = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (bracketed) host = host.substr(1, host.size() - 2);
  Result<IpAddress> address = IpAddress::parse(host);
  if (!address || (address->is_v6() && !bracketed)) {
    return Error{"invalid VIP '" + input + "': '" + host + "' is not an IP address" +
                 (address && !bracketed ? " in brackets" : "") + usage};
  }
  const std::string port_text = input.substr(colon + 1, slash - colon - 1);
  const std::string protocol_text = input.substr(slash + 1);
  VipKey key{*address, 0, 0};
  try {
    size_t used = 0;
    const unsigned long port = std::stoul(port_text, &used, 10);
    if (used != port_text.size() || port > 65535) throw std::out_of_range(port_text);
    key.port = static_cast<uint16_t>(port);
  } catch (const std::exception&) {
    return Error{"invalid VIP '" + input + "': '" + port_text + "' is not a port from 0 to 65535"};
  }
  if (protocol_text == "tcp") {
    key.protocol = kProtocolTcp;
  } else if (protocol_text == "udp") {
    key.protocol = kProtocolUdp;
  } else {
    return Error{"invalid VIP '" + input + "': '" + protocol_text + "' is not tcp or udp"};
  }
  return key;
}

Result<Config> load_config_file(const std::string& path) {
  std::ifstream file(path);
  if (!file) return Error{"cannot read config file " + path + ": " + std::strerror(errno)};
  std::stringstream text;
  text << file.rdbuf();
  Result<Config> config = parse_config(text.str());
  if (!config) return Error{path + ": " + config.error()};
  return config;
}

}  // namespace sluice::control
