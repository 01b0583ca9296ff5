#include "cli/completion.hpp"

#include <sstream>
#include <vector>

namespace registry::cli {

namespace {

struct OptionInfo {
  std::vector<std::string> names; // "--listen", "-o"
  std::string description;
  // "flag" (no value), "text", "file", "dir", "feeds", "repos", "users", or
  // "choice WORD..."
  std::string value;
};

struct CommandInfo {
  std::string path; // space separated, "" for the root
  std::string description;
  std::vector<std::pair<std::string, std::string>> subcommands; // name, description
  std::vector<OptionInfo> options;
  std::vector<std::string> positionals; // value kinds in order ("text" for none)
};

// The completion kind of an option's value from its type name.
std::string
value_kind(const CLI::Option& option)
{
  if (option.get_expected_min() == 0 && !option.get_positional()) {
    return "flag";
  }
  std::string type = option.get_type_name();
  auto open = type.find('{');
  auto close = type.find('}', open == std::string::npos ? 0 : open);
  if (open != std::string::npos && close != std::string::npos) {
    std::string words = type.substr(open + 1, close - open - 1);
    for (char& c : words) {
      if (c == ',') {
        c = ' ';
      }
    }
    return "choice " + words;
  }
  std::string base = type.substr(0, type.find(':'));
  if (base == "FEED") {
    return "feeds";
  }
  if (base == "REPOSITORY" || base == "IMAGE") {
    return "repos";
  }
  if (base == "USER") {
    return "users";
  }
  if (base == "FILE") {
    return "file";
  }
  if (base == "DIR") {
    return "dir";
  }
  return "text";
}

bool
visible(const CLI::App* app)
{
  return !app->get_group().empty();
}

void
collect(const CLI::App& app, const std::string& path, std::vector<CommandInfo>& out)
{
  CommandInfo info;
  info.path = path;
  info.description = app.get_description();
  for (const CLI::Option* option : app.get_options()) {
    if (option->get_group().empty()) {
      continue;
    }
    if (option->get_positional() && option->get_lnames().empty() && option->get_snames().empty()) {
      info.positionals.push_back(value_kind(*option));
      continue;
    }
    OptionInfo o;
    for (const auto& l : option->get_lnames()) {
      o.names.push_back("--" + l);
    }
    for (const auto& s : option->get_snames()) {
      o.names.push_back("-" + s);
    }
    o.description = option->get_description();
    o.value = value_kind(*option);
    info.options.push_back(std::move(o));
  }
  auto subs = app.get_subcommands([](const CLI::App* sub) { return visible(sub); });
  for (const CLI::App* sub : subs) {
    info.subcommands.emplace_back(sub->get_name(), sub->get_description());
  }
  out.push_back(std::move(info));
  for (const CLI::App* sub : subs) {
    collect(*sub, path.empty() ? sub->get_name() : path + " " + sub->get_name(), out);
  }
}

std::string
join_names(const std::vector<CommandInfo>::value_type& command)
{
  std::string out;
  for (const auto& [name, description] : command.subcommands) {
    out += (out.empty() ? "" : " ") + name;
  }
  return out;
}

// `text` inside single quotes for sh-like shells (bash, zsh).
std::string
sh_quote(const std::string& text)
{
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// `text` inside single quotes for fish (\\ and \' are the only escapes).
std::string
fish_quote(const std::string& text)
{
  std::string out = "'";
  for (char c : text) {
    if (c == '\'' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  return out + "'";
}

// A zsh _describe item: NAME:DESCRIPTION with colons in NAME escaped.
std::string
zsh_item(const std::string& name, const std::string& description)
{
  std::string escaped;
  for (char c : name) {
    if (c == ':') {
      escaped += '\\';
    }
    escaped += c;
  }
  return sh_quote(escaped + ":" + description);
}

// The command-line walk shared by bash and zsh (same syntax in both): finds
// the command path, the number of positional arguments before the word being
// completed and the --data/--config options to pass to `__complete`.
// `first` is the index of the first word after the program name.
std::string
sh_walk(const char* words, const char* first, const char* current)
{
  std::ostringstream s;
  s << "    local cmdpath='' word kind subs i=" << first << " npos=0\n"
    << "    local -a globals=()\n"
    << "    while (( i < " << current << " )); do\n"
    << "        word=${" << words << "[i]}\n"
    << "        if [[ $word == -* ]]; then\n"
    << "            if [[ $word == *=* ]]; then\n"
    << "                [[ $word == --data=* || $word == --config=* ]] && globals+=(\"$word\")\n"
    << "            else\n"
    << "                kind=$(__registryctl_option_value \"$cmdpath\" \"$word\")\n"
    << "                if [[ -n $kind && $kind != flag ]]; then\n"
    << "                    (( i += 1 ))\n"
    << "                    # bash splits --option=VALUE into three words\n"
    << "                    [[ ${" << words << "[i]} == = ]] && (( i += 1 ))\n"
    << "                    if [[ $word == --data || $word == --config ]]; then\n"
    << "                        globals+=(\"$word\" \"${" << words << "[i]}\")\n"
    << "                    fi\n"
    << "                fi\n"
    << "            fi\n"
    << "        else\n"
    << "            subs=\" $(__registryctl_subcommands \"$cmdpath\") \"\n"
    << "            if (( npos == 0 )) && [[ $subs == *\" $word \"* ]]; then\n"
    << "                cmdpath=${cmdpath:+$cmdpath }$word\n"
    << "            else\n"
    << "                (( npos += 1 ))\n"
    << "            fi\n"
    << "        fi\n"
    << "        (( i += 1 ))\n"
    << "    done\n";
  return s.str();
}

// __registryctl_option_value PATH OPTION: the value kind, looked up in the
// command and then in the global options (CLI11 lets them follow a command).
std::string
sh_option_value_function(const std::vector<CommandInfo>& commands, bool zsh)
{
  std::ostringstream s;
  s << "# The kind of value OPTION of command PATH takes: flag (none), text, file, dir,\n"
       "# feeds, repos, users or \"choice WORD...\"; empty when unknown.\n"
       "__registryctl_option_value()\n{\n"
       "    case \"$1|$2\" in\n";
  for (const auto& c : commands) {
    for (const auto& o : c.options) {
      std::string patterns;
      for (const auto& n : o.names) {
        patterns += (patterns.empty() ? "" : "|") + sh_quote(c.path + "|" + n);
      }
      s << "        " << (zsh ? "(" : "") << patterns << ") echo " << sh_quote(o.value) << " ;;\n";
    }
  }
  s << "        " << (zsh ? "(" : "") << "*) [[ -n $1 ]] && __registryctl_option_value '' \"$2\" ;;\n"
    << "    esac\n}\n\n";
  return s.str();
}

std::string
sh_positional_function(const std::vector<CommandInfo>& commands, bool zsh)
{
  std::ostringstream s;
  s << "# The kind of value of positional argument N (from 1) of command PATH.\n"
       "__registryctl_positional()\n{\n"
       "    case \"$1|$2\" in\n";
  for (const auto& c : commands) {
    for (size_t i = 0; i < c.positionals.size(); ++i) {
      s << "        " << (zsh ? "(" : "") << sh_quote(c.path + "|" + std::to_string(i + 1))
        << ") echo " << sh_quote(c.positionals[i]) << " ;;\n";
    }
  }
  s << "    esac\n}\n\n";
  return s.str();
}

std::string
bash_script(const std::vector<CommandInfo>& commands)
{
  std::ostringstream s;
  s << "# bash completion for registryctl                          -*- shell-script -*-\n"
       "# Generated by `registryctl completion bash`; do not edit. After changing the\n"
       "# command tree, run `ninja -C build update-completions`.\n\n"
       "# The subcommands of command PATH (space separated, \"\" for the top level).\n"
       "__registryctl_subcommands()\n{\n"
       "    case \"$1\" in\n";
  for (const auto& c : commands) {
    if (!c.subcommands.empty()) {
      s << "        " << sh_quote(c.path) << ") echo " << sh_quote(join_names(c)) << " ;;\n";
    }
  }
  s << "    esac\n}\n\n"
       "# The options of command PATH.\n"
       "__registryctl_options()\n{\n"
       "    case \"$1\" in\n";
  for (const auto& c : commands) {
    std::string names;
    for (const auto& o : c.options) {
      for (const auto& n : o.names) {
        names += (names.empty() ? "" : " ") + n;
      }
    }
    s << "        " << sh_quote(c.path) << ") echo " << sh_quote(names) << " ;;\n";
  }
  s << "    esac\n}\n\n";
  s << sh_option_value_function(commands, false);
  s << sh_positional_function(commands, false);
  s << "# Sets COMPREPLY to the values of KIND matching CUR; the rest of the arguments\n"
       "# are --data/--config options for `registryctl __complete`.\n"
       "__registryctl_values()\n{\n"
       "    local kind=$1 cur=$2 bin=$3\n"
       "    shift 3\n"
       "    case $kind in\n"
       "        file) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n"
       "        dir) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- \"$cur\")) ;;\n"
       "        feeds|repos|users)\n"
       "            local IFS=$'\\n'\n"
       "            COMPREPLY=($(compgen -W \"$(\"$bin\" \"$@\" __complete \"$kind\" \"$cur\" 2>/dev/null)\" -- \"$cur\")) ;;\n"
       "        choice\\ *) COMPREPLY=($(compgen -W \"${kind#choice }\" -- \"$cur\")) ;;\n"
       "    esac\n}\n\n"
       "_registryctl()\n{\n"
       "    COMPREPLY=()\n"
       "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n";
  s << sh_walk("COMP_WORDS", "1", "COMP_CWORD");
  s << "    # --option=VALUE splits at '=' in bash: complete the value of the option\n"
       "    if [[ $prev == = ]] && (( COMP_CWORD > 2 )); then\n"
       "        prev=${COMP_WORDS[COMP_CWORD-2]}\n"
       "    elif [[ $cur == -* ]]; then\n"
       "        COMPREPLY=($(compgen -W \"$(__registryctl_options \"$cmdpath\")\" -- \"$cur\"))\n"
       "        return\n"
       "    fi\n"
       "    if [[ $prev == -* ]]; then\n"
       "        kind=$(__registryctl_option_value \"$cmdpath\" \"$prev\")\n"
       "        if [[ -n $kind && $kind != flag ]]; then\n"
       "            __registryctl_values \"$kind\" \"$cur\" \"${COMP_WORDS[0]}\" \"${globals[@]}\"\n"
       "            return\n"
       "        fi\n"
       "    fi\n"
       "    subs=$(__registryctl_subcommands \"$cmdpath\")\n"
       "    if [[ -n $subs ]] && (( npos == 0 )); then\n"
       "        COMPREPLY=($(compgen -W \"$subs\" -- \"$cur\"))\n"
       "        return\n"
       "    fi\n"
       "    kind=$(__registryctl_positional \"$cmdpath\" $(( npos + 1 )))\n"
       "    [[ -n $kind ]] && __registryctl_values \"$kind\" \"$cur\" \"${COMP_WORDS[0]}\" \"${globals[@]}\"\n"
       "}\n\n"
       "complete -F _registryctl registryctl\n";
  return s.str();
}

std::string
zsh_script(const std::vector<CommandInfo>& commands)
{
  std::ostringstream s;
  s << "#compdef registryctl\n"
       "# zsh completion for registryctl.\n"
       "# Generated by `registryctl completion zsh`; do not edit. After changing the\n"
       "# command tree, run `ninja -C build update-completions`.\n\n"
       "# Sets reply to NAME:DESCRIPTION items for the subcommands of command PATH.\n"
       "__registryctl_subcommands_described()\n{\n"
       "    case \"$1\" in\n";
  for (const auto& c : commands) {
    if (c.subcommands.empty()) {
      continue;
    }
    s << "        (" << sh_quote(c.path) << ") reply=(";
    for (const auto& [name, description] : c.subcommands) {
      s << "\n            " << zsh_item(name, description);
    }
    s << "\n        ) ;;\n";
  }
  s << "        (*) reply=() ;;\n    esac\n}\n\n"
       "# The subcommand names of command PATH, space separated.\n"
       "__registryctl_subcommands()\n{\n"
       "    local -a reply\n"
       "    __registryctl_subcommands_described \"$1\"\n"
       "    print -r -- ${reply%%:*}\n}\n\n"
       "# Sets reply to NAME:DESCRIPTION items for the options of command PATH.\n"
       "__registryctl_options()\n{\n"
       "    case \"$1\" in\n";
  for (const auto& c : commands) {
    s << "        (" << sh_quote(c.path) << ") reply=(";
    for (const auto& o : c.options) {
      for (const auto& n : o.names) {
        s << "\n            " << zsh_item(n, o.description);
      }
    }
    s << "\n        ) ;;\n";
  }
  s << "        (*) reply=() ;;\n    esac\n}\n\n";
  s << sh_option_value_function(commands, true);
  s << sh_positional_function(commands, true);
  s << "# Completes the values of KIND; the rest of the arguments are --data/--config\n"
       "# options for `registryctl __complete`.\n"
       "__registryctl_values()\n{\n"
       "    local kind=$1 bin=$2\n"
       "    shift 2\n"
       "    local -a names\n"
       "    case $kind in\n"
       "        (file) _files ;;\n"
       "        (dir) _files -/ ;;\n"
       "        (feeds|repos|users)\n"
       "            names=(${(f)\"$(\"$bin\" \"$@\" __complete \"$kind\" \"$PREFIX\" 2>/dev/null)\"})\n"
       "            compadd -a names ;;\n"
       "        (choice\\ *)\n"
       "            names=(${=kind#choice })\n"
       "            compadd -a names ;;\n"
       "    esac\n}\n\n"
       "_registryctl()\n{\n"
       "    local -a reply\n"
       "    local cur=${words[CURRENT]} prev=${words[CURRENT-1]}\n";
  s << sh_walk("words", "2", "CURRENT");
  s << "    if [[ $cur == -* ]]; then\n"
       "        __registryctl_options \"$cmdpath\"\n"
       "        _describe -t options option reply\n"
       "        return\n"
       "    fi\n"
       "    if [[ $prev == -* ]]; then\n"
       "        kind=$(__registryctl_option_value \"$cmdpath\" \"$prev\")\n"
       "        if [[ -n $kind && $kind != flag ]]; then\n"
       "            __registryctl_values \"$kind\" \"${words[1]}\" \"${globals[@]}\"\n"
       "            return\n"
       "        fi\n"
       "    fi\n"
       "    __registryctl_subcommands_described \"$cmdpath\"\n"
       "    if (( ${#reply} > 0 && npos == 0 )); then\n"
       "        _describe -t commands command reply\n"
       "        return\n"
       "    fi\n"
       "    kind=$(__registryctl_positional \"$cmdpath\" $(( npos + 1 )))\n"
       "    [[ -n $kind ]] && __registryctl_values \"$kind\" \"${words[1]}\" \"${globals[@]}\"\n"
       "}\n\n"
       "# Autoloaded from fpath, this file is the body of _registryctl: complete.\n"
       "# Sourced (source <(registryctl completion zsh)), register the function.\n"
       "if [[ $funcstack[1] == _registryctl ]]; then\n"
       "    _registryctl \"$@\"\n"
       "else\n"
       "    compdef _registryctl registryctl\n"
       "fi\n";
  return s.str();
}

std::string
fish_script(const std::vector<CommandInfo>& commands)
{
  std::ostringstream s;
  s << "# fish completion for registryctl.\n"
       "# Generated by `registryctl completion fish`; do not edit. After changing the\n"
       "# command tree, run `ninja -C build update-completions`.\n\n"
       "# The subcommands of command PATH, one per line.\n"
       "function __registryctl_subcommands\n"
       "    switch \"$argv[1]\"\n";
  for (const auto& c : commands) {
    if (c.subcommands.empty()) {
      continue;
    }
    s << "        case " << fish_quote(c.path) << "\n            printf '%s\\n'";
    for (const auto& [name, description] : c.subcommands) {
      s << " " << name;
    }
    s << "\n";
  }
  s << "    end\nend\n\n"
       "# The kind of value OPTION of command PATH takes (see the bash script).\n"
       "function __registryctl_option_value\n"
       "    switch \"$argv[1]|$argv[2]\"\n";
  for (const auto& c : commands) {
    for (const auto& o : c.options) {
      s << "        case";
      for (const auto& n : o.names) {
        s << " " << fish_quote(c.path + "|" + n);
      }
      s << "\n            echo " << fish_quote(o.value) << "\n";
    }
  }
  s << "        case '*'\n"
       "            test -n \"$argv[1]\"; and __registryctl_option_value '' $argv[2]\n"
       "    end\nend\n\n"
       "# Prints the command path and the number of positional arguments typed so far.\n"
       "function __registryctl_state\n"
       "    set -l tokens (commandline -opc)\n"
       "    set -l cmdpath ''\n"
       "    set -l npos 0\n"
       "    set -l i 2\n"
       "    while test $i -le (count $tokens)\n"
       "        set -l word $tokens[$i]\n"
       "        switch $word\n"
       "            case '--*=*'\n"
       "            case '-*'\n"
       "                set -l kind (__registryctl_option_value \"$cmdpath\" $word)\n"
       "                if test -n \"$kind\" -a \"$kind\" != flag\n"
       "                    set i (math $i + 1)\n"
       "                end\n"
       "            case '*'\n"
       "                if test $npos -eq 0; and contains -- $word (__registryctl_subcommands \"$cmdpath\")\n"
       "                    set cmdpath (string trim -- \"$cmdpath $word\")\n"
       "                else\n"
       "                    set npos (math $npos + 1)\n"
       "                end\n"
       "        end\n"
       "        set i (math $i + 1)\n"
       "    end\n"
       "    printf '%s\\n' \"$cmdpath\" $npos\n"
       "end\n\n"
       "# True when the command line is at command PATH with N positional arguments typed.\n"
       "function __registryctl_at\n"
       "    set -l state (__registryctl_state)\n"
       "    test \"$state[1]\" = \"$argv[1]\" -a \"$state[2]\" = \"$argv[2]\"\n"
       "end\n\n"
       "# True when the command line is at command PATH.\n"
       "function __registryctl_in\n"
       "    set -l state (__registryctl_state)\n"
       "    test \"$state[1]\" = \"$argv[1]\"\n"
       "end\n\n"
       "# Feed, repository or user names from the data directory (read-only).\n"
       "function __registryctl_names\n"
       "    set -l tokens (commandline -opc)\n"
       "    set -l globals\n"
       "    set -l i 2\n"
       "    while test $i -le (count $tokens)\n"
       "        switch $tokens[$i]\n"
       "            case '--data=*' '--config=*'\n"
       "                set -a globals $tokens[$i]\n"
       "            case --data --config\n"
       "                set -a globals $tokens[$i] $tokens[(math $i + 1)]\n"
       "                set i (math $i + 1)\n"
       "        end\n"
       "        set i (math $i + 1)\n"
       "    end\n"
       "    $tokens[1] $globals __complete $argv[1] (commandline -ct) 2>/dev/null\n"
       "end\n\n"
       "complete -c registryctl -f\n";
  auto value_args = [](const std::string& value) -> std::string {
    if (value == "flag") {
      return "";
    }
    if (value == "file") {
      return " -r -F";
    }
    if (value == "dir") {
      return " -x -a '(__fish_complete_directories (commandline -ct))'";
    }
    if (value == "feeds" || value == "repos" || value == "users") {
      return " -x -a '(__registryctl_names " + value + ")'";
    }
    if (value.rfind("choice ", 0) == 0) {
      return " -x -a " + fish_quote(value.substr(7));
    }
    return " -x";
  };
  for (const auto& c : commands) {
    s << "\n# " << (c.path.empty() ? "registryctl" : "registryctl " + c.path) << "\n";
    for (const auto& [name, description] : c.subcommands) {
      s << "complete -c registryctl -n " << fish_quote("__registryctl_at " + fish_quote(c.path) + " 0")
        << " -a " << name << " -d " << fish_quote(description) << "\n";
    }
    for (const auto& o : c.options) {
      s << "complete -c registryctl";
      // Global options work after any command (CLI11 falls through to them).
      if (!c.path.empty()) {
        s << " -n " << fish_quote("__registryctl_in " + fish_quote(c.path));
      }
      for (const auto& n : o.names) {
        s << (n.rfind("--", 0) == 0 ? " -l " + n.substr(2) : " -s " + n.substr(1));
      }
      s << value_args(o.value) << " -d " << fish_quote(o.description) << "\n";
    }
    for (size_t i = 0; i < c.positionals.size(); ++i) {
      std::string args = value_args(c.positionals[i]);
      if (args == " -x") {
        continue;
      }
      s << "complete -c registryctl -n "
        << fish_quote("__registryctl_at " + fish_quote(c.path) + " " + std::to_string(i))
        << (args == " -r -F" ? " -F" : args.substr(3)) << "\n";
    }
  }
  return s.str();
}

} // namespace

std::string
completion_script(const CLI::App& root, const std::string& shell)
{
  std::vector<CommandInfo> commands;
  collect(root, "", commands);
  if (shell == "bash") {
    return bash_script(commands);
  }
  if (shell == "zsh") {
    return zsh_script(commands);
  }
  if (shell == "fish") {
    return fish_script(commands);
  }
  return {};
}

} // namespace registry::cli
