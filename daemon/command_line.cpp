#include "daemon/command_line.hpp"

#include <optional>

#include "config/config.hpp"

namespace regiond::daemon {
namespace {

CommandLineResult failure(std::string message) {
    CommandLineResult result;
    result.error = std::move(message);
    return result;
}

// Splits "--config=FILE" into name and inline value.
struct Option {
    std::string_view name;
    std::optional<std::string_view> inline_value;
};

Option split_option(std::string_view arg) {
    const auto equals = arg.find('=');
    if (equals == std::string_view::npos) return {arg, std::nullopt};
    return {arg.substr(0, equals), arg.substr(equals + 1)};
}

}  // namespace

CommandLineResult parse_command_line(std::span<const char* const> args) {
    std::optional<Command> command;
    std::optional<std::string> config_path;

    const auto set_command = [&](Command wanted, std::string_view spelled) -> std::optional<std::string> {
        if (command && *command != wanted)
            return std::string(spelled) + " cannot be combined with the other options given";
        command = wanted;
        return std::nullopt;
    };

    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string_view arg = args[i];
        const Option option = split_option(arg);

        if (option.name == "--config" || option.name == "--check-config") {
            std::string value;
            if (option.inline_value) {
                value = *option.inline_value;
            } else if (i + 1 < args.size()) {
                value = args[++i];
            } else {
                return failure(std::string(option.name) + " needs a FILE");
            }
            if (value.empty()) return failure(std::string(option.name) + " needs a FILE, not an empty string");
            if (config_path) return failure("only one configuration file may be given");
            config_path = std::move(value);
            const Command wanted = option.name == "--config" ? Command::run : Command::check_config;
            if (auto conflict = set_command(wanted, option.name)) return failure(*conflict);
            continue;
        }
        if (option.inline_value && (option.name == "--version" || option.name == "--help"))
            return failure(std::string(option.name) + " takes no value");
        if (arg == "--version") {
            if (auto conflict = set_command(Command::version, arg)) return failure(*conflict);
            continue;
        }
        if (arg == "--help" || arg == "-h") {
            if (auto conflict = set_command(Command::help, arg)) return failure(*conflict);
            continue;
        }
        if (!arg.empty() && arg.front() == '-') return failure("unknown option \"" + std::string(arg) + "\"");
        return failure("unexpected argument \"" + std::string(arg) + "\"");
    }

    CommandLineResult result;
    result.ok = true;
    result.command_line.command = command.value_or(Command::run);
    result.command_line.config_path = config_path.value_or(std::string(config::default_config_path));
    return result;
}

std::string usage() {
    return "usage: regiond [--config FILE]       run (default FILE: " + std::string(config::default_config_path) +
           ")\n"
           "       regiond --check-config FILE  validate FILE; print \"ok\" or every error\n"
           "       regiond --version\n";
}

}  // namespace regiond::daemon
