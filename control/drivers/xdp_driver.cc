// The XDP data plane behind the DataplaneDriver interface.
#include <net/if.h>
#include <spdlog/spdlog.h>

#include <fstream>

#include "balancer_loader.h"
#include "grace_period.h"
#include "sluice/control/dataplane_driver.h"

namespace sluice::control {
namespace {

// Reads one line of /sys/class/net/IFACE/FILE.
Result<std::string> read_interface_attribute(const std::string& interface, const char* file) {
  std::ifstream input("/sys/class/net/" + interface + "/" + file);
  std::string value;
  if (!input || !std::getline(input, value)) {
    return Error{"interface " + interface + " not found (no /sys/class/net/" + interface + "/" +
                 file + ")"};
  }
  return value;
}

struct InterfaceInfo {
  std::string name;
  int ifindex = 0;
  MacAddress mac;
  uint32_t mtu = 1500;
};

Result<InterfaceInfo> describe_interface(const std::string& name) {
  InterfaceInfo info;
  info.name = name;
  info.ifindex = static_cast<int>(if_nametoindex(name.c_str()));
  if (info.ifindex == 0) return Error{"interface " + name + " not found"};
  auto mac = read_interface_attribute(name, "address");
  if (!mac) return Error{mac.error()};
  auto parsed = MacAddress::parse(*mac);
  if (!parsed) return Error{"interface " + name + ": " + parsed.error()};
  info.mac = *parsed;
  auto mtu = read_interface_attribute(name, "mtu");
  if (!mtu) return Error{mtu.error()};
  info.mtu = static_cast<uint32_t>(std::stoul(*mtu));
  return info;
}

// Returns whether a backend slot whose flow entries `before` accepts no longer accepts them
// in `after`: its backend was removed, went down or gave the slot to another backend.
bool stops_serving_flows(const Snapshot& before, const Snapshot& after) {
  for (size_t slot = 0; slot < before.backends.size(); ++slot) {
    const BackendSlot& backend = before.backends[slot];
    if (before.backend_accepts_flow(static_cast<uint32_t>(slot), backend.uid) &&
        !after.backend_accepts_flow(static_cast<uint32_t>(slot), backend.uid)) {
      return true;
    }
  }
  return false;
}

class XdpDriver final : public DataplaneDriver {
 public:
  XdpDriver(XdpConfig config, std::unique_ptr<bpf::Balancer> balancer,
            std::vector<InterfaceInfo> interfaces, std::vector<bpf::XdpEgress> egress,
            bpf::GracePeriod grace_period)
      : config_(std::move(config)),
        balancer_(std::move(balancer)),
        interfaces_(std::move(interfaces)),
        egress_(std::move(egress)),
        grace_period_(std::move(grace_period)) {}

  ~XdpDriver() override { stop(); }

  std::string_view name() const override { return "xdp"; }

  Status publish(std::shared_ptr<const Snapshot> snapshot) override {
    // NOTE: program() writes the maps one by one. If it fails part way, the maps contain a mix of
    // the running snapshot and this one until the next publish rewrites them. The control
    // plane then keeps this snapshot's uids out of later builds (SnapshotBuilder::reserve_uids).
    if (Status status = balancer_->program(*snapshot, egress_); !status) return status;

    // The API acknowledges a change when publish() returns. A program on another CPU that
    // read a backend slot before program() rewrote it may still be running and about to send
    // a packet to a backend that has just been removed. Waiting for the running programs to
    // return means that no packet reaches it after the acknowledgement. Only changes that
    // invalidate flow entries wait, because each wait takes an RCU grace period.
    if (published_ && stops_serving_flows(*published_, *snapshot)) {
      if (Status status = grace_period_.wait(); !status) {
        spdlog::error("xdp: generation {} is programmed, but {}; packets of programs that "
                      "started earlier may still reach its removed backends",
                      snapshot->generation, status.error());
      }
    }
    published_ = std::move(snapshot);
    return {};
  }

  Status start() override {
    for (const InterfaceInfo& interface : interfaces_) {
      const bpf::AttachMode mode = config_.generic ? bpf::AttachMode::kGeneric : bpf::AttachMode::kNative;
      Status status = balancer_->attach(interface.name, mode);
      if (!status && mode == bpf::AttachMode::kNative && config_.generic_fallback) {
        spdlog::warn("xdp: native mode failed on {} ({}); using generic mode, as "
                     "generic_fallback asks", interface.name, status.error());
        status = balancer_->attach(interface.name, bpf::AttachMode::kGeneric);
      }
      if (!status) {
        balancer_->detach_all();
        return status;
      }
      spdlog::info("xdp: attached to {} (ifindex {}, MAC {})", interface.name, interface.ifindex,
                   interface.mac.to_string());
    }
    attached_ = true;
    return {};
  }

  void stop() override {
    if (!attached_) return;
    balancer_->detach_all();
    attached_ = false;
    spdlog::info("xdp: detached");
  }

  PipelineTotals totals() const override { return balancer_->totals(); }

  std::string neighbor_interface() const override {
    return config_.egress_interface.empty() ? interfaces_.front().name : config_.egress_interface;
  }

 private:
  XdpConfig config_;
  std::unique_ptr<bpf::Balancer> balancer_;
  std::vector<InterfaceInfo> interfaces_;
  std::vector<bpf::XdpEgress> egress_;
  bpf::GracePeriod grace_period_;
  std::shared_ptr<const Snapshot> published_;  // the snapshot in the maps
  bool attached_ = false;
};

}  // namespace

Result<std::unique_ptr<DataplaneDriver>> create_xdp_driver(const Config& config) {
  std::vector<InterfaceInfo> interfaces;
  for (const std::string& name : config.xdp.interfaces) {
    auto info = describe_interface(name);
    if (!info) return Error{"dataplane.xdp.interfaces: " + info.error()};
    interfaces.push_back(*info);
  }
  std::optional<InterfaceInfo> egress_interface;
  if (!config.xdp.egress_interface.empty()) {
    auto info = describe_interface(config.xdp.egress_interface);
    if (!info) return Error{"dataplane.xdp.egress_interface: " + info.error()};
    egress_interface = *info;
  }

  // Forwarded packets leave through the egress interface if there is one, else back out of
  // the interface they came in on. They carry that interface's MAC as source.
  std::vector<bpf::XdpEgress> egress;
  for (const InterfaceInfo& interface : interfaces) {
    const InterfaceInfo& out = egress_interface ? *egress_interface : interface;
    egress.push_back({interface.ifindex, out.mac, config.xdp.egress_mtu.value_or(out.mtu),
                      egress_interface ? egress_interface->ifindex : 0});
  }

  auto balancer = bpf::Balancer::load(config.flow_table_size);
  if (!balancer) return Error{balancer.error()};
  auto grace_period = bpf::GracePeriod::create();
  if (!grace_period) return Error{grace_period.error()};
  return std::unique_ptr<DataplaneDriver>(new XdpDriver(config.xdp, std::move(*balancer),
                                                        std::move(interfaces), std::move(egress),
                                                        std::move(*grace_period)));
}

}  // namespace sluice::control
