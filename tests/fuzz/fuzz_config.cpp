// The configuration parser (config::parse_config_string) over arbitrary text:
// never crashes or throws, and a configuration is returned exactly when there
// are no errors, every error with a message.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/parse.hpp"
#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto outcome = regiond::config::parse_config_string(text, "fuzz.toml");
    FUZZ_CHECK(outcome.config.has_value() == outcome.errors.empty());
    for (const auto& e : outcome.errors) FUZZ_CHECK(!e.message.empty());
    return 0;
}
