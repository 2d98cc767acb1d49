// regionctl: admin and scripting CLI of regiond (API.md). Thin: see run.hpp.
#include <iostream>
#include <string_view>
#include <vector>

#include "run.hpp"

int main(int argc, char** argv) {
    try {
        std::vector<std::string_view> args(argv + 1, argv + (argc > 0 ? argc : 1));
        const int status = regiond::ctl::run_regionctl(args, std::cout, std::cerr);
        std::cout.flush();
        return status;
    } catch (const std::exception& e) {
        std::cerr << "regionctl: " << e.what() << '\n';
        return regiond::ctl::kExitFailure;
    }
}
