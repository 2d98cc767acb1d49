// Secrets out of shown text (shm/base/redact.hpp): libpq's messages in the shapes
// libpq 15 writes them, with the secret in every place it can end up.
#include <catch2/catch.hpp>

#include <string>

#include "shm/base/redact.hpp"

using regiond::base::redact_secrets;
using regiond::base::without_user_info;

namespace {

// No piece of `secret` of 3 or more characters survives in `text`.
bool free_of(const std::string& text, const std::string& secret) {
    for (std::size_t length = 3; length <= secret.size(); ++length)
        for (std::size_t i = 0; i + length <= secret.size(); ++i)
            if (text.find(secret.substr(i, length)) != std::string::npos) return false;
    return true;
}

}  // namespace

TEST_CASE("password=... values are removed in every quoting", "[base][redact]") {
    const std::pair<const char*, const char*> cases[] = {
        {"host=db password=hunter2 dbname=app", "host=db password=[redacted] dbname=app"},
        {"host=db password = hunter2 dbname=app", "host=db password = [redacted] dbname=app"},
        {"host=db password='hunter2' dbname=app", "host=db password=[redacted] dbname=app"},
        {"host=db password='hun ter2' dbname=app", "host=db password=[redacted] dbname=app"},
        {"host=db password='hun\\'ter2' dbname=app", "host=db password=[redacted] dbname=app"},
        {"password=\"hunter2 x\" sslmode=require", "password=[redacted] sslmode=require"},
        {"PASSWORD=hunter2", "PASSWORD=[redacted]"},
        {"PGPASSWORD=hunter2 psql", "PGPASSWORD=[redacted] psql"},
        {"?sslmode=require&password=hunter2&x=1", "?sslmode=require&password=[redacted]"},
        {"password=", "password=[redacted]"},
        {"password='unterminated hunter2", "password=[redacted]"},
    };
    for (const auto& [in, out] : cases) {
        INFO(in);
        CHECK(redact_secrets(in) == out);
    }
}

TEST_CASE("URI user info is removed, to the URI's last @", "[base][redact]") {
    const std::pair<const char*, const char*> cases[] = {
        {"postgresql://app:hunter2@db.example:5432/app", "postgresql://[redacted]@db.example:5432/app"},
        {"postgres://app:hunter2@db/app?sslmode=require", "postgres://[redacted]@db/app?sslmode=require"},
        {"bad \"postgresql://app:p@ss@word@db:5432/app\" here", "bad \"postgresql://[redacted]@db:5432/app\" here"},
        {"redis://:hun@ter2@10.0.0.2:6379/0", "redis://[redacted]@10.0.0.2:6379/0"},
        {"postgresql://app:p/ss@db/app", "postgresql://[redacted]@db/app"},
        {"postgresql://db.example/app", "postgresql://db.example/app"},  // nothing to remove
        {"see https://www.postgresql.org/docs/", "see https://www.postgresql.org/docs/"},
    };
    for (const auto& [in, out] : cases) {
        INFO(in);
        CHECK(redact_secrets(in) == out);
    }
}

// An unescaped '@' in a URI password: libpq takes the user info to the FIRST '@',
// so "ss" (the rest of "p@ss") becomes part of the host name, which libpq's
// messages quote.
TEST_CASE("libpq messages quoting a host name that holds part of a password", "[base][redact]") {
    const std::string secret = "Xq7@Kp9@Zt4";  // the host libpq sees is "Kp9@Zt4@db.example"
    const std::pair<std::string, std::string> cases[] = {
        {"could not translate host name \"Kp9@Zt4@db.example\" to address: Name or service not known",
         "could not translate host name \"[redacted]@db.example\" to address: Name or service not known"},
        {"connection to server at \"Kp9@Zt4@db.example\" (10.0.0.1), port 5432 failed: Connection refused",
         "connection to server at \"[redacted]@db.example\" (10.0.0.1), port 5432 failed: Connection refused"},
        {"connection to server at \"Kp9@Zt4@db.example\" (10.0.0.1), port 5432 failed: FATAL:  password "
         "authentication failed for user \"app\"",
         "connection to server at \"[redacted]@db.example\" (10.0.0.1), port 5432 failed: FATAL:  password "
         "authentication failed for user \"app\""},
        {"server certificate for \"db.example\" does not match host name \"Kp9@Zt4@db.example\"",
         "server certificate for \"db.example\" does not match host name \"[redacted]@db.example\""},
        {"(Kp9@Zt4@db.example)", "([redacted]@db.example)"},
    };
    for (const auto& [in, out] : cases) {
        INFO(in);
        const std::string redacted = redact_secrets(in);
        CHECK(redacted == out);
        CHECK(free_of(redacted, secret));
    }
}

TEST_CASE("messages without secrets are left alone", "[base][redact]") {
    for (const char* text : {
             "FATAL:  password authentication failed for user \"app\"",
             "connection to server on socket \"/run/postgresql/.s.PGSQL.5432\" failed: No such file or directory",
             "could not receive data from server: Connection reset by peer",
             "timeout expired",
             "SSL SYSCALL error: EOF detected",
             "server closed the connection unexpectedly; This probably means the server terminated abnormally",
             "no password supplied",
             "",
         }) {
        INFO(text);
        CHECK(redact_secrets(text) == text);
    }
}

TEST_CASE("a secret with quotes and @ in every position leaves no 3-char piece", "[base][redact]") {
    for (const std::string_view secret_text : {"p@ss\"w0rd", "a'b@c\"d@e", "@@@lead", "tqzl@@@", "x\"@\"y@zz9"}) {
        const std::string secret(secret_text);
        for (const std::string& text :
             {"postgresql://app:" + secret + "@db.example/app", "host=db password='" + secret + "' dbname=app",
              "could not translate host name \"" + secret + "@db.example\" to address"}) {
            INFO(text);
            const std::string redacted = redact_secrets(text);
            INFO(redacted);
            CHECK(free_of(redacted, secret));
        }
    }
}

TEST_CASE("without_user_info keeps what follows each host's last @", "[base][redact]") {
    CHECK(without_user_info("db.example") == "db.example");
    CHECK(without_user_info("ss@db.example") == "db.example");
    CHECK(without_user_info("a@b@db.example") == "db.example");
    CHECK(without_user_info("ss@h1,h2,x@h3") == "h1,h2,h3");
    CHECK(without_user_info("/run/postgresql") == "/run/postgresql");
    CHECK(without_user_info("") == "");
    CHECK(without_user_info("trailing@") == "");
}
