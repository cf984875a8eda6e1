// sluice-pktgen: a DPDK packet generator for load balancer benchmarks. It sends TCP SYNs,
// TCP ACKs and UDP datagrams of many flows to a list of VIPs (or replays a pcap), counts what
// comes back on its RX port, and reports rates, loss and latency. Optionally it searches for
// the highest rate without loss and sweeps the offered load.
//
//   sluice-pktgen [EAL options] -- [options]    (sluice-pktgen -- --help lists the options)
#include <pcap/pcap.h>
#include <poll.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "generator.h"
#include "sluice/control/config.h"
#include "traffic.h"

namespace {

using sluice::pktgen::TrialResult;

std::atomic<bool> stop_requested{false};

void on_signal(int) { stop_requested.store(true); }

struct Options {
  std::vector<uint16_t> tx_ports{0};
  uint16_t rx_port = 0;
  std::vector<std::string> vips;
  std::vector<std::string> clients{"192.0.2.0/24"};
  std::string size = "64";
  std::string mix = "ack=1";
  std::string order = "sequential";
  std::string rate = "max";
  std::string source_mac = "02:00:00:00:5c:01";
  std::string destination_mac = "02:00:00:00:5c:02";
  std::string pcap;
  uint64_t flows = 1024;
  double duration = 5;
  uint64_t count = 0;
  double warmup = 0;
  double drain_ms = 20;
  double link_timeout = 10;
  double pause_ms = 0;
  bool search = false;
  uint32_t search_steps = 6;
  double loss_tolerance = 0;
  uint32_t sweep = 0;
  bool json = false;
  bool retry = false;
  bool hold = false;
};

// Waits, with the ports open, until standard input reaches its end or a signal arrives. The
// ports are not polled meanwhile, so a memif peer can stop its polling and disconnect first.
void hold_until_stdin_closes() {
  // A reader of a piped report waits for it before it closes standard input.
  std::fflush(stdout);
  char buffer[256];
  while (!stop_requested) {
    pollfd input{STDIN_FILENO, POLLIN, 0};
    const int ready = poll(&input, 1, 200);
    if (ready < 0 && errno != EINTR) return;
    if (ready <= 0) continue;
    const ssize_t n = read(STDIN_FILENO, buffer, sizeof(buffer));
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return;
  }
}

// "max", "2000000", "2.5M" or "800k" packets per second; 0 means as fast as possible.
sluice::Result<double> parse_rate(const std::string& text) {
  if (text == "max") return 0.0;
  try {
    size_t used = 0;
    double value = std::stod(text, &used);
    const std::string suffix = text.substr(used);
    if (suffix == "k") {
      value *= 1e3;
    } else if (suffix == "M") {
      value *= 1e6;
    } else if (!suffix.empty()) {
      throw std::invalid_argument(suffix);
    }
    if (value <= 0) throw std::invalid_argument(text);
    return value;
  } catch (const std::exception&) {
    return sluice::Error{"rate '" + text + "' must be 'max' or packets per second, such as 2000000, 2.5M or 800k"};
  }
}

sluice::Result<std::vector<std::vector<uint8_t>>> read_pcap(const std::string& path) {
  char error[PCAP_ERRBUF_SIZE] = "";
  pcap_t* pcap = pcap_open_offline(path.c_str(), error);
  if (pcap == nullptr) return sluice::Error{"cannot read pcap " + path + ": " + error};
  std::vector<std::vector<uint8_t>> frames;
  pcap_pkthdr* header = nullptr;
  const u_char* data = nullptr;
  while (pcap_next_ex(pcap, &header, &data) == 1) {
    if (header->caplen != header->len) continue;  // truncated in the capture
    if (header->caplen > sluice::pktgen::kMaxFrameSize - sluice::pktgen::kFcsSize) continue;
    frames.emplace_back(data, data + header->caplen);
  }
  pcap_close(pcap);
  if (frames.empty()) return sluice::Error{"pcap " + path + " contains no whole frame of at most 1514 bytes"};
  return frames;
}

sluice::Result<sluice::pktgen::TrafficSpec> make_spec(const Options& options) {
  sluice::pktgen::TrafficSpec spec;
  for (const std::string& text : options.vips) {
    auto vip = sluice::control::parse_vip_key(text);
    if (!vip) return sluice::Error{"--vip: " + vip.error()};
    spec.vips.push_back(*vip);
  }
  for (const std::string& text : options.clients) {
    auto prefix = sluice::pktgen::IpPrefix::parse(text);
    if (!prefix) return sluice::Error{"--client: " + prefix.error()};
    spec.clients.push_back(*prefix);
  }
  auto sizes = sluice::pktgen::parse_frame_sizes(options.size);
  if (!sizes) return sluice::Error{"--size: " + sizes.error()};
  spec.frame_sizes = *sizes;
  if (auto status = sluice::pktgen::parse_mix(options.mix, spec); !status) {
    return sluice::Error{"--mix: " + status.error()};
  }
  spec.flows = options.flows;
  spec.random_order = options.order == "random";
  auto source = sluice::MacAddress::parse(options.source_mac);
  if (!source) return sluice::Error{"--src-mac: " + source.error()};
  auto destination = sluice::MacAddress::parse(options.destination_mac);
  if (!destination) return sluice::Error{"--dst-mac: " + destination.error()};
  spec.source_mac = *source;
  spec.destination_mac = *destination;
  if (options.pcap.empty()) {
    if (auto status = sluice::pktgen::validate(spec); !status) return sluice::Error{status.error()};
  }
  return spec;
}

nlohmann::json to_json(const TrialResult& trial) {
  return {{"offered_rate_pps", trial.offered_rate_pps},
          {"seconds", trial.seconds},
          {"offered", trial.offered},
          {"sent", trial.sent},
          {"received", trial.received},
          {"sent_bytes", trial.sent_bytes},
          {"received_bytes", trial.received_bytes},
          {"out_of_mbufs", trial.out_of_mbufs},
          {"offered_pps", trial.offered_pps()},
          {"sent_pps", trial.sent_pps()},
          {"received_pps", trial.received_pps()},
          {"loss", trial.loss()},
          {"latency_ns",
           {{"p50", trial.latency_p50_ns},
            {"p99", trial.latency_p99_ns},
            {"p99_9", trial.latency_p999_ns},
            {"samples", trial.latency_samples}}}};
}

void print_trial(const char* label, const TrialResult& trial) {
  char latency[96] = "latency: no timestamped frame came back";
  if (trial.latency_samples > 0) {
    std::snprintf(latency, sizeof latency, "latency p50/p99/p99.9 %llu/%llu/%llu ns",
                  static_cast<unsigned long long>(trial.latency_p50_ns),
                  static_cast<unsigned long long>(trial.latency_p99_ns),
                  static_cast<unsigned long long>(trial.latency_p999_ns));
  }
  std::printf("%-10s offered %10.0f pps  sent %10.0f pps  received %10.0f pps  loss %7.4f%%  %s%s\n",
              label, trial.offered_pps(), trial.sent_pps(), trial.received_pps(), trial.loss() * 100, latency,
              trial.out_of_mbufs > 0 ? "  (the mempool ran out of mbufs)" : "");
}

int run(sluice::pktgen::Generator& generator, const Options& options, double rate) {
  std::vector<std::pair<std::string, TrialResult>> trials;
  // With --json every trial is also printed as a line of its own as soon as it ends, and the
  // pause after it gives a harness time to read the forwarder's counters between trials.
  auto report_trial = [&](const std::string& label, const TrialResult& result) {
    if (options.json) {
      nlohmann::json item = to_json(result);
      item["kind"] = label;
      std::printf("%s\n", nlohmann::json{{"trial", item}}.dump().c_str());
      std::fflush(stdout);
    } else {
      print_trial(label.c_str(), result);
    }
    if (options.pause_ms > 0) rte_delay_us_sleep(static_cast<unsigned>(options.pause_ms * 1000));
  };
  auto trial = [&](const std::string& label, double trial_rate) {
    TrialResult result = generator.run(trial_rate, options.duration, options.count, options.drain_ms,
                                       stop_requested);
    report_trial(label, result);
    trials.emplace_back(label, result);
    return result;
  };

  if (options.warmup > 0) {
    report_trial("warmup", generator.run(0, options.warmup, 0, options.drain_ms, stop_requested));
  }
  const TrialResult first = trial(rate > 0 ? "rate" : "max", rate);
  const double max_pps = first.received_pps();

  // Offered loads from 1/N to N/N of the maximum, for a plot of rate against offered load.
  for (uint32_t step = 1; step <= options.sweep && !stop_requested; ++step) {
    trial("sweep", max_pps * step / options.sweep);
  }

  // Binary search between 0 and the maximum for the highest rate whose loss stays within
  // the tolerance.
  double zero_loss = -1;
  if (options.search) {
    double low = 0;
    double high = max_pps;
    // A first trial without loss already ran at the highest rate.
    zero_loss = first.loss() <= options.loss_tolerance && first.received > 0 ? max_pps : 0;
    for (uint32_t step = 0; step < options.search_steps && !stop_requested; ++step) {
      const double middle = (low + high) / 2;
      const TrialResult result = trial("search", middle);
      if (result.loss() <= options.loss_tolerance && result.received > 0) {
        low = middle;
        zero_loss = std::max(zero_loss, result.received_pps());
      } else {
        high = middle;
      }
    }
  }

  if (options.json) {
    nlohmann::json report{{"max_received_pps", max_pps}, {"trials", nlohmann::json::array()}};
    for (const auto& [label, result] : trials) {
      nlohmann::json item = to_json(result);
      item["kind"] = label;
      report["trials"].push_back(item);
    }
    report["zero_loss_pps"] = zero_loss >= 0 ? nlohmann::json(zero_loss) : nlohmann::json(nullptr);
    std::printf("%s\n", report.dump().c_str());
  } else if (zero_loss >= 0) {
    std::printf("zero-loss rate: %.0f pps (loss tolerance %g)\n", zero_loss, options.loss_tolerance);
  }
  return stop_requested ? 130 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app{"sluice-pktgen: send flows to VIPs, count what comes back, report rates, loss and latency",
               "sluice-pktgen [EAL options] --"};
  app.add_option("--tx-port", options.tx_ports, "DPDK port IDs to send on, in turn")->capture_default_str();
  app.add_option("--rx-port", options.rx_port, "DPDK port ID to receive on")->capture_default_str();
  app.add_option("--vip", options.vips, "a VIP to send to, ADDRESS:PORT/PROTOCOL; repeat for more");
  app.add_option("--client", options.clients, "client source prefix, one per address family")
      ->capture_default_str();
  app.add_option("--flows", options.flows, "flows; each gives one 5-tuple per protocol")->capture_default_str();
  app.add_option("--flow-order", options.order, "flows in turn, or a random flow per packet")
      ->check(CLI::IsMember({"sequential", "random"}))->capture_default_str();
  app.add_option("--size", options.size, "frame size with FCS, 64 to 1518, or imix")->capture_default_str();
  app.add_option("--mix", options.mix, "packet kinds and weights, such as ack=90,syn=10,udp=0")
      ->capture_default_str();
  app.add_option("--rate", options.rate, "packets per second (such as 2.5M) or max")->capture_default_str();
  app.add_option("--duration", options.duration, "seconds per trial (0: until --count; with both, the first to end)")
      ->check(CLI::Range(0.0, 3600.0))->capture_default_str();
  app.add_option("--count", options.count, "packets per trial (0: no limit, until --duration)")
      ->capture_default_str();
  app.add_option("--warmup", options.warmup, "seconds at full rate before the first trial, not reported")
      ->check(CLI::Range(0.0, 600.0));
  app.add_option("--drain-ms", options.drain_ms, "after sending, receive until the RX port is quiet this long")
      ->check(CLI::Range(1.0, 10000.0))->capture_default_str();
  app.add_option("--pcap", options.pcap, "replay the frames of this pcap instead of building them")
      ->check(CLI::ExistingFile);
  app.add_option("--src-mac", options.source_mac, "source MAC of built frames")->capture_default_str();
  app.add_option("--dst-mac", options.destination_mac, "destination MAC of built frames")->capture_default_str();
  app.add_option("--link-timeout", options.link_timeout, "seconds to wait for the ports' links")
      ->check(CLI::Range(0.0, 600.0))->capture_default_str();
  app.add_option("--pause-ms", options.pause_ms, "pause after each trial, in milliseconds")
      ->check(CLI::Range(0.0, 60000.0))->capture_default_str();
  app.add_flag("--search", options.search, "search for the highest rate without loss");
  app.add_option("--search-steps", options.search_steps, "trials of the search")
      ->check(CLI::Range(1, 30))->capture_default_str();
  app.add_option("--loss-tolerance", options.loss_tolerance, "loss ratio the search accepts")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str();
  app.add_option("--sweep", options.sweep, "trials at 1/N .. N/N of the first trial's received rate")
      ->check(CLI::Range(0, 100));
  app.add_flag("--json", options.json,
               "print each trial as a JSON line when it ends, then the report as one JSON object");
  app.add_flag("--retry", options.retry, "offer rejected packets again until the TX queue takes them");
  app.add_flag("--hold", options.hold,
               "after the report, keep the ports open until standard input closes, so that a memif "
               "peer can stop first");

  app.footer("EAL options come first, then --, then the options above, such as:\n"
             "  sluice-pktgen --no-huge --no-pci --vdev net_pcap0,tx_pcap=out.pcap,rx_pcap=in.pcap -- "
             "--vip 203.0.113.10:80/tcp --count 1000");

  // The options after "--" are parsed before the EAL starts, so that --help and bad options
  // need no hugepages or devices. Without "--", every argument but --help is the EAL's.
  char** const separator =
      std::find_if(argv + 1, argv + argc, [](const char* arg) { return std::strcmp(arg, "--") == 0; });
  if (separator == argv + argc) {
    for (int i = 1; i < argc; ++i) {
      if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
        std::printf("%s", app.help().c_str());
        return 0;
      }
    }
  }
  char** const first_option = separator == argv + argc ? separator : separator + 1;
  std::vector<char*> rest{argv[0]};
  rest.insert(rest.end(), first_option, argv + argc);
  try {
    app.parse(static_cast<int>(rest.size()), rest.data());
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == 0) {
      app.exit(error);
      return 0;
    }
    std::fprintf(stderr, "sluice-pktgen: %s\nsluice-pktgen --help lists the options.\n", error.what());
    return 2;
  }

  auto spec = make_spec(options);
  auto rate = parse_rate(options.rate);
  std::vector<std::vector<uint8_t>> frames;
  if (!options.pcap.empty()) {
    auto read = read_pcap(options.pcap);
    if (!read) {
      std::fprintf(stderr, "sluice-pktgen: %s\n", read.error().c_str());
      return 2;
    }
    frames = std::move(*read);
  }
  std::string invalid;
  if (!spec) {
    invalid = spec.error();
  } else if (!rate) {
    invalid = rate.error();
  } else if (options.duration <= 0 && options.count == 0) {
    invalid = "give --duration or --count a value above 0";
  }
  if (!invalid.empty()) {
    std::fprintf(stderr, "sluice-pktgen: %s\n", invalid.c_str());
    return 2;
  }

  if (rte_eal_init(argc, argv) < 0) {
    std::fprintf(stderr,
                 "sluice-pktgen: EAL initialisation failed: %s; check the EAL options before -- (on a machine "
                 "without hugepages, add --no-huge -m 512)\n",
                 rte_strerror(rte_errno));
    return 2;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  int rc = 2;
  {
    auto generator = sluice::pktgen::Generator::create({options.tx_ports, options.rx_port}, *spec,
                                                       std::move(frames), options.link_timeout);
    if (!generator) {
      std::fprintf(stderr, "sluice-pktgen: %s\n", generator.error().c_str());
    } else {
      (*generator)->set_retry(options.retry);
      rc = run(**generator, options, *rate);
      if (options.hold) hold_until_stdin_closes();
    }
  }
  rte_eal_cleanup();
  return rc;
}
