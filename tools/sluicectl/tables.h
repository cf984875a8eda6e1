// Human-readable tables of the API's JSON responses: aligned columns, one row per VIP or
// backend. `--json` skips these and prints the response itself.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

namespace sluice::ctl {

enum class Align { kLeft, kRight };

struct Column {
  std::string title;
  Align align = Align::kLeft;
};

// Rows of text cells printed under a header, each column as wide as its widest cell and
// separated by two spaces.
class Table {
 public:
  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

  // Adds a row. Missing cells print empty, and extra cells are dropped.
  void add_row(std::vector<std::string> cells);
  bool empty() const { return rows_.empty(); }
  void print(std::ostream& out) const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// GET /v1/vips: one row per VIP.
void print_vips(const nlohmann::json& response, std::ostream& out);

// GET /v1/vips: one row per backend, with its share of the VIP's Maglev table.
void print_backends(const nlohmann::json& response, std::ostream& out);

// GET /v1/stats: totals, per-VIP and per-backend traffic, and the drop reasons that counted.
void print_stats(const nlohmann::json& report, std::ostream& out);

// GET /v1/health: one row per backend with each of its fields. Returns false, printing
// nothing, when the response is not a list of VIPs with backends.
bool print_health(const nlohmann::json& response, std::ostream& out);

// The output of counter_rates (rates.h), in the layout of print_stats.
void print_rates(const nlohmann::json& rates, std::ostream& out);

}  // namespace sluice::ctl
