#include "tables.h"

#include <algorithm>
#include <cstdio>
#include <set>

namespace sluice::ctl {
namespace {

using nlohmann::json;

// Top-level fields of a stats report that print_stats shows in its own lines.
const std::set<std::string> kKnownStatsFields = {
    "dataplane", "generation", "received", "forwarded", "to_kernel", "non_syn_misses",
    "fragments", "flow_table", "vips",      "drops", "icmp_errors", "icmp_echo_replies",
    "icmp_too_big_replies", "new_flows_limited"};

std::string text_of(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_null()) return "-";
  return value.dump();
}

std::string percent(double part, double whole) {
  if (whole <= 0) return "-";
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.1f%%", 100.0 * part / whole);
  return buffer;
}

// Formats a per-second rate with three significant digits and an SI prefix from 10 000 up,
// for example 12.5k or 1.20M. An unknown rate (null) prints as "-".
std::string rate_text(const json& value) {
  if (!value.is_number()) return "-";
  const double rate = value.get<double>();
  char buffer[32];
  if (rate < 10'000) {
    std::snprintf(buffer, sizeof(buffer), "%.1f", rate);
    return buffer;
  }
  const char* prefixes[] = {"k", "M", "G", "T"};
  double scaled = rate / 1000;
  size_t prefix = 0;
  while (scaled >= 1000 && prefix + 1 < std::size(prefixes)) {
    scaled /= 1000;
    ++prefix;
  }
  std::snprintf(buffer, sizeof(buffer), scaled < 100 ? "%.3g%s" : "%.0f%s", scaled,
                prefixes[prefix]);
  return buffer;
}

void print_drops(const json& drops, std::ostream& out, bool rates) {
  Table table({{"DROP REASON"}, {rates ? "PACKETS/S" : "PACKETS", Align::kRight}});
  for (const auto& [reason, count] : drops.items()) {
    const bool counted = count.is_number() && count.get<double>() > 0;
    if (counted) table.add_row({reason, rates ? rate_text(count) : text_of(count)});
  }
  if (table.empty()) {
    out << "drops: none\n";
    return;
  }
  table.print(out);
}

}  // namespace

void Table::add_row(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  rows_.push_back(std::move(cells));
}

void Table::print(std::ostream& out) const {
  std::vector<size_t> widths;
  for (const Column& column : columns_) widths.push_back(column.title.size());
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }

  auto print_row = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t i = 0; i < cells.size(); ++i) {
      const size_t padding = widths[i] - cells[i].size();
      const bool last = i + 1 == cells.size();
      if (i > 0) line += "  ";
      if (columns_[i].align == Align::kRight) line.append(padding, ' ');
      line += cells[i];
      // No padding after the last column, so lines carry no trailing spaces.
      if (columns_[i].align == Align::kLeft && !last) line.append(padding, ' ');
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out << line << "\n";
  };

  std::vector<std::string> titles;
  for (const Column& column : columns_) titles.push_back(column.title);
  print_row(titles);
  for (const auto& row : rows_) print_row(row);
}

void print_vips(const json& response, std::ostream& out) {
  const json& vips = response.value("vips", json::array());
  if (vips.empty()) {
    out << "no VIPs (generation " << text_of(response.value("generation", json())) << ")\n";
    return;
  }
  Table table({{"VIP"},
               {"TABLE SIZE", Align::kRight},
               {"BACKENDS", Align::kRight},
               {"LIVE", Align::kRight},
               {"CHANGED SLOTS", Align::kRight},
               {"ENCAPSULATION"},
               {"PERSISTENCE"}});
  for (const json& vip : vips) {
    const json& backends = vip.value("backends", json::array());
    const auto live = std::count_if(backends.begin(), backends.end(), [](const json& backend) {
      return backend.value("state", "") == "live";
    });
    table.add_row({text_of(vip.value("vip", json())), text_of(vip.value("table_size", json())),
                   std::to_string(backends.size()), std::to_string(live),
                   text_of(vip.value("changed_slots", json())), text_of(vip.value("encapsulation", json())),
                   text_of(vip.value("persistence", json()))});
  }
  table.print(out);
}

void print_backends(const json& response, std::ostream& out) {
  Table table({{"VIP"},
               {"BACKEND"},
               {"WEIGHT", Align::kRight},
               {"STATE"},
               {"SLOTS", Align::kRight},
               {"SHARE", Align::kRight}});
  for (const json& vip : response.value("vips", json::array())) {
    const double table_size = vip.value("table_size", 0.0);
    for (const json& backend : vip.value("backends", json::array())) {
      table.add_row({text_of(vip.value("vip", json())), text_of(backend.value("address", json())),
                     text_of(backend.value("weight", json())),
                     text_of(backend.value("state", json())),
                     text_of(backend.value("slots", json())),
                     percent(backend.value("slots", 0.0), table_size)});
    }
  }
  if (table.empty()) {
    out << "no backends\n";
    return;
  }
  table.print(out);
}

bool print_health(const json& response, std::ostream& out) {
  if (!response.is_object() || !response.contains("backends") || !response["backends"].is_array()) {
    return false;
  }
  Table table({{"VIP"}, {"BACKEND"}, {"CHECK"}, {"HEALTH"}, {"PASSES", Align::kRight},
               {"FAILURES", Align::kRight},
               {"SINCE (S)", Align::kRight}, {"LAST ERROR"}});
  for (const json& backend : response["backends"]) {
    if (!backend.is_object()) return false;
    table.add_row({text_of(backend.value("vip", json())), text_of(backend.value("backend", json())),
                   text_of(backend.value("check", json())), text_of(backend.value("health", json())),
                   text_of(backend.value("consecutive_passes", json())),
                   text_of(backend.value("consecutive_failures", json())),
                   text_of(backend.value("seconds_since_transition", json())),
                   // An error from before the last recovery is history, not a problem now.
                   backend.value("health", "") == "up" ? std::string()
                                                        : text_of(backend.value("last_error", json()))});
  }
  if (table.empty()) {
    out << "no backends with health checks\n";
  } else {
    table.print(out);
  }
  return true;
}

void print_stats(const json& report, std::ostream& out) {
  out << text_of(report.value("dataplane", json("unknown"))) << " data plane, generation "
      << text_of(report.value("generation", json())) << "\n";
  out << "packets: received " << text_of(report.value("received", json())) << ", forwarded "
      << text_of(report.value("forwarded", json())) << ", to kernel "
      << text_of(report.value("to_kernel", json())) << ", non-SYN misses "
      << text_of(report.value("non_syn_misses", json())) << ", fragments "
      << text_of(report.value("fragments", json())) << "\n";
  out << "icmp: errors to backends " << text_of(report.value("icmp_errors", json())) << ", echo replies "
      << text_of(report.value("icmp_echo_replies", json())) << ", too-big replies "
      << text_of(report.value("icmp_too_big_replies", json())) << "; new flows over the limit "
      << text_of(report.value("new_flows_limited", json())) << "\n";
  const json& flow_table = report.value("flow_table", json::object());
  out << "flow table: " << text_of(flow_table.value("entries", json())) << " of "
      << text_of(flow_table.value("capacity", json())) << " entries, "
      << text_of(flow_table.value("evictions", json())) << " evictions\n";
  // Figures that only one data plane reports (the DPDK mempool, for example).
  for (const auto& [name, value] : report.items()) {
    if (kKnownStatsFields.contains(name)) continue;
    if (value.is_object()) {
      std::string fields;
      for (const auto& [field, figure] : value.items()) {
        fields += (fields.empty() ? "" : ", ") + field + " " + text_of(figure);
      }
      out << name << ": " << fields << "\n";
    } else {
      out << name << ": " << text_of(value) << "\n";
    }
  }
  out << "\n";

  Table table({{"VIP"},
               {"BACKEND"},
               {"WEIGHT", Align::kRight},
               {"PACKETS", Align::kRight},
               {"BYTES", Align::kRight},
               {"NEW FLOWS", Align::kRight}});
  for (const json& vip : report.value("vips", json::array())) {
    const std::string name = text_of(vip.value("vip", json()));
    table.add_row({name, "(all)", "", text_of(vip.value("packets", json())),
                   text_of(vip.value("bytes", json())), ""});
    for (const json& backend : vip.value("backends", json::array())) {
      table.add_row({name, text_of(backend.value("address", json())),
                     text_of(backend.value("weight", json())),
                     text_of(backend.value("packets", json())),
                     text_of(backend.value("bytes", json())),
                     text_of(backend.value("new_flows", json()))});
    }
  }
  if (table.empty()) {
    out << "no VIPs\n";
  } else {
    table.print(out);
  }
  out << "\n";
  print_drops(report.value("drops", json::object()), out, false);
}

void print_rates(const json& rates, std::ostream& out) {
  char interval[32];
  std::snprintf(interval, sizeof(interval), "%.2f", rates.value("interval_seconds", 0.0));
  out << "per second over " << interval << " s, generation "
      << text_of(rates.value("generation", json())) << "\n";
  out << "packets/s: received " << rate_text(rates.value("received", json())) << ", forwarded "
      << rate_text(rates.value("forwarded", json())) << ", to kernel "
      << rate_text(rates.value("to_kernel", json())) << ", non-SYN misses "
      << rate_text(rates.value("non_syn_misses", json())) << ", fragments "
      << rate_text(rates.value("fragments", json())) << "\n";
  out << "flow table evictions/s: "
      << rate_text(rates.value("flow_table", json::object()).value("evictions", json())) << "\n\n";

  Table table({{"VIP"},
               {"BACKEND"},
               {"PACKETS/S", Align::kRight},
               {"BYTES/S", Align::kRight},
               {"NEW FLOWS/S", Align::kRight}});
  for (const json& vip : rates.value("vips", json::array())) {
    const std::string name = text_of(vip.value("vip", json()));
    table.add_row({name, "(all)", rate_text(vip.value("packets", json())),
                   rate_text(vip.value("bytes", json())), ""});
    for (const json& backend : vip.value("backends", json::array())) {
      table.add_row({name, text_of(backend.value("address", json())),
                     rate_text(backend.value("packets", json())),
                     rate_text(backend.value("bytes", json())),
                     rate_text(backend.value("new_flows", json()))});
    }
  }
  if (table.empty()) {
    out << "no VIPs\n";
  } else {
    table.print(out);
  }
  out << "\n";
  print_drops(rates.value("drops", json::object()), out, true);
}

}  // namespace sluice::ctl
