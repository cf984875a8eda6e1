#include "config_yaml.h"

#include <yaml-cpp/yaml.h>

#include "sluice/packet.h"

namespace sluice::control {
namespace {

void emit_dataplane(YAML::Emitter& out, const Config& config) {
  out << YAML::Key << "dataplane" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "type" << YAML::Value << config.dataplane;
  if (config.dataplane == "dpdk") {
    const DpdkConfig& dpdk = config.dpdk;
    out << YAML::Key << "dpdk" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "main_lcore" << YAML::Value << dpdk.main_lcore;
    out << YAML::Key << "worker_lcores" << YAML::Value << YAML::Flow << dpdk.worker_lcores;
    if (!dpdk.worker_cpus.empty()) {
      out << YAML::Key << "worker_cpus" << YAML::Value << YAML::Flow << dpdk.worker_cpus;
    }
    out << YAML::Key << "eal_args" << YAML::Value << YAML::Flow << dpdk.eal_args;
    out << YAML::Key << "ports" << YAML::Value << YAML::BeginSeq;
    for (const DpdkPortConfig& port : dpdk.ports) {
      out << YAML::BeginMap << YAML::Key << "device" << YAML::Value << port.device;
      if (port.mtu) out << YAML::Key << "mtu" << YAML::Value << *port.mtu;
      if (port.egress_mtu) out << YAML::Key << "egress_mtu" << YAML::Value << *port.egress_mtu;
      out << YAML::EndMap;
    }
    out << YAML::EndSeq;
    if (!dpdk.exception_interface.empty()) {
      out << YAML::Key << "exception" << YAML::Value << YAML::BeginMap << YAML::Key
          << "interface" << YAML::Value << dpdk.exception_interface << YAML::EndMap;
    }
    out << YAML::Key << "mbufs_per_worker" << YAML::Value << dpdk.mbufs_per_worker;
    out << YAML::Key << "rx_descriptors" << YAML::Value << dpdk.rx_descriptors;
    out << YAML::Key << "tx_descriptors" << YAML::Value << dpdk.tx_descriptors;
    out << YAML::EndMap;
  } else {
    const XdpConfig& xdp = config.xdp;
    out << YAML::Key << "xdp" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "interfaces" << YAML::Value << YAML::Flow << xdp.interfaces;
    out << YAML::Key << "mode" << YAML::Value << (xdp.generic ? "generic" : "native");
    out << YAML::Key << "generic_fallback" << YAML::Value << xdp.generic_fallback;
    if (!xdp.egress_interface.empty()) {
      out << YAML::Key << "egress_interface" << YAML::Value << xdp.egress_interface;
    }
    if (xdp.egress_mtu) out << YAML::Key << "egress_mtu" << YAML::Value << *xdp.egress_mtu;
    out << YAML::EndMap;
  }
  out << YAML::EndMap;
}

void emit_lb(YAML::Emitter& out, const Config& config) {
  out << YAML::Key << "lb" << YAML::Value << YAML::BeginMap;
  if (config.source_ipv4.is_set()) out << YAML::Key << "ipv4" << YAML::Value << config.source_ipv4.to_string();
  if (config.source_ipv6.is_set()) out << YAML::Key << "ipv6" << YAML::Value << config.source_ipv6.to_string();
  out << YAML::Key << "gue_port" << YAML::Value << config.gue_port;
  out << YAML::Key << "next_hop" << YAML::Value << YAML::BeginMap;
  if (config.next_hop.mac) out << YAML::Key << "mac" << YAML::Value << config.next_hop.mac->to_string();
  if (config.next_hop.ipv4.is_set()) {
    out << YAML::Key << "ipv4" << YAML::Value << config.next_hop.ipv4.to_string();
  }
  out << YAML::EndMap << YAML::EndMap;
}

void emit_health_check(YAML::Emitter& out, const health::HealthCheckSpec& spec) {
  out << YAML::Key << "health_check" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "type" << YAML::Value << std::string(health::to_string(spec.kind));
  if (spec.port) out << YAML::Key << "port" << YAML::Value << *spec.port;
  if (spec.kind == health::CheckKind::kHttp) {
    out << YAML::Key << "path" << YAML::Value << spec.http.path;
    std::vector<int> statuses(spec.http.expected_statuses.begin(), spec.http.expected_statuses.end());
    out << YAML::Key << "expected_status" << YAML::Value << YAML::Flow << statuses;
    if (!spec.http.host.empty()) out << YAML::Key << "host" << YAML::Value << spec.http.host;
  }
  if (spec.kind == health::CheckKind::kUdp) {
    out << YAML::Key << "payload" << YAML::Value << spec.udp.payload;
    if (!spec.udp.expected_reply.empty()) {
      out << YAML::Key << "expected_reply" << YAML::Value << spec.udp.expected_reply;
    }
  }
  out << YAML::Key << "interval_ms" << YAML::Value << spec.interval.count();
  out << YAML::Key << "timeout_ms" << YAML::Value << spec.timeout.count();
  out << YAML::Key << "rise" << YAML::Value << spec.rise;
  out << YAML::Key << "fall" << YAML::Value << spec.fall;
  out << YAML::EndMap;
}

void emit_bgp(YAML::Emitter& out, const BgpConfig& bgp) {
  out << YAML::Key << "bgp" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "local_as" << YAML::Value << bgp.local_as;
  out << YAML::Key << "router_id" << YAML::Value << bgp.router_id.to_string();
  out << YAML::Key << "next_hop" << YAML::Value << YAML::BeginMap;
  if (bgp.next_hop_ipv4.is_set()) out << YAML::Key << "ipv4" << YAML::Value << bgp.next_hop_ipv4.to_string();
  if (bgp.next_hop_ipv6.is_set()) out << YAML::Key << "ipv6" << YAML::Value << bgp.next_hop_ipv6.to_string();
  out << YAML::EndMap;
  out << YAML::Key << "hold_time_s" << YAML::Value << bgp.hold_time_s;
  out << YAML::Key << "drain_time_s" << YAML::Value << bgp.drain_time_s;
  out << YAML::Key << "settle_time_s" << YAML::Value << bgp.settle_time_s;
  out << YAML::Key << "peers" << YAML::Value << YAML::BeginSeq;
  for (const BgpPeerConfig& peer : bgp.peers) {
    out << YAML::Flow << YAML::BeginMap << YAML::Key << "address" << YAML::Value
        << peer.address.to_string() << YAML::Key << "as" << YAML::Value << peer.as;
    if (peer.local_address) out << YAML::Key << "local_address" << YAML::Value << peer.local_address->to_string();
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::Key << "bird" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "binary" << YAML::Value << bgp.bird.binary;
  out << YAML::Key << "config_file" << YAML::Value << bgp.bird.config_file;
  out << YAML::Key << "control_socket" << YAML::Value << bgp.bird.control_socket;
  if (!bgp.bird.pid_file.empty()) out << YAML::Key << "pid_file" << YAML::Value << bgp.bird.pid_file;
  if (!bgp.bird.log_file.empty()) out << YAML::Key << "log_file" << YAML::Value << bgp.bird.log_file;
  out << YAML::EndMap << YAML::EndMap;
}

}  // namespace

std::string config_to_yaml(const Config& config) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  emit_dataplane(out, config);
  emit_lb(out, config);
  out << YAML::Key << "seed" << YAML::Value << config.seed;
  out << YAML::Key << "flow_table" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "size" << YAML::Value << config.flow_table_size;
  out << YAML::Key << "new_flow_limit_per_s" << YAML::Value << config.new_flow_limit;
  out << YAML::Key << "tcp_timeout_s" << YAML::Value << config.timeouts.tcp_ns / 1'000'000'000;
  out << YAML::Key << "tcp_closing_timeout_s" << YAML::Value
      << config.timeouts.tcp_closing_ns / 1'000'000'000;
  out << YAML::Key << "udp_timeout_s" << YAML::Value << config.timeouts.udp_ns / 1'000'000'000;
  out << YAML::EndMap;

  out << YAML::Key << "vips" << YAML::Value << YAML::BeginSeq;
  for (const VipConfig& vip : config.vips) {
    out << YAML::BeginMap;
    out << YAML::Key << "address" << YAML::Value << vip.key.address.to_string();
    out << YAML::Key << "port" << YAML::Value << vip.key.port;
    out << YAML::Key << "protocol" << YAML::Value << (vip.key.protocol == kProtocolTcp ? "tcp" : "udp");
    out << YAML::Key << "table_size" << YAML::Value << vip.table_size;
    out << YAML::Key << "encapsulation" << YAML::Value
        << (vip.encapsulation == SLUICE_ENCAP_GUE ? "gue" : "ipip");
    out << YAML::Key << "persistence" << YAML::Value
        << (vip.persistence == SLUICE_PERSISTENCE_CLIENT ? "client" : "connection");
    if (vip.health_check) emit_health_check(out, *vip.health_check);
    out << YAML::Key << "all_down" << YAML::Value
        << (vip.all_down == AllDownPolicy::kDrop ? "drop" : "forward_to_all");
    out << YAML::Key << "backends" << YAML::Value << YAML::BeginSeq;
    for (const BackendConfig& backend : vip.backends) {
      out << YAML::Flow << YAML::BeginMap << YAML::Key << "address" << YAML::Value
          << backend.address.to_string() << YAML::Key << "weight" << YAML::Value
          << backend.weight;
      const HealthCheckOverride& change = backend.health_check;
      if (change != HealthCheckOverride{}) {
        out << YAML::Key << "health_check" << YAML::Value << YAML::BeginMap;
        if (change.port) out << YAML::Key << "port" << YAML::Value << *change.port;
        if (change.interval) out << YAML::Key << "interval_ms" << YAML::Value << change.interval->count();
        if (change.timeout) out << YAML::Key << "timeout_ms" << YAML::Value << change.timeout->count();
        if (change.rise) out << YAML::Key << "rise" << YAML::Value << *change.rise;
        if (change.fall) out << YAML::Key << "fall" << YAML::Value << *change.fall;
        out << YAML::EndMap;
      }
      out << YAML::EndMap;
    }
    out << YAML::EndSeq << YAML::EndMap;
  }
  out << YAML::EndSeq;
  if (config.bgp.enabled) emit_bgp(out, config.bgp);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace sluice::control
