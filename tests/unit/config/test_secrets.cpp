// Connection strings and Redis URLs carry passwords: no diagnostic may repeat
// any part of them, even when libpq's or toml++'s own message would.
#include <catch2/catch.hpp>

#include "config/parse.hpp"
#include "config/toml_syntax.hpp"
#include "test_support.hpp"

using namespace regiond::config;

namespace {

constexpr std::string_view secret = "hunter2";

void require_no_secret(const ParseOutcome& outcome) {
    const std::string text = test::all_messages(outcome);
    INFO(text);
    REQUIRE_FALSE(outcome.errors.empty());
    CHECK(text.find(secret) == std::string::npos);
}

}  // namespace

TEST_CASE("a bad conninfo with a password is reported without it", "[config][secrets]") {
    const ParseOutcome outcome = test::parse(R"([daemon]
region = "us"
client_group = "root"

[[regions]]
name = "us"
primary = "host=10.0.0.1 password=hunter2 dbname"
replicas = ["host=10.0.0.3 hunter2", "postgresql://app:hunter2@db/app?hunter2=x", "user=app password=hunter2 bogus_option=1"]
redis = "redis://:hunter2@10.0.0.2"
)");
    require_no_secret(outcome);
    REQUIRE(outcome.errors.size() == 5);
    CHECK(outcome.errors[0].key == "regions[0].primary");
    CHECK(outcome.errors[0].line == 7);
    CHECK_THAT(outcome.errors[0].message, Catch::Contains("missing \"=\""));
    CHECK(outcome.errors[1].key == "regions[0].replicas[0]");
    CHECK(outcome.errors[2].key == "regions[0].replicas[1]");
    CHECK(outcome.errors[3].key == "regions[0].replicas[2]");
    CHECK_THAT(outcome.errors[3].message, Catch::Contains("unknown keyword"));
    CHECK(outcome.errors[4].key == "regions[0].redis");
    CHECK(outcome.errors[4].line == 9);
}

TEST_CASE("TOML syntax errors inside a secret do not quote it", "[config][secrets]") {
    const std::string_view documents[] = {
        // an unterminated string
        "[[regions]]\nprimary = \"host=x password=hunter2\nname = \"us\"\n",
        // an unknown escape sequence in the password
        "[[regions]]\nprimary = \"host=x password=hunter2\\q\"\n",
        // text after the closing quote
        "[[regions]]\nprimary = \"host=x password=\"hunter2\n",
        // no quotes at all
        "[[regions]]\nredis = hunter2\n",
        "[[regions]]\nredis = redis://:hunter2@h:1\n",
        "[[regions]]\nprimary = true hunter2\n",
    };
    for (std::string_view document : documents) {
        INFO(document);
        const ParseOutcome outcome = test::parse(document);
        require_no_secret(outcome);
        REQUIRE(outcome.errors.size() == 1);
        CHECK(outcome.errors[0].line == 2);
        CHECK_THAT(outcome.errors[0].message, Catch::StartsWith("TOML syntax error"));
    }
}

TEST_CASE("toml++'s quotations of input are dropped, key names kept", "[config][secrets]") {
    using regiond::config::detail::safe_syntax_message;
    CHECK(safe_syntax_message("Error while parsing key-value pair: expected a comment or whitespace, saw 'h'") ==
          "while parsing key-value pair: expected a comment or whitespace");
    CHECK(safe_syntax_message("Error while parsing boolean: expected 'true', saw 'trh'") ==
          "while parsing boolean: expected 'true'");
    CHECK_THAT(safe_syntax_message("Error while parsing string: unknown escape sequence '\\q'"),
               Catch::StartsWith("while parsing string: unknown escape sequence (in a"));
    CHECK(safe_syntax_message("Error while parsing table header: cannot redefine existing table 'lag'") ==
          "while parsing table header: cannot redefine existing table 'lag'");
}
