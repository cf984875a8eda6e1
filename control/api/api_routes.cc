#include "api_routes.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "config_yaml.h"

namespace sluice::control {
namespace {

using nlohmann::json;

HttpResponse json_response(int status, const json& body) {
  return {status, "application/json", body.dump(2) + "\n"};
}

HttpResponse error(int status, const std::string& message) {
  return json_response(status, {{"error", message}});
}

// Maps a ControlPlane error to an HTTP status: 404 for a missing VIP or backend, 409 for a
// duplicate, 422 for a change that validation or the data plane rejected.
HttpResponse change_error(const std::string& message) {
  if (message.find(" not found") != std::string::npos) return error(404, message);
  if (message.find("already exists") != std::string::npos) return error(409, message);
  return error(422, message);
}

HttpResponse change_response(const Result<ChangeResult>& result, int success_status = 200) {
  if (!result) return change_error(result.error());
  return json_response(success_status, {{"generation", result->generation},
                                         {"changed", result->changed},
                                         {"warnings", result->warnings}});
}

Result<VipKey> vip_parameter(const HttpRequest& request) {
  auto it = request.query.find("vip");
  if (it == request.query.end()) return Error{"missing query parameter vip (ADDRESS:PORT/PROTOCOL)"};
  auto key = parse_vip_key(it->second);
  if (!key) return Error{"vip: " + key.error()};
  return key;
}

Result<IpAddress> address_parameter(const HttpRequest& request, const char* name) {
  auto it = request.query.find(name);
  if (it == request.query.end()) return Error{std::string("missing query parameter ") + name};
  auto address = IpAddress::parse(it->second);
  if (!address) return Error{std::string(name) + ": " + address.error()};
  return address;
}

json vip_json(const VipStatus& vip) {
  json backends = json::array();
  for (const BackendStatus& backend : vip.backends) {
    backends.push_back({{"address", backend.address.to_string()},
                        {"weight", backend.weight},
                        {"state", backend.state},
                        {"slots", backend.slots}});
  }
  return {{"vip", vip.key.to_string()},
          {"table_size", vip.table_size},
          {"persistence", vip.persistence == SLUICE_PERSISTENCE_CLIENT ? "client" : "connection"},
          {"encapsulation", vip.encapsulation == SLUICE_ENCAP_GUE ? "gue" : "ipip"},
          {"changed_slots", vip.changed_slots},
          {"backends", backends}};
}

HttpResponse list_vips(ControlPlane& control, const HttpRequest& request) {
  std::optional<VipKey> only;
  if (request.query.contains("vip")) {
    auto key = vip_parameter(request);
    if (!key) return error(400, key.error());
    only = *key;
  }
  json vips = json::array();
  for (const VipStatus& vip : control.vips()) {
    if (!only || vip.key == *only) vips.push_back(vip_json(vip));
  }
  if (only && vips.empty()) return error(404, "vip " + only->to_string() + " not found");
  return json_response(200, {{"generation", control.generation()}, {"vips", vips}});
}

HttpResponse add_vip(ControlPlane& control, const HttpRequest& request) {
  auto vip = parse_vip_config(request.body);
  if (!vip) return error(400, vip.error());
  return change_response(control.add_vip(std::move(*vip)), 201);
}

HttpResponse delete_vip(ControlPlane& control, const HttpRequest& request) {
  auto key = vip_parameter(request);
  if (!key) return error(400, key.error());
  return change_response(control.remove_vip(*key));
}

HttpResponse add_backend(ControlPlane& control, const HttpRequest& request) {
  auto key = vip_parameter(request);
  if (!key) return error(400, key.error());
  auto backend = parse_backend_config(request.body);
  if (!backend) return error(400, backend.error());
  return change_response(control.add_backend(*key, *backend), 201);
}

HttpResponse delete_backend(ControlPlane& control, const HttpRequest& request) {
  auto key = vip_parameter(request);
  if (!key) return error(400, key.error());
  auto address = address_parameter(request, "address");
  if (!address) return error(400, address.error());
  return change_response(control.remove_backend(*key, *address));
}

HttpResponse set_weight(ControlPlane& control, const HttpRequest& request, bool drain) {
  auto key = vip_parameter(request);
  if (!key) return error(400, key.error());
  auto address = address_parameter(request, "address");
  if (!address) return error(400, address.error());
  uint32_t weight = 0;
  if (!drain) {
    json body;
    try {
      body = json::parse(request.body);
    } catch (const json::exception& parse_error) {
      return error(400, std::string("body: invalid JSON: ") + parse_error.what());
    }
    if (!body.is_object() || !body.contains("weight") || !body["weight"].is_number_integer() ||
        body["weight"].get<int64_t>() < 0 || body["weight"].get<int64_t>() > 65535) {
      return error(400, "weight: expected a whole number from 0 to 65535");
    }
    weight = body["weight"].get<uint32_t>();
  }
  return change_response(control.set_weight(*key, *address, weight));
}

HttpResponse stats(ControlPlane& control, const HttpRequest& request) {
  json report = control.stats();
  if (request.query.contains("vip")) {
    auto key = vip_parameter(request);
    if (!key) return error(400, key.error());
    json vips = json::array();
    for (const json& vip : report.value("vips", json::array())) {
      if (vip["vip"] == key->to_string()) vips.push_back(vip);
    }
    if (vips.empty()) return error(404, "vip " + key->to_string() + " not found");
    report["vips"] = vips;
  }
  return json_response(200, report);
}

HttpResponse health_states(const health::HealthChecker* checker, const HttpRequest& request) {
  std::optional<VipKey> only;
  if (request.query.contains("vip")) {
    auto key = vip_parameter(request);
    if (!key) return error(400, key.error());
    only = *key;
  }
  json backends = json::array();
  const auto now = std::chrono::steady_clock::now();
  if (checker != nullptr) {
    for (const health::BackendStatus& status : checker->snapshot()) {
      if (only && status.vip != only->to_string()) continue;
      const auto since = std::chrono::duration_cast<std::chrono::seconds>(now - status.last_transition);
      backends.push_back({{"vip", status.vip},
                          {"backend", status.backend.to_string()},
                          {"check", std::string(health::to_string(status.kind))},
                          {"health", std::string(health::to_string(status.health))},
                          {"consecutive_passes", status.consecutive_passes},
                          {"consecutive_failures", status.consecutive_failures},
                          {"last_error", status.last_error},
                          {"seconds_since_transition", since.count()}});
    }
  }
  return json_response(200, {{"backends", backends}});
}

HttpResponse apply_config(ControlPlane& control, const HttpRequest& request) {
  auto config = parse_config(request.body);
  if (!config) return error(400, config.error());
  const bool dry_run = request.query.contains("dry_run") && request.query.at("dry_run") != "0";
  auto result = control.apply(std::move(*config), dry_run);
  if (!result) return change_error(result.error());
  return json_response(200, {{"generation", result->generation},
                             {"changed", result->changed},
                             {"dry_run", dry_run},
                             {"warnings", result->warnings}});
}

HttpResponse lookup(ControlPlane& control, const HttpRequest& request) {
  auto key = vip_parameter(request);
  if (!key) return error(400, key.error());
  auto it = request.query.find("client");
  if (it == request.query.end()) return error(400, "missing query parameter client (ADDRESS:PORT)");
  // The client is written like a VIP without the protocol: 192.0.2.2:40000 or [2001:db8::2]:40000.
  auto client = parse_vip_key(it->second + "/tcp");
  if (!client) {
    return error(400, "client: '" + it->second + "' is not ADDRESS:PORT (for example "
                      "192.0.2.2:40000 or [2001:db8::2]:40000)");
  }
  auto backend = control.lookup(*key, client->address, client->port);
  if (!backend) return change_error(backend.error());
  return json_response(200, {{"vip", key->to_string()},
                             {"client", it->second},
                             {"backend", backend->to_string()},
                             {"generation", control.generation()}});
}

}  // namespace

HttpHandler make_api_handler(ControlPlane& control, const health::HealthChecker* health) {
  return [&control, health](const HttpRequest& request) -> HttpResponse {
    const std::string& method = request.method;
    const std::string& path = request.path;
    HttpResponse response;
    if (path == "/v1/vips" && method == "GET") {
      response = list_vips(control, request);
    } else if (path == "/v1/vips" && method == "POST") {
      response = add_vip(control, request);
    } else if (path == "/v1/vips" && method == "DELETE") {
      response = delete_vip(control, request);
    } else if (path == "/v1/backends" && method == "POST") {
      response = add_backend(control, request);
    } else if (path == "/v1/backends" && method == "DELETE") {
      response = delete_backend(control, request);
    } else if (path == "/v1/backends/weight" && method == "PUT") {
      response = set_weight(control, request, false);
    } else if (path == "/v1/backends/drain" && method == "POST") {
      response = set_weight(control, request, true);
    } else if (path == "/v1/stats" && method == "GET") {
      response = stats(control, request);
    } else if (path == "/v1/config" && method == "GET") {
      response = {200, "application/yaml", config_to_yaml(control.config())};
    } else if (path == "/v1/config" && method == "PUT") {
      response = apply_config(control, request);
    } else if (path == "/v1/health" && method == "GET") {
      response = health_states(health, request);
    } else if (path == "/v1/lookup" && method == "GET") {
      response = lookup(control, request);
    } else if (path == "/v1/digest" && method == "GET") {
      response = json_response(200, control.table_digest());
    } else {
      response = error(404, "no route for " + method + " " + path + " (see the API section of "
                            "the README)");
    }
    if (response.status >= 400) {
      const json body = json::parse(response.body, nullptr, false);
      const std::string reason = body.is_object() ? body.value("error", response.body) : response.body;
      spdlog::warn("api: {} {} rejected with {}: {}", method, path, response.status, reason);
    }
    return response;
  };
}

}  // namespace sluice::control
