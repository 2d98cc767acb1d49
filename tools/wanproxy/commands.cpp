#include "commands.hpp"

#include <cstddef>
#include <optional>
#include <span>

namespace wanproxy {

namespace {

using Args = std::span<const std::string_view>;
using Reply = std::vector<std::string>;

constexpr std::string_view kCommandList =
    "status [NAME], delay NAME MS, cut NAME [stall|reset|blackhole], restore NAME, "
    "cut-all [stall|reset|blackhole], restore-all (NAME may end in '*' to match a prefix)";

Reply error(std::string message) {
    return {"error: " + std::move(message)};
}

std::vector<std::string_view> split_words(std::string_view line) {
    std::vector<std::string_view> words;
    std::size_t pos = 0;
    while (pos < line.size()) {
        while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t')) {
            ++pos;
        }
        const std::size_t start = pos;
        while (pos < line.size() && line[pos] != ' ' && line[pos] != '\t') {
            ++pos;
        }
        if (pos > start) {
            words.push_back(line.substr(start, pos - start));
        }
    }
    return words;
}

bool matches(std::string_view pattern, std::string_view name) {
    if (!pattern.empty() && pattern.back() == '*') {
        return name.starts_with(pattern.substr(0, pattern.size() - 1));
    }
    return name == pattern;
}

// Links matching NAME or a "prefix*" glob; empty means "no match".
std::vector<Link*> select(std::string_view pattern, Links& links) {
    std::vector<Link*> selected;
    for (auto& link : links) {
        if (matches(pattern, link->name())) {
            selected.push_back(link.get());
        }
    }
    return selected;
}

Reply no_match(std::string_view pattern) {
    return error("no link matches '" + std::string(pattern) + "'; 'status' lists the link names");
}

// Runs `action` on every link; collects the errors, "ok" if there were none.
template <typename Action>
Reply for_each_link(const std::vector<Link*>& selected, Action action) {
    Reply errors;
    for (Link* link : selected) {
        if (auto failure = action(*link)) {
            errors.push_back(std::move(*failure));
        }
    }
    if (errors.empty()) {
        return {"ok"};
    }
    std::string joined;
    for (const auto& e : errors) {
        joined += (joined.empty() ? "" : "; ") + e;
    }
    return error(joined);
}

std::optional<CutMode> mode_arg(Args args, std::size_t index) {
    if (args.size() <= index) {
        return CutMode::stall;
    }
    return parse_cut_mode(args[index]);
}

Reply bad_mode(std::string_view mode) {
    return error("unknown cut mode '" + std::string(mode) + "'; use stall (default), reset or blackhole");
}

Reply cmd_status(Args args, Links& links) {
    Reply reply;
    for (auto& link : links) {
        if (args.empty() || matches(args[0], link->name())) {
            reply.push_back(link->status_line());
        }
    }
    if (!args.empty() && reply.empty()) {
        return no_match(args[0]);
    }
    reply.emplace_back("ok");
    return reply;
}

Reply cmd_delay(Args args, Links& links) {
    const auto ms = parse_delay_ms(args[1]);
    if (!ms) {
        return error("delay '" + std::string(args[1]) +
                     "' must be a decimal number of milliseconds from 0 to 3600000, e.g. 17.5");
    }
    const auto selected = select(args[0], links);
    if (selected.empty()) {
        return no_match(args[0]);
    }
    return for_each_link(selected, [&](Link& link) -> std::optional<std::string> {
        link.set_delay(*ms);
        return std::nullopt;
    });
}

Reply cut_links(const std::vector<Link*>& selected, Args args, std::size_t mode_index) {
    const auto mode = mode_arg(args, mode_index);
    if (!mode) {
        return bad_mode(args[mode_index]);
    }
    return for_each_link(selected, [&](Link& link) { return link.cut(*mode); });
}

Reply cmd_cut(Args args, Links& links) {
    const auto selected = select(args[0], links);
    if (selected.empty()) {
        return no_match(args[0]);
    }
    return cut_links(selected, args, 1);
}

Reply cmd_restore(Args args, Links& links) {
    const auto selected = select(args[0], links);
    if (selected.empty()) {
        return no_match(args[0]);
    }
    return for_each_link(selected, [](Link& link) { return link.restore(); });
}

Reply cmd_cut_all(Args args, Links& links) {
    return cut_links(select("*", links), args, 0);
}

Reply cmd_restore_all(Args, Links& links) {
    return for_each_link(select("*", links), [](Link& link) { return link.restore(); });
}

struct Command {
    std::string_view name;
    std::string_view usage;
    std::size_t min_args;
    std::size_t max_args;
    Reply (*handler)(Args, Links&);
};

constexpr Command kCommands[] = {
    {"status", "status [NAME]", 0, 1, cmd_status},
    {"delay", "delay NAME MS", 2, 2, cmd_delay},
    {"cut", "cut NAME [stall|reset|blackhole]", 1, 2, cmd_cut},
    {"restore", "restore NAME", 1, 1, cmd_restore},
    {"cut-all", "cut-all [stall|reset|blackhole]", 0, 1, cmd_cut_all},
    {"restore-all", "restore-all", 0, 0, cmd_restore_all},
};

}  // namespace

std::vector<std::string> run_command(std::string_view line, Links& links) {
    const auto words = split_words(line);
    if (words.empty()) {
        return error("empty command; commands: " + std::string(kCommandList));
    }
    for (const Command& command : kCommands) {
        if (words[0] != command.name) {
            continue;
        }
        const Args args(words.data() + 1, words.size() - 1);
        if (args.size() < command.min_args || args.size() > command.max_args) {
            return error("usage: " + std::string(command.usage));
        }
        return command.handler(args, links);
    }
    return error("unknown command '" + std::string(words[0]) + "'; commands: " + std::string(kCommandList));
}

}  // namespace wanproxy
