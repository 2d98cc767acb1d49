// Internal to regiond_config: where the readers put the problems they find, so
// that one pass reports all of them.
#pragma once

#include <string>
#include <vector>

#include <toml++/toml.h>

#include "config/diagnostic.hpp"

namespace regiond::config::detail {

class DiagnosticSink {
public:
    explicit DiagnosticSink(std::string file) : file_(std::move(file)) {}

    // At the beginning of `where` (a key, a value or a table header).
    void error(const toml::source_region& where, std::string key, std::string message);
    void error_at(int line, int column, std::string key, std::string message);

    [[nodiscard]] bool empty() const noexcept { return diagnostics_.empty(); }

    // All problems, ordered by position (the readers visit keys in their own
    // order, which is not the file's).
    [[nodiscard]] std::vector<Diagnostic> take_sorted() &&;

private:
    std::string file_;
    std::vector<Diagnostic> diagnostics_;
};

}  // namespace regiond::config::detail
