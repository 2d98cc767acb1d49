// rgd-wanproxy: a TCP proxy that adds a one-way delay in each direction, to
// emulate WAN links between "regions" on one machine (the kernel here has no
// netem). Argument parsing only; the work is in serve.cpp and ctl_client.cpp.
#include "ctl_client.hpp"
#include "serve.hpp"

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr const char* kUsage =
    "usage:\n"
    "  rgd-wanproxy serve --links FILE --control SOCKET_PATH\n"
    "  rgd-wanproxy ctl SOCKET_PATH COMMAND [ARGS...]\n"
    "\n"
    "links FILE: one link per line, 'NAME LISTEN_HOST:PORT TARGET_HOST:PORT DELAY_MS'\n"
    "  (DELAY_MS is added in each direction; '#' starts a comment)\n"
    "commands: status [NAME], delay NAME MS, cut NAME [stall|reset|blackhole],\n"
    "  restore NAME, cut-all [MODE], restore-all; NAME may end in '*'\n";

int usage_error(const std::string& message) {
    std::fprintf(stderr, "rgd-wanproxy: %s\n%s", message.c_str(), kUsage);
    return 2;
}

int serve_main(const std::vector<std::string_view>& args) {
    std::string links;
    std::string control;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string_view arg = args[i];
        std::string* target = nullptr;
        std::string_view option;
        for (const auto& [name, dest] : {std::pair{"--links", &links}, std::pair{"--control", &control}}) {
            if (arg == name) {
                if (i + 1 >= args.size()) {
                    return usage_error(std::string(name) + " needs a value");
                }
                target = dest;
                option = args[++i];
            } else if (arg.starts_with(std::string(name) + "=")) {
                target = dest;
                option = arg.substr(std::string_view(name).size() + 1);
            }
        }
        if (target == nullptr) {
            return usage_error("unknown serve argument '" + std::string(arg) + "'");
        }
        *target = std::string(option);
    }
    if (links.empty() || control.empty()) {
        return usage_error("serve needs --links FILE and --control SOCKET_PATH");
    }
    return wanproxy::run_serve(links, control);
}

}  // namespace

int main(int argc, char** argv) {
    const std::vector<std::string_view> args(argv + 1, argv + argc);
    if (args.empty()) {
        return usage_error("missing subcommand");
    }
    if (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
        std::fputs(kUsage, stdout);
        return 0;
    }
    if (args[0] == "serve") {
        return serve_main({args.begin() + 1, args.end()});
    }
    if (args[0] == "ctl") {
        if (args.size() < 3) {
            return usage_error("ctl needs SOCKET_PATH and COMMAND");
        }
        return wanproxy::run_ctl(std::string(args[1]), {args.begin() + 2, args.end()});
    }
    return usage_error("unknown subcommand '" + std::string(args[0]) + "'");
}
