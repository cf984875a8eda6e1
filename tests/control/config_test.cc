// Config pieces that the API will parse one at a time: VIP keys, single VIPs and backends,
// and validation of a config changed in code.
#include "sluice/control/config.h"
#include "config_yaml.h"
#include "sluice/control/bgp_announcer.h"

#include <gtest/gtest.h>

#include "sluice/packet.h"

namespace sluice::control {
namespace {

TEST(VipKey, ParsesIpv4) {
  auto key = parse_vip_key("203.0.113.10:80/tcp");
  ASSERT_TRUE(key.ok()) << key.error();
  EXPECT_EQ(key->address, *IpAddress::parse("203.0.113.10"));
  EXPECT_EQ(key->port, 80);
  EXPECT_EQ(key->protocol, kProtocolTcp);
  EXPECT_EQ(key->to_string(), "203.0.113.10:80/tcp");
}

TEST(VipKey, ParsesBracketedIpv6) {
  auto key = parse_vip_key("[2001:db8::10]:443/udp");
  ASSERT_TRUE(key.ok()) << key.error();
  EXPECT_TRUE(key->address.is_v6());
  EXPECT_EQ(key->port, 443);
  EXPECT_EQ(key->protocol, kProtocolUdp);
  EXPECT_EQ(key->to_string(), "[2001:db8::10]:443/udp");
}

TEST(VipKey, RejectsBadInput) {
  const struct {
    const char* text;
    const char* expected;
  } cases[] = {
      {"203.0.113.10:80", "invalid VIP"},
      {"203.0.113.10/tcp", "invalid VIP"},
      {"300.1.1.1:80/tcp", "'300.1.1.1' is not an IP address"},
      {"[2001:db8::1:80/tcp", "is not an IP address"},
      {"2001:db8::1:80/tcp", "in brackets"},
      {"203.0.113.10:70000/tcp", "not a port"},
      {"203.0.113.10:http/tcp", "not a port"},
      {"203.0.113.10:80/sctp", "not tcp or udp"},
  };
  for (const auto& test : cases) {
    auto key = parse_vip_key(test.text);
    ASSERT_FALSE(key.ok()) << test.text;
    EXPECT_NE(key.error().find(test.expected), std::string::npos)
        << test.text << ": " << key.error();
  }
}

TEST(VipConfigText, ParsesJson) {
  auto vip = parse_vip_config(R"({"address": "203.0.113.10", "port": 80, "protocol": "tcp",
                                  "backends": [{"address": "198.51.100.130", "weight": 2}]})");
  ASSERT_TRUE(vip.ok()) << vip.error();
  EXPECT_EQ(vip->table_size, 65537u);
  ASSERT_EQ(vip->backends.size(), 1u);
  EXPECT_EQ(vip->backends[0].weight, 2u);
}

TEST(VipConfigText, NamesBadField) {
  auto vip = parse_vip_config(R"({"address": "203.0.113.10", "port": 80, "protocol": "tcp",
                                  "table_size": 65536})");
  ASSERT_FALSE(vip.ok());
  EXPECT_NE(vip.error().find("vip.table_size: 65536 is not prime"), std::string::npos)
      << vip.error();
}

TEST(VipConfigText, ParsesPersistence) {
  auto client = parse_vip_config(R"({"address": "203.0.113.10", "port": 80, "protocol": "tcp",
                                     "persistence": "client"})");
  ASSERT_TRUE(client.ok()) << client.error();
  EXPECT_EQ(client->persistence, SLUICE_PERSISTENCE_CLIENT);
  auto plain = parse_vip_config(R"({"address": "203.0.113.10", "port": 80, "protocol": "tcp"})");
  ASSERT_TRUE(plain.ok()) << plain.error();
  EXPECT_EQ(plain->persistence, SLUICE_PERSISTENCE_CONNECTION);
}

TEST(VipConfigText, RejectsUnknownPersistence) {
  auto vip = parse_vip_config(R"({"address": "203.0.113.10", "port": 80, "protocol": "tcp",
                                  "persistence": "sticky"})");
  ASSERT_FALSE(vip.ok());
  EXPECT_NE(vip.error().find("vip.persistence: 'sticky' is not a persistence (use connection or client)"),
            std::string::npos)
      << vip.error();
}

TEST(VipConfigText, ParsesEncapsulation) {
  auto gue = parse_vip_config(R"({"address": "203.0.113.10", "port": 80, "protocol": "tcp",
                                  "encapsulation": "gue"})");
  ASSERT_TRUE(gue.ok()) << gue.error();
  EXPECT_EQ(gue->encapsulation, SLUICE_ENCAP_GUE);
  auto plain = parse_vip_config(R"({"address": "203.0.113.10", "port": 80, "protocol": "tcp"})");
  ASSERT_TRUE(plain.ok()) << plain.error();
  EXPECT_EQ(plain->encapsulation, SLUICE_ENCAP_IPIP);
  auto gre = parse_vip_config(R"({"address": "203.0.113.10", "port": 80, "protocol": "tcp",
                                  "encapsulation": "gre"})");
  ASSERT_FALSE(gre.ok());
  EXPECT_NE(gre.error().find("vip.encapsulation: 'gre' is not an encapsulation (use ipip or gue)"),
            std::string::npos)
      << gre.error();
}

TEST(VipConfigText, RejectsDuplicateBackend) {
  auto vip = parse_vip_config(R"({"address": "203.0.113.10", "port": 80, "protocol": "tcp",
                                  "backends": [{"address": "198.51.100.130"},
                                               {"address": "198.51.100.130"}]})");
  ASSERT_FALSE(vip.ok());
  EXPECT_NE(vip.error().find("vip.backends[1].address"), std::string::npos) << vip.error();
}

TEST(BackendConfigText, RejectsNegativeWeight) {
  auto backend = parse_backend_config(R"({"address": "198.51.100.130", "weight": -1})");
  ASSERT_FALSE(backend.ok());
  EXPECT_NE(backend.error().find("backend.weight"), std::string::npos) << backend.error();
}

TEST(ValidateConfig, RejectsChangedConfig) {
  Config config;
  config.source_ipv4 = *IpAddress::parse("198.51.100.2");
  VipConfig vip;
  vip.key = *parse_vip_key("203.0.113.10:80/tcp");
  vip.backends.push_back({*IpAddress::parse("198.51.100.130"), 1});
  config.vips.push_back(vip);
  ASSERT_TRUE(validate_config(config).ok());

  config.vips.push_back(vip);
  Status duplicate = validate_config(config);
  ASSERT_FALSE(duplicate.ok());
  EXPECT_NE(duplicate.error().find("vips[1]: VIP 203.0.113.10:80/tcp is defined twice"),
            std::string::npos)
      << duplicate.error();

  // An IPv6 backend behind an IPv4 VIP (IPv4 in IPv6) needs an IPv6 outer source.
  config.vips.pop_back();
  config.vips[0].backends.push_back({*IpAddress::parse("2001:db8::1"), 1});
  Status source = validate_config(config);
  ASSERT_FALSE(source.ok());
  EXPECT_NE(source.error().find("lb.ipv6: missing: VIP 203.0.113.10:80/tcp needs an IPv6 outer source"),
            std::string::npos)
      << source.error();
  config.source_ipv6 = *IpAddress::parse("2001:db8::2");
  EXPECT_TRUE(validate_config(config).ok());

  // IPv6 never travels in IPv4.
  VipConfig vip6;
  vip6.key = *parse_vip_key("[2001:db8::10]:80/tcp");
  vip6.backends.push_back({*IpAddress::parse("198.51.100.131"), 1});
  config.vips.push_back(vip6);
  Status family = validate_config(config);
  ASSERT_FALSE(family.ok());
  EXPECT_NE(family.error().find("vips[1].backends[0].address: 198.51.100.131 is IPv4, and an IPv6 VIP "
                                "needs IPv6 backends"),
            std::string::npos)
      << family.error();
}

TEST(ValidateConfig, WarnsAboutEgressMtuAbovePortMtu) {
  Config config;
  config.source_ipv4 = *IpAddress::parse("198.51.100.2");
  config.dpdk.ports.push_back({"net_null0", 1400, 1500});
  ASSERT_TRUE(validate_config(config).ok());
  ASSERT_EQ(config.warnings.size(), 1u);
  EXPECT_NE(config.warnings[0].find("dataplane.dpdk.ports[0].egress_mtu: 1500 is above the port's mtu 1400"),
            std::string::npos)
      << config.warnings[0];
  config.dpdk.ports[0].egress_mtu = 1400;
  ASSERT_TRUE(validate_config(config).ok());
  EXPECT_TRUE(config.warnings.empty());
}

TEST(ValidateConfig, WarnsAboutVipWithoutServingBackend) {
  Config config;
  config.source_ipv4 = *IpAddress::parse("198.51.100.2");
  VipConfig vip;
  vip.key = *parse_vip_key("203.0.113.10:80/tcp");
  vip.backends.push_back({*IpAddress::parse("198.51.100.130"), 0});
  config.vips.push_back(vip);
  ASSERT_TRUE(validate_config(config).ok());
  ASSERT_EQ(config.warnings.size(), 1u);
  EXPECT_NE(config.warnings[0].find("no backend with a weight above 0"), std::string::npos);
}

}  // namespace
}  // namespace sluice::control

namespace sluice::control {
namespace {

TEST(ConfigYaml, RoundTrips) {
  auto config = parse_config(R"(
dataplane:
  type: xdp
  xdp:
    interfaces: [eth1, eth2]
    mode: generic
    egress_mtu: 1600
lb:
  ipv4: 198.51.100.2
  ipv6: 2001:db8:100::2
  next_hop:
    mac: "02:00:00:00:00:01"
seed: 1234
flow_table:
  size: 4096
  tcp_timeout_s: 120
  new_flow_limit_per_s: 100000
vips:
  - address: 203.0.113.10
    port: 80
    protocol: tcp
    table_size: 251
    persistence: client
    health_check: {type: http, path: /healthz, expected_status: [200, 204], interval_ms: 500}
    all_down: drop
    backends:
      - {address: 198.51.100.130, weight: 2, health_check: {port: 8080, fall: 5}}
      - {address: 198.51.100.131, weight: 0}
  - address: 2001:db8::10
    port: 53
    protocol: udp
    health_check: {type: udp, payload: ping, expected_reply: pong}
    backends: [{address: "2001:db8:100::130"}]
)");
  ASSERT_TRUE(config.ok()) << config.error();
  const std::string yaml = config_to_yaml(*config);
  auto again = parse_config(yaml);
  ASSERT_TRUE(again.ok()) << again.error() << "\n" << yaml;
  EXPECT_EQ(*again, *config) << yaml;
}

}  // namespace
}  // namespace sluice::control

namespace sluice::control {
namespace {

constexpr const char* kBgpBase = R"(
dataplane:
  type: xdp
  xdp:
    interfaces: [eth0]
lb:
  ipv4: 198.51.100.2
  ipv6: 2001:db8:100::2
  next_hop:
    mac: "02:00:00:00:00:01"
vips:
  - address: 203.0.113.10
    port: 80
    protocol: tcp
    backends: [{address: 198.51.100.130}]
  - address: 2001:db8:203::10
    port: 80
    protocol: tcp
    backends: [{address: "2001:db8:100:1::130"}]
)";

TEST(BgpConfig, DefaultsFromLb) {
  auto config = parse_config(std::string(kBgpBase) + R"(
bgp:
  local_as: 64512
  peers: [{address: 198.51.100.1, as: 64600}]
)");
  ASSERT_TRUE(config.ok()) << config.error();
  const BgpConfig& bgp = config->bgp;
  EXPECT_TRUE(bgp.enabled);
  EXPECT_EQ(bgp.local_as, 64512u);
  EXPECT_EQ(bgp.router_id, *IpAddress::parse("198.51.100.2"));
  EXPECT_EQ(bgp.next_hop_ipv4, *IpAddress::parse("198.51.100.2"));
  EXPECT_EQ(bgp.next_hop_ipv6, *IpAddress::parse("2001:db8:100::2"));
  EXPECT_EQ(bgp.hold_time_s, 9u);
  EXPECT_EQ(bgp.drain_time_s, 5u);
  EXPECT_EQ(bgp.settle_time_s, 10u);
  ASSERT_EQ(bgp.peers.size(), 1u);
  EXPECT_EQ(bgp.peers[0].as, 64600u);
  EXPECT_EQ(bgp.bird.binary, "/usr/sbin/bird");
}

TEST(BgpConfig, AbsentMeansDisabled) {
  auto config = parse_config(kBgpBase);
  ASSERT_TRUE(config.ok()) << config.error();
  EXPECT_FALSE(config->bgp.enabled);
}

TEST(BgpConfig, RoundTrips) {
  auto config = parse_config(std::string(kBgpBase) + R"(
bgp:
  local_as: 64512
  router_id: 192.0.2.77
  next_hop: {ipv4: 198.51.100.9, ipv6: "2001:db8:100::9"}
  hold_time_s: 3
  drain_time_s: 0
  settle_time_s: 30
  peers:
    - {address: 198.51.100.1, as: 64600, local_address: 198.51.100.2}
    - {address: "2001:db8:100::1", as: 64601}
  bird:
    binary: /usr/local/sbin/bird
    config_file: /run/lb/bird.conf
    control_socket: /run/lb/bird.ctl
    pid_file: /run/lb/bird.pid
    log_file: /run/lb/bird.log
)");
  ASSERT_TRUE(config.ok()) << config.error();
  const std::string yaml = config_to_yaml(*config);
  auto again = parse_config(yaml);
  ASSERT_TRUE(again.ok()) << again.error() << "\n" << yaml;
  EXPECT_EQ(again->bgp, config->bgp) << yaml;
}

TEST(BgpConfig, RejectsBadFields) {
  const struct {
    const char* bgp;
    const char* expected;
  } cases[] = {
      {"bgp: {peers: [{address: 198.51.100.1, as: 64600}]}", "bgp.local_as: missing"},
      {"bgp: {local_as: 0, peers: [{address: 198.51.100.1, as: 1}]}", "bgp.local_as: 0 is out of range"},
      {"bgp: {local_as: 23456, peers: [{address: 198.51.100.1, as: 1}]}", "AS_TRANS"},
      {"bgp: {local_as: 64512}", "bgp.peers: expected a non-empty list"},
      {"bgp: {local_as: 64512, peers: []}", "bgp.peers: expected a non-empty list"},
      {"bgp: {local_as: 64512, peers: [{address: 198.51.100.1}]}", "bgp.peers[0].as: missing"},
      {"bgp: {local_as: 64512, peers: [{address: 198.51.100.1, as: 1}, {address: 198.51.100.1, as: 2}]}",
       "bgp.peers[1].address: 198.51.100.1 is listed twice"},
      {"bgp: {local_as: 64512, peers: [{address: 198.51.100.1, as: 1, local_address: \"2001:db8::1\"}]}",
       "bgp.peers[0].local_address: not of the peer address's family"},
      {"bgp: {local_as: 64512, hold_time_s: 2, peers: [{address: 198.51.100.1, as: 1}]}",
       "bgp.hold_time_s: 2 is out of range"},
      {"bgp: {local_as: 64512, router_id: \"2001:db8::1\", peers: [{address: 198.51.100.1, as: 1}]}",
       "bgp.router_id: '2001:db8::1' is not an IPv4 address"},
      {"bgp: {local_as: 64512, peers: [{address: 198.51.100.1, as: 1}], bird: {config_file: bird.conf}}",
       "bgp.bird.config_file: 'bird.conf' is not an absolute file path"},
      {"bgp: {local_as: 64512, peers: [{address: 198.51.100.1, as: 1}], speaker: bird}",
       "bgp.speaker: unknown field"},
  };
  for (const auto& test : cases) {
    auto config = parse_config(std::string(kBgpBase) + test.bgp + "\n");
    ASSERT_FALSE(config.ok()) << test.bgp;
    EXPECT_NE(config.error().find(test.expected), std::string::npos)
        << test.bgp << ": " << config.error();
  }
}

TEST(BirdConfig, AnnouncesOnlyGivenAddresses) {
  auto config = parse_config(std::string(kBgpBase) + R"(
bgp:
  local_as: 64512
  hold_time_s: 3
  peers: [{address: 198.51.100.1, as: 64600}]
)");
  ASSERT_TRUE(config.ok()) << config.error();
  const std::string text =
      render_bird_config(config->bgp, {*IpAddress::parse("203.0.113.10")});
  EXPECT_NE(text.find("route 203.0.113.10/32 blackhole;"), std::string::npos) << text;
  EXPECT_EQ(text.find("2001:db8:203::10"), std::string::npos) << text;
  EXPECT_NE(text.find("neighbor 198.51.100.1 as 64600;"), std::string::npos) << text;
  EXPECT_NE(text.find("local as 64512;"), std::string::npos) << text;
  EXPECT_NE(text.find("hold time 3;"), std::string::npos) << text;
  EXPECT_NE(text.find("keepalive time 1;"), std::string::npos) << text;
  EXPECT_NE(text.find("next hop address 198.51.100.2;"), std::string::npos) << text;
  EXPECT_NE(text.find("next hop address 2001:db8:100::2;"), std::string::npos) << text;
  EXPECT_NE(text.find("graceful restart off;"), std::string::npos) << text;
}

TEST(BirdConfig, ServingAddressesNeedALiveBackend) {
  VipStatus live{*parse_vip_key("203.0.113.10:80/tcp"), 65537, 0,
                 {{*IpAddress::parse("198.51.100.130"), 1, "live", 65537}}};
  VipStatus down{*parse_vip_key("203.0.113.11:80/tcp"), 65537, 0,
                 {{*IpAddress::parse("198.51.100.130"), 1, "down", 65537}}};
  VipStatus drained{*parse_vip_key("203.0.113.12:80/tcp"), 65537, 0,
                    {{*IpAddress::parse("198.51.100.130"), 0, "drained", 0}}};
  // Under all_down: forward_to_all, failed backends stay "live" in the table.
  VipStatus all_failed{*parse_vip_key("203.0.113.13:80/tcp"), 65537, 0,
                       {{*IpAddress::parse("198.51.100.130"), 1, "live", 65537}}};
  all_failed.all_backends_down = true;
  // A second VIP on a live VIP's address does not withdraw the shared route.
  VipStatus shared_down{*parse_vip_key("203.0.113.10:53/udp"), 65537, 0, {}};
  const auto addresses = serving_vip_addresses({live, down, drained, all_failed, shared_down});
  EXPECT_EQ(addresses, std::set<IpAddress>{*IpAddress::parse("203.0.113.10")});
}

}  // namespace
}  // namespace sluice::control
