#include "daemon/admin_command.hpp"

namespace regiond::daemon {
namespace {

std::vector<std::string_view> split_words(std::string_view line) {
    std::vector<std::string_view> words;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
        const std::size_t start = i;
        while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') ++i;
        if (i > start) words.push_back(line.substr(start, i - start));
    }
    return words;
}

AdminCommand invalid(std::string message) {
    AdminCommand command;
    command.kind = AdminCommand::Kind::invalid;
    command.error = std::move(message) + "; commands: " + admin_command_list();
    return command;
}

AdminCommand of_kind(AdminCommand::Kind kind) {
    AdminCommand command;
    command.kind = kind;
    return command;
}

}  // namespace

std::string admin_command_list() {
    return "status, status json, metrics, cache flush [KEY...], help";
}

AdminCommand parse_admin_command(std::string_view line) {
    for (char c : line)
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\r')
            return invalid("the command contains a control character");
    const auto words = split_words(line);
    if (words.empty()) return invalid("empty command");
    const std::string_view verb = words[0];
    if (verb == "status") {
        if (words.size() == 1) return of_kind(AdminCommand::Kind::status);
        if (words.size() == 2 && (words[1] == "json" || words[1] == "--json"))
            return of_kind(AdminCommand::Kind::status_json);
        return invalid("status takes no argument other than \"json\"");
    }
    if (verb == "metrics") {
        if (words.size() != 1) return invalid("metrics takes no arguments");
        return of_kind(AdminCommand::Kind::metrics);
    }
    if (verb == "help") {
        if (words.size() != 1) return invalid("help takes no arguments");
        return of_kind(AdminCommand::Kind::help);
    }
    if (verb == "cache") {
        if (words.size() < 2 || words[1] != "flush")
            return invalid("unknown cache command (only \"cache flush [KEY...]\")");
        AdminCommand command = of_kind(AdminCommand::Kind::cache_flush);
        for (std::size_t i = 2; i < words.size(); ++i) command.keys.emplace_back(words[i]);
        return command;
    }
    std::string shown(verb.substr(0, 40));
    return invalid("unknown command \"" + shown + "\"");
}

std::string admin_ok(std::string_view body) {
    std::string reply = "ok\n";
    reply += body;
    if (!body.empty() && body.back() != '\n') reply += '\n';
    return reply;
}

std::string admin_error(std::string_view message) {
    std::string reply = "error: ";
    reply += message;
    reply += '\n';
    return reply;
}

}  // namespace regiond::daemon
