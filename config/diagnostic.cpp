#include "config/diagnostic.hpp"

namespace regiond::config {

std::string Diagnostic::to_string() const {
    std::string out = file;
    if (line > 0) out += ':' + std::to_string(line) + ':' + std::to_string(column);
    out += ": ";
    if (!key.empty()) out += key + ": ";
    out += message;
    return out;
}

}  // namespace regiond::config
