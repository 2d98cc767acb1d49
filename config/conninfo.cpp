#include "config/conninfo.hpp"

#include <libpq-fe.h>

#include <array>
#include <memory>

namespace regiond::config {
namespace {

struct OptionsFree {
    void operator()(PQconninfoOption* options) const noexcept { PQconninfoFree(options); }
};
struct MessageFree {
    void operator()(char* message) const noexcept { PQfreemem(message); }
};

struct Reason {
    std::string_view libpq_says;  // a fixed fragment of libpq's message
    std::string_view we_say;      // the same, without the quoted input
};

// libpq 15's parse errors (fe-connect.c), matched on their fixed wording.
// Most specific first: "missing key/value separator" must not match "missing \"=\"".
constexpr std::array<Reason, 10> reasons{{
    {"key/value separator", "a query parameter in the URI is not of the form name=value"},
    {"invalid URI query parameter", "the URI has an unknown query parameter"},
    {"missing \"=\" after", "a word is missing \"=\" (write keyword=value pairs, e.g. host=db.example port=5432)"},
    {"invalid connection option", "unknown keyword (see \"Parameter Key Words\" in the libpq documentation)"},
    {"unterminated quoted string", "a quoted value is not terminated"},
    {"IPv6 host address", "malformed IPv6 host address in the URI (expected [address])"},
    {"unexpected character", "unexpected character after the host in the URI (expected \":\" or \"/\")"},
    {"percent-encoded", "invalid percent-encoding (%XX) in the URI"},
    {"out of memory", "out of memory while checking it"},
    {"invalid URI", "malformed URI"},
}};

std::string sanitized_reason(std::string_view libpq_message) {
    for (const Reason& reason : reasons)
        if (libpq_message.find(reason.libpq_says) != std::string_view::npos) return std::string(reason.we_say);
    return "libpq cannot parse it";
}

}  // namespace

std::optional<std::string> conninfo_problem(std::string_view conninfo) {
    if (conninfo.find_first_not_of(" \t\r\n") == std::string_view::npos)
        return "it is empty (write e.g. \"host=db.example port=5432 dbname=app user=app\")";
    // libpq takes a C string: an embedded NUL would silently cut it short.
    if (conninfo.find('\0') != std::string_view::npos) return "it contains a NUL character";

    const std::string terminated(conninfo);
    char* raw_message = nullptr;
    std::unique_ptr<PQconninfoOption, OptionsFree> options(PQconninfoParse(terminated.c_str(), &raw_message));
    std::unique_ptr<char, MessageFree> message(raw_message);
    if (options) return std::nullopt;
    return sanitized_reason(message ? std::string_view(message.get()) : std::string_view());
}

}  // namespace regiond::config
