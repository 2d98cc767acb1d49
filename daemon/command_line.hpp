// regiond's command line (API.md, "regiond"):
//   regiond [--config FILE]
//   regiond --check-config FILE
//   regiond --version
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace regiond::daemon {

enum class Command { run, check_config, version, help };

struct CommandLine {
    Command command = Command::run;
    std::string config_path;  // for run and check_config
};

struct CommandLineResult {
    bool ok = false;
    CommandLine command_line;  // meaningful when ok
    std::string error;         // what was wrong, when not ok
};

// `args` excludes the program name. Accepts "--opt VALUE" and "--opt=VALUE".
CommandLineResult parse_command_line(std::span<const char* const> args);

// The synopsis, for --help (stdout) and for usage errors (stderr).
std::string usage();

}  // namespace regiond::daemon
