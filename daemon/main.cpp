// regiond: the per-host daemon. main only wires the command line, the
// configuration and the real PostgreSQL backend to the library (daemon.hpp).
#include <sysexits.h>

#include <cstdlib>
#include <string_view>

#include <iostream>
#include <span>

#include "config/parse.hpp"
#include "daemon/cache/tailer_durable_path.hpp"
#include "daemon/command_line.hpp"
#include "daemon/daemon.hpp"
#include "daemon/log.hpp"
#include "daemon/pg/endpoint.hpp"
#include "regiond_version.h"

namespace {

using regiond::config::ParseOutcome;

// Every diagnostic, one per line, on stderr (the journal under systemd).
void print_errors(const ParseOutcome& outcome) {
    for (const auto& diagnostic : outcome.errors) std::cerr << diagnostic.to_string() << '\n';
}

int check_config(const std::string& path) {
    const ParseOutcome outcome = regiond::config::parse_config_file(path);
    if (!outcome.ok()) {
        print_errors(outcome);
        return EX_CONFIG;
    }
    std::cout << "ok\n";
    return EX_OK;
}

int run(const std::string& path) {
    ParseOutcome outcome = regiond::config::parse_config_file(path);
    if (!outcome.ok()) {
        print_errors(outcome);
        return EX_CONFIG;
    }
    regiond::daemon::DaemonOptions options;
    options.config = std::move(*outcome.config);
    options.endpoint_factory = &regiond::daemon::pg::Endpoint::create;
    options.durable_path = &regiond::daemon::cache::make_tailer_durable_path;
    // For A/B measurements only (bench/e2e.sh --ab): the waiting of before
    // issue 10, every client free to spin and the daemon spinning whenever
    // nothing is in flight. Not a configuration key on purpose.
    if (const char* ab = std::getenv("REGIOND_HOST_WAITING"); ab != nullptr && std::string_view(ab) == "off")
        options.host_waiting = false;
    regiond::daemon::StartError error;
    auto daemon = regiond::daemon::Daemon::create(std::move(options), error);
    if (!daemon) {
        regiond::daemon::log::error("cannot start: " + error.message);
        return error.exit_code;
    }
    return daemon->run();
}

}  // namespace

int main(int argc, char** argv) {
    using regiond::daemon::Command;
    const std::span<const char* const> args(argv + 1, static_cast<std::size_t>(argc > 0 ? argc - 1 : 0));
    const auto parsed = regiond::daemon::parse_command_line(args);
    if (!parsed.ok) {
        std::cerr << "regiond: " << parsed.error << '\n' << regiond::daemon::usage();
        return EX_USAGE;
    }

    const auto& command_line = parsed.command_line;
    switch (command_line.command) {
        case Command::version: std::cout << "regiond " << REGIOND_VERSION << '\n'; return EX_OK;
        case Command::help: std::cout << regiond::daemon::usage(); return EX_OK;
        case Command::check_config: return check_config(command_line.config_path);
        case Command::run: try { return run(command_line.config_path);
            } catch (const std::exception& e) {
                // A bug or resource exhaustion inside the loop (e.g. epoll_ctl failing):
                // one line saying what, and a failure exit so systemd restarts us.
                regiond::daemon::log::error(std::string("fatal: ") + e.what());
                return 1;
            }
    }
    return EX_SOFTWARE;  // unreachable: every Command is handled above
}
