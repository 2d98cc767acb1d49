// Removing secrets from text that is about to be shown (logs, status, metrics,
// error messages to clients): libpq's messages, Redis errors, anything that may
// quote a connection string.
//
// What is removed:
//   - the value of every password=... (any case, spaces around '=', the value
//     unquoted, 'single-quoted' with backslash escapes, or "double-quoted"):
//     "password=[redacted]";
//   - the user info of every URI (scheme://USER:PASSWORD@host): everything from
//     "//" to the last '@' of the URI becomes "[redacted]@";
//   - before any other '@': the word that ends with it. A URI password with an
//     unescaped '@' (postgresql://app:p@ss@host) makes libpq read "ss@host" as the
//     host name, and its messages then quote it ("could not translate host name
//     "ss@host""); "[redacted]@host" is what remains.
// It errs on the side of removing too much: an e-mail address loses its local part.
#pragma once

#include <string>
#include <string_view>

namespace regiond::base {

std::string redact_secrets(std::string_view text);

/// A host list ("h1,h2") with each element cut after its last '@'
/// ("ss@db.example" -> "db.example"): what a display name may show of it.
std::string without_user_info(std::string_view hosts);

}  // namespace regiond::base
