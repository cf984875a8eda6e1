// Tests of the sluice-decap XDP program and its loader.
//
// DecapProgramTest loads the real program and runs it with BPF_PROG_TEST_RUN
// on frames built byte by byte here. DecapNetnsTest attaches it with the
// sluice-decap CLI to a veth inside a network namespace that the test creates,
// sends real IP-in-IP frames from the other end of the pair and checks that
// the kernel delivers the inner UDP datagrams. Both need root, and without it
// they fail with a message naming what is missing.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "decap_loader.h"

extern char** environ;

namespace {

using sluice::bpf::DecapCounters;
using sluice::bpf::DecapProgram;
using sluice::bpf::IpAddress;
using sluice::bpf::Result;
using sluice::bpf::XdpMode;

using Bytes = std::vector<std::uint8_t>;
using MacAddress = std::array<std::uint8_t, 6>;
using Ipv4Address = std::array<std::uint8_t, 4>;
using Ipv6Address = std::array<std::uint8_t, 16>;

// Addresses from the documentation ranges (RFC 5737, RFC 3849).
constexpr MacAddress router_mac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
constexpr MacAddress backend_mac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
constexpr Ipv4Address load_balancer_ipv4 = {192, 0, 2, 1};
constexpr Ipv4Address backend_ipv4 = {192, 0, 2, 2};
constexpr Ipv4Address other_host_ipv4 = {192, 0, 2, 99};
constexpr Ipv4Address client_ipv4 = {198, 51, 100, 7};
constexpr Ipv4Address service_ipv4 = {203, 0, 113, 10};
constexpr Ipv6Address load_balancer_ipv6 = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
constexpr Ipv6Address backend_ipv6 = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02};
constexpr Ipv6Address other_host_ipv6 = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x99};
constexpr Ipv6Address client_ipv6 = {0x20, 0x01, 0x0d, 0xb8, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07};
constexpr Ipv6Address service_ipv6 = {0x20, 0x01, 0x0d, 0xb8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10};
constexpr std::uint16_t client_port = 40000;
constexpr std::uint16_t service_port = 5555;

constexpr std::uint16_t ethertype_ipv4 = 0x0800;
constexpr std::uint16_t ethertype_ipv6 = 0x86dd;
constexpr std::uint16_t ethertype_arp = 0x0806;
constexpr std::uint16_t tpid_8021q = 0x8100;
constexpr std::uint16_t tpid_8021ad = 0x88a8;

constexpr std::uint8_t protocol_hop_by_hop = 0;
constexpr std::uint8_t protocol_ipip = 4;
constexpr std::uint8_t protocol_tcp = 6;
constexpr std::uint8_t protocol_udp = 17;
constexpr std::uint8_t protocol_ipv6 = 41;

constexpr std::uint8_t ecn_ect0 = 0x2;
constexpr std::uint8_t ecn_ect1 = 0x1;
constexpr std::uint8_t ecn_ce = 0x3;

constexpr std::uint32_t xdp_pass = 2;  // enum xdp_action in linux/bpf.h

// ---------------------------------------------------------------------------
// Packet construction. Every header is written field by field in network
// byte order, independently of the program under test.

void append_u8(Bytes& bytes, std::uint8_t value) { bytes.push_back(value); }

void append_u16(Bytes& bytes, std::uint16_t value) {
    bytes.push_back(static_cast<std::uint8_t>(value >> 8));
    bytes.push_back(static_cast<std::uint8_t>(value));
}

void append_u32(Bytes& bytes, std::uint32_t value) {
    append_u16(bytes, static_cast<std::uint16_t>(value >> 16));
    append_u16(bytes, static_cast<std::uint16_t>(value));
}

template <typename Container>
void append(Bytes& bytes, const Container& more) {
    bytes.insert(bytes.end(), std::begin(more), std::end(more));
}

Bytes join(std::initializer_list<Bytes> parts) {
    Bytes joined;
    for (const Bytes& part : parts) {
        append(joined, part);
    }
    return joined;
}

// One's complement sum of 16-bit big-endian words (RFC 1071), not yet folded.
std::uint32_t add_to_checksum(std::uint32_t sum, const Bytes& bytes) {
    for (std::size_t i = 0; i + 1 < bytes.size(); i += 2) {
        sum += static_cast<std::uint32_t>(bytes[i] << 8 | bytes[i + 1]);
    }
    if (bytes.size() % 2 == 1) {
        sum += static_cast<std::uint32_t>(bytes.back() << 8);
    }
    return sum;
}

std::uint16_t finish_checksum(std::uint32_t sum) {
    while (sum > 0xffff) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return static_cast<std::uint16_t>(~sum);
}

void write_u16_at(Bytes& bytes, std::size_t offset, std::uint16_t value) {
    bytes[offset] = static_cast<std::uint8_t>(value >> 8);
    bytes[offset + 1] = static_cast<std::uint8_t>(value);
}

struct VlanTag {
    std::uint16_t tpid;
    std::uint16_t tci;
};

Bytes ethernet_header(std::uint16_t ethertype, std::initializer_list<VlanTag> tags = {}) {
    Bytes header;
    append(header, backend_mac);
    append(header, router_mac);
    for (const VlanTag& tag : tags) {
        append_u16(header, tag.tpid);
        append_u16(header, tag.tci);
    }
    append_u16(header, ethertype);
    return header;
}

struct Ipv4Fields {
    std::uint8_t protocol = protocol_udp;
    Ipv4Address source{};
    Ipv4Address destination{};
    std::size_t payload_length = 0;
    std::uint8_t tos = 0;
    Bytes options{};  // length must be a multiple of 4, at most 40
    std::uint16_t flags_and_fragment_offset = 0x4000;  // DF
};

Bytes ipv4_header(const Ipv4Fields& fields) {
    std::size_t header_length = 20 + fields.options.size();
    Bytes header;
    append_u8(header, static_cast<std::uint8_t>(0x40 | header_length / 4));
    append_u8(header, fields.tos);
    append_u16(header, static_cast<std::uint16_t>(header_length + fields.payload_length));
    append_u16(header, 0x1234);  // identification
    append_u16(header, fields.flags_and_fragment_offset);
    append_u8(header, 64);  // TTL
    append_u8(header, fields.protocol);
    append_u16(header, 0);  // checksum, filled below
    append(header, fields.source);
    append(header, fields.destination);
    append(header, fields.options);
    write_u16_at(header, 10, finish_checksum(add_to_checksum(0, header)));
    return header;
}

struct Ipv6Fields {
    std::uint8_t next_header = protocol_udp;
    Ipv6Address source{};
    Ipv6Address destination{};
    std::size_t payload_length = 0;
    std::uint8_t traffic_class = 0;
};

Bytes ipv6_header(const Ipv6Fields& fields) {
    Bytes header;
    append_u8(header, static_cast<std::uint8_t>(0x60 | fields.traffic_class >> 4));
    append_u8(header, static_cast<std::uint8_t>((fields.traffic_class & 0x0f) << 4));
    append_u16(header, 0);  // rest of the flow label
    append_u16(header, static_cast<std::uint16_t>(fields.payload_length));
    append_u8(header, fields.next_header);
    append_u8(header, 64);  // hop limit
    append(header, fields.source);
    append(header, fields.destination);
    return header;
}

// Pseudo-header sum for a transport checksum (RFC 768, RFC 8200 section 8.1).
template <std::size_t AddressLength>
std::uint32_t pseudo_header_sum(const std::array<std::uint8_t, AddressLength>& source,
                                const std::array<std::uint8_t, AddressLength>& destination, std::uint8_t protocol,
                                std::size_t length) {
    Bytes pseudo;
    append(pseudo, source);
    append(pseudo, destination);
    if constexpr (AddressLength == 4) {
        append_u8(pseudo, 0);
        append_u8(pseudo, protocol);
        append_u16(pseudo, static_cast<std::uint16_t>(length));
    } else {
        append_u32(pseudo, static_cast<std::uint32_t>(length));
        append_u16(pseudo, 0);
        append_u8(pseudo, 0);
        append_u8(pseudo, protocol);
    }
    return add_to_checksum(0, pseudo);
}

template <std::size_t AddressLength>
Bytes udp_datagram(const std::array<std::uint8_t, AddressLength>& source,
                   const std::array<std::uint8_t, AddressLength>& destination, const std::string& payload) {
    Bytes datagram;
    append_u16(datagram, client_port);
    append_u16(datagram, service_port);
    append_u16(datagram, static_cast<std::uint16_t>(8 + payload.size()));
    append_u16(datagram, 0);  // checksum, filled below
    append(datagram, payload);
    std::uint32_t sum = pseudo_header_sum(source, destination, protocol_udp, datagram.size());
    std::uint16_t checksum = finish_checksum(add_to_checksum(sum, datagram));
    write_u16_at(datagram, 6, checksum == 0 ? 0xffff : checksum);
    return datagram;
}

template <std::size_t AddressLength>
Bytes tcp_syn_segment(const std::array<std::uint8_t, AddressLength>& source,
                      const std::array<std::uint8_t, AddressLength>& destination) {
    Bytes segment;
    append_u16(segment, client_port);
    append_u16(segment, service_port);
    append_u32(segment, 1);       // sequence number
    append_u32(segment, 0);       // acknowledgment number
    append_u8(segment, 5 << 4);   // data offset: 20 bytes
    append_u8(segment, 0x02);     // SYN
    append_u16(segment, 65535);   // window
    append_u16(segment, 0);       // checksum, filled below
    append_u16(segment, 0);       // urgent pointer
    std::uint32_t sum = pseudo_header_sum(source, destination, protocol_tcp, segment.size());
    write_u16_at(segment, 16, finish_checksum(add_to_checksum(sum, segment)));
    return segment;
}

// Inner packets: a client's UDP datagram to the service address.
Bytes inner_ipv4_udp(std::uint8_t tos = 0, const std::string& payload = "inner ipv4 payload") {
    Bytes udp = udp_datagram(client_ipv4, service_ipv4, payload);
    return join({ipv4_header({.protocol = protocol_udp,
                              .source = client_ipv4,
                              .destination = service_ipv4,
                              .payload_length = udp.size(),
                              .tos = tos}),
                 udp});
}

Bytes inner_ipv6_udp(std::uint8_t traffic_class = 0, const std::string& payload = "inner ipv6 payload") {
    Bytes udp = udp_datagram(client_ipv6, service_ipv6, payload);
    return join({ipv6_header({.next_header = protocol_udp,
                              .source = client_ipv6,
                              .destination = service_ipv6,
                              .payload_length = udp.size(),
                              .traffic_class = traffic_class}),
                 udp});
}

// Outer headers from the load balancer to a backend address.
Bytes outer_ipv4(const Bytes& inner, Ipv4Address destination = backend_ipv4, std::uint8_t tos = 0,
                 const Bytes& options = {}) {
    std::uint8_t protocol = (inner[0] >> 4) == 4 ? protocol_ipip : protocol_ipv6;
    return ipv4_header({.protocol = protocol,
                        .source = load_balancer_ipv4,
                        .destination = destination,
                        .payload_length = inner.size(),
                        .tos = tos,
                        .options = options});
}

Bytes outer_ipv6(const Bytes& inner, Ipv6Address destination = backend_ipv6, std::uint8_t traffic_class = 0) {
    std::uint8_t next_header = (inner[0] >> 4) == 4 ? protocol_ipip : protocol_ipv6;
    return ipv6_header({.next_header = next_header,
                        .source = load_balancer_ipv6,
                        .destination = destination,
                        .payload_length = inner.size(),
                        .traffic_class = traffic_class});
}

// GUE variant 1 from the load balancer: UDP to the GUE port, checksum 0 unless given, whose
// payload is the inner packet.
Bytes gue_udp_header(const Bytes& inner, std::uint16_t port = 6080, std::uint16_t checksum = 0) {
    Bytes header;
    append_u16(header, 49999);
    append_u16(header, port);
    append_u16(header, static_cast<std::uint16_t>(8 + inner.size()));
    append_u16(header, checksum);
    return header;
}

Bytes outer_ipv4_gue(const Bytes& inner, std::uint16_t port = 6080, std::uint16_t checksum = 0) {
    return join({ipv4_header({.protocol = protocol_udp,
                              .source = load_balancer_ipv4,
                              .destination = backend_ipv4,
                              .payload_length = 8 + inner.size()}),
                 gue_udp_header(inner, port, checksum)});
}

Bytes outer_ipv6_gue(const Bytes& inner, std::uint16_t port = 6080) {
    return join({ipv6_header({.next_header = protocol_udp,
                              .source = load_balancer_ipv6,
                              .destination = backend_ipv6,
                              .payload_length = 8 + inner.size()}),
                 gue_udp_header(inner, port)});
}

std::string hex(const Bytes& bytes) {
    std::string text;
    char digits[4];
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        std::snprintf(digits, sizeof(digits), "%02x", bytes[i]);
        text += digits;
        text += (i % 16 == 15) ? "\n" : " ";
    }
    return text;
}

// ---------------------------------------------------------------------------
// BPF_PROG_TEST_RUN tests

constexpr const char* missing_privilege_hint =
    "These tests load the real XDP program and need root (CAP_BPF and CAP_NET_ADMIN) on a kernel "
    "with the bpf() syscall and BPF_PROG_TEST_RUN for XDP.";

struct TestRunOutput {
    std::uint32_t verdict = 0;
    Bytes frame;
};

class DecapProgramTest : public ::testing::Test {
protected:
    void SetUp() override {
        Result<DecapProgram> loaded = DecapProgram::load();
        ASSERT_TRUE(loaded.has_value()) << "loading the decap program failed: " << loaded.error().message << "\n"
                                        << (loaded.error().code == EPERM || loaded.error().code == ENOSYS
                                                ? missing_privilege_hint
                                                : "");
        program_.emplace(std::move(loaded).value());

        for (const char* text : {"192.0.2.2", "2001:db8::2"}) {
            Result<IpAddress> address = IpAddress::parse(text);
            ASSERT_TRUE(address.has_value()) << address.error().message;
            Result<> added = program_->add_local_address(address.value());
            ASSERT_TRUE(added.has_value()) << added.error().message;
        }
    }

    DecapCounters read_counters() {
        Result<DecapCounters> counters = program_->read_counters();
        EXPECT_TRUE(counters.has_value()) << counters.error().message;
        return counters ? counters.value() : DecapCounters{};
    }

    TestRunOutput run(const Bytes& frame) {
        TestRunOutput output;
        output.frame.resize(4096);
        bpf_test_run_opts options{};
        options.sz = sizeof(options);
        options.data_in = frame.data();
        options.data_size_in = static_cast<std::uint32_t>(frame.size());
        options.data_out = output.frame.data();
        options.data_size_out = static_cast<std::uint32_t>(output.frame.size());
        options.repeat = 1;
        int err = bpf_prog_test_run_opts(program_->program_fd(), &options);
        if (err < 0) {
            ADD_FAILURE() << "bpf_prog_test_run_opts failed: " << std::strerror(-err) << "\n"
                          << missing_privilege_hint;
            output.verdict = ~0u;
            output.frame.clear();
            return output;
        }
        output.verdict = options.retval;
        output.frame.resize(options.data_size_out);
        return output;
    }

    // Checks that between the two readings exactly one packet was counted,
    // and that it was counted under expected.
    static void expect_counted_once(const DecapCounters& before, const DecapCounters& after,
                                    sluice_decap_counter expected) {
        for (int index = 0; index < SLUICE_DECAP_COUNTER_COUNT; ++index) {
            auto counter = static_cast<sluice_decap_counter>(index);
            std::uint64_t expected_increase = counter == expected ? 1 : 0;
            EXPECT_EQ(after[counter] - before[counter], expected_increase)
                << "counter " << DecapCounters::name(counter);
        }
    }

    void expect_decapsulated(const Bytes& frame, const Bytes& expected_frame, sluice_decap_counter counter) {
        DecapCounters before = read_counters();
        TestRunOutput output = run(frame);
        EXPECT_EQ(output.verdict, xdp_pass);
        EXPECT_EQ(hex(output.frame), hex(expected_frame));
        expect_counted_once(before, read_counters(), counter);
    }

    void expect_passed_untouched(const Bytes& frame, sluice_decap_counter counter) {
        DecapCounters before = read_counters();
        TestRunOutput output = run(frame);
        EXPECT_EQ(output.verdict, xdp_pass);
        EXPECT_EQ(hex(output.frame), hex(frame));
        expect_counted_once(before, read_counters(), counter);
    }

    std::optional<DecapProgram> program_;
};

TEST_F(DecapProgramTest, GueIsStrippedForEveryFamilyPair) {
    Bytes inner4 = inner_ipv4_udp();
    Bytes inner6 = inner_ipv6_udp();
    expect_decapsulated(join({ethernet_header(ethertype_ipv4), outer_ipv4_gue(inner4), inner4}),
                        join({ethernet_header(ethertype_ipv4), inner4}), SLUICE_DECAP_DECAPSULATED_IPV4);
    expect_decapsulated(join({ethernet_header(ethertype_ipv4), outer_ipv4_gue(inner6), inner6}),
                        join({ethernet_header(ethertype_ipv6), inner6}), SLUICE_DECAP_DECAPSULATED_IPV6);
    expect_decapsulated(join({ethernet_header(ethertype_ipv6), outer_ipv6_gue(inner6), inner6}),
                        join({ethernet_header(ethertype_ipv6), inner6}), SLUICE_DECAP_DECAPSULATED_IPV6);
    expect_decapsulated(join({ethernet_header(ethertype_ipv6), outer_ipv6_gue(inner4), inner4}),
                        join({ethernet_header(ethertype_ipv4), inner4}), SLUICE_DECAP_DECAPSULATED_IPV4);
    expect_decapsulated(
        join({ethernet_header(ethertype_ipv6, {{0x8100, 0x0064}}), outer_ipv6_gue(inner4), inner4}),
        join({ethernet_header(ethertype_ipv4, {{0x8100, 0x0064}}), inner4}), SLUICE_DECAP_DECAPSULATED_IPV4);
}

TEST_F(DecapProgramTest, UdpThatIsNotGuePassesUntouched) {
    Bytes inner4 = inner_ipv4_udp();
    // Another UDP port: a service of the backend's own.
    expect_passed_untouched(join({ethernet_header(ethertype_ipv4), outer_ipv4_gue(inner4, 53), inner4}),
                            SLUICE_DECAP_PASSED_UDP_NOT_GUE);
    expect_passed_untouched(join({ethernet_header(ethertype_ipv6), outer_ipv6_gue(inner4, 6081), inner4}),
                            SLUICE_DECAP_PASSED_UDP_NOT_GUE);
    // A GUE header (variant 0) starts with the bits 00 instead of an IP version.
    Bytes variant0 = join({Bytes{0x00, 0x04, 0x00, 0x00}, inner4});
    expect_passed_untouched(join({ethernet_header(ethertype_ipv4), outer_ipv4_gue(variant0), variant0}),
                            SLUICE_DECAP_PASSED_NOT_IPIP);
    // A UDP checksum is left to the kernel, which can verify it.
    expect_passed_untouched(join({ethernet_header(ethertype_ipv4), outer_ipv4_gue(inner4, 6080, 0x1234), inner4}),
                            SLUICE_DECAP_PASSED_GUE_CHECKSUM);
    // A UDP length that disagrees with the IP length.
    Bytes frame = join({ethernet_header(ethertype_ipv4), outer_ipv4_gue(inner4), inner4});
    write_u16_at(frame, 14 + 20 + 4, static_cast<std::uint16_t>(8 + inner4.size() - 1));
    expect_passed_untouched(frame, SLUICE_DECAP_PASSED_MALFORMED);
}

TEST_F(DecapProgramTest, GuePortIsAnOption) {
    Result<DecapProgram> loaded = DecapProgram::load(7000);
    ASSERT_TRUE(loaded.has_value()) << loaded.error().message;
    program_.emplace(std::move(loaded).value());
    for (const char* text : {"192.0.2.2", "2001:db8::2"}) {
        ASSERT_TRUE(program_->add_local_address(IpAddress::parse(text).value()).has_value());
    }
    Bytes inner4 = inner_ipv4_udp();
    expect_decapsulated(join({ethernet_header(ethertype_ipv4), outer_ipv4_gue(inner4, 7000), inner4}),
                        join({ethernet_header(ethertype_ipv4), inner4}), SLUICE_DECAP_DECAPSULATED_IPV4);
    expect_passed_untouched(join({ethernet_header(ethertype_ipv4), outer_ipv4_gue(inner4, 6080), inner4}),
                            SLUICE_DECAP_PASSED_UDP_NOT_GUE);

    // Port 0 turns GUE off.
    Result<DecapProgram> off = DecapProgram::load(0);
    ASSERT_TRUE(off.has_value()) << off.error().message;
    program_.emplace(std::move(off).value());
    ASSERT_TRUE(program_->add_local_address(IpAddress::parse("192.0.2.2").value()).has_value());
    Bytes zero_port = join({ethernet_header(ethertype_ipv4), outer_ipv4_gue(inner4, 0), inner4});
    expect_passed_untouched(zero_port, SLUICE_DECAP_PASSED_UDP_NOT_GUE);
}

TEST_F(DecapProgramTest, Ipv4InIpv4IsStripped) {
    Bytes inner = inner_ipv4_udp();
    Bytes frame = join({ethernet_header(ethertype_ipv4), outer_ipv4(inner), inner});
    Bytes expected = join({ethernet_header(ethertype_ipv4), inner});

    expect_decapsulated(frame, expected, SLUICE_DECAP_DECAPSULATED_IPV4);
}

TEST_F(DecapProgramTest, Ipv4OuterOptionsAreStripped) {
    Bytes inner = inner_ipv4_udp();
    // Options of 4 bytes (IHL 6) and of the maximum 40 bytes (IHL 15): NOPs
    // closed by an End of Options List byte.
    for (std::size_t options_length : {4u, 40u}) {
        SCOPED_TRACE("options length " + std::to_string(options_length));
        Bytes options(options_length, 0x01);
        options.back() = 0x00;
        Bytes frame = join({ethernet_header(ethertype_ipv4), outer_ipv4(inner, backend_ipv4, 0, options), inner});
        Bytes expected = join({ethernet_header(ethertype_ipv4), inner});

        expect_decapsulated(frame, expected, SLUICE_DECAP_DECAPSULATED_IPV4);
    }
}

TEST_F(DecapProgramTest, Ipv6InIpv6IsStripped) {
    Bytes inner = inner_ipv6_udp();
    Bytes frame = join({ethernet_header(ethertype_ipv6), outer_ipv6(inner), inner});
    Bytes expected = join({ethernet_header(ethertype_ipv6), inner});

    expect_decapsulated(frame, expected, SLUICE_DECAP_DECAPSULATED_IPV6);
}

TEST_F(DecapProgramTest, Ipv6InIpv4IsStripped) {
    Bytes inner = inner_ipv6_udp();
    Bytes frame = join({ethernet_header(ethertype_ipv4), outer_ipv4(inner), inner});
    Bytes expected = join({ethernet_header(ethertype_ipv6), inner});

    expect_decapsulated(frame, expected, SLUICE_DECAP_DECAPSULATED_IPV6);
}

TEST_F(DecapProgramTest, Ipv4InIpv6IsStripped) {
    Bytes inner = inner_ipv4_udp();
    Bytes frame = join({ethernet_header(ethertype_ipv6), outer_ipv6(inner), inner});
    Bytes expected = join({ethernet_header(ethertype_ipv4), inner});

    expect_decapsulated(frame, expected, SLUICE_DECAP_DECAPSULATED_IPV4);
}

TEST_F(DecapProgramTest, OneVlanTagIsKept) {
    Bytes inner = inner_ipv4_udp();
    Bytes frame = join({ethernet_header(ethertype_ipv4, {{tpid_8021q, 0x0064}}), outer_ipv4(inner), inner});
    Bytes expected = join({ethernet_header(ethertype_ipv4, {{tpid_8021q, 0x0064}}), inner});

    expect_decapsulated(frame, expected, SLUICE_DECAP_DECAPSULATED_IPV4);
}

TEST_F(DecapProgramTest, TwoVlanTagsAreKept) {
    // Outer IPv6 carrying IPv4 behind an 802.1ad service tag and an 802.1Q
    // customer tag, so the last EtherType changes family as well.
    Bytes inner = inner_ipv4_udp();
    std::initializer_list<VlanTag> tags = {{tpid_8021ad, 0x00c8}, {tpid_8021q, 0x2064}};
    Bytes frame = join({ethernet_header(ethertype_ipv6, tags), outer_ipv6(inner), inner});
    Bytes expected = join({ethernet_header(ethertype_ipv4, tags), inner});

    expect_decapsulated(frame, expected, SLUICE_DECAP_DECAPSULATED_IPV4);
}

TEST_F(DecapProgramTest, TwoVlanTagsWithIpv4OptionsAreKept) {
    Bytes inner = inner_ipv6_udp();
    std::initializer_list<VlanTag> tags = {{tpid_8021ad, 0x00c8}, {tpid_8021q, 0x2064}};
    Bytes options(12, 0x01);
    Bytes frame = join({ethernet_header(ethertype_ipv4, tags), outer_ipv4(inner, backend_ipv4, 0, options), inner});
    Bytes expected = join({ethernet_header(ethertype_ipv6, tags), inner});

    expect_decapsulated(frame, expected, SLUICE_DECAP_DECAPSULATED_IPV6);
}

TEST_F(DecapProgramTest, ThreeVlanTagsPassUntouched) {
    Bytes inner = inner_ipv4_udp();
    Bytes frame = join({ethernet_header(ethertype_ipv4, {{tpid_8021ad, 1}, {tpid_8021q, 2}, {tpid_8021q, 3}}),
                        outer_ipv4(inner), inner});

    expect_passed_untouched(frame, SLUICE_DECAP_PASSED_NOT_IPIP);
}

TEST_F(DecapProgramTest, EthernetPaddingIsKept) {
    // A frame padded after the outer packet keeps its padding, and the
    // kernel trims it by the inner length field.
    Bytes inner = inner_ipv4_udp(0, "x");
    Bytes padding(6, 0x00);
    Bytes frame = join({ethernet_header(ethertype_ipv4), outer_ipv4(inner), inner, padding});
    Bytes expected = join({ethernet_header(ethertype_ipv4), inner, padding});

    expect_decapsulated(frame, expected, SLUICE_DECAP_DECAPSULATED_IPV4);
}

TEST_F(DecapProgramTest, NonLocalDestinationPassesUntouched) {
    Bytes inner4 = inner_ipv4_udp();
    Bytes inner6 = inner_ipv6_udp();

    expect_passed_untouched(join({ethernet_header(ethertype_ipv4), outer_ipv4(inner4, other_host_ipv4), inner4}),
                            SLUICE_DECAP_PASSED_NOT_LOCAL);
    expect_passed_untouched(join({ethernet_header(ethertype_ipv6), outer_ipv6(inner6, other_host_ipv6), inner6}),
                            SLUICE_DECAP_PASSED_NOT_LOCAL);
}

TEST_F(DecapProgramTest, PlainTcpPassesUntouched) {
    Bytes tcp4 = tcp_syn_segment(client_ipv4, backend_ipv4);
    Bytes tcp6 = tcp_syn_segment(client_ipv6, backend_ipv6);
    Bytes frame4 = join({ethernet_header(ethertype_ipv4),
                         ipv4_header({.protocol = protocol_tcp,
                                      .source = client_ipv4,
                                      .destination = backend_ipv4,
                                      .payload_length = tcp4.size()}),
                         tcp4});
    Bytes frame6 = join({ethernet_header(ethertype_ipv6),
                         ipv6_header({.next_header = protocol_tcp,
                                      .source = client_ipv6,
                                      .destination = backend_ipv6,
                                      .payload_length = tcp6.size()}),
                         tcp6});

    expect_passed_untouched(frame4, SLUICE_DECAP_PASSED_NOT_IPIP);
    expect_passed_untouched(frame6, SLUICE_DECAP_PASSED_NOT_IPIP);
}

TEST_F(DecapProgramTest, ArpPassesUntouched) {
    Bytes arp = {0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01};
    append(arp, router_mac);
    append(arp, load_balancer_ipv4);
    append(arp, MacAddress{});
    append(arp, backend_ipv4);

    expect_passed_untouched(join({ethernet_header(ethertype_arp), arp}), SLUICE_DECAP_PASSED_NOT_IPIP);
}

TEST_F(DecapProgramTest, TruncatedFramesPassUntouched) {
    // Every cut of these frames, from a bare Ethernet header to one byte
    // short, truncates a header or the packet that the outer length field
    // announces. BPF_PROG_TEST_RUN rejects frames shorter than 14 bytes.
    Bytes inner4 = inner_ipv4_udp();
    Bytes inner6 = inner_ipv6_udp();
    std::vector<Bytes> frames = {
        join({ethernet_header(ethertype_ipv4, {{tpid_8021q, 1}}), outer_ipv4(inner4, backend_ipv4, 0, Bytes(8, 1)),
              inner4}),
        join({ethernet_header(ethertype_ipv6, {{tpid_8021ad, 1}, {tpid_8021q, 2}}), outer_ipv6(inner6), inner6}),
    };

    for (const Bytes& frame : frames) {
        for (std::size_t length = 14; length < frame.size(); ++length) {
            SCOPED_TRACE("frame of " + std::to_string(frame.size()) + " bytes cut to " + std::to_string(length));
            expect_passed_untouched(Bytes(frame.begin(), frame.begin() + static_cast<long>(length)),
                                    SLUICE_DECAP_PASSED_MALFORMED);
        }
    }
}

TEST_F(DecapProgramTest, InvalidOuterIhlIsMalformed) {
    Bytes inner = inner_ipv4_udp();
    Bytes outer = outer_ipv4(inner);
    outer[0] = 0x44;  // IHL 4: shorter than the fixed header

    expect_passed_untouched(join({ethernet_header(ethertype_ipv4), outer, inner}), SLUICE_DECAP_PASSED_MALFORMED);
}

TEST_F(DecapProgramTest, OuterVersionMismatchIsMalformed) {
    Bytes inner = inner_ipv4_udp();
    Bytes outer = outer_ipv4(inner);
    outer[0] = 0x65;  // version 6 behind EtherType IPv4

    expect_passed_untouched(join({ethernet_header(ethertype_ipv4), outer, inner}), SLUICE_DECAP_PASSED_MALFORMED);
}

TEST_F(DecapProgramTest, InnerVersionMismatchIsMalformed) {
    // Protocol 4 announces IPv4, but an IPv6 packet follows.
    Bytes inner = inner_ipv6_udp();
    Bytes outer = ipv4_header({.protocol = protocol_ipip,
                               .source = load_balancer_ipv4,
                               .destination = backend_ipv4,
                               .payload_length = inner.size()});

    expect_passed_untouched(join({ethernet_header(ethertype_ipv4), outer, inner}), SLUICE_DECAP_PASSED_MALFORMED);
}

TEST_F(DecapProgramTest, OuterLengthBelowInnerHeaderIsMalformed) {
    // The outer total length leaves 10 bytes of payload, less than an inner
    // IPv4 header, although the frame contains the whole inner packet.
    Bytes inner = inner_ipv4_udp();
    Bytes outer = ipv4_header({.protocol = protocol_ipip,
                               .source = load_balancer_ipv4,
                               .destination = backend_ipv4,
                               .payload_length = 10});

    expect_passed_untouched(join({ethernet_header(ethertype_ipv4), outer, inner}), SLUICE_DECAP_PASSED_MALFORMED);
}

TEST_F(DecapProgramTest, BadOuterChecksumPassesUntouched) {
    Bytes inner = inner_ipv4_udp();
    Bytes outer = outer_ipv4(inner);
    outer[11] ^= 0x01;

    expect_passed_untouched(join({ethernet_header(ethertype_ipv4), outer, inner}), SLUICE_DECAP_PASSED_BAD_CHECKSUM);
}

TEST_F(DecapProgramTest, OuterFragmentsPassUntouched) {
    Bytes inner = inner_ipv4_udp();
    // First fragment (more fragments), and a later one (offset 8 bytes).
    for (std::uint16_t flags_and_offset : {std::uint16_t{0x2000}, std::uint16_t{0x0001}}) {
        SCOPED_TRACE("flags and fragment offset " + std::to_string(flags_and_offset));
        Bytes outer = ipv4_header({.protocol = protocol_ipip,
                                   .source = load_balancer_ipv4,
                                   .destination = backend_ipv4,
                                   .payload_length = inner.size(),
                                   .flags_and_fragment_offset = flags_and_offset});

        expect_passed_untouched(join({ethernet_header(ethertype_ipv4), outer, inner}), SLUICE_DECAP_PASSED_FRAGMENT);
    }
}

TEST_F(DecapProgramTest, Ipv6ExtensionHeaderPassesUntouched) {
    // Hop-by-Hop Options header (8 bytes: next header 41, length 0, PadN)
    // in front of an inner IPv6 packet.
    Bytes inner = inner_ipv6_udp();
    Bytes hop_by_hop = {protocol_ipv6, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00};
    Bytes outer = ipv6_header({.next_header = protocol_hop_by_hop,
                               .source = load_balancer_ipv6,
                               .destination = backend_ipv6,
                               .payload_length = hop_by_hop.size() + inner.size()});

    expect_passed_untouched(join({ethernet_header(ethertype_ipv6), outer, hop_by_hop, inner}),
                            SLUICE_DECAP_PASSED_IPV6_EXTENSION_HEADER);
}

TEST_F(DecapProgramTest, OuterCeIsCopiedToInner) {
    // RFC 6040: outer CE on an ECN-capable inner packet makes the inner
    // packet CE. The expected IPv4 header is built with CE from the start,
    // so its checksum checks the program's incremental update.
    Bytes inner4 = inner_ipv4_udp(0xb8 | ecn_ect0);
    Bytes frame4 = join({ethernet_header(ethertype_ipv4), outer_ipv4(inner4, backend_ipv4, ecn_ce), inner4});
    Bytes expected4 = join({ethernet_header(ethertype_ipv4), inner_ipv4_udp(0xb8 | ecn_ce)});
    expect_decapsulated(frame4, expected4, SLUICE_DECAP_DECAPSULATED_IPV4);

    Bytes inner6 = inner_ipv6_udp(0xb8 | ecn_ect1);
    Bytes frame6 = join({ethernet_header(ethertype_ipv6), outer_ipv6(inner6, backend_ipv6, ecn_ce), inner6});
    Bytes expected6 = join({ethernet_header(ethertype_ipv6), inner_ipv6_udp(0xb8 | ecn_ce)});
    expect_decapsulated(frame6, expected6, SLUICE_DECAP_DECAPSULATED_IPV6);
}

TEST_F(DecapProgramTest, OuterEctLeavesInnerUnchanged) {
    Bytes inner = inner_ipv4_udp(ecn_ect0);
    Bytes frame = join({ethernet_header(ethertype_ipv4), outer_ipv4(inner, backend_ipv4, ecn_ect1), inner});
    Bytes expected = join({ethernet_header(ethertype_ipv4), inner});

    expect_decapsulated(frame, expected, SLUICE_DECAP_DECAPSULATED_IPV4);
}

TEST_F(DecapProgramTest, OuterCeOnNotEctInnerPassesUntouched) {
    Bytes inner = inner_ipv4_udp(0);
    Bytes frame = join({ethernet_header(ethertype_ipv4), outer_ipv4(inner, backend_ipv4, ecn_ce), inner});

    expect_passed_untouched(frame, SLUICE_DECAP_PASSED_ECN_CE_NOT_ECT);
}

TEST_F(DecapProgramTest, CountersSumPackets) {
    Bytes inner = inner_ipv4_udp();
    Bytes frame = join({ethernet_header(ethertype_ipv4), outer_ipv4(inner), inner});
    DecapCounters before = read_counters();

    for (int i = 0; i < 5; ++i) {
        EXPECT_EQ(run(frame).verdict, xdp_pass);
    }

    EXPECT_EQ(read_counters()[SLUICE_DECAP_DECAPSULATED_IPV4] - before[SLUICE_DECAP_DECAPSULATED_IPV4], 5u);
}

// ---------------------------------------------------------------------------
// Loader tests that need no kernel support

TEST(IpAddressParse, AcceptsIpv4AndIpv6) {
    Result<IpAddress> ipv4 = IpAddress::parse("192.0.2.2");
    ASSERT_TRUE(ipv4.has_value()) << ipv4.error().message;
    EXPECT_EQ(ipv4.value().family, IpAddress::Family::ipv4);
    EXPECT_EQ(ipv4.value().to_string(), "192.0.2.2");

    Result<IpAddress> ipv6 = IpAddress::parse("2001:db8:0::2");
    ASSERT_TRUE(ipv6.has_value()) << ipv6.error().message;
    EXPECT_EQ(ipv6.value().family, IpAddress::Family::ipv6);
    EXPECT_EQ(ipv6.value().to_string(), "2001:db8::2");
}

TEST(IpAddressParse, RejectsInvalidText) {
    for (const char* text : {"", "300.1.1.1", "192.0.2.0/24", "192.0.2", "2001:db8::1::2", "fe80::1%eth0", "host"}) {
        Result<IpAddress> address = IpAddress::parse(text);
        ASSERT_FALSE(address.has_value()) << "accepted '" << text << "'";
        EXPECT_NE(address.error().message.find("'" + std::string(text) + "'"), std::string::npos)
            << address.error().message;
    }
}

TEST(DecapCounterNames, MatchAbiOrder) {
    EXPECT_EQ(DecapCounters::name(SLUICE_DECAP_DECAPSULATED_IPV4), "decapsulated_ipv4");
    EXPECT_EQ(DecapCounters::name(SLUICE_DECAP_PASSED_MALFORMED), "passed_malformed");
    EXPECT_EQ(DecapCounters::name(SLUICE_DECAP_PASSED_ADJUST_HEAD_FAILED), "passed_adjust_head_failed");
}

// ---------------------------------------------------------------------------
// Command helpers for the CLI and network namespace tests

struct CommandResult {
    int exit_code = -1;  // 128 + signal number when killed by a signal
    std::string standard_output;
    std::string standard_error;

    std::string describe() const {
        return "exit code " + std::to_string(exit_code) + "\nstdout:\n" + standard_output + "\nstderr:\n" +
               standard_error;
    }
};

std::string read_and_remove(const std::string& path) {
    std::ifstream file(path);
    std::stringstream content;
    content << file.rdbuf();
    std::remove(path.c_str());
    return content.str();
}

// Runs a program found on PATH with stdin from /dev/null, and kills it
// (by its PID) when it runs longer than the timeout.
CommandResult run_command(const std::vector<std::string>& arguments,
                          std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    CommandResult result;
    char output_path[] = "/tmp/sluice-decap-test-stdout-XXXXXX";
    char error_path[] = "/tmp/sluice-decap-test-stderr-XXXXXX";
    int output_fd = mkstemp(output_path);
    int error_fd = mkstemp(error_path);
    if (output_fd < 0 || error_fd < 0) {
        result.standard_error = std::string("mkstemp failed: ") + std::strerror(errno);
        return result;
    }

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, output_fd, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, error_fd, STDERR_FILENO);

    std::vector<char*> argv;
    for (const std::string& argument : arguments) {
        argv.push_back(const_cast<char*>(argument.c_str()));
    }
    argv.push_back(nullptr);

    pid_t pid = 0;
    int spawn_error = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(output_fd);
    close(error_fd);
    if (spawn_error != 0) {
        read_and_remove(output_path);
        read_and_remove(error_path);
        result.standard_error = "starting '" + arguments[0] + "' failed: " + std::strerror(spawn_error);
        return result;
    }

    auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            result.standard_error = "timed out after " + std::to_string(timeout.count()) + " ms\n";
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    result.standard_output = read_and_remove(output_path);
    result.standard_error += read_and_remove(error_path);
    return result;
}

const std::string cli_path = SLUICE_DECAP_CLI_PATH;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(SluiceDecapCli, RejectsInvalidAddress) {
    CommandResult result = run_command({cli_path, "attach", "sl-none0", "--address", "300.1.1.1"});

    EXPECT_NE(result.exit_code, 0) << result.describe();
    EXPECT_TRUE(contains(result.standard_error, "--address")) << result.describe();
    EXPECT_TRUE(contains(result.standard_error, "'300.1.1.1'")) << result.describe();
}

TEST(SluiceDecapCli, RejectsInvalidMode) {
    CommandResult result = run_command({cli_path, "attach", "sl-none0", "--mode", "offload"});

    EXPECT_NE(result.exit_code, 0) << result.describe();
    EXPECT_TRUE(contains(result.standard_error, "--mode")) << result.describe();
    EXPECT_TRUE(contains(result.standard_error, "offload")) << result.describe();
}

TEST(SluiceDecapCli, RequiresSubcommand) {
    CommandResult result = run_command({cli_path});

    EXPECT_NE(result.exit_code, 0) << result.describe();
    EXPECT_TRUE(contains(result.standard_error, "subcommand")) << result.describe();
}

TEST(SluiceDecapCli, RequiresInterface) {
    CommandResult result = run_command({cli_path, "stats"});

    EXPECT_NE(result.exit_code, 0) << result.describe();
    EXPECT_TRUE(contains(result.standard_error, "interface")) << result.describe();
}

// ---------------------------------------------------------------------------
// Network namespace test

constexpr const char* load_balancer_interface = "sl-lb";
constexpr const char* backend_interface = "sl-backend";

// A network namespace made with `ip netns add` and deleted on destruction,
// which also removes the veth pair inside it.
class TestNamespace {
public:
    explicit TestNamespace(std::string name) : name_(std::move(name)) {
        // A namespace left by an earlier crashed run with the same PID.
        run_command({"ip", "netns", "delete", name_});
        CommandResult result = run_command({"ip", "netns", "add", name_});
        created_ = result.exit_code == 0;
        if (!created_) {
            creation_error_ = result.describe();
        }
    }
    ~TestNamespace() {
        if (created_) {
            CommandResult result = run_command({"ip", "netns", "delete", name_});
            if (result.exit_code != 0) {
                ADD_FAILURE() << "deleting network namespace " << name_ << " failed: " << result.describe();
            }
        }
    }
    TestNamespace(const TestNamespace&) = delete;
    TestNamespace& operator=(const TestNamespace&) = delete;

    const std::string& name() const { return name_; }
    bool created() const { return created_; }
    const std::string& creation_error() const { return creation_error_; }

    // Runs a command inside the namespace with `ip netns exec`.
    CommandResult run(std::vector<std::string> arguments) const {
        arguments.insert(arguments.begin(), {"ip", "netns", "exec", name_});
        return run_command(arguments);
    }

private:
    std::string name_;
    bool created_ = false;
    std::string creation_error_;
};

// Moves the calling thread into a named network namespace until destruction.
// Sockets opened meanwhile stay in that namespace.
class NamespaceEntry {
public:
    explicit NamespaceEntry(const std::string& name) {
        original_fd_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        int target_fd = open(("/var/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
        if (original_fd_ < 0 || target_fd < 0) {
            error_ = std::string("opening namespace files failed: ") + std::strerror(errno);
        } else if (setns(target_fd, CLONE_NEWNET) != 0) {
            error_ = std::string("setns into ") + name + " failed: " + std::strerror(errno);
        } else {
            entered_ = true;
        }
        if (target_fd >= 0) {
            close(target_fd);
        }
    }
    ~NamespaceEntry() {
        if (entered_ && setns(original_fd_, CLONE_NEWNET) != 0) {
            ADD_FAILURE() << "returning to the original network namespace failed: " << std::strerror(errno);
        }
        if (original_fd_ >= 0) {
            close(original_fd_);
        }
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

class Socket {
public:
    explicit Socket(int fd) : fd_(fd) {}
    ~Socket() {
        if (fd_ >= 0) {
            close(fd_);
        }
    }
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;

    int fd() const { return fd_; }

private:
    int fd_;
};

// Sends one frame out of an interface of the current network namespace.
::testing::AssertionResult send_frame(const std::string& interface, const Bytes& frame) {
    Socket packet_socket(socket(AF_PACKET, SOCK_RAW, 0));
    if (packet_socket.fd() < 0) {
        return ::testing::AssertionFailure() << "AF_PACKET socket failed: " << std::strerror(errno);
    }
    sockaddr_ll address{};
    address.sll_family = AF_PACKET;
    address.sll_ifindex = static_cast<int>(if_nametoindex(interface.c_str()));
    address.sll_halen = ETH_ALEN;
    std::memcpy(address.sll_addr, backend_mac.data(), ETH_ALEN);
    if (address.sll_ifindex == 0) {
        return ::testing::AssertionFailure() << "interface " << interface << " not found";
    }
    ssize_t sent = sendto(packet_socket.fd(), frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&address),
                          sizeof(address));
    if (sent != static_cast<ssize_t>(frame.size())) {
        return ::testing::AssertionFailure() << "sendto on " << interface << " failed: " << std::strerror(errno);
    }
    return ::testing::AssertionSuccess();
}

// Binds a UDP socket to the service address and port with a receive timeout.
int bind_service_socket(int family, std::chrono::milliseconds timeout) {
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    timeval receive_timeout{};
    receive_timeout.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    receive_timeout.tv_usec = static_cast<suseconds_t>(timeout.count() % 1000 * 1000);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &receive_timeout, sizeof(receive_timeout));

    int bound = -1;
    if (family == AF_INET) {
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(service_port);
        std::memcpy(&address.sin_addr, service_ipv4.data(), 4);
        bound = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    } else {
        sockaddr_in6 address{};
        address.sin6_family = AF_INET6;
        address.sin6_port = htons(service_port);
        std::memcpy(&address.sin6_addr, service_ipv6.data(), 16);
        bound = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    }
    if (bound != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

// Receives one datagram, or returns nullopt after the socket's timeout.
std::optional<std::string> receive_datagram(int fd) {
    char buffer[2048];
    ssize_t length = recv(fd, buffer, sizeof(buffer), 0);
    if (length < 0) {
        return std::nullopt;
    }
    return std::string(buffer, static_cast<std::size_t>(length));
}

std::string json_counter(const std::string& name, int value) {
    return "\"" + name + "\": " + std::to_string(value);
}

class DecapNetnsTest : public ::testing::TestWithParam<XdpMode> {};

}  // namespace

namespace sluice::bpf {
// Prints the mode by name in test failure messages.
void PrintTo(XdpMode mode, std::ostream* stream) { *stream << to_string(mode); }
}  // namespace sluice::bpf

namespace {

TEST_P(DecapNetnsTest, KernelReceivesInnerPackets) {
    const std::string mode(sluice::bpf::to_string(GetParam()));
    TestNamespace ns("sl-test-decap-" + std::to_string(getpid()));
    ASSERT_TRUE(ns.created()) << "creating network namespace " << ns.name()
                              << " failed. This test needs root and iproute2's 'ip' on PATH.\n"
                              << ns.creation_error();

    // The load balancer end (sl-lb) sends, the backend end (sl-backend) runs
    // the program. The service addresses are on lo as on a real backend, and
    // a route to the client makes the reverse path filter accept its source.
    const std::vector<std::vector<std::string>> setup = {
        {"link", "add", load_balancer_interface, "type", "veth", "peer", "name", backend_interface},
        {"link", "set", load_balancer_interface, "address", "02:00:00:00:00:01"},
        {"link", "set", backend_interface, "address", "02:00:00:00:00:02"},
        {"link", "set", "lo", "up"},
        {"link", "set", load_balancer_interface, "up"},
        {"link", "set", backend_interface, "up"},
        {"address", "add", "192.0.2.2/24", "dev", backend_interface},
        {"address", "add", "2001:db8::2/64", "dev", backend_interface, "nodad"},
        {"address", "add", "203.0.113.10/32", "dev", "lo"},
        {"address", "add", "2001:db8:100::10/128", "dev", "lo"},
        {"route", "add", "198.51.100.0/24", "dev", backend_interface},
        {"route", "add", "2001:db8:200::/64", "dev", backend_interface},
    };
    for (const std::vector<std::string>& step : setup) {
        std::vector<std::string> command = {"ip", "-n", ns.name()};
        command.insert(command.end(), step.begin(), step.end());
        CommandResult result = run_command(command);
        ASSERT_EQ(result.exit_code, 0) << "ip -n " << ns.name() << " " << step[0] << " " << step[1] << ": "
                                       << result.describe();
    }

    // Attach with the interface's own addresses, then again with explicit
    // ones, which replaces the first program.
    CommandResult attached = ns.run({cli_path, "attach", backend_interface, "--mode", mode});
    ASSERT_EQ(attached.exit_code, 0) << attached.describe();
    EXPECT_TRUE(contains(attached.standard_error, "192.0.2.2")) << attached.describe();
    attached = ns.run({cli_path, "attach", backend_interface, "--mode", mode, "--address", "192.0.2.2", "--address",
                       "2001:db8::2"});
    ASSERT_EQ(attached.exit_code, 0) << attached.describe();

    std::string other_mode = GetParam() == XdpMode::native ? "generic" : "native";
    CommandResult other = ns.run({cli_path, "attach", backend_interface, "--mode", other_mode});
    EXPECT_EQ(other.exit_code, 1) << other.describe();
    EXPECT_TRUE(contains(other.standard_error, "attached in " + mode + " mode")) << other.describe();

    CommandResult missing = ns.run({cli_path, "attach", "sl-missing0"});
    EXPECT_EQ(missing.exit_code, 1) << missing.describe();
    EXPECT_TRUE(contains(missing.standard_error, "interface 'sl-missing0' not found")) << missing.describe();

    Bytes inner4 = inner_ipv4_udp(0, "netns ipv4 payload");
    Bytes inner6 = inner_ipv6_udp(0, "netns ipv6 payload");
    Bytes frame4 = join({ethernet_header(ethertype_ipv4), outer_ipv4(inner4), inner4});
    Bytes frame6 = join({ethernet_header(ethertype_ipv6), outer_ipv6(inner6), inner6});
    {
        NamespaceEntry entry(ns.name());
        ASSERT_TRUE(entry.entered()) << entry.error();
        Socket service4(bind_service_socket(AF_INET, std::chrono::seconds(3)));
        Socket service6(bind_service_socket(AF_INET6, std::chrono::seconds(3)));
        ASSERT_GE(service4.fd(), 0) << "binding 203.0.113.10:5555 failed: " << std::strerror(errno);
        ASSERT_GE(service6.fd(), 0) << "binding [2001:db8:100::10]:5555 failed: " << std::strerror(errno);

        ASSERT_TRUE(send_frame(load_balancer_interface, frame4));
        EXPECT_EQ(receive_datagram(service4.fd()), std::optional<std::string>("netns ipv4 payload"));
        ASSERT_TRUE(send_frame(load_balancer_interface, frame6));
        EXPECT_EQ(receive_datagram(service6.fd()), std::optional<std::string>("netns ipv6 payload"));
    }

    CommandResult stats = ns.run({cli_path, "stats", backend_interface, "--json"});
    ASSERT_EQ(stats.exit_code, 0) << stats.describe();
    EXPECT_TRUE(contains(stats.standard_output, "\"mode\": \"" + mode + "\"")) << stats.describe();
    EXPECT_TRUE(contains(stats.standard_output, json_counter("decapsulated_ipv4", 1))) << stats.describe();
    EXPECT_TRUE(contains(stats.standard_output, json_counter("decapsulated_ipv6", 1))) << stats.describe();
    EXPECT_TRUE(contains(stats.standard_output, json_counter("passed_malformed", 0))) << stats.describe();

    CommandResult table = ns.run({cli_path, "stats", backend_interface});
    EXPECT_EQ(table.exit_code, 0) << table.describe();
    EXPECT_TRUE(contains(table.standard_output, "decapsulated_ipv4")) << table.describe();

    CommandResult detached = ns.run({cli_path, "detach", backend_interface});
    ASSERT_EQ(detached.exit_code, 0) << detached.describe();
    CommandResult stats_after = ns.run({cli_path, "stats", backend_interface});
    EXPECT_EQ(stats_after.exit_code, 1) << stats_after.describe();
    EXPECT_TRUE(contains(stats_after.standard_error, "no XDP program is attached")) << stats_after.describe();
    CommandResult detached_again = ns.run({cli_path, "detach", backend_interface});
    EXPECT_EQ(detached_again.exit_code, 1) << detached_again.describe();

    // Control: without the program the kernel does not deliver the inner
    // datagram, because no IP-in-IP tunnel device is up in this namespace, so
    // the deliveries above were the program's work.
    {
        NamespaceEntry entry(ns.name());
        ASSERT_TRUE(entry.entered()) << entry.error();
        Socket service4(bind_service_socket(AF_INET, std::chrono::seconds(1)));
        ASSERT_GE(service4.fd(), 0) << "binding 203.0.113.10:5555 failed: " << std::strerror(errno);

        ASSERT_TRUE(send_frame(load_balancer_interface, frame4));
        EXPECT_EQ(receive_datagram(service4.fd()), std::nullopt);
    }
}

INSTANTIATE_TEST_SUITE_P(Modes, DecapNetnsTest, ::testing::Values(XdpMode::native, XdpMode::generic),
                         [](const ::testing::TestParamInfo<XdpMode>& info) {
                             return std::string(sluice::bpf::to_string(info.param));
                         });

}  // namespace
