#include "commands.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "rates.h"
#include "sluice/packet.h"
#include "tables.h"

namespace sluice::ctl {
namespace {

using nlohmann::json;

// `stats --rate` samples the counters this far apart.
constexpr std::chrono::seconds kRateInterval{1};

void print_error(const std::string& message) { std::cerr << "sluicectl: " << message << "\n"; }

void print_json(const json& value) { std::cout << value.dump(2) << "\n"; }

// Returns the "error" field of a rejected request's body, or the status and the body's first
// line when the body is not the API's error object.
std::string error_message(const ApiResponse& response) {
  const json body = json::parse(response.body, nullptr, false);
  if (body.is_object() && body.contains("error") && body["error"].is_string()) {
    return body["error"].get<std::string>();
  }
  const std::string first_line = response.body.substr(0, response.body.find('\n'));
  return "sluiced rejected the request with HTTP status " + std::to_string(response.status) +
         (first_line.empty() ? "" : ": " + first_line.substr(0, 200));
}

// Sends a request and returns the JSON body of a 2xx response. Otherwise prints the server's
// or the connection's error and returns nothing.
std::optional<json> call(const Context& context, std::string_view method,
                         const std::string& target, const std::string& body = "",
                         std::string_view content_type = "application/json") {
  Result<ApiResponse> response = context.client.send(method, target, body, content_type);
  if (!response) {
    print_error(response.error());
    return std::nullopt;
  }
  if (response->status < 200 || response->status > 299) {
    std::string message = error_message(*response);
    if (response->status == 404 && message.rfind("vip ", 0) == 0) {
      message += " (sluicectl vip list shows the VIPs)";
    }
    print_error(message);
    return std::nullopt;
  }
  json parsed = json::parse(response->body, nullptr, false);
  if (parsed.is_discarded()) {
    print_error("invalid JSON in the response to " + std::string(method) + " " + target +
                " (is " + context.client.socket_path() + " sluiced's API socket?)");
    return std::nullopt;
  }
  return parsed;
}

std::string protocol_name(uint8_t protocol) {
  if (protocol == kProtocolTcp) return "tcp";
  if (protocol == kProtocolUdp) return "udp";
  return std::to_string(protocol);
}

std::string generation_of(const json& result) {
  return " (generation " + result.value("generation", json()).dump() + ")";
}

// Prints the outcome of a change: `done` when it changed the running state, `unchanged`
// when the state already was as requested.
int report_change(const Context& context, const json& result, const std::string& done,
                  const std::string& unchanged) {
  for (const json& warning : result.value("warnings", json::array())) {
    print_error("warning: " + warning.get<std::string>());
  }
  if (context.json) {
    print_json(result);
  } else {
    std::cout << (result.value("changed", false) ? done : unchanged) << generation_of(result)
              << "\n";
  }
  return kExitSuccess;
}

std::vector<QueryParameter> vip_query(const VipKey& vip) { return {{"vip", vip.to_string()}}; }

std::vector<QueryParameter> backend_query(const VipKey& vip, const IpAddress& address) {
  return {{"vip", vip.to_string()}, {"address", address.to_string()}};
}

}  // namespace

int add_vip(const Context& context, const VipKey& vip, std::optional<uint32_t> table_size,
            const std::optional<std::string>& check, const std::optional<std::string>& persistence,
            const std::optional<std::string>& encapsulation) {
  json body = {{"address", vip.address.to_string()},
               {"port", vip.port},
               {"protocol", protocol_name(vip.protocol)}};
  // --check tcp|udp|none|http:PATH becomes the VIP's health_check with default timing.
  if (check) {
    const size_t colon = check->find(':');
    json health_check = {{"type", check->substr(0, colon)}};
    if (colon != std::string::npos) health_check["path"] = check->substr(colon + 1);
    body["health_check"] = health_check;
  }
  if (table_size) body["table_size"] = *table_size;
  if (persistence) body["persistence"] = *persistence;
  if (encapsulation) body["encapsulation"] = *encapsulation;
  auto result = call(context, "POST", build_target("/v1/vips"), body.dump());
  if (!result) return kExitFailure;
  return report_change(context, *result, "added VIP " + vip.to_string(),
                       "VIP " + vip.to_string() + " already exists as requested; nothing changed");
}

int delete_vip(const Context& context, const VipKey& vip) {
  auto result = call(context, "DELETE", build_target("/v1/vips", vip_query(vip)));
  if (!result) return kExitFailure;
  return report_change(context, *result, "deleted VIP " + vip.to_string(),
                       "VIP " + vip.to_string() + " was not running; nothing changed");
}

int list_vips(const Context& context) {
  auto result = call(context, "GET", build_target("/v1/vips"));
  if (!result) return kExitFailure;
  if (context.json) {
    print_json(*result);
  } else {
    print_vips(*result, std::cout);
  }
  return kExitSuccess;
}

int add_backend(const Context& context, const VipKey& vip, const IpAddress& address,
                std::optional<uint32_t> weight) {
  json body = {{"address", address.to_string()}};
  if (weight) body["weight"] = *weight;
  auto result = call(context, "POST", build_target("/v1/backends", vip_query(vip)), body.dump());
  if (!result) return kExitFailure;
  return report_change(context, *result,
                       "added backend " + address.to_string() + " to VIP " + vip.to_string(),
                       "backend " + address.to_string() + " of VIP " + vip.to_string() +
                           " is already as requested; nothing changed");
}

int delete_backend(const Context& context, const VipKey& vip, const IpAddress& address) {
  auto result = call(context, "DELETE", build_target("/v1/backends", backend_query(vip, address)));
  if (!result) return kExitFailure;
  return report_change(context, *result,
                       "deleted backend " + address.to_string() + " from VIP " + vip.to_string(),
                       "backend " + address.to_string() + " was not in VIP " + vip.to_string() +
                           "; nothing changed");
}

int set_weight(const Context& context, const VipKey& vip, const IpAddress& address,
               uint32_t weight) {
  const json body = {{"weight", weight}};
  auto result = call(context, "PUT", build_target("/v1/backends/weight", backend_query(vip, address)),
                     body.dump());
  if (!result) return kExitFailure;
  const std::string backend = "backend " + address.to_string() + " of VIP " + vip.to_string();
  return report_change(context, *result, "set the weight of " + backend + " to " + std::to_string(weight),
                       backend + " already has weight " + std::to_string(weight) +
                           "; nothing changed");
}

int drain_backend(const Context& context, const VipKey& vip, const IpAddress& address) {
  auto result =
      call(context, "POST", build_target("/v1/backends/drain", backend_query(vip, address)));
  if (!result) return kExitFailure;
  const std::string backend = "backend " + address.to_string() + " of VIP " + vip.to_string();
  return report_change(context, *result,
                       "drained " + backend +
                           ": its established flows stay, new flows go to other backends",
                       backend + " is already drained (weight 0); nothing changed");
}

int list_backends(const Context& context, const std::optional<VipKey>& vip) {
  auto result = call(context, "GET", build_target("/v1/vips", vip ? vip_query(*vip)
                                                                    : std::vector<QueryParameter>{}));
  if (!result) return kExitFailure;
  if (context.json) {
    print_json(*result);
  } else {
    print_backends(*result, std::cout);
  }
  return kExitSuccess;
}

int show_stats(const Context& context, const std::optional<VipKey>& vip, bool rate) {
  const std::string target =
      build_target("/v1/stats", vip ? vip_query(*vip) : std::vector<QueryParameter>{});
  const auto first_time = std::chrono::steady_clock::now();
  auto first = call(context, "GET", target);
  if (!first) return kExitFailure;
  if (!rate) {
    if (context.json) {
      print_json(*first);
    } else {
      print_stats(*first, std::cout);
    }
    return kExitSuccess;
  }

  std::this_thread::sleep_until(first_time + kRateInterval);
  const auto second_time = std::chrono::steady_clock::now();
  auto second = call(context, "GET", target);
  if (!second) return kExitFailure;
  // The interval runs from the start of one request to the start of the next, so a
  // difference between the server's two response times skews the rates slightly.
  const double seconds = std::chrono::duration<double>(second_time - first_time).count();
  const json rates = counter_rates(*first, *second, seconds);
  if (context.json) {
    print_json(rates);
  } else {
    print_rates(rates, std::cout);
  }
  return kExitSuccess;
}

int show_health(const Context& context, const std::optional<VipKey>& vip) {
  const std::string target =
      build_target("/v1/health", vip ? vip_query(*vip) : std::vector<QueryParameter>{});
  Result<ApiResponse> response = context.client.send("GET", target);
  if (!response) {
    print_error(response.error());
    return kExitFailure;
  }
  if (response->status == 404 && error_message(*response).rfind("no route", 0) == 0) {
    print_error("this sluiced has no health checks yet (it serves no GET /v1/health); "
                "`sluicectl backend list` shows each backend's state");
    return kExitFailure;
  }
  if (response->status < 200 || response->status > 299) {
    print_error(error_message(*response));
    return kExitFailure;
  }
  const json result = json::parse(response->body, nullptr, false);
  if (result.is_discarded()) {
    print_error("invalid JSON in the response to GET " + target);
    return kExitFailure;
  }
  if (context.json || !print_health(result, std::cout)) print_json(result);
  return kExitSuccess;
}

int lookup(const Context& context, const VipKey& vip, const std::string& client) {
  std::vector<QueryParameter> query = vip_query(vip);
  query.emplace_back("client", client);
  auto result = call(context, "GET", build_target("/v1/lookup", query));
  if (!result) return kExitFailure;
  if (context.json) {
    print_json(*result);
  } else {
    std::cout << vip.to_string() << ": a new connection from " << client
              << " goes to backend " << result->value("backend", "?")
              << generation_of(*result) << "\n";
  }
  return kExitSuccess;
}

int show_digest(const Context& context) {
  auto result = call(context, "GET", "/v1/digest");
  if (!result) return kExitFailure;
  if (context.json) {
    print_json(*result);
    return kExitSuccess;
  }
  std::cout << "tables: " << result->value("digest", "?") << " (seed 0x" << std::hex
            << result->value("seed", 0u) << std::dec << ", generation "
            << result->value("generation", json()).dump() << ")\n";
  std::cout << std::left << std::setw(28) << "VIP" << std::right << std::setw(11) << "TABLE SIZE"
            << std::setw(12) << "EMPTY SLOTS" << "  DIGEST\n";
  for (const json& vip : result->value("vips", json::array())) {
    std::cout << std::left << std::setw(28) << vip.value("vip", "?") << std::right
              << std::setw(11) << vip.value("table_size", 0u) << std::setw(12)
              << vip.value("empty_slots", 0u) << "  " << vip.value("digest", "?") << "\n";
  }
  return kExitSuccess;
}

int apply_config(const Context& context, const std::string& path, bool dry_run) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  if (!file) {
    print_error("cannot read config file " + path + ": " + std::strerror(errno));
    return kExitFailure;
  }
  const std::vector<QueryParameter> query =
      dry_run ? std::vector<QueryParameter>{{"dry_run", "1"}} : std::vector<QueryParameter>{};
  Result<ApiResponse> response = context.client.send(
      "PUT", build_target("/v1/config", query), text.str(), "application/yaml");
  if (!response) {
    print_error(response.error());
    return kExitFailure;
  }
  if (response->status >= 300) {
    // The server checks the file as a whole config, so its errors name fields of the file.
    print_error(path + ": " + error_message(*response));
    return kExitFailure;
  }
  json result = json::parse(response->body, nullptr, false);
  if (!dry_run) {
    return report_change(context, result, "applied " + path,
                         path + " matches the running config; nothing changed");
  }
  for (const json& warning : result.value("warnings", json::array())) {
    print_error("warning: " + warning.get<std::string>());
  }
  if (context.json) {
    print_json(result);
  } else if (result.value("changed", false)) {
    std::cout << "dry run: " << path << " is valid and differs from the running config; "
              << "sluiced built it without applying it\n";
  } else {
    std::cout << "dry run: " << path << " is valid and matches the running config\n";
  }
  return kExitSuccess;
}

int show_config(const Context& context) {
  Result<ApiResponse> response = context.client.send("GET", "/v1/config");
  if (!response) {
    print_error(response.error());
    return kExitFailure;
  }
  if (response->status != 200) {
    print_error(error_message(*response));
    return kExitFailure;
  }
  // NOTE: the API serves the config as YAML only, so --json prints YAML here too.
  std::cout << response->body;
  if (!response->body.empty() && response->body.back() != '\n') std::cout << "\n";
  return kExitSuccess;
}

}  // namespace sluice::ctl
