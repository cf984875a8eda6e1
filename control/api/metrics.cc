#include "metrics.h"

#include <nlohmann/json.hpp>
#include <sstream>

namespace sluice::control {
namespace {

// Escapes a label value: backslash, double quote and line feed.
std::string label(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

class Writer {
 public:
  void family(const char* name, const char* type, const char* help) {
    out_ << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  }
  template <typename Value>
  void sample(const char* name, const std::string& labels, Value value) {
    out_ << name;
    if (!labels.empty()) out_ << "{" << labels << "}";
    out_ << " " << value << "\n";
  }
  std::string text() const { return out_.str(); }

 private:
  std::ostringstream out_;
};

std::string vip_label(const std::string& vip) { return "vip=\"" + label(vip) + "\""; }

std::string backend_labels(const std::string& vip, const std::string& backend) {
  return vip_label(vip) + ",backend=\"" + label(backend) + "\"";
}

}  // namespace

std::string render_metrics(const ControlPlane& control, const health::HealthChecker* health) {
  const nlohmann::json stats = control.stats();
  Writer out;

  out.family("sluice_table_generation", "gauge", "Generation of the published snapshot.");
  out.sample("sluice_table_generation", "", control.generation());

  const auto totals = [&](const char* name, const char* field, const char* help) {
    out.family(name, "counter", help);
    out.sample(name, "", stats.value(field, uint64_t{0}));
  };
  totals("sluice_received_packets_total", "received", "Packets the data plane received.");
  totals("sluice_forwarded_packets_total", "forwarded", "Packets encapsulated and sent to a backend.");
  totals("sluice_to_kernel_packets_total", "to_kernel", "Packets not for a VIP, handed to the kernel.");
  totals("sluice_non_syn_misses_total", "non_syn_misses",
         "TCP packets other than SYN without a flow entry, served from the Maglev table.");
  totals("sluice_fragments_total", "fragments", "IP fragments for a VIP, hashed without ports.");
  totals("sluice_icmp_errors_total", "icmp_errors", "ICMP errors about a VIP flow, sent to its backend.");
  totals("sluice_icmp_echo_replies_total", "icmp_echo_replies", "Echo replies sent for requests to a VIP.");
  totals("sluice_icmp_too_big_replies_total", "icmp_too_big_replies",
         "ICMP fragmentation needed and ICMPv6 packet too big sent for packets too big to encapsulate.");
  totals("sluice_new_flows_limited_total", "new_flows_limited",
         "New flows forwarded without a flow entry because the new-flow limit was reached.");

  out.family("sluice_drops_total", "counter", "Dropped packets by reason.");
  const nlohmann::json drops = stats.value("drops", nlohmann::json::object());
  for (const auto& [reason, count] : drops.items()) {
    out.sample("sluice_drops_total", "reason=\"" + label(reason) + "\"", count.get<uint64_t>());
  }

  const nlohmann::json flow_table = stats.value("flow_table", nlohmann::json::object());
  out.family("sluice_flow_table_entries", "gauge", "Flow table entries in use, all workers.");
  out.sample("sluice_flow_table_entries", "", flow_table.value("entries", uint64_t{0}));
  out.family("sluice_flow_table_capacity", "gauge", "Flow table entries, all workers.");
  out.sample("sluice_flow_table_capacity", "", flow_table.value("capacity", uint64_t{0}));
  out.family("sluice_flow_table_evictions_total", "counter",
             "Live flow entries overwritten because their bucket was full.");
  out.sample("sluice_flow_table_evictions_total", "", flow_table.value("evictions", uint64_t{0}));

  out.family("sluice_vip_packets_total", "counter", "Packets received for a VIP.");
  out.family("sluice_vip_bytes_total", "counter", "Bytes received for a VIP.");
  out.family("sluice_backend_packets_total", "counter", "Packets sent to a backend.");
  out.family("sluice_backend_bytes_total", "counter", "Bytes sent to a backend, after encapsulation.");
  out.family("sluice_backend_new_flows_total", "counter", "New flows sent to a backend.");
  for (const nlohmann::json& vip : stats.value("vips", nlohmann::json::array())) {
    const std::string name = vip.value("vip", "");
    out.sample("sluice_vip_packets_total", vip_label(name), vip.value("packets", uint64_t{0}));
    out.sample("sluice_vip_bytes_total", vip_label(name), vip.value("bytes", uint64_t{0}));
    for (const nlohmann::json& backend : vip.value("backends", nlohmann::json::array())) {
      const std::string labels = backend_labels(name, backend.value("address", ""));
      out.sample("sluice_backend_packets_total", labels, backend.value("packets", uint64_t{0}));
      out.sample("sluice_backend_bytes_total", labels, backend.value("bytes", uint64_t{0}));
      out.sample("sluice_backend_new_flows_total", labels, backend.value("new_flows", uint64_t{0}));
    }
  }

  out.family("sluice_backend_slots", "gauge", "Maglev table slots of a backend.");
  out.family("sluice_backend_serving", "gauge",
             "1 if the backend gets new flows (live), 0 if drained or down.");
  out.family("sluice_backend_weight", "gauge", "Configured weight of a backend.");
  for (const VipStatus& vip : control.vips()) {
    for (const BackendStatus& backend : vip.backends) {
      const std::string labels = backend_labels(vip.key.to_string(), backend.address.to_string());
      out.sample("sluice_backend_slots", labels, backend.slots);
      out.sample("sluice_backend_serving", labels, backend.state == "live" ? 1 : 0);
      out.sample("sluice_backend_weight", labels, backend.weight);
    }
  }

  out.family("sluice_backend_health", "gauge",
             "Health check state of a backend: 1 up, 0 down or not checked yet.");
  if (health != nullptr) {
    for (const health::BackendStatus& status : health->snapshot()) {
      out.sample("sluice_backend_health",
                 backend_labels(status.vip, status.backend.to_string()) + ",check=\"" +
                     std::string(health::to_string(status.kind)) + "\"",
                 status.health == health::Health::kUp ? 1 : 0);
    }
  }

  const nlohmann::json alerts = stats.value("alerts", nlohmann::json::object());
  out.family("sluice_all_backends_down_alerts_total", "counter",
             "Times a VIP lost its last serving backend to failed health checks.");
  out.sample("sluice_all_backends_down_alerts_total", "", alerts.value("all_backends_down", uint64_t{0}));
  out.family("sluice_vips_with_all_backends_down", "gauge", "VIPs whose backends are all down now.");
  out.sample("sluice_vips_with_all_backends_down", "", alerts.value("vips_with_all_backends_down", uint64_t{0}));
  return out.text();
}

}  // namespace sluice::control
