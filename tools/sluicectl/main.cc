// sluicectl: the operator CLI of sluiced. It talks HTTP/1.1 and JSON to sluiced's API on a
// Unix socket, and prints tables, or the server's JSON with --json.
//
// Exit status:
//   0  success
//   1  sluiced rejected the request, or could not be reached
//   2  invalid arguments, which are checked before any request is sent
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <iostream>
#include <optional>
#include <string>

#include "arguments.h"
#include "commands.h"
#include "completion.h"

namespace {

using sluice::ctl::Context;

constexpr const char* kDefaultSocket = "/run/sluice/sluiced.sock";
constexpr double kDefaultTimeoutSeconds = 10;

using Action = std::function<int(const Context&)>;

// The command line as typed. Each option's check validates its value during parsing, and
// the action parses the value again.
struct Arguments {
  std::string socket = kDefaultSocket;
  double timeout_seconds = kDefaultTimeoutSeconds;
  bool json = false;

  std::string vip;
  std::string address;
  std::string weight;
  std::string table_size;
  std::string persistence;
  std::string encapsulation;
  std::string check;
  std::string client;
  std::string file;
  std::string shell;
  bool rate = false;
  bool dry_run = false;
};

// Wraps a check that returns an error message, or an empty string for a valid value. The
// empty description keeps the option's type name as set, for help and completion.
CLI::Validator validator(std::string (*check)(const std::string&)) {
  return CLI::Validator([check](std::string& text) { return check(text); }, "");
}

std::string check_readable_file(const std::string& path) {
  struct stat status {};
  if (::stat(path.c_str(), &status) != 0) {
    return "cannot read '" + path + "': " + std::strerror(errno);
  }
  if (S_ISDIR(status.st_mode)) return "'" + path + "' is a directory, not a config file";
  if (::access(path.c_str(), R_OK) != 0) {
    return "cannot read '" + path + "': " + std::strerror(errno);
  }
  return "";
}

std::string check_timeout(const std::string& text) {
  size_t used = 0;
  double seconds = 0;
  try {
    seconds = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || !(seconds >= 0.1 && seconds <= 3600)) {
    return "'" + text + "' is not a number of seconds from 0.1 to 3600";
  }
  return "";
}

std::string check_shell(const std::string& shell) {
  return shell == "bash" ? "" : "'" + shell + "' is not supported (use bash)";
}

CLI::Option* add_vip_argument(CLI::App& command, Arguments& arguments, bool required) {
  CLI::Option* option =
      command.add_option("VIP", arguments.vip, "the VIP, as 203.0.113.10:80/tcp or "
                                               "[2001:db8::10]:443/udp")
          ->type_name("ADDRESS:PORT/PROTOCOL")
          ->check(validator(sluice::ctl::check_vip));
  if (required) option->required();
  return option;
}

CLI::Option* add_address_argument(CLI::App& command, Arguments& arguments) {
  return command.add_option("ADDRESS", arguments.address, "the backend's IPv4 or IPv6 address")
      ->type_name("ADDRESS")
      ->required()
      ->check(validator(sluice::ctl::check_address));
}

std::optional<sluice::VipKey> optional_vip(const std::string& text) {
  if (text.empty()) return std::nullopt;
  return sluice::ctl::vip_of(text);
}

void add_vip_commands(CLI::App& app, Arguments& arguments, Action& action) {
  CLI::App* vip = app.add_subcommand("vip", "add, delete and list VIPs")->require_subcommand(1);

  CLI::App* add = vip->add_subcommand("add", "add a VIP without backends");
  add_vip_argument(*add, arguments, true);
  add->add_option("--table-size", arguments.table_size,
                  "slots in the VIP's Maglev table, a prime (sluiced's default: 65537)")
      ->type_name("N")
      ->check(validator(sluice::ctl::check_table_size));
  add->add_option("--check", arguments.check,
                  "health check of the VIP's backends, with the default interval, timeout, rise and fall")
      ->type_name("tcp|http:PATH|udp|none")
      ->check(validator(sluice::ctl::check_health_check));
  add->add_option("--persistence", arguments.persistence,
                  "what picks the backend: each connection's 5-tuple, or the client's address "
                  "only (every connection of a client to one backend; default connection)")
      ->check(CLI::IsMember({"connection", "client"}));
  add->add_option("--encapsulation", arguments.encapsulation,
                  "how packets reach the backends: IP-in-IP, or GUE (the packet in UDP to sluiced's "
                  "lb.gue_port; default ipip)")
      ->check(CLI::IsMember({"ipip", "gue"}));
  add->callback([&] {
    action = [&](const Context& context) {
      std::optional<uint32_t> table_size;
      if (!arguments.table_size.empty()) table_size = sluice::ctl::number_of(arguments.table_size);
      std::optional<std::string> check;
      if (!arguments.check.empty()) check = arguments.check;
      std::optional<std::string> persistence;
      if (!arguments.persistence.empty()) persistence = arguments.persistence;
      std::optional<std::string> encapsulation;
      if (!arguments.encapsulation.empty()) encapsulation = arguments.encapsulation;
      return sluice::ctl::add_vip(context, sluice::ctl::vip_of(arguments.vip), table_size, check,
                                  persistence, encapsulation);
    };
  });

  CLI::App* del = vip->add_subcommand("del", "delete a VIP and its backends");
  add_vip_argument(*del, arguments, true);
  del->callback([&] {
    action = [&](const Context& context) {
      return sluice::ctl::delete_vip(context, sluice::ctl::vip_of(arguments.vip));
    };
  });

  vip->add_subcommand("list", "list the VIPs with their table sizes and backend counts")
      ->callback([&] { action = sluice::ctl::list_vips; });
}

// Adds `backend weight` and `backend drain`.
void add_weight_commands(CLI::App& backend, Arguments& arguments, Action& action) {
  CLI::App* weight = backend.add_subcommand("weight", "set a backend's weight");
  add_vip_argument(*weight, arguments, true);
  add_address_argument(*weight, arguments);
  weight->add_option("WEIGHT", arguments.weight, "the new weight, 0 to 65535 (0 drains the backend)")
      ->type_name("WEIGHT")
      ->required()
      ->check(validator(sluice::ctl::check_weight));
  weight->callback([&] {
    action = [&](const Context& context) {
      return sluice::ctl::set_weight(context, sluice::ctl::vip_of(arguments.vip),
                                     sluice::ctl::address_of(arguments.address),
                                     sluice::ctl::number_of(arguments.weight));
    };
  });

  CLI::App* drain = backend.add_subcommand(
      "drain", "set a backend's weight to 0: its flows stay, new flows go to other backends");
  add_vip_argument(*drain, arguments, true);
  add_address_argument(*drain, arguments);
  drain->callback([&] {
    action = [&](const Context& context) {
      return sluice::ctl::drain_backend(context, sluice::ctl::vip_of(arguments.vip),
                                        sluice::ctl::address_of(arguments.address));
    };
  });
}

void add_backend_commands(CLI::App& app, Arguments& arguments, Action& action) {
  CLI::App* backend =
      app.add_subcommand("backend", "add, delete, weight, drain and list backends")
          ->require_subcommand(1);

  CLI::App* add = backend->add_subcommand("add", "add a backend to a VIP");
  add_vip_argument(*add, arguments, true);
  add_address_argument(*add, arguments);
  add->add_option("--weight", arguments.weight,
                  "share of new flows relative to the VIP's other backends, 0 to 65535 "
                  "(sluiced's default: 1)")
      ->type_name("WEIGHT")
      ->check(validator(sluice::ctl::check_weight));
  add->callback([&] {
    action = [&](const Context& context) {
      std::optional<uint32_t> weight;
      if (!arguments.weight.empty()) weight = sluice::ctl::number_of(arguments.weight);
      return sluice::ctl::add_backend(context, sluice::ctl::vip_of(arguments.vip),
                                      sluice::ctl::address_of(arguments.address), weight);
    };
  });

  CLI::App* del = backend->add_subcommand("del", "delete a backend from a VIP");
  add_vip_argument(*del, arguments, true);
  add_address_argument(*del, arguments);
  del->callback([&] {
    action = [&](const Context& context) {
      return sluice::ctl::delete_backend(context, sluice::ctl::vip_of(arguments.vip),
                                         sluice::ctl::address_of(arguments.address));
    };
  });

  add_weight_commands(*backend, arguments, action);

  CLI::App* list = backend->add_subcommand(
      "list", "list backends with weight, state and Maglev slots, of one VIP or of all");
  add_vip_argument(*list, arguments, false);
  list->callback([&] {
    action = [&](const Context& context) {
      return sluice::ctl::list_backends(context, optional_vip(arguments.vip));
    };
  });
}

// Adds the commands that read the running state: stats, health, lookup and digest.
void add_query_commands(CLI::App& app, Arguments& arguments, Action& action) {
  CLI::App* stats = app.add_subcommand("stats", "show traffic counters, of one VIP or of all");
  add_vip_argument(*stats, arguments, false);
  stats->add_flag("--rate", arguments.rate,
                  "sample the counters twice, one second apart, and show rates per second");
  stats->callback([&] {
    action = [&](const Context& context) {
      return sluice::ctl::show_stats(context, optional_vip(arguments.vip), arguments.rate);
    };
  });

  CLI::App* health = app.add_subcommand("health", "show backend health, of one VIP or of all");
  add_vip_argument(*health, arguments, false);
  health->callback([&] {
    action = [&](const Context& context) {
      return sluice::ctl::show_health(context, optional_vip(arguments.vip));
    };
  });

  CLI::App* lookup =
      app.add_subcommand("lookup", "show the backend that a new connection from a client reaches");
  add_vip_argument(*lookup, arguments, true);
  lookup->add_option("CLIENT", arguments.client,
                     "the client's address and port, as 192.0.2.2:40000 or [2001:db8::2]:40000")
      ->type_name("CLIENT_ADDRESS:PORT")
      ->required()
      ->check(validator(sluice::ctl::check_client));
  lookup->callback([&] {
    action = [&](const Context& context) {
      return sluice::ctl::lookup(context, sluice::ctl::vip_of(arguments.vip), arguments.client);
    };
  });

  CLI::App* digest = app.add_subcommand(
      "digest", "show a digest of the Maglev tables: load balancers with the same digest send "
                "every new flow to the same backend");
  digest->callback([&] {
    action = [&](const Context& context) { return sluice::ctl::show_digest(context); };
  });

}

// Adds apply, config show, and completion.
void add_config_commands(CLI::App& app, Arguments& arguments, Action& action) {
  CLI::App* apply = app.add_subcommand(
      "apply", "replace the whole running config with a YAML file, or change nothing if the "
               "file is invalid");
  apply->add_option("-f,--file", arguments.file, "the YAML config file")
      ->type_name("FILE")
      ->required()
      ->check(validator(check_readable_file));
  apply->add_flag("--dry-run", arguments.dry_run,
                  "only validate the file and report whether it would change the running config");
  apply->callback([&] {
    action = [&](const Context& context) {
      return sluice::ctl::apply_config(context, arguments.file, arguments.dry_run);
    };
  });

  CLI::App* config = app.add_subcommand("config", "show the running config")->require_subcommand(1);
  config->add_subcommand("show", "print the running config as YAML")->callback([&] {
    action = sluice::ctl::show_config;
  });

  CLI::App* completion =
      app.add_subcommand("completion", "print a shell completion script for sluicectl");
  completion->add_option("SHELL", arguments.shell, "the shell; only bash is supported")
      ->type_name("bash")
      ->required()
      ->check(validator(check_shell));
  completion->callback([&] {
    action = [&](const Context&) {
      std::cout << sluice::ctl::bash_completion_script(app);
      return sluice::ctl::kExitSuccess;
    };
  });
}

// Names the command whose arguments were invalid: "sluicectl backend add".
std::string command_path(const CLI::App& app) {
  std::string path = app.get_name();
  const CLI::App* current = &app;
  while (!current->get_subcommands().empty()) {
    current = current->get_subcommands().front();
    path += " " + current->get_name();
  }
  return path;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluicectl: configure and inspect a running sluiced through its API socket",
               "sluicectl"};
  // Set before the subcommands exist, so that each inherits them: the top level's options
  // work after a subcommand, and errors print in one form.
  app.fallthrough();
  app.require_subcommand(1);
  app.failure_message([](const CLI::App* failed, const CLI::Error& error) {
    return "sluicectl: " + std::string(error.what()) + "\nRun '" + command_path(*failed) +
           " --help' for usage.\n";
  });

  Arguments arguments;
  app.add_option("--socket", arguments.socket, "sluiced's API socket")
      ->type_name("PATH")
      ->capture_default_str();
  app.add_option("--timeout", arguments.timeout_seconds,
                 "seconds to wait for each response from sluiced")
      ->type_name("SECONDS")
      ->capture_default_str()
      ->check(validator(check_timeout));
  app.add_flag("--json", arguments.json, "print the server's JSON instead of tables");

  Action action;
  add_vip_commands(app, arguments, action);
  add_backend_commands(app, arguments, action);
  add_query_commands(app, arguments, action);
  add_config_commands(app, arguments, action);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    const int code = app.exit(error);
    return code == 0 ? sluice::ctl::kExitSuccess : sluice::ctl::kExitUsage;
  }
  if (!action) {
    std::cerr << "sluicectl: no command given\nRun 'sluicectl --help' for usage.\n";
    return sluice::ctl::kExitUsage;
  }

  const auto timeout = std::chrono::milliseconds(
      static_cast<int64_t>(arguments.timeout_seconds * 1000));
  const Context context{sluice::ctl::ApiClient(arguments.socket, timeout), arguments.json};
  return action(context);
}
