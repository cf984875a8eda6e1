// Loader for the sluice-decap XDP program (decap.bpf.c): loads it from the
// embedded libbpf skeleton, fills its local address map, attaches it to an
// interface and reads the counters of an attached copy.
//
// Every fallible call returns a Result that contains either the value or an
// Error. No call throws for a failure of the kernel or of libbpf, and none
// exits the process.
//
// NOTE: libbpf routes its log through one process-wide callback. While a call
// of this library runs, it swaps in a callback that records the log text into
// the returned Error and restores the previous one afterwards, so calls from
// several threads at once must be serialized by the caller.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "decap_abi.h"

struct sluice_decap;  // libbpf skeleton, generated from decap.bpf.o

namespace sluice::bpf {

// A failed operation: what failed, on which interface, and the errno value
// together with libbpf's own log lines when libbpf reported any.
struct Error {
    int code = 0;  // positive errno value, 0 when no system error applies
    std::string message;
};

// Value of type T or an Error. Result<> carries no value.
template <typename T = std::monostate>
class [[nodiscard]] Result {
public:
    Result() requires std::is_same_v<T, std::monostate> : state_(std::monostate{}) {}
    Result(T value) : state_(std::move(value)) {}
    Result(Error error) : state_(std::move(error)) {}

    bool has_value() const { return std::holds_alternative<T>(state_); }
    explicit operator bool() const { return has_value(); }

    // Precondition: has_value().
    T& value() & { return std::get<T>(state_); }
    const T& value() const& { return std::get<T>(state_); }
    T&& value() && { return std::get<T>(std::move(state_)); }

    // Precondition: !has_value().
    const Error& error() const { return std::get<Error>(state_); }

private:
    std::variant<T, Error> state_;
};

// An IPv4 or IPv6 address in network byte order.
struct IpAddress {
    enum class Family : std::uint8_t { ipv4 = SLUICE_DECAP_FAMILY_IPV4, ipv6 = SLUICE_DECAP_FAMILY_IPV6 };

    Family family = Family::ipv4;
    std::array<std::uint8_t, 16> bytes{};  // IPv4 uses bytes[0..3]

    // Parses dotted-quad IPv4 or RFC 4291 IPv6 text (inet_pton).
    static Result<IpAddress> parse(std::string_view text);

    std::string to_string() const;
    friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

enum class XdpMode {
    native,   // driver mode, XDP_FLAGS_DRV_MODE
    generic,  // skb mode (XDP_FLAGS_SKB_MODE), which works on every interface but runs later and slower
};

std::string_view to_string(XdpMode mode);

// Summed per-CPU counters, indexed by enum sluice_decap_counter.
struct DecapCounters {
    std::array<std::uint64_t, SLUICE_DECAP_COUNTER_COUNT> values{};

    std::uint64_t operator[](sluice_decap_counter counter) const { return values[counter]; }

    // Name used in stats output, for example "decapsulated_ipv4".
    static std::string_view name(sluice_decap_counter counter);
    // One-line explanation of what the counter counts.
    static std::string_view description(sluice_decap_counter counter);
};

// GUE's default UDP destination port, as in sluiced
// (SLUICE_GUE_DEFAULT_PORT).
inline constexpr std::uint16_t kDefaultGuePort = 6080;

// The decap program and its maps, loaded into the kernel. Destroying it
// closes the file descriptors, but an attachment made with attach() stays.
class DecapProgram {
public:
    // Opens the embedded BPF object and loads it into the kernel, taking GUE
    // on UDP port gue_port (0: no GUE). Needs CAP_BPF and CAP_NET_ADMIN (in
    // practice: root).
    static Result<DecapProgram> load(std::uint16_t gue_port = kDefaultGuePort);

    DecapProgram(DecapProgram&&) noexcept;
    DecapProgram& operator=(DecapProgram&&) noexcept;
    ~DecapProgram();

    // Adds an outer destination address for which packets are decapsulated.
    Result<> add_local_address(const IpAddress& address);

    // Attaches the program to the interface with bpf_xdp_attach. The
    // attachment outlives this object and the process. Replaces an attached
    // sluice-decap program in the same mode, and fails when the interface
    // has another XDP program or a sluice-decap program in the other mode.
    Result<> attach(const std::string& interface, XdpMode mode);

    int program_fd() const;
    Result<DecapCounters> read_counters() const;

private:
    struct SkeletonDeleter {
        void operator()(struct sluice_decap* skeleton) const;
    };

    explicit DecapProgram(std::unique_ptr<struct sluice_decap, SkeletonDeleter> skeleton);

    std::unique_ptr<struct sluice_decap, SkeletonDeleter> skeleton_;
};

// The sluice-decap program attached to an interface, as read by bpf_xdp_query.
struct AttachedDecap {
    std::uint32_t program_id = 0;
    XdpMode mode = XdpMode::native;
    DecapCounters counters;
};

// Returns every IPv4 and IPv6 address configured on the interface
// (getifaddrs), including IPv6 link-local addresses.
Result<std::vector<IpAddress>> interface_addresses(const std::string& interface);

// Loads the program, adds the local addresses and attaches it. An empty
// address list means every address of the interface at this moment. The
// map is not updated when addresses change later.
Result<> attach(const std::string& interface, XdpMode mode, std::span<const IpAddress> local_addresses,
                std::uint16_t gue_port = kDefaultGuePort);

// Detaches the sluice-decap program from the interface. Fails without
// changing anything when no XDP program or a different one is attached.
Result<> detach(const std::string& interface);

// Finds the sluice-decap program attached to the interface and sums its
// per-CPU counters. Counters start at zero with every attach.
Result<AttachedDecap> read_attached(const std::string& interface);

}  // namespace sluice::bpf
