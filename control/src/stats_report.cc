#include "sluice/control/stats_report.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace sluice::control {

nlohmann::json stats_report(const Snapshot& snapshot, const PipelineTotals& totals) {
  nlohmann::json vips = nlohmann::json::array();
  for (const Vip& vip : snapshot.vips) {
    nlohmann::json backends = nlohmann::json::array();
    for (size_t slot = 0; slot < snapshot.backends.size(); ++slot) {
      const BackendSlot& backend = snapshot.backends[slot];
      if (backend.state == BackendState::kRemoved || backend.vip_slot != vip.slot) continue;
      const PipelineTotals::Traffic& traffic = totals.backends[slot];
      backends.push_back({{"address", backend.address.to_string()},
                          {"weight", backend.weight},
                          {"packets", traffic.packets},
                          {"bytes", traffic.bytes},
                          {"new_flows", traffic.new_flows}});
    }
    const PipelineTotals::Traffic& traffic = totals.vips[vip.slot];
    vips.push_back({{"vip", vip.key.to_string()},
                    {"packets", traffic.packets},
                    {"bytes", traffic.bytes},
                    {"backends", backends}});
  }

  nlohmann::json drops = nlohmann::json::object();
  for (int i = 1; i < kDropReasonCount; ++i) {
    drops[std::string(drop_reason_name(static_cast<DropReason>(i)))] = totals.drops[i];
  }
  return {{"generation", snapshot.generation},
          {"vips", vips},
          {"drops", drops},
          {"received", totals.received},
          {"forwarded", totals.forwarded},
          {"to_kernel", totals.to_kernel},
          {"non_syn_misses", totals.non_syn_misses},
          {"fragments", totals.fragments},
          {"icmp_errors", totals.icmp_errors},
          {"icmp_echo_replies", totals.icmp_echo_replies},
          {"icmp_too_big_replies", totals.icmp_too_big_replies},
          {"new_flows_limited", totals.new_flows_limited},
          {"worker",
           {{"busy_cycles", totals.busy_cycles},
            {"cycles_per_packet", totals.received == 0 ? 0.0
                                  : static_cast<double>(totals.busy_cycles) / totals.received}}},
          {"flow_table",
           {{"entries", totals.flow_entries},
            {"capacity", totals.flow_capacity},
            {"evictions", totals.flow_evictions}}}};
}

Status write_stats_file(const std::string& path, const nlohmann::json& report) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream file(temporary, std::ios::trunc);
    if (!file) return Error{"cannot write " + temporary + ": " + std::strerror(errno)};
    file << report.dump(2) << "\n";
    if (!file) return Error{"cannot write " + temporary + ": " + std::strerror(errno)};
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    return Error{"cannot rename " + temporary + " to " + path + ": " + std::strerror(errno)};
  }
  return {};
}

}  // namespace sluice::control
