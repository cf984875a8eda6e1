// Tests of the XDP balancer's loader and of the facts that both data planes share: the flow
// hash computed by BPF, the Maglev tables read back from the maps, the egress map, snapshot
// checks and attaching to interfaces. They load BPF programs, so they need root. Without it
// they fail with a message saying so. The attach test works on a veth pair inside a network
// namespace that it creates and deletes, and sends no traffic.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_link.h>
#include <sched.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "balancer_harness.h"
#include "balancer_loader.h"
#include "flow_hash_probe.h"
#include "flow_hash_probe.skel.h"
#include "test_frames.h"

extern char** environ;

namespace sluice::test {
namespace {

std::unique_ptr<bpf::Balancer> load_balancer(uint32_t flow_table_size = 65536) {
  Result<std::unique_ptr<bpf::Balancer>> loaded = bpf::Balancer::load(flow_table_size);
  EXPECT_TRUE(loaded.ok()) << loaded.error() << "\n" << kNeedsRoot;
  return loaded.ok() ? std::move(loaded).value() : nullptr;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Returns an empty string when the tables are equal, else the first difference.
std::string table_difference(const std::vector<uint32_t>& expected, const std::vector<uint32_t>& actual) {
  if (expected.size() != actual.size()) {
    return "size " + std::to_string(actual.size()) + ", expected " + std::to_string(expected.size());
  }
  for (size_t i = 0; i < expected.size(); ++i) {
    if (expected[i] != actual[i]) {
      return "entry " + std::to_string(i) + " is " + std::to_string(actual[i]) + ", expected " +
             std::to_string(expected[i]);
    }
  }
  return "";
}

// ---- Flow hash -------------------------------------------------------------------------------

struct ProbeDeleter {
  void operator()(flow_hash_probe* probe) const { flow_hash_probe__destroy(probe); }
};

TEST(BalancerFlowHash, BpfMatchesCpp) {
  std::unique_ptr<flow_hash_probe, ProbeDeleter> probe(flow_hash_probe__open_and_load());
  ASSERT_TRUE(probe) << "loading flow_hash_probe failed: " << std::strerror(errno) << "\n"
                     << kNeedsRoot;
  const int program_fd = bpf_program__fd(probe->progs.flow_hash_probe);

  std::mt19937 random(20240611);
  const uint32_t sizes[] = {SLUICE_MAGLEV_MIN_SIZE, 13, 251, 1021, SLUICE_MAGLEV_DEFAULT_SIZE, 655373,
                            SLUICE_MAGLEV_MAX_SIZE};
  int mismatches = 0;
  for (int i = 0; i < 2000; ++i) {
    sluice_flow_hash_probe record{};
    const bool ipv6 = i % 2 == 1;
    for (int word = 0; word < (ipv6 ? 4 : 1); ++word) {
      record.key.src[word] = random();
      record.key.dst[word] = random();
    }
    record.key.src_port = static_cast<uint16_t>(random());
    record.key.dst_port = static_cast<uint16_t>(random());
    record.key.protocol = static_cast<uint8_t>(random());
    record.key.family = ipv6 ? 6 : 4;
    record.seed = i < 4 ? i : random();  // seed 0 included
    record.table_size = sizes[i % std::size(sizes)];

    Bytes frame(sizeof(record));
    std::memcpy(frame.data(), &record, sizeof(record));
    Bytes output(frame.size());
    bpf_test_run_opts options{};
    options.sz = sizeof(options);
    options.data_in = frame.data();
    options.data_size_in = static_cast<uint32_t>(frame.size());
    options.data_out = output.data();
    options.data_size_out = static_cast<uint32_t>(output.size());
    options.repeat = 1;
    ASSERT_EQ(bpf_prog_test_run_opts(program_fd, &options), 0) << std::strerror(errno);
    ASSERT_EQ(options.retval, static_cast<uint32_t>(XDP_PASS));

    sluice_flow_hash_probe result;
    std::memcpy(&result, output.data(), sizeof(result));
    const uint32_t hash = sluice_flow_hash(&record.key, record.seed);
    const uint32_t slot = sluice_maglev_slot(hash, record.table_size);
    if ((result.hash != hash || result.slot != slot) && ++mismatches <= 5) {
      ADD_FAILURE() << "vector " << i << " (seed " << record.seed << ", table size " << record.table_size
                    << "): BPF hash " << result.hash << " slot " << result.slot << ", C++ hash " << hash
                    << " slot " << slot << "\nkey:\n" << hex(Bytes(frame.begin(), frame.begin() + 40));
    }
  }
  EXPECT_EQ(mismatches, 0);
}

// ---- Maps ------------------------------------------------------------------------------------

TEST(BalancerMaps, MaglevTablesReadBack) {
  std::unique_ptr<bpf::Balancer> balancer = load_balancer();
  ASSERT_TRUE(balancer);
  Snapshot snapshot = make_parity_snapshot();
  ASSERT_TRUE(balancer->program(snapshot, {test_run_egress()}).ok());
  for (const Vip& vip : snapshot.vips) {
    Result<std::vector<uint32_t>> table = balancer->read_maglev_table(vip.slot);
    ASSERT_TRUE(table.ok()) << table.error();
    EXPECT_EQ(table_difference(vip.maglev, table.value()), "") << "vip " << vip.key.to_string();
  }

  // One table shrinks, one grows, one VIP goes away.
  snapshot.vips[kVipWeb4].maglev = weighted_table(snapshot, {{0, 1}, {1, 1}}, 13);
  snapshot.vips[kVipDns].maglev = weighted_table(snapshot, {{1, 1}, {kSpareSlot, 1}});
  snapshot.vips.erase(snapshot.vips.begin() + kVipHttps);
  snapshot.prepare();
  const Status reprogrammed = balancer->program(snapshot, {test_run_egress()});
  ASSERT_TRUE(reprogrammed.ok()) << reprogrammed.error();
  for (const Vip& vip : snapshot.vips) {
    Result<std::vector<uint32_t>> table = balancer->read_maglev_table(vip.slot);
    ASSERT_TRUE(table.ok()) << table.error();
    EXPECT_EQ(table_difference(vip.maglev, table.value()), "") << "vip " << vip.key.to_string();
  }
  Result<std::vector<uint32_t>> removed = balancer->read_maglev_table(kVipHttps);
  ASSERT_TRUE(removed.ok()) << removed.error();
  EXPECT_TRUE(removed.value().empty()) << "the table of a removed VIP";

  PipelineTotals totals = balancer->totals();
  const Outcome https = run_xdp(*balancer, tcp4_frame({.destination_port = 443}), totals);
  EXPECT_EQ(https.verdict, "XDP_PASS") << "traffic of a removed VIP goes to the kernel";
  const Outcome web = run_xdp(*balancer, tcp4_frame({}), totals);
  EXPECT_EQ(web.verdict, "XDP_TX");

  Result<std::vector<uint32_t>> out_of_range = balancer->read_maglev_table(SLUICE_MAX_VIPS);
  ASSERT_FALSE(out_of_range.ok());
  EXPECT_TRUE(contains(out_of_range.error(), "out of range")) << out_of_range.error();
}

TEST(BalancerMaps, NoEgressEntryDrops) {
  std::unique_ptr<bpf::Balancer> balancer = load_balancer();
  ASSERT_TRUE(balancer);
  const Snapshot snapshot = make_parity_snapshot();
  bpf::XdpEgress elsewhere = test_run_egress();
  elsewhere.ingress_ifindex += 1000;
  ASSERT_TRUE(balancer->program(snapshot, {elsewhere}).ok());

  PipelineTotals totals = balancer->totals();
  const Outcome syn = run_xdp(*balancer, tcp4_frame({}), totals);
  EXPECT_EQ(syn.verdict, "XDP_DROP");
  EXPECT_EQ(syn.drop, DropReason::kNoEgress);
  EXPECT_EQ(totals.drops[static_cast<int>(DropReason::kNoEgress)], 1u);
  EXPECT_EQ(drop_reason_name(DropReason::kNoEgress), "no_egress");
  EXPECT_EQ(run_xdp(*balancer, arp_request_frame(), totals).verdict, "XDP_PASS");

  // The stale entry goes, the entry for the test run's interface comes.
  ASSERT_TRUE(balancer->program(snapshot, {test_run_egress()}).ok());
  EXPECT_EQ(run_xdp(*balancer, tcp4_frame({}), totals).verdict, "XDP_TX");
}

TEST(BalancerMaps, ProgramRejectsInvalidSnapshot) {
  std::unique_ptr<bpf::Balancer> balancer = load_balancer();
  ASSERT_TRUE(balancer);
  const Snapshot valid = make_parity_snapshot();
  ASSERT_TRUE(balancer->program(valid, {test_run_egress()}).ok());

  Snapshot slot_out_of_range = valid;
  slot_out_of_range.vips[kVipWeb4].slot = SLUICE_MAX_VIPS;
  const Status out_of_range = balancer->program(slot_out_of_range, {test_run_egress()});
  ASSERT_FALSE(out_of_range.ok());
  EXPECT_TRUE(contains(out_of_range.error(), "vip 203.0.113.10:80/tcp: slot 1024 is out of range"))
      << out_of_range.error();

  Snapshot shared_slot = valid;
  shared_slot.vips[kVipWeb6].slot = kVipWeb4;
  const Status shared = balancer->program(shared_slot, {test_run_egress()});
  ASSERT_FALSE(shared.ok());
  EXPECT_TRUE(contains(shared.error(), "is used by another VIP")) << shared.error();

  Snapshot unknown_backend = valid;
  unknown_backend.vips[kVipDns].maglev[5] = 99;
  const Status unknown = balancer->program(unknown_backend, {test_run_egress()});
  ASSERT_FALSE(unknown.ok());
  EXPECT_TRUE(contains(unknown.error(), "names backend slot 99")) << unknown.error();

  // Nothing of the rejected snapshots was written.
  PipelineTotals totals = balancer->totals();
  EXPECT_EQ(run_xdp(*balancer, tcp4_frame({}), totals).verdict, "XDP_TX");
  Result<std::vector<uint32_t>> table = balancer->read_maglev_table(kVipDns);
  ASSERT_TRUE(table.ok());
  EXPECT_EQ(table_difference(valid.vips[kVipDns].maglev, table.value()), "");
}

TEST(BalancerMaps, FlowCapacityFromKernel) {
  std::unique_ptr<bpf::Balancer> balancer = load_balancer(1000);
  ASSERT_TRUE(balancer);
  const uint64_t cpus = static_cast<uint64_t>(libbpf_num_possible_cpus());
  const PipelineTotals totals = balancer->totals();
  // The kernel rounds a per-CPU LRU up to a multiple of the possible CPUs.
  EXPECT_GE(totals.flow_capacity, 1000u);
  EXPECT_LT(totals.flow_capacity, 1000u + cpus);
  EXPECT_EQ(totals.flow_capacity % cpus, 0u);
  EXPECT_EQ(totals.flow_entries, 0u);

  Result<std::unique_ptr<bpf::Balancer>> empty = bpf::Balancer::load(0);
  ASSERT_FALSE(empty.ok());
  EXPECT_TRUE(contains(empty.error(), "flow table size 0 is invalid")) << empty.error();
}

// ---- Attaching -------------------------------------------------------------------------------

struct CommandResult {
  int exit_code = -1;
  std::string output;  // standard output and standard error
};

CommandResult run_command(const std::vector<std::string>& arguments) {
  CommandResult result;
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return result;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
  std::vector<char*> argv;
  for (const std::string& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int spawned = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  if (spawned == 0) {
    char buffer[512];
    for (ssize_t n; (n = read(pipe_fds[0], buffer, sizeof(buffer))) > 0;) result.output.append(buffer, n);
    int status = 0;
    waitpid(pid, &status, 0);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  } else {
    result.output = std::string("starting ") + argv[0] + " failed: " + std::strerror(spawned);
  }
  close(pipe_fds[0]);
  return result;
}

// A network namespace that `ip netns add` creates and the destructor deletes, with the
// interfaces inside it.
class TestNamespace {
 public:
  explicit TestNamespace(std::string name) : name_(std::move(name)) {
    run_command({"ip", "netns", "delete", name_});  // left by a crashed run with the same PID
    const CommandResult added = run_command({"ip", "netns", "add", name_});
    created_ = added.exit_code == 0;
    error_ = added.output;
  }
  ~TestNamespace() {
    if (!created_) return;
    const CommandResult deleted = run_command({"ip", "netns", "delete", name_});
    EXPECT_EQ(deleted.exit_code, 0) << "deleting network namespace " << name_ << ": " << deleted.output;
  }
  TestNamespace(const TestNamespace&) = delete;
  TestNamespace& operator=(const TestNamespace&) = delete;

  const std::string& name() const { return name_; }
  bool created() const { return created_; }
  const std::string& error() const { return error_; }

 private:
  std::string name_;
  bool created_ = false;
  std::string error_;
};

// Moves the calling thread into a named network namespace until destruction.
class NamespaceEntry {
 public:
  explicit NamespaceEntry(const std::string& name) {
    original_fd_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    const int target_fd = open(("/var/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    entered_ = original_fd_ >= 0 && target_fd >= 0 && setns(target_fd, CLONE_NEWNET) == 0;
    if (!entered_) error_ = "entering network namespace " + name + " failed: " + std::strerror(errno);
    if (target_fd >= 0) close(target_fd);
  }
  ~NamespaceEntry() {
    if (entered_ && setns(original_fd_, CLONE_NEWNET) != 0) {
      ADD_FAILURE() << "returning to the original network namespace failed: " << std::strerror(errno);
    }
    if (original_fd_ >= 0) close(original_fd_);
  }
  NamespaceEntry(const NamespaceEntry&) = delete;
  NamespaceEntry& operator=(const NamespaceEntry&) = delete;

  bool entered() const { return entered_; }
  const std::string& error() const { return error_; }

 private:
  int original_fd_ = -1;
  bool entered_ = false;
  std::string error_;
};

uint32_t attached_program_id(const char* interface, uint32_t mode_flags) {
  uint32_t id = 0;
  bpf_xdp_query_id(static_cast<int>(if_nametoindex(interface)), static_cast<int>(mode_flags), &id);
  return id;
}

TEST(BalancerAttach, GenericAndNativeOnVeth) {
  TestNamespace ns("sl-test-balancer-" + std::to_string(getpid()));
  ASSERT_TRUE(ns.created()) << "creating network namespace " << ns.name()
                            << " failed; this test needs root and iproute2's ip: " << ns.error();
  for (const std::vector<std::string>& step :
       {std::vector<std::string>{"link", "add", "sl-lb-a", "type", "veth", "peer", "name", "sl-lb-b"},
        {"link", "set", "sl-lb-a", "up"},
        {"link", "set", "sl-lb-b", "up"}}) {
    std::vector<std::string> command = {"ip", "-n", ns.name()};
    command.insert(command.end(), step.begin(), step.end());
    const CommandResult result = run_command(command);
    ASSERT_EQ(result.exit_code, 0) << result.output;
  }

  NamespaceEntry entry(ns.name());
  ASSERT_TRUE(entry.entered()) << entry.error();
  // Created inside the namespace, so it is destroyed, and detaches, before the thread leaves.
  std::unique_ptr<bpf::Balancer> balancer = load_balancer();
  ASSERT_TRUE(balancer);
  bpf_prog_info info{};
  uint32_t info_length = sizeof(info);
  ASSERT_EQ(bpf_obj_get_info_by_fd(balancer->program_fd(), &info, &info_length), 0);

  const Status generic = balancer->attach("sl-lb-a", bpf::AttachMode::kGeneric);
  ASSERT_TRUE(generic.ok()) << generic.error();
  EXPECT_EQ(attached_program_id("sl-lb-a", XDP_FLAGS_SKB_MODE), info.id);
  const Status native = balancer->attach("sl-lb-b", bpf::AttachMode::kNative);
  ASSERT_TRUE(native.ok()) << native.error();
  EXPECT_EQ(attached_program_id("sl-lb-b", XDP_FLAGS_DRV_MODE), info.id);

  const Status again = balancer->attach("sl-lb-a", bpf::AttachMode::kNative);
  ASSERT_FALSE(again.ok()) << "a second program on one interface, and no fallback";
  EXPECT_TRUE(contains(again.error(), "interface sl-lb-a in native mode")) << again.error();
  const Status missing = balancer->attach("sl-missing0", bpf::AttachMode::kGeneric);
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(contains(missing.error(), "interface sl-missing0")) << missing.error();

  balancer->detach_all();
  EXPECT_EQ(attached_program_id("sl-lb-a", XDP_FLAGS_SKB_MODE), 0u);
  EXPECT_EQ(attached_program_id("sl-lb-b", XDP_FLAGS_DRV_MODE), 0u);
}

}  // namespace
}  // namespace sluice::test
