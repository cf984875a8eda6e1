// The sluicectl commands: each sends its requests to sluiced's API, prints the result as a
// table or, with --json, as the server's JSON, and returns the process exit code.
#pragma once

#include <optional>
#include <string>

#include "api_client.h"
#include "sluice/ip_address.h"
#include "sluice/snapshot.h"

namespace sluice::ctl {

inline constexpr int kExitSuccess = 0;
// The server rejected the request, or sluiced could not be reached.
inline constexpr int kExitFailure = 1;
// Invalid command-line arguments; nothing was sent.
inline constexpr int kExitUsage = 2;

struct Context {
  ApiClient client;
  bool json = false;  // print the server's JSON instead of tables and sentences
};

int add_vip(const Context& context, const VipKey& vip, std::optional<uint32_t> table_size,
            const std::optional<std::string>& check, const std::optional<std::string>& persistence,
            const std::optional<std::string>& encapsulation);
int delete_vip(const Context& context, const VipKey& vip);
int list_vips(const Context& context);

int add_backend(const Context& context, const VipKey& vip, const IpAddress& address,
                std::optional<uint32_t> weight);
int delete_backend(const Context& context, const VipKey& vip, const IpAddress& address);
int set_weight(const Context& context, const VipKey& vip, const IpAddress& address,
               uint32_t weight);
int drain_backend(const Context& context, const VipKey& vip, const IpAddress& address);
int list_backends(const Context& context, const std::optional<VipKey>& vip);

// With `rate`, samples the counters twice one second apart and prints per-second rates.
int show_stats(const Context& context, const std::optional<VipKey>& vip, bool rate);
int show_health(const Context& context, const std::optional<VipKey>& vip);
// `client` is ADDRESS:PORT, already validated.
int lookup(const Context& context, const VipKey& vip, const std::string& client);
// Prints the digest of the Maglev tables, to compare load balancers that should agree.
int show_digest(const Context& context);

int apply_config(const Context& context, const std::string& path, bool dry_run);
int show_config(const Context& context);

}  // namespace sluice::ctl
