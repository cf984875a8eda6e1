#include "balancer_loader.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <span>
#include <utility>

#include "balancer_abi.h"
#include "sluice/maglev.h"
#include "sluice_balancer.skel.h"

namespace sluice::bpf {
namespace {

static_assert(SLUICE_LB_NO_BACKEND == kMaglevEmpty);
static_assert(SLUICE_LB_FLOW_CLOSING == kFlowClosing);
static_assert(SLUICE_LB_BACKEND_REMOVED == static_cast<int>(BackendState::kRemoved));
static_assert(SLUICE_LB_BACKEND_LIVE == static_cast<int>(BackendState::kLive));
static_assert(SLUICE_LB_BACKEND_DRAINED == static_cast<int>(BackendState::kDrained));
static_assert(SLUICE_LB_BACKEND_DOWN == static_cast<int>(BackendState::kDown));

// Per-CPU map values are copied out in 8-byte-aligned slots. With these sizes, a slot is the
// struct itself.
static_assert(sizeof(sluice_lb_counters) % 8 == 0);
static_assert(sizeof(sluice_lb_vip_counters) % 8 == 0);
static_assert(sizeof(sluice_lb_backend_counters) % 8 == 0);

// Entries per batch syscall when a map is read or written in bulk.
constexpr uint32_t kBatchEntries = 4096;

// The tail of libbpf's log that an error keeps. A verifier rejection prints the whole
// verifier log, and its last lines name the rejected instruction.
constexpr size_t kMaxLogBytes = 16384;

// Records libbpf's warnings while it lives, for error messages.
// NOTE: libbpf has one process-wide print callback, so calls into this loader from two
// threads at once may record each other's lines.
class LibbpfLog {
 public:
  LibbpfLog() : previous_(libbpf_set_print(&LibbpfLog::record)) { active_ = &text_; }
  ~LibbpfLog() {
    libbpf_set_print(previous_);
    active_ = nullptr;
  }
  LibbpfLog(const LibbpfLog&) = delete;
  LibbpfLog& operator=(const LibbpfLog&) = delete;

  // Returns "\nlibbpf log:\n<lines>" or an empty string when libbpf printed nothing.
  std::string suffix() const { return text_.empty() ? "" : "\nlibbpf log:\n" + text_; }

 private:
  static int record(libbpf_print_level level, const char* format, va_list arguments) {
    if (level != LIBBPF_WARN || active_ == nullptr) return 0;
    va_list measuring;
    va_copy(measuring, arguments);
    const int length = std::vsnprintf(nullptr, 0, format, measuring);
    va_end(measuring);
    if (length <= 0) return length;
    std::string line(static_cast<size_t>(length) + 1, '\0');
    std::vsnprintf(line.data(), line.size(), format, arguments);
    line.pop_back();
    active_->append(line);
    if (active_->size() > kMaxLogBytes) active_->erase(0, active_->size() - kMaxLogBytes);
    return length;
  }

  static thread_local std::string* active_;
  std::string text_;
  libbpf_print_fn_t previous_;
};

thread_local std::string* LibbpfLog::active_ = nullptr;

// Builds "<action> failed: <reason>" from a positive errno value.
Error failure(const std::string& action, int error, const std::string& log_suffix = {}) {
  std::string message = action + " failed: " + std::strerror(error);
  if (error == EPERM) {
    message += " (loading BPF programs and writing their maps needs root: CAP_BPF and "
               "CAP_NET_ADMIN)";
  }
  return Error{message + log_suffix};
}

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Writes values[i] to key first + i of an array map. Returns 0 or a negative errno value.
template <typename T>
int write_array(int fd, uint32_t first, std::span<const T> values) {
  std::vector<uint32_t> keys;
  for (size_t done = 0; done < values.size();) {
    uint32_t count = static_cast<uint32_t>(std::min<size_t>(kBatchEntries, values.size() - done));
    keys.resize(count);
    for (uint32_t i = 0; i < count; ++i) keys[i] = first + static_cast<uint32_t>(done) + i;
    if (int err = bpf_map_update_batch(fd, keys.data(), values.data() + done, &count, nullptr);
        err < 0) {
      return err;
    }
    done += count;
  }
  return 0;
}

// Reads the first `entries` entries of an array map. `copies` is 1 for a plain array and the number of
// possible CPUs for a per-CPU array, whose entry i contains its CPUs' values at
// [i * copies, (i + 1) * copies). Returns 0 or a negative errno value.
template <typename T>
int read_array(int fd, uint32_t entries, uint32_t copies, std::vector<T>& values) {
  values.assign(static_cast<size_t>(entries) * copies, T{});
  std::vector<uint32_t> keys(kBatchEntries);
  uint32_t next = 0;
  uint32_t done = 0;
  while (done < entries) {
    uint32_t count = std::min(kBatchEntries, entries - done);
    const int err = bpf_map_lookup_batch(fd, done == 0 ? nullptr : &next, &next, keys.data(),
                                         values.data() + static_cast<size_t>(done) * copies,
                                         &count, nullptr);
    if (err < 0 && err != -ENOENT) return err;
    done += count;
    if (err == -ENOENT || count == 0) break;
  }
  return 0;
}

std::array<uint8_t, sizeof(sluice_lb_vip_key)> key_bytes(const sluice_lb_vip_key& key) {
  std::array<uint8_t, sizeof(sluice_lb_vip_key)> bytes;
  std::memcpy(bytes.data(), &key, sizeof(key));
  return bytes;
}

sluice_lb_vip_key vip_key(const VipKey& key, uint16_t port, uint8_t kind) {
  sluice_lb_vip_key out;
  std::memset(&out, 0, sizeof(out));
  std::memcpy(out.address, key.address.bytes.data(), sizeof(out.address));
  out.port = htons(port);
  out.protocol = key.protocol;
  out.family = key.address.family;
  out.kind = kind;
  return out;
}

// Checks what the maps cannot hold, before anything is written.
Status validate(const Snapshot& snapshot, const std::vector<XdpEgress>& egress,
                uint32_t egress_capacity) {
  if (snapshot.backends.size() > SLUICE_MAX_BACKENDS) {
    return Error{"snapshot has " + std::to_string(snapshot.backends.size()) +
                 " backend slots, more than the maximum " + std::to_string(SLUICE_MAX_BACKENDS)};
  }
  std::set<uint32_t> slots;
  for (const Vip& vip : snapshot.vips) {
    const std::string name = "vip " + vip.key.to_string();
    if (vip.slot >= SLUICE_MAX_VIPS) {
      return Error{name + ": slot " + std::to_string(vip.slot) + " is out of range (0 to " +
                   std::to_string(SLUICE_MAX_VIPS - 1) + ")"};
    }
    if (!slots.insert(vip.slot).second) {
      return Error{name + ": slot " + std::to_string(vip.slot) + " is used by another VIP"};
    }
    if (!vip.key.address.is_set()) return Error{name + ": the address is not set"};
    if (vip.maglev.size() > SLUICE_MAGLEV_MAX_SIZE) {
      return Error{name + ": Maglev table of " + std::to_string(vip.maglev.size()) +
                   " entries is larger than the maximum " +
                   std::to_string(SLUICE_MAGLEV_MAX_SIZE)};
    }
    for (uint32_t backend : vip.maglev) {
      if (backend != kMaglevEmpty && backend >= snapshot.backends.size()) {
        return Error{name + ": the Maglev table names backend slot " + std::to_string(backend) +
                     ", but the snapshot has " + std::to_string(snapshot.backends.size()) +
                     " backend slots"};
      }
    }
  }
  if (egress.size() > egress_capacity) {
    return Error{std::to_string(egress.size()) + " egress entries are more than the maximum " +
                 std::to_string(egress_capacity)};
  }
  for (const XdpEgress& entry : egress) {
    if (entry.ingress_ifindex <= 0 || entry.redirect_ifindex < 0) {
      return Error{"egress entry for ifindex " + std::to_string(entry.ingress_ifindex) +
                   ": invalid ifindex (ingress must be positive, redirect 0 or positive)"};
    }
  }
  return {};
}

sluice_lb_options make_options(const Snapshot& snapshot) {
  sluice_lb_options options;
  std::memset(&options, 0, sizeof(options));
  options.tcp_timeout_ns = snapshot.timeouts.tcp_ns;
  options.tcp_closing_timeout_ns = snapshot.timeouts.tcp_closing_ns;
  options.udp_timeout_ns = snapshot.timeouts.udp_ns;
  options.seed = snapshot.seed;
  options.new_flow_limit = snapshot.new_flow_limit;
  options.gue_port = htons(snapshot.gue_port);
  // The family is copied as it is, so a source of the wrong family fails encapsulation as
  // unsupported_encapsulation, as encap.cc does.
  std::memcpy(&options.source_ipv4, snapshot.source_ipv4.bytes.data(), 4);
  options.source_ipv4_family = snapshot.source_ipv4.family;
  std::memcpy(options.source_ipv6, snapshot.source_ipv6.bytes.data(), 16);
  options.source_ipv6_family = snapshot.source_ipv6.family;
  std::memcpy(options.next_hop_mac, snapshot.next_hop_mac.bytes.data(), 6);
  return options;
}

sluice_lb_backend make_backend(const BackendSlot& slot) {
  sluice_lb_backend backend;
  std::memset(&backend, 0, sizeof(backend));
  std::memcpy(backend.address, slot.address.bytes.data(), sizeof(backend.address));
  backend.uid = slot.uid;
  backend.family = slot.address.family;
  backend.state = static_cast<uint8_t>(slot.state);
  return backend;
}

// The VIP map's entries for a snapshot. An EXACT key that two VIPs share keeps the first, as
// Snapshot::index_vips does. The FRAGMENT entry of (address, protocol) names the VIP with the
// lowest port, which is the port-0 VIP if there is one.
std::map<std::array<uint8_t, sizeof(sluice_lb_vip_key)>, std::pair<sluice_lb_vip_key, const Vip*>>
vip_entries(const Snapshot& snapshot) {
  std::map<std::array<uint8_t, sizeof(sluice_lb_vip_key)>, std::pair<sluice_lb_vip_key, const Vip*>>
      entries;
  for (const Vip& vip : snapshot.vips) {
    const sluice_lb_vip_key exact = vip_key(vip.key, vip.key.port, SLUICE_LB_VIP_EXACT);
    entries.try_emplace(key_bytes(exact), exact, &vip);

    const sluice_lb_vip_key fragment = vip_key(vip.key, 0, SLUICE_LB_VIP_FRAGMENT);
    auto [position, inserted] = entries.try_emplace(key_bytes(fragment), fragment, &vip);
    if (!inserted && vip.key.port < position->second.second->key.port) {
      position->second.second = &vip;
    }

    const sluice_lb_vip_key address = vip_key(VipKey{vip.key.address, 0, 0}, 0, SLUICE_LB_VIP_ADDRESS);
    entries.try_emplace(key_bytes(address), address, &vip);
  }
  return entries;
}

struct SkeletonDeleter {
  void operator()(sluice_balancer* skeleton) const { sluice_balancer__destroy(skeleton); }
};

struct Attachment {
  std::string interface;
  unsigned ifindex = 0;
  uint32_t mode_flags = 0;  // XDP_FLAGS_DRV_MODE or XDP_FLAGS_SKB_MODE
};

}  // namespace

struct Balancer::State {
  std::unique_ptr<sluice_balancer, SkeletonDeleter> skeleton;
  uint32_t flow_capacity = 0;  // max_entries of the flow table, as the kernel set it
  uint32_t possible_cpus = 0;
  std::vector<Attachment> attachments;
  std::map<uint32_t, std::vector<uint32_t>> tables;  // VIP slot: the Maglev table installed
  uint32_t backend_slots = 0;                        // slots written by the last program()
  uint32_t backend_slots_ever = 0;  // maximum of backend_slots so far, the slots totals() reads

  int map_fd(bpf_map* map) const { return bpf_map__fd(map); }
  Status install_table(uint32_t vip_slot, const std::vector<uint32_t>& table);
  Status program_vips(const Snapshot& snapshot);
  Status program_egress(const std::vector<XdpEgress>& egress);
};

Balancer::Balancer(std::unique_ptr<State> state) : state_(std::move(state)) {}

Balancer::~Balancer() { detach_all(); }

Result<std::unique_ptr<Balancer>> Balancer::load(uint32_t flow_table_size) {
  if (flow_table_size == 0) {
    return Error{"flow table size 0 is invalid: use at least one entry per CPU"};
  }
  auto state = std::make_unique<State>();
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return failure("counting the possible CPUs", -cpus);
  state->possible_cpus = static_cast<uint32_t>(cpus);

  LibbpfLog log;
  state->skeleton.reset(sluice_balancer__open());
  if (!state->skeleton) {
    return failure("opening the embedded XDP balancer object", errno, log.suffix());
  }
  bpf_map* flows = state->skeleton->maps.sl_lb_flows;
  if (int err = bpf_map__set_max_entries(flows, flow_table_size); err < 0) {
    return failure("setting the flow table size to " + std::to_string(flow_table_size), -err);
  }
  if (int err = sluice_balancer__load(state->skeleton.get()); err < 0) {
    // The verifier rejects a program with EACCES, whose text reads like a privilege problem.
    const std::string hint =
        err == -EACCES ? " (the verifier rejected the program, and the end of its log names the "
                         "rejected instruction)"
                       : "";
    return Error{failure("loading the XDP balancer into the kernel", -err).message + hint +
                 log.suffix()};
  }

  // The kernel rounds the size of a per-CPU LRU to a multiple of the CPU count.
  bpf_map_info info{};
  uint32_t info_length = sizeof(info);
  if (int err = bpf_obj_get_info_by_fd(bpf_map__fd(flows), &info, &info_length); err < 0) {
    return failure("reading the flow table's size", -err);
  }
  state->flow_capacity = info.max_entries;
  return std::unique_ptr<Balancer>(new Balancer(std::move(state)));
}

Status Balancer::attach(const std::string& interface, AttachMode mode) {
  const std::string mode_name = mode == AttachMode::kNative ? "native" : "generic";
  const std::string action =
      "attaching the XDP balancer to interface " + interface + " in " + mode_name + " mode";
  const unsigned ifindex = if_nametoindex(interface.c_str());
  if (ifindex == 0) return failure(action, errno);

  // UPDATE_IF_NOEXIST: never replace a program that someone else attached. The exception is
  // a Sluice balancer left attached by a sluiced that was killed: a program attached through
  // netlink outlives its loader, and without this a load balancer could not start again after
  // a crash. REPLACE with old_prog_fd replaces only that program.
  // NOTE: a balancer of another sluiced that still runs on the same interface is replaced too,
  // because the kernel keeps no owner of a netlink attachment to tell the two apart.
  const uint32_t mode_flags = mode == AttachMode::kNative ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
  LibbpfLog log;
  bpf_xdp_attach_opts options{};
  options.sz = sizeof(options);
  uint32_t flags = mode_flags | XDP_FLAGS_UPDATE_IF_NOEXIST;
  int stale_fd = -1;
  uint32_t attached_id = 0;
  if (bpf_xdp_query_id(static_cast<int>(ifindex), mode_flags, &attached_id) == 0 && attached_id != 0) {
    stale_fd = bpf_prog_get_fd_by_id(attached_id);
    bpf_prog_info info{};
    uint32_t info_length = sizeof(info);
    if (stale_fd >= 0 && bpf_obj_get_info_by_fd(stale_fd, &info, &info_length) == 0 &&
        std::string_view(info.name) == "sluice_balancer") {
      flags = mode_flags | XDP_FLAGS_REPLACE;
      options.old_prog_fd = stale_fd;
    }
  }
  const int err = bpf_xdp_attach(static_cast<int>(ifindex), program_fd(), flags, &options);
  if (stale_fd >= 0) close(stale_fd);
  if (err < 0) {
    std::string hint;
    if (err == -EBUSY || err == -EEXIST) hint = " (an XDP program is already attached; detach it first)";
    if (err == -EOPNOTSUPP && mode == AttachMode::kNative) {
      hint = " (the driver has no native XDP support; generic mode works on every interface)";
    }
    return Error{failure(action, -err).message + hint + log.suffix()};
  }
  state_->attachments.push_back({interface, ifindex, mode_flags});
  return {};
}

void Balancer::detach_all() {
  for (const Attachment& attachment : state_->attachments) {
    // REPLACE with old_prog_fd: the kernel detaches only this program, not one that someone
    // attached since.
    bpf_xdp_attach_opts options{};
    options.sz = sizeof(options);
    options.old_prog_fd = program_fd();
    // NOTE: a failure is not reported because detach_all returns nothing. The program then
    // stays attached until the interface goes away.
    bpf_xdp_detach(static_cast<int>(attachment.ifindex),
                   attachment.mode_flags | XDP_FLAGS_REPLACE, &options);
  }
  state_->attachments.clear();
}

int Balancer::program_fd() const {
  return bpf_program__fd(state_->skeleton->progs.sluice_balancer);
}

Status Balancer::State::install_table(uint32_t vip_slot, const std::vector<uint32_t>& table) {
  const int outer_fd = map_fd(skeleton->maps.sl_lb_maglev);
  const std::string action = "installing the Maglev table of VIP slot " + std::to_string(vip_slot);
  if (table.empty()) {
    if (int err = bpf_map_delete_elem(outer_fd, &vip_slot); err < 0 && err != -ENOENT) {
      return failure(action, -err);
    }
    tables.erase(vip_slot);
    return {};
  }

  // The new table is filled before the outer map points at it, so the program never reads
  // a half-written table. The outer map holds its own reference, so the descriptor closes.
  bpf_map_create_opts options{};
  options.sz = sizeof(options);
  options.map_flags = BPF_F_INNER_MAP;
  FileDescriptor inner(bpf_map_create(BPF_MAP_TYPE_ARRAY, "sl_lb_table", sizeof(uint32_t),
                                      sizeof(uint32_t), static_cast<uint32_t>(table.size()),
                                      &options));
  if (inner.get() < 0) return failure(action + " (creating the map)", -inner.get());
  if (int err = write_array<uint32_t>(inner.get(), 0, table); err < 0) {
    return failure(action + " (writing its entries)", -err);
  }
  const int inner_fd = inner.get();
  if (int err = bpf_map_update_elem(outer_fd, &vip_slot, &inner_fd, BPF_ANY); err < 0) {
    return failure(action, -err);
  }
  tables[vip_slot] = table;
  return {};
}

// Writes the VIP map and the Maglev tables. A VIP entry's table_size never exceeds the size
// of the table installed for its slot. A table that grows is installed before the entries
// that name its new size. A table that shrinks is installed after them and after the removal
// of stale entries. So every index the program computes lies inside the table it reads.
Status Balancer::State::program_vips(const Snapshot& snapshot) {
  std::set<uint32_t> shrinking;
  for (const Vip& vip : snapshot.vips) {
    const auto installed = tables.find(vip.slot);
    const size_t installed_size = installed == tables.end() ? 0 : installed->second.size();
    if (installed != tables.end() && installed->second == vip.maglev) continue;
    if (vip.maglev.size() < installed_size) {
      shrinking.insert(vip.slot);
      continue;
    }
    if (Status status = install_table(vip.slot, vip.maglev); !status) return status;
  }

  const int vips_fd = map_fd(skeleton->maps.sl_lb_vips);
  const auto entries = vip_entries(snapshot);
  for (const auto& [bytes, entry] : entries) {
    const auto& [key, vip] = entry;
    const sluice_lb_vip value{vip->slot, static_cast<uint32_t>(vip->maglev.size()),
                              static_cast<uint8_t>(vip->persistence),
                              static_cast<uint8_t>(vip->encapsulation), {0, 0}};
    if (int err = bpf_map_update_elem(vips_fd, &key, &value, BPF_ANY); err < 0) {
      return failure("writing the map entry of vip " + vip->key.to_string(), -err);
    }
  }

  sluice_lb_vip_key key;
  std::vector<sluice_lb_vip_key> stale;
  for (int err = bpf_map_get_next_key(vips_fd, nullptr, &key); err == 0;
       err = bpf_map_get_next_key(vips_fd, &key, &key)) {
    if (!entries.contains(key_bytes(key))) stale.push_back(key);
  }
  for (const sluice_lb_vip_key& old : stale) {
    if (int err = bpf_map_delete_elem(vips_fd, &old); err < 0 && err != -ENOENT) {
      return failure("removing a VIP that left the snapshot", -err);
    }
  }

  std::set<uint32_t> used;
  for (const Vip& vip : snapshot.vips) {
    used.insert(vip.slot);
    if (!shrinking.contains(vip.slot)) continue;
    if (Status status = install_table(vip.slot, vip.maglev); !status) return status;
  }
  std::vector<uint32_t> unused;
  for (const auto& [slot, table] : tables) {
    if (!used.contains(slot)) unused.push_back(slot);
  }
  for (uint32_t slot : unused) {
    if (Status status = install_table(slot, {}); !status) return status;
  }
  return {};
}

Status Balancer::State::program_egress(const std::vector<XdpEgress>& egress) {
  const int fd = map_fd(skeleton->maps.sl_lb_egress);
  std::set<uint32_t> requested;
  for (const XdpEgress& entry : egress) {
    const uint32_t key = static_cast<uint32_t>(entry.ingress_ifindex);
    sluice_lb_egress value;
    std::memset(&value, 0, sizeof(value));
    std::memcpy(value.source_mac, entry.source_mac.bytes.data(), 6);
    value.mtu = entry.mtu;
    value.redirect_ifindex = static_cast<uint32_t>(entry.redirect_ifindex);
    if (int err = bpf_map_update_elem(fd, &key, &value, BPF_ANY); err < 0) {
      return failure("writing the egress entry of ifindex " + std::to_string(key), -err);
    }
    requested.insert(key);
  }

  uint32_t key = 0;
  std::vector<uint32_t> stale;
  for (int err = bpf_map_get_next_key(fd, nullptr, &key); err == 0;
       err = bpf_map_get_next_key(fd, &key, &key)) {
    if (!requested.contains(key)) stale.push_back(key);
  }
  for (uint32_t old : stale) {
    if (int err = bpf_map_delete_elem(fd, &old); err < 0 && err != -ENOENT) {
      return failure("removing the egress entry of ifindex " + std::to_string(old), -err);
    }
  }
  return {};
}

Status Balancer::program(const Snapshot& snapshot, const std::vector<XdpEgress>& egress) {
  State& state = *state_;
  const uint32_t egress_capacity = bpf_map__max_entries(state.skeleton->maps.sl_lb_egress);
  if (Status status = validate(snapshot, egress, egress_capacity); !status) return status;

  // NOTE: an array map value is copied in place, so a packet that reads the options or a
  // backend while it is rewritten may see a mix of old and new fields. Snapshots change
  // rarely, and a mixed value affects only packets that arrive during the copy.
  const uint32_t zero = 0;
  const sluice_lb_options options = make_options(snapshot);
  if (int err = bpf_map_update_elem(state.map_fd(state.skeleton->maps.sl_lb_options), &zero,
                                    &options, BPF_ANY);
      err < 0) {
    return failure("writing the balancer options", -err);
  }

  // Backends first, so the new tables name slots that already hold their backends.
  const int backends_fd = state.map_fd(state.skeleton->maps.sl_lb_backends);
  std::vector<sluice_lb_backend> backends;
  for (const BackendSlot& slot : snapshot.backends) backends.push_back(make_backend(slot));
  if (int err = write_array<sluice_lb_backend>(backends_fd, 0, backends); err < 0) {
    return failure("writing " + std::to_string(backends.size()) + " backend slots", -err);
  }

  if (Status status = state.program_vips(snapshot); !status) return status;
  if (Status status = state.program_egress(egress); !status) return status;

  // Slots past the snapshot's end are removed, once no table names them.
  const uint32_t count = static_cast<uint32_t>(snapshot.backends.size());
  if (state.backend_slots > count) {
    const std::vector<sluice_lb_backend> removed(state.backend_slots - count, sluice_lb_backend{});
    if (int err = write_array<sluice_lb_backend>(backends_fd, count, removed); err < 0) {
      return failure("clearing backend slots " + std::to_string(count) + " and up", -err);
    }
  }
  state.backend_slots = count;
  state.backend_slots_ever = std::max(state.backend_slots_ever, count);
  return {};
}

PipelineTotals Balancer::totals() const {
  // NOTE: a failed map read leaves that part of the totals at zero, because totals() has no
  // error to return. Reads of the balancer's own maps fail only when memory runs out.
  PipelineTotals totals;
  const State& state = *state_;
  const uint32_t cpus = state.possible_cpus;

  std::vector<sluice_lb_counters> global;
  if (read_array(state.map_fd(state.skeleton->maps.sl_lb_stats), 1, cpus, global) == 0) {
    for (const sluice_lb_counters& cpu : global) {
      totals.received += cpu.received;
      totals.forwarded += cpu.forwarded;
      totals.to_kernel += cpu.to_kernel;
      totals.non_syn_misses += cpu.non_syn_misses;
      totals.fragments += cpu.fragments;
      totals.icmp_errors += cpu.icmp_errors;
      totals.icmp_echo_replies += cpu.icmp_echo_replies;
      totals.icmp_too_big_replies += cpu.icmp_too_big_replies;
      totals.new_flows_limited += cpu.new_flows_limited;
      for (int reason = 0; reason < kDropReasonCount; ++reason) {
        totals.drops[reason] += cpu.drops[reason];
      }
    }
  }

  std::vector<sluice_lb_vip_counters> vips;
  if (read_array(state.map_fd(state.skeleton->maps.sl_lb_vip_stats), SLUICE_MAX_VIPS, cpus,
                 vips) == 0) {
    for (size_t i = 0; i < vips.size(); ++i) {
      totals.vips[i / cpus].packets += vips[i].packets;
      totals.vips[i / cpus].bytes += vips[i].bytes;
    }
  }

  // Slots that no snapshot has used have no traffic, so they are not read.
  std::vector<sluice_lb_backend_counters> backends;
  if (read_array(state.map_fd(state.skeleton->maps.sl_lb_be_stats), state.backend_slots_ever, cpus,
                 backends) == 0) {
    for (size_t i = 0; i < backends.size(); ++i) {
      totals.backends[i / cpus].packets += backends[i].packets;
      totals.backends[i / cpus].bytes += backends[i].bytes;
      totals.backends[i / cpus].new_flows += backends[i].new_flows;
    }
  }

  // NOTE: an LRU map has no cheap count of its entries or of its evictions, so flow_entries
  // and flow_evictions stay 0. flow_capacity is the table's max_entries.
  totals.flow_capacity = state.flow_capacity;
  return totals;
}

Result<std::vector<uint32_t>> Balancer::read_maglev_table(uint32_t vip_slot) const {
  const std::string action = "reading the Maglev table of VIP slot " + std::to_string(vip_slot);
  if (vip_slot >= SLUICE_MAX_VIPS) {
    return Error{action + " failed: the slot is out of range (0 to " +
                 std::to_string(SLUICE_MAX_VIPS - 1) + ")"};
  }
  // From user space, a lookup in a map of maps returns the inner map's id.
  uint32_t inner_id = 0;
  const int err = bpf_map_lookup_elem(state_->map_fd(state_->skeleton->maps.sl_lb_maglev),
                                      &vip_slot, &inner_id);
  if (err == -ENOENT) return std::vector<uint32_t>{};  // the VIP has no table
  if (err < 0) return failure(action, -err);

  FileDescriptor inner(bpf_map_get_fd_by_id(inner_id));
  if (inner.get() < 0) return failure(action + " (opening map id " + std::to_string(inner_id) + ")", -inner.get());
  bpf_map_info info{};
  uint32_t info_length = sizeof(info);
  if (int info_err = bpf_obj_get_info_by_fd(inner.get(), &info, &info_length); info_err < 0) {
    return failure(action, -info_err);
  }
  std::vector<uint32_t> table;
  if (int read_err = read_array(inner.get(), info.max_entries, 1, table); read_err < 0) {
    return failure(action, -read_err);
  }
  return table;
}

}  // namespace sluice::bpf
