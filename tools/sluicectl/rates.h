// Per-second rates from two stats reports, for `sluicectl stats --rate`.
#pragma once

#include <nlohmann/json.hpp>

namespace sluice::ctl {

// Returns the counters of `after` minus those of `before`, divided by `seconds`, in the layout
// of the stats report: received, forwarded, to_kernel, non_syn_misses, fragments,
// flow_table.evictions, drops, and per VIP packets and bytes, and per backend packets, bytes
// and new_flows. Gauges such as flow_table.entries are left out. A rate is null when the
// counter is missing from `before` (a VIP or backend added in between) or went down (sluiced
// restarted, or a backend was removed and added again).
nlohmann::json counter_rates(const nlohmann::json& before, const nlohmann::json& after,
                             double seconds);

}  // namespace sluice::ctl
