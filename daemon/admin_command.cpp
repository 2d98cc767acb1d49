#include "daemon/admin_command.hpp"

namespace regiond::daemon {
namespace {

using Kind = AdminCommand::Kind;

// The command table. A new command changes state (admins only) unless its entry
// says read_only: leaving the field out is the safe mistake.
constexpr AdminCommandInfo kCommands[] = {
    {Kind::status, "status", "status", AdminAccess::read_only},
    {Kind::status_json, "status json", "status json", AdminAccess::read_only},
    {Kind::metrics, "metrics", "metrics", AdminAccess::read_only},
    {Kind::cache_flush, "cache flush", "cache flush [KEY...]"},
    {Kind::help, "help", "help", AdminAccess::read_only},
};

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

std::span<const AdminCommandInfo> admin_commands() {
    return kCommands;
}

const AdminCommandInfo* admin_command_info(AdminCommand::Kind kind) {
    for (const AdminCommandInfo& info : kCommands)
        if (info.kind == kind) return &info;
    return nullptr;
}

bool admin_only(AdminCommand::Kind kind) {
    const AdminCommandInfo* info = admin_command_info(kind);
    return info == nullptr || info->access != AdminAccess::read_only;
}

std::string admin_command_list() {
    std::string list;
    for (const AdminCommandInfo& info : kCommands) {
        if (!list.empty()) list += ", ";
        list += info.usage;
    }
    return list;
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
