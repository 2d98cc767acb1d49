#include "config/conninfo.hpp"

#include <libpq-fe.h>

#include <array>
#include <memory>

#include "shm/base/redact.hpp"

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

bool starts_with(std::string_view text, std::string_view prefix) {
    return text.substr(0, prefix.size()) == prefix;
}

// See the header: '@' where libpq would not read it as the end of the user info.
std::optional<std::string> uri_at_sign_problem(std::string_view conninfo) {
    // libpq's URI designators, matched as libpq does (case-sensitively).
    std::string_view rest;
    for (std::string_view scheme : {"postgresql://", "postgres://"})
        if (starts_with(conninfo, scheme)) rest = conninfo.substr(scheme.size());
    if (rest.empty()) return std::nullopt;
    std::size_t ats = 0;
    for (char c : rest) ats += c == '@' ? 1 : 0;
    if (ats > 1)
        return "the URI contains more than one \"@\": percent-encode \"@\" in a user name or password as %40 "
               "(e.g. postgresql://app:p%40ss@db.example/app)";
    const std::size_t at = rest.find('@');
    const std::size_t slash = rest.find('/');
    const std::size_t query = rest.find('?');
    if (at != std::string_view::npos && slash < at && (query == std::string_view::npos || at < query))
        return "the URI has an \"@\" after a \"/\": percent-encode \"/\" in a password as %2F and \"@\" as %40";
    return std::nullopt;
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
    if (!options) return sanitized_reason(message ? std::string_view(message.get()) : std::string_view());
    return uri_at_sign_problem(conninfo);
}

std::string conninfo_display_name(const std::string& conninfo) {
    char* raw_message = nullptr;
    std::unique_ptr<PQconninfoOption, OptionsFree> options(PQconninfoParse(conninfo.c_str(), &raw_message));
    std::unique_ptr<char, MessageFree> message(raw_message);  // it may quote the string: never shown
    if (!options) return "(invalid conninfo)";
    std::string host, hostaddr, port;
    for (const PQconninfoOption* o = options.get(); o->keyword != nullptr; ++o) {
        if (o->val == nullptr) continue;
        const std::string_view keyword = o->keyword;
        if (keyword == "host")
            host = o->val;
        else if (keyword == "hostaddr")
            hostaddr = o->val;
        else if (keyword == "port")
            port = o->val;
    }
    std::string shown = base::without_user_info(!host.empty() ? host : hostaddr);
    if (shown.empty()) shown = "local";
    if (port.empty()) port = "5432";
    if (port.find_first_not_of("0123456789,") != std::string::npos) port = "(invalid port)";
    return shown + ":" + port;
}

}  // namespace regiond::config
