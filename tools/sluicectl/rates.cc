#include "rates.h"

#include <initializer_list>
#include <string>

namespace sluice::ctl {
namespace {

using nlohmann::json;

json rate(const json& before, const json& after, double seconds) {
  if (!before.is_number_unsigned() || !after.is_number_unsigned() || seconds <= 0) return nullptr;
  const uint64_t earlier = before.get<uint64_t>();
  const uint64_t later = after.get<uint64_t>();
  if (later < earlier) return nullptr;
  return static_cast<double>(later - earlier) / seconds;
}

// Fills `rates[name]` for each counter `name` of `after`, from the same field of `before`.
void add_rates(json& rates, const json& before, const json& after,
               std::initializer_list<const char*> names, double seconds) {
  for (const char* name : names) {
    rates[name] = rate(before.value(name, json()), after.value(name, json()), seconds);
  }
}

// Returns the element of `list` whose `key` field equals `value`, or null.
json find_by(const json& list, const char* key, const json& value) {
  for (const json& item : list) {
    if (item.value(key, json()) == value) return item;
  }
  return nullptr;
}

}  // namespace

json counter_rates(const json& before, const json& after, double seconds) {
  json rates = {{"interval_seconds", seconds}, {"generation", after.value("generation", json())}};
  add_rates(rates, before, after, {"received", "forwarded", "to_kernel", "non_syn_misses",
                                   "fragments"},
            seconds);
  rates["flow_table"] = json::object();
  add_rates(rates["flow_table"], before.value("flow_table", json::object()),
            after.value("flow_table", json::object()), {"evictions"}, seconds);

  rates["drops"] = json::object();
  const json before_drops = before.value("drops", json::object());
  const json after_drops = after.value("drops", json::object());
  for (const auto& [reason, count] : after_drops.items()) {
    rates["drops"][reason] = rate(before_drops.value(reason, json()), count, seconds);
  }

  rates["vips"] = json::array();
  for (const json& vip : after.value("vips", json::array())) {
    json earlier_vip = find_by(before.value("vips", json::array()), "vip", vip.value("vip", json()));
    if (earlier_vip.is_null()) earlier_vip = json::object();
    json vip_rates = {{"vip", vip.value("vip", json())}};
    add_rates(vip_rates, earlier_vip, vip, {"packets", "bytes"}, seconds);

    vip_rates["backends"] = json::array();
    for (const json& backend : vip.value("backends", json::array())) {
      json earlier_backend = find_by(earlier_vip.value("backends", json::array()), "address",
                                     backend.value("address", json()));
      if (earlier_backend.is_null()) earlier_backend = json::object();
      json backend_rates = {{"address", backend.value("address", json())}};
      add_rates(backend_rates, earlier_backend, backend, {"packets", "bytes", "new_flows"},
                seconds);
      vip_rates["backends"].push_back(backend_rates);
    }
    rates["vips"].push_back(vip_rates);
  }
  return rates;
}

}  // namespace sluice::ctl
