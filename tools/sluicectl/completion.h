// Bash completion for sluicectl, generated from the CLI11 definition of its commands.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace sluice::ctl {

// Returns a bash script that completes the subcommands and options of `app` and its
// subcommands, files after options whose type name is PATH or FILE, and the choices of an
// option whose type name lists them as WORD|WORD.
std::string bash_completion_script(const CLI::App& app);

}  // namespace sluice::ctl
