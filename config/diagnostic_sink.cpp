#include "config/diagnostic_sink.hpp"

#include <algorithm>

namespace regiond::config::detail {

void DiagnosticSink::error(const toml::source_region& where, std::string key, std::string message) {
    error_at(static_cast<int>(where.begin.line), static_cast<int>(where.begin.column), std::move(key),
             std::move(message));
}

void DiagnosticSink::error_at(int line, int column, std::string key, std::string message) {
    diagnostics_.push_back(Diagnostic{file_, line, column, std::move(key), std::move(message)});
}

std::vector<Diagnostic> DiagnosticSink::take_sorted() && {
    std::stable_sort(diagnostics_.begin(), diagnostics_.end(), [](const Diagnostic& a, const Diagnostic& b) {
        return a.line != b.line ? a.line < b.line : a.column < b.column;
    });
    return std::move(diagnostics_);
}

}  // namespace regiond::config::detail
