#include "config/toml_syntax.hpp"

namespace regiond::config::detail {
namespace {

// In toml++ 3.3 every quotation of input text follows one of these and runs to
// the end of the message (parser.inl); quotations of keys ("cannot redefine
// existing table 'x'") do not, and keys are not secret.
constexpr std::string_view input_quotes[] = {", saw '", " saw '", "sequence '"};

}  // namespace

std::string safe_syntax_message(std::string_view description) {
    std::string text(description);
    for (std::string_view marker : input_quotes) {
        const auto at = text.find(marker);
        if (at == std::string::npos) continue;
        const bool escape = marker == "sequence '";
        text.erase(at + (escape ? marker.size() - 2 : 0));
        if (escape) text += " (in a \"basic\" string write a backslash as \\\\, or use a 'literal' string)";
    }
    // "Error while parsing X: ..." reads better after our "TOML syntax error".
    constexpr std::string_view redundant = "Error while parsing";
    if (text.rfind(redundant, 0) == 0) text.replace(0, redundant.size(), "while parsing");
    return text;
}

}  // namespace regiond::config::detail
