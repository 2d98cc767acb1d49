// Built by install_test.sh against the INSTALLED <regiond/client.hpp> and
// regiond.pc only (C++20).
#include <regiond/client.hpp>

#include <iostream>

int main(int argc, char** argv) {
    regiond::Client db = regiond::Client::connect(argc > 1 ? std::optional<std::string_view>(argv[1]) : std::nullopt);
    if (!db) {
        std::cout << db.connect_error() << '\n';
        return 2;
    }
    std::cout << "connected\n";
    return 0;
}
