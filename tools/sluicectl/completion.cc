#include "completion.h"

#include <algorithm>
#include <map>
#include <vector>

namespace sluice::ctl {
namespace {

struct CommandNode {
  std::string path;  // "sluicectl backend add"
  std::vector<std::string> words;  // subcommands and options offered after it
};

// An option's names as typed: -f and --file.
std::vector<std::string> option_names(const CLI::Option& option) {
  std::vector<std::string> names;
  for (const std::string& name : option.get_snames()) names.push_back("-" + name);
  for (const std::string& name : option.get_lnames()) names.push_back("--" + name);
  return names;
}

std::string join(const std::vector<std::string>& words, const std::string& separator) {
  std::string joined;
  for (const std::string& word : words) joined += (joined.empty() ? "" : separator) + word;
  return joined;
}

// Returns the choices listed in a type name such as tcp|http:PATH|udp|none, each without
// its upper-case placeholder (http:PATH is offered as http:).
std::vector<std::string> choices_of(const std::string& type) {
  std::vector<std::string> choices;
  size_t start = 0;
  while (start <= type.size()) {
    const size_t end = std::min(type.find('|', start), type.size());
    std::string choice = type.substr(start, end - start);
    while (!choice.empty() && std::isupper(static_cast<unsigned char>(choice.back()))) {
      choice.pop_back();
    }
    if (!choice.empty()) choices.push_back(choice);
    start = end + 1;
  }
  return choices;
}

bool has_upper_case(const std::string& text) {
  return std::any_of(text.begin(), text.end(),
                     [](unsigned char c) { return std::isupper(c) != 0; });
}

// Reads the options of `app` that take a value into `value_words`: "<files>" for a PATH or
// FILE, the choices of a WORD|WORD type name, or nothing to offer.
void collect_value_words(const CLI::App& app, std::map<std::string, std::string>& value_words) {
  for (const CLI::Option* option : app.get_options()) {
    if (!option->nonpositional() || option->get_items_expected_max() == 0) continue;
    const std::string type = option->get_type_name();
    std::string words;
    if (type == "PATH" || type == "FILE") {
      words = "<files>";
    } else if (type.find('|') != std::string::npos) {
      words = join(choices_of(type), " ");
    }
    for (const std::string& name : option_names(*option)) value_words[name] = words;
  }
}

// Adds a node for `app` and for each subcommand below it. `global_options` are the top
// level's options, which stay valid after a subcommand because the app falls through.
void collect(const CLI::App& app, const std::string& path,
             const std::vector<std::string>& global_options, std::vector<CommandNode>& nodes,
             std::map<std::string, std::string>& value_words) {
  collect_value_words(app, value_words);
  const auto subcommands = app.get_subcommands([](const CLI::App*) { return true; });
  CommandNode node{path, {}};
  for (const CLI::App* subcommand : subcommands) node.words.push_back(subcommand->get_name());
  for (const CLI::Option* option : app.get_options()) {
    // A positional whose type name is lower case lists its values, such as the shell's bash.
    if (!option->nonpositional()) {
      const std::string type = option->get_type_name();
      if (!has_upper_case(type)) {
        for (const std::string& choice : choices_of(type)) node.words.push_back(choice);
      }
      continue;
    }
    for (const std::string& name : option_names(*option)) node.words.push_back(name);
  }
  for (const std::string& name : global_options) {
    if (std::find(node.words.begin(), node.words.end(), name) == node.words.end()) {
      node.words.push_back(name);
    }
  }
  nodes.push_back(node);

  for (const CLI::App* subcommand : subcommands) {
    collect(*subcommand, path + " " + subcommand->get_name(), global_options, nodes, value_words);
  }
}

}  // namespace

std::string bash_completion_script(const CLI::App& app) {
  std::vector<CommandNode> nodes;
  std::map<std::string, std::string> value_words;
  // The top level's options except --help, which every subcommand has of its own.
  std::vector<std::string> global_options;
  for (const CLI::Option* option : app.get_options()) {
    if (!option->nonpositional() || option == app.get_help_ptr()) continue;
    for (const std::string& name : option_names(*option)) global_options.push_back(name);
  }
  collect(app, app.get_name(), global_options, nodes, value_words);
  const std::string function = "_" + app.get_name();

  std::vector<std::string> paths;
  for (const CommandNode& node : nodes) {
    if (node.path != app.get_name()) paths.push_back("\"" + node.path + "\"");
  }
  std::vector<std::string> value_options;
  for (const auto& [name, words] : value_words) value_options.push_back(name);

  std::string script =
      "# Bash completion for " + app.get_name() + ", written by `" + app.get_name() +
      " completion bash`.\n"
      "# Install it as /usr/share/bash-completion/completions/" + app.get_name() +
      ", or source it from ~/.bashrc.\n" +
      function + "() {\n"
      "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
      "  local path=\"" + app.get_name() + "\" word i words\n"
      "  # Find the subcommand path typed so far, skipping the value after each option that takes one.\n"
      "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
      "    word=\"${COMP_WORDS[i]}\"\n"
      "    case \"$word\" in\n"
      "      " + join(value_options, "|") + ") ((i++)); continue ;;\n"
      "    esac\n"
      "    case \"$path $word\" in\n"
      "      " + join(paths, "|") + ") path=\"$path $word\" ;;\n"
      "    esac\n"
      "  done\n"
      "  case \"$prev\" in\n";
  std::map<std::string, std::vector<std::string>> options_by_words;
  for (const auto& [name, words] : value_words) options_by_words[words].push_back(name);
  for (const auto& [words, names] : options_by_words) {
    script += "    " + join(names, "|") + ")\n";
    if (words == "<files>") {
      script += "      COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n";
    } else if (words.empty()) {
      script += "      COMPREPLY=(); return ;;\n";
    } else {
      script += "      COMPREPLY=($(compgen -W \"" + words + "\" -- \"$cur\")); return ;;\n";
    }
  }
  script += "  esac\n  case \"$path\" in\n";
  for (const CommandNode& node : nodes) {
    script += "    \"" + node.path + "\") words=\"" + join(node.words, " ") + "\" ;;\n";
  }
  script +=
      "  esac\n"
      "  COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
      "}\n"
      "complete -F " + function + " " + app.get_name() + "\n";
  return script;
}

}  // namespace sluice::ctl
