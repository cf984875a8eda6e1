// sluice-decap: attaches, detaches and inspects the XDP program that removes
// the outer IP header of IP-in-IP packets sent to a local address.
//
// Exit status: 0 on success, 1 when the operation failed, and CLI11's
// non-zero parse error codes for invalid arguments.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "decap_loader.h"

namespace {

using sluice::bpf::AttachedDecap;
using sluice::bpf::DecapCounters;
using sluice::bpf::IpAddress;
using sluice::bpf::Result;
using sluice::bpf::XdpMode;

constexpr int exit_failure = 1;

// Escapes text for a JSON string literal (RFC 8259, section 7).
std::string json_string(const std::string& text) {
    std::string escaped = "\"";
    for (char character : text) {
        switch (character) {
            case '"':
                escaped += "\\\"";
                break;
            case '\\':
                escaped += "\\\\";
                break;
            default:
                if (static_cast<unsigned char>(character) < 0x20) {
                    char code[8];
                    std::snprintf(code, sizeof(code), "\\u%04x", static_cast<unsigned char>(character));
                    escaped += code;
                } else {
                    escaped += character;
                }
        }
    }
    return escaped + "\"";
}

void print_json(const std::string& interface, const AttachedDecap& attached) {
    std::cout << "{\n"
              << "  \"interface\": " << json_string(interface) << ",\n"
              << "  \"program_id\": " << attached.program_id << ",\n"
              << "  \"mode\": \"" << sluice::bpf::to_string(attached.mode) << "\",\n"
              << "  \"counters\": {\n";
    for (int index = 0; index < SLUICE_DECAP_COUNTER_COUNT; ++index) {
        auto counter = static_cast<sluice_decap_counter>(index);
        std::cout << "    \"" << DecapCounters::name(counter) << "\": " << attached.counters[counter]
                  << (index + 1 < SLUICE_DECAP_COUNTER_COUNT ? ",\n" : "\n");
    }
    std::cout << "  }\n}\n";
}

void print_table(const std::string& interface, const AttachedDecap& attached) {
    std::cout << "interface " << interface << ", program id " << attached.program_id << ", "
              << sluice::bpf::to_string(attached.mode) << " mode\n";
    for (int index = 0; index < SLUICE_DECAP_COUNTER_COUNT; ++index) {
        auto counter = static_cast<sluice_decap_counter>(index);
        std::printf("%-30s %20llu  %s\n", std::string(DecapCounters::name(counter)).c_str(),
                    static_cast<unsigned long long>(attached.counters[counter]),
                    std::string(DecapCounters::description(counter)).c_str());
    }
    std::fflush(stdout);
}

int run_attach(const std::string& interface, const std::string& mode_text,
               const std::vector<std::string>& address_texts, std::uint16_t gue_port) {
    XdpMode mode = mode_text == "generic" ? XdpMode::generic : XdpMode::native;

    std::vector<IpAddress> addresses;
    for (const std::string& text : address_texts) {
        // The option validator has already accepted every value.
        addresses.push_back(IpAddress::parse(text).value());
    }
    if (addresses.empty()) {
        Result<std::vector<IpAddress>> configured = sluice::bpf::interface_addresses(interface);
        if (!configured) {
            spdlog::error("{}", configured.error().message);
            return exit_failure;
        }
        addresses = std::move(configured.value());
        if (addresses.empty()) {
            spdlog::error("interface '{}' has no IPv4 or IPv6 address. Configure one or pass --address",
                          interface);
            return exit_failure;
        }
    }

    if (Result<> attached = sluice::bpf::attach(interface, mode, addresses, gue_port); !attached) {
        spdlog::error("{}", attached.error().message);
        return exit_failure;
    }

    std::string address_list;
    for (const IpAddress& address : addresses) {
        address_list += (address_list.empty() ? "" : ", ") + address.to_string();
    }
    spdlog::info("attached to {} in {} mode, decapsulating for {} (GUE on UDP port {})", interface, mode_text,
                 address_list, gue_port == 0 ? std::string("off") : std::to_string(gue_port));
    return 0;
}

int run_detach(const std::string& interface) {
    if (Result<> detached = sluice::bpf::detach(interface); !detached) {
        spdlog::error("{}", detached.error().message);
        return exit_failure;
    }
    spdlog::info("detached from {}", interface);
    return 0;
}

int run_stats(const std::string& interface, bool json) {
    Result<AttachedDecap> attached = sluice::bpf::read_attached(interface);
    if (!attached) {
        spdlog::error("{}", attached.error().message);
        return exit_failure;
    }
    if (json) {
        print_json(interface, attached.value());
    } else {
        print_table(interface, attached.value());
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    auto logger = spdlog::stderr_color_mt("sluice-decap");
    logger->set_pattern("sluice-decap: %^%l%$: %v");
    spdlog::set_default_logger(logger);

    CLI::App app{
        "Attach, detach and inspect the sluice-decap XDP program, which removes the outer IP header of "
        "IP-in-IP and GUE packets (IPv4 or IPv6 outer, IPv4 or IPv6 inner) sent to a local address and "
        "passes the inner packet to the kernel. Needs root.",
        "sluice-decap"};
    app.require_subcommand(1);

    std::string interface;
    std::string mode_text = "native";
    std::vector<std::string> address_texts;
    bool json = false;
    int gue_port = sluice::bpf::kDefaultGuePort;

    CLI::App* attach = app.add_subcommand(
        "attach", "Load the program and attach it to an interface. It stays attached after this command exits. "
                  "Replaces a sluice-decap program already attached in the same mode.");
    attach->add_option("interface", interface, "Network interface name, for example eth1")->required();
    attach->add_option("--mode", mode_text, "XDP mode: native (driver) or generic (skb, for drivers without XDP)")
        ->check(CLI::IsMember({"native", "generic"}))
        ->capture_default_str();
    attach
        ->add_option("--address", address_texts,
                     "Outer destination address to decapsulate for. Repeat the option for several. "
                     "Default: every address configured on the interface now")
        ->allow_extra_args(false)
        ->check(CLI::Validator(
            [](std::string& text) {
                Result<IpAddress> address = IpAddress::parse(text);
                return address ? std::string() : address.error().message;
            },
            "ADDRESS"));

    attach
        ->add_option("--gue-port", gue_port,
                     "UDP destination port of GUE packets, as sluiced's lb.gue_port; 0 turns GUE off")
        ->check(CLI::Range(0, 65535).description("a port from 0 to 65535"))
        ->capture_default_str();

    CLI::App* detach = app.add_subcommand("detach", "Detach the sluice-decap program from an interface.");
    detach->add_option("interface", interface, "Network interface name")->required();

    CLI::App* stats = app.add_subcommand(
        "stats", "Print the packet counters of the program attached to an interface, summed over all CPUs.");
    stats->add_option("interface", interface, "Network interface name")->required();
    stats->add_flag("--json", json, "Print one JSON object instead of a table");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        return app.exit(error);
    }

    if (attach->parsed()) {
        return run_attach(interface, mode_text, address_texts, static_cast<std::uint16_t>(gue_port));
    }
    if (detach->parsed()) {
        return run_detach(interface);
    }
    return run_stats(interface, json);
}
