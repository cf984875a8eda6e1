#include "decap_loader.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <ifaddrs.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <string>
#include <utility>

#include "decap.skel.h"

namespace sluice::bpf {
namespace {

constexpr std::string_view program_name = SLUICE_DECAP_STRINGIFY(SLUICE_DECAP_PROGRAM);
constexpr std::string_view counters_map_name = SLUICE_DECAP_STRINGIFY(SLUICE_DECAP_COUNTERS_MAP);

// Maximum length of the libbpf log tail kept in an Error. A verifier rejection prints the
// whole verifier log, and its last lines name the failing instruction.
constexpr std::size_t max_log_length = 4096;

// Records libbpf warnings for the lifetime of the object (see the NOTE in
// decap_loader.h about the process-wide callback).
class LibbpfLogCapture {
public:
    LibbpfLogCapture()
        : previous_callback_(libbpf_set_print(&LibbpfLogCapture::record)), previous_log_(active_log_) {
        active_log_ = &log_;
    }
    ~LibbpfLogCapture() {
        libbpf_set_print(previous_callback_);
        active_log_ = previous_log_;
    }
    LibbpfLogCapture(const LibbpfLogCapture&) = delete;
    LibbpfLogCapture& operator=(const LibbpfLogCapture&) = delete;

    // Returns the recorded text without its trailing newline.
    std::string text() const {
        std::string text = log_;
        while (!text.empty() && text.back() == '\n') {
            text.pop_back();
        }
        return text;
    }

private:
    static int record(enum libbpf_print_level level, const char* format, va_list arguments) {
        if (level != LIBBPF_WARN || active_log_ == nullptr) {
            return 0;
        }
        // libbpf prints a whole verifier log as one message, so measure it
        // first instead of formatting into a fixed buffer.
        va_list measuring;
        va_copy(measuring, arguments);
        int length = std::vsnprintf(nullptr, 0, format, measuring);
        va_end(measuring);
        if (length <= 0) {
            return length;
        }
        std::string line(static_cast<std::size_t>(length) + 1, '\0');
        std::vsnprintf(line.data(), line.size(), format, arguments);
        line.pop_back();
        active_log_->append(line);
        if (active_log_->size() > max_log_length) {
            active_log_->erase(0, active_log_->size() - max_log_length);
        }
        return length;
    }

    static thread_local std::string* active_log_;
    std::string log_;
    libbpf_print_fn_t previous_callback_;
    std::string* previous_log_;
};

thread_local std::string* LibbpfLogCapture::active_log_ = nullptr;

// Builds an Error from a positive errno value: "<action> failed: <reason>",
// followed by libbpf's log lines when it wrote any.
Error make_error(int code, const std::string& action, const std::string& libbpf_log = {}) {
    char reason[256];
    if (libbpf_strerror(code, reason, sizeof(reason)) != 0) {
        std::snprintf(reason, sizeof(reason), "error %d", code);
    }
    std::string message = action + " failed: " + reason;
    if (code == EPERM) {
        message += " (loading and attaching XDP programs needs CAP_BPF and CAP_NET_ADMIN, so run it as root)";
    }
    if (!libbpf_log.empty()) {
        message += "\nlibbpf log:\n" + libbpf_log;
    }
    return Error{code, std::move(message)};
}

class FileDescriptor {
public:
    explicit FileDescriptor(int fd = -1) : fd_(fd) {}
    FileDescriptor(FileDescriptor&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    FileDescriptor& operator=(FileDescriptor&& other) noexcept {
        if (this != &other) {
            reset();
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }
    ~FileDescriptor() { reset(); }

    int get() const { return fd_; }

private:
    void reset() {
        if (fd_ >= 0) {
            close(fd_);
            fd_ = -1;
        }
    }

    int fd_;
};

std::string quoted(const std::string& text) { return "'" + text + "'"; }

Result<int> interface_index(const std::string& interface) {
    if (interface.empty() || interface.size() >= IF_NAMESIZE) {
        return Error{EINVAL, "invalid interface name " + quoted(interface) + ": expected 1 to " +
                                 std::to_string(IF_NAMESIZE - 1) + " characters"};
    }
    unsigned index = if_nametoindex(interface.c_str());
    if (index == 0) {
        int code = errno;
        if (code == ENODEV || code == ENXIO) {
            return Error{ENODEV, "interface " + quoted(interface) + " not found"};
        }
        return make_error(code, "looking up interface " + quoted(interface));
    }
    return static_cast<int>(index);
}

std::uint32_t xdp_flags(XdpMode mode) {
    return mode == XdpMode::native ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
}

// The XDP program attached to an interface, open by id.
struct AttachedProgram {
    int interface_index = 0;
    std::uint32_t id = 0;
    XdpMode mode = XdpMode::native;
    std::string name;
    FileDescriptor fd;
};

// Returns the XDP program attached to the interface, or an Error with
// ENOENT when none is.
Result<AttachedProgram> find_attached_program(const std::string& interface) {
    Result<int> index = interface_index(interface);
    if (!index) {
        return index.error();
    }

    LibbpfLogCapture capture;
    bpf_xdp_query_opts query{};
    query.sz = sizeof(query);
    if (int err = bpf_xdp_query(index.value(), 0, &query); err < 0) {
        return make_error(-err, "querying the XDP program of interface " + quoted(interface), capture.text());
    }

    AttachedProgram program;
    program.interface_index = index.value();
    switch (query.attach_mode) {
        case XDP_ATTACHED_NONE:
            return Error{ENOENT, "no XDP program is attached to interface " + quoted(interface)};
        case XDP_ATTACHED_DRV:
            program.id = query.drv_prog_id;
            program.mode = XdpMode::native;
            break;
        case XDP_ATTACHED_SKB:
            program.id = query.skb_prog_id;
            program.mode = XdpMode::generic;
            break;
        default:
            return Error{EEXIST, "interface " + quoted(interface) +
                                     " has an offloaded XDP program or programs in several modes, "
                                     "which sluice-decap does not manage. Remove them with 'ip link set dev " +
                                     interface + " xdp off'"};
    }

    program.fd = FileDescriptor(bpf_prog_get_fd_by_id(program.id));
    if (program.fd.get() < 0) {
        return make_error(errno, "opening XDP program id " + std::to_string(program.id) + " of interface " +
                                     quoted(interface), capture.text());
    }

    bpf_prog_info info{};
    std::uint32_t info_length = sizeof(info);
    if (int err = bpf_obj_get_info_by_fd(program.fd.get(), &info, &info_length); err < 0) {
        return make_error(-err, "reading information on XDP program id " + std::to_string(program.id) +
                                    " of interface " + quoted(interface), capture.text());
    }
    program.name = info.name;
    return program;
}

// Returns an Error unless the attached program is a sluice-decap program.
Result<> check_is_decap(const AttachedProgram& program, const std::string& interface) {
    if (program.name != program_name) {
        return Error{EEXIST, "interface " + quoted(interface) + " has XDP program " + quoted(program.name) +
                                 " (id " + std::to_string(program.id) + ") attached, not " +
                                 std::string(program_name) + ". Remove it first"};
    }
    return {};
}

// Sums the per-CPU values of every counter in the map.
Result<DecapCounters> sum_counters(int map_fd) {
    int cpu_count = libbpf_num_possible_cpus();
    if (cpu_count <= 0) {
        return make_error(-cpu_count, "counting the possible CPUs");
    }

    DecapCounters counters;
    std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(cpu_count));
    for (std::uint32_t index = 0; index < SLUICE_DECAP_COUNTER_COUNT; ++index) {
        if (int err = bpf_map_lookup_elem(map_fd, &index, per_cpu.data()); err < 0) {
            return make_error(-err, "reading counter " +
                                        std::string(DecapCounters::name(static_cast<sluice_decap_counter>(index))));
        }
        for (std::uint64_t value : per_cpu) {
            counters.values[index] += value;
        }
    }
    return counters;
}

// Opens the counter map of an attached sluice-decap program.
Result<FileDescriptor> open_counters_map(const AttachedProgram& program, const std::string& interface) {
    std::string program_text = "XDP program id " + std::to_string(program.id) + " of interface " + quoted(interface);

    bpf_prog_info info{};
    std::uint32_t info_length = sizeof(info);
    if (int err = bpf_obj_get_info_by_fd(program.fd.get(), &info, &info_length); err < 0) {
        return make_error(-err, "reading the map ids of " + program_text);
    }
    std::vector<std::uint32_t> map_ids(info.nr_map_ids);
    std::uint32_t map_count = info.nr_map_ids;
    info = {};
    info.nr_map_ids = map_count;
    info.map_ids = reinterpret_cast<std::uintptr_t>(map_ids.data());
    info_length = sizeof(info);
    if (int err = bpf_obj_get_info_by_fd(program.fd.get(), &info, &info_length); err < 0) {
        return make_error(-err, "reading the map ids of " + program_text);
    }
    map_ids.resize(std::min(map_count, info.nr_map_ids));

    for (std::uint32_t map_id : map_ids) {
        FileDescriptor map_fd(bpf_map_get_fd_by_id(map_id));
        if (map_fd.get() < 0) {
            return make_error(errno, "opening map id " + std::to_string(map_id) + " of " + program_text);
        }
        bpf_map_info map_info{};
        std::uint32_t map_info_length = sizeof(map_info);
        if (int err = bpf_obj_get_info_by_fd(map_fd.get(), &map_info, &map_info_length); err < 0) {
            return make_error(-err, "reading information on map id " + std::to_string(map_id) + " of " +
                                        program_text);
        }
        if (map_info.name != counters_map_name) {
            continue;
        }
        bool layout_matches = map_info.type == BPF_MAP_TYPE_PERCPU_ARRAY && map_info.key_size == sizeof(std::uint32_t) &&
                              map_info.value_size == sizeof(std::uint64_t) &&
                              map_info.max_entries == SLUICE_DECAP_COUNTER_COUNT;
        if (!layout_matches) {
            return Error{EPROTO, "the counter map of " + program_text + " has " +
                                     std::to_string(map_info.max_entries) + " entries of " +
                                     std::to_string(map_info.value_size) + " bytes, but this build expects " +
                                     std::to_string(SLUICE_DECAP_COUNTER_COUNT) +
                                     " entries of 8 bytes. Attach the program again with this build"};
        }
        return map_fd;
    }
    return Error{ENOENT, program_text + " has no map named " + std::string(counters_map_name)};
}

}  // namespace

Result<IpAddress> IpAddress::parse(std::string_view text) {
    std::string terminated(text);
    IpAddress address;
    if (terminated.find(':') != std::string::npos) {
        address.family = Family::ipv6;
        if (inet_pton(AF_INET6, terminated.c_str(), address.bytes.data()) == 1) {
            return address;
        }
    } else {
        address.family = Family::ipv4;
        if (inet_pton(AF_INET, terminated.c_str(), address.bytes.data()) == 1) {
            return address;
        }
    }
    return Error{EINVAL, "invalid IP address " + quoted(terminated) +
                             ": expected IPv4 dotted-quad (192.0.2.1) or IPv6 (2001:db8::1) text"};
}

std::string IpAddress::to_string() const {
    char text[INET6_ADDRSTRLEN];
    int family_constant = family == Family::ipv4 ? AF_INET : AF_INET6;
    if (inet_ntop(family_constant, bytes.data(), text, sizeof(text)) == nullptr) {
        return "(unprintable address)";
    }
    return text;
}

std::string_view to_string(XdpMode mode) { return mode == XdpMode::native ? "native" : "generic"; }

std::string_view DecapCounters::name(sluice_decap_counter counter) {
#define SLUICE_DECAP_COUNTER_NAME_(id, name, description) #name,
    static constexpr std::string_view names[] = {SLUICE_DECAP_COUNTER_LIST(SLUICE_DECAP_COUNTER_NAME_)};
#undef SLUICE_DECAP_COUNTER_NAME_
    static_assert(std::size(names) == SLUICE_DECAP_COUNTER_COUNT);
    return counter < SLUICE_DECAP_COUNTER_COUNT ? names[counter] : "unknown";
}

std::string_view DecapCounters::description(sluice_decap_counter counter) {
#define SLUICE_DECAP_COUNTER_DESCRIPTION_(id, name, description) description,
    static constexpr std::string_view descriptions[] = {SLUICE_DECAP_COUNTER_LIST(SLUICE_DECAP_COUNTER_DESCRIPTION_)};
#undef SLUICE_DECAP_COUNTER_DESCRIPTION_
    static_assert(std::size(descriptions) == SLUICE_DECAP_COUNTER_COUNT);
    return counter < SLUICE_DECAP_COUNTER_COUNT ? descriptions[counter] : "unknown";
}

void DecapProgram::SkeletonDeleter::operator()(struct sluice_decap* skeleton) const {
    sluice_decap__destroy(skeleton);
}

DecapProgram::DecapProgram(std::unique_ptr<struct sluice_decap, SkeletonDeleter> skeleton)
    : skeleton_(std::move(skeleton)) {}
DecapProgram::DecapProgram(DecapProgram&&) noexcept = default;
DecapProgram& DecapProgram::operator=(DecapProgram&&) noexcept = default;
DecapProgram::~DecapProgram() = default;

Result<DecapProgram> DecapProgram::load(std::uint16_t gue_port) {
    LibbpfLogCapture capture;

    std::unique_ptr<struct sluice_decap, SkeletonDeleter> skeleton(sluice_decap__open());
    if (!skeleton) {
        return make_error(errno, "opening the embedded decap BPF object", capture.text());
    }
    skeleton->rodata->sluice_decap_gue_port = htons(gue_port);
    if (int err = sluice_decap__load(skeleton.get()); err < 0) {
        return make_error(-err, "loading the decap BPF program into the kernel", capture.text());
    }
    return DecapProgram(std::move(skeleton));
}

Result<> DecapProgram::add_local_address(const IpAddress& address) {
    sluice_decap_address_key key;
    std::memset(&key, 0, sizeof(key));
    key.family = static_cast<std::uint8_t>(address.family);
    std::size_t length = address.family == IpAddress::Family::ipv4 ? 4 : 16;
    std::memcpy(key.address, address.bytes.data(), length);
    sluice_decap_address_value value = 1;

    LibbpfLogCapture capture;
    int err = bpf_map__update_elem(skeleton_->maps.SLUICE_DECAP_LOCAL_ADDRESSES_MAP, &key, sizeof(key), &value,
                                   sizeof(value), BPF_ANY);
    if (err == -E2BIG) {
        return Error{E2BIG, "adding local address " + address.to_string() + " failed: the local address map is full (" +
                                std::to_string(SLUICE_DECAP_MAX_LOCAL_ADDRESSES) + " addresses maximum)"};
    }
    if (err < 0) {
        return make_error(-err, "adding local address " + address.to_string() + " to the decap address map",
                          capture.text());
    }
    return {};
}

Result<> DecapProgram::attach(const std::string& interface, XdpMode mode) {
    Result<int> index = interface_index(interface);
    if (!index) {
        return index.error();
    }

    // XDP_FLAGS_UPDATE_IF_NOEXIST and XDP_FLAGS_REPLACE make the kernel
    // reject the attach with EEXIST when the program found here was swapped
    // by someone else in the meantime.
    std::uint32_t flags = xdp_flags(mode);
    bpf_xdp_attach_opts options{};
    options.sz = sizeof(options);
    Result<AttachedProgram> existing = find_attached_program(interface);
    if (existing) {
        if (Result<> is_decap = check_is_decap(existing.value(), interface); !is_decap) {
            return is_decap;
        }
        if (existing.value().mode != mode) {
            return Error{EEXIST, "interface " + quoted(interface) + " has " + std::string(program_name) + " attached in " +
                                     std::string(to_string(existing.value().mode)) +
                                     " mode. Detach it before attaching in " + std::string(to_string(mode)) +
                                     " mode"};
        }
        flags |= XDP_FLAGS_REPLACE;
        options.old_prog_fd = existing.value().fd.get();
    } else if (existing.error().code == ENOENT) {
        flags |= XDP_FLAGS_UPDATE_IF_NOEXIST;
    } else {
        return existing.error();
    }

    LibbpfLogCapture capture;
    if (int err = bpf_xdp_attach(index.value(), program_fd(), flags, &options); err < 0) {
        return make_error(-err, "attaching XDP program " + std::string(program_name) + " to interface " +
                                    quoted(interface) + " in " + std::string(to_string(mode)) + " mode",
                          capture.text());
    }
    return {};
}

int DecapProgram::program_fd() const { return bpf_program__fd(skeleton_->progs.SLUICE_DECAP_PROGRAM); }

Result<DecapCounters> DecapProgram::read_counters() const {
    return sum_counters(bpf_map__fd(skeleton_->maps.SLUICE_DECAP_COUNTERS_MAP));
}

Result<std::vector<IpAddress>> interface_addresses(const std::string& interface) {
    if (Result<int> index = interface_index(interface); !index) {
        return index.error();
    }

    ifaddrs* list = nullptr;
    if (getifaddrs(&list) != 0) {
        return make_error(errno, "reading the addresses of interface " + quoted(interface) + " (getifaddrs)");
    }
    std::unique_ptr<ifaddrs, decltype(&freeifaddrs)> owner(list, &freeifaddrs);

    std::vector<IpAddress> addresses;
    for (const ifaddrs* entry = list; entry != nullptr; entry = entry->ifa_next) {
        if (entry->ifa_addr == nullptr || interface != entry->ifa_name) {
            continue;
        }
        IpAddress address;
        if (entry->ifa_addr->sa_family == AF_INET) {
            const auto* ipv4 = reinterpret_cast<const sockaddr_in*>(entry->ifa_addr);
            address.family = IpAddress::Family::ipv4;
            std::memcpy(address.bytes.data(), &ipv4->sin_addr, 4);
        } else if (entry->ifa_addr->sa_family == AF_INET6) {
            const auto* ipv6 = reinterpret_cast<const sockaddr_in6*>(entry->ifa_addr);
            address.family = IpAddress::Family::ipv6;
            std::memcpy(address.bytes.data(), &ipv6->sin6_addr, 16);
        } else {
            continue;
        }
        addresses.push_back(address);
    }
    return addresses;
}

Result<> attach(const std::string& interface, XdpMode mode, std::span<const IpAddress> local_addresses,
                std::uint16_t gue_port) {
    std::vector<IpAddress> addresses(local_addresses.begin(), local_addresses.end());
    if (addresses.empty()) {
        Result<std::vector<IpAddress>> configured = interface_addresses(interface);
        if (!configured) {
            return configured.error();
        }
        addresses = std::move(configured.value());
        if (addresses.empty()) {
            return Error{EADDRNOTAVAIL, "interface " + quoted(interface) +
                                            " has no IPv4 or IPv6 address. Configure one or pass the local "
                                            "addresses explicitly"};
        }
    }
    if (addresses.size() > SLUICE_DECAP_MAX_LOCAL_ADDRESSES) {
        return Error{E2BIG, "too many local addresses for interface " + quoted(interface) + ": " +
                                std::to_string(addresses.size()) + " given, the maximum is " +
                                std::to_string(SLUICE_DECAP_MAX_LOCAL_ADDRESSES)};
    }

    Result<DecapProgram> program = DecapProgram::load(gue_port);
    if (!program) {
        return program.error();
    }
    for (const IpAddress& address : addresses) {
        if (Result<> added = program.value().add_local_address(address); !added) {
            return added;
        }
    }
    return program.value().attach(interface, mode);
}

Result<> detach(const std::string& interface) {
    Result<AttachedProgram> attached = find_attached_program(interface);
    if (!attached) {
        return attached.error();
    }
    if (Result<> is_decap = check_is_decap(attached.value(), interface); !is_decap) {
        return is_decap;
    }

    // XDP_FLAGS_REPLACE makes the kernel detach only this program id.
    bpf_xdp_attach_opts options{};
    options.sz = sizeof(options);
    options.old_prog_fd = attached.value().fd.get();
    std::uint32_t flags = xdp_flags(attached.value().mode) | XDP_FLAGS_REPLACE;

    LibbpfLogCapture capture;
    if (int err = bpf_xdp_detach(attached.value().interface_index, flags, &options); err < 0) {
        return make_error(-err, "detaching XDP program " + std::string(program_name) + " from interface " +
                                    quoted(interface), capture.text());
    }
    return {};
}

Result<AttachedDecap> read_attached(const std::string& interface) {
    Result<AttachedProgram> attached = find_attached_program(interface);
    if (!attached) {
        return attached.error();
    }
    if (Result<> is_decap = check_is_decap(attached.value(), interface); !is_decap) {
        return is_decap.error();
    }

    Result<FileDescriptor> map_fd = open_counters_map(attached.value(), interface);
    if (!map_fd) {
        return map_fd.error();
    }
    Result<DecapCounters> counters = sum_counters(map_fd.value().get());
    if (!counters) {
        return counters.error();
    }
    return AttachedDecap{attached.value().id, attached.value().mode, counters.value()};
}

}  // namespace sluice::bpf
