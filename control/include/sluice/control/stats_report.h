// The counters report that sluiced writes to its stats file, as JSON.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "sluice/pipeline.h"
#include "sluice/result.h"
#include "sluice/snapshot.h"

namespace sluice::control {

// Builds the report: per VIP and per backend packets and bytes, drops by reason, flow table
// figures. Backend slots are resolved to addresses through `snapshot`.
nlohmann::json stats_report(const Snapshot& snapshot, const PipelineTotals& totals);

// Writes `report` to `path` through a temporary file and a rename, so a reader never sees a
// half-written file.
Status write_stats_file(const std::string& path, const nlohmann::json& report);

}  // namespace sluice::control
