// The built `regiond` binary: exit codes and output of --check-config,
// --version, configuration errors in the run mode, and bad arguments
// (API.md, "regiond").
#include <catch2/catch.hpp>

#include <sysexits.h>

#include <algorithm>

#include "test_support.hpp"

using regiond::config::test::ProgramResult;
using regiond::config::test::required_env;
using regiond::config::test::run_program;
using regiond::config::test::TempDir;

namespace {

ProgramResult run_regiond(const std::vector<std::string>& args, const TempDir& scratch) {
    return run_program(required_env("REGIOND_BIN"), args, scratch);
}

std::size_t count_lines(const std::string& text) {
    return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

}  // namespace

TEST_CASE("regiond --check-config on a valid file prints ok and exits 0", "[config][regiond]") {
    const TempDir dir;
    const std::string path = dir.write("good.toml", regiond::config::test::minimal_config);
    const ProgramResult result = run_regiond({"--check-config", path}, dir);
    CHECK(result.exit_code == 0);
    CHECK(result.out == "ok\n");
    CHECK(result.err.empty());

    // The --opt=VALUE spelling works too.
    CHECK(run_regiond({"--check-config=" + path}, dir).exit_code == 0);
}

TEST_CASE("regiond --check-config prints every error and exits 78", "[config][regiond]") {
    const TempDir dir;
    const std::string path = dir.write("bad.toml", R"([daemon]
region = "us"
client_group = "root"
socket = "relative.sock"

[lag]
max_lag = 5

[[regions]]
name = "us"
primary = "host=db1 password=hunter2 oops"
redis = "redis://h:6379"
)");
    const ProgramResult result = run_regiond({"--check-config", path}, dir);
    CHECK(result.exit_code == EX_CONFIG);
    CHECK(result.exit_code == 78);
    CHECK(result.out.empty());
    INFO(result.err);
    CHECK(count_lines(result.err) == 3);
    CHECK_THAT(result.err, Catch::Contains(path + ":4:10: daemon.socket: "));
    CHECK_THAT(result.err, Catch::Contains(path + ":7:11: lag.max_lag: "));
    CHECK_THAT(result.err, Catch::Contains(path + ":11:11: regions[0].primary: invalid conninfo"));
    CHECK_THAT(result.err, !Catch::Contains("hunter2"));
}

TEST_CASE("regiond --check-config on a missing file names it and exits 78", "[config][regiond]") {
    const TempDir dir;
    const std::string path = dir.path() + "/absent.toml";
    const ProgramResult result = run_regiond({"--check-config", path}, dir);
    CHECK(result.exit_code == 78);
    CHECK_THAT(result.err, Catch::Contains(path));
    CHECK_THAT(result.err, Catch::Contains("No such file or directory"));
}

TEST_CASE("regiond --version prints the project version", "[config][regiond]") {
    const TempDir dir;
    const ProgramResult result = run_regiond({"--version"}, dir);
    CHECK(result.exit_code == 0);
    CHECK(result.out == "regiond " + required_env("REGIOND_VERSION") + "\n");
}

// Only the failure paths: with a valid file regiond would start the daemon.
TEST_CASE("regiond --config checks the file before it starts", "[config][regiond]") {
    const TempDir dir;
    SECTION("an invalid file stops with 78") {
        const std::string path = dir.write("bad.toml", "[daemon]\n");
        const ProgramResult result = run_regiond({"--config", path}, dir);
        CHECK(result.exit_code == 78);
        CHECK_THAT(result.err, Catch::Contains(path + ":1:1: daemon.region: required key is missing"));
    }
    SECTION("a missing file stops with 78") {
        const std::string path = dir.path() + "/absent.toml";
        const ProgramResult result = run_regiond({"--config", path}, dir);
        CHECK(result.exit_code == 78);
        CHECK_THAT(result.err, Catch::Contains(path + ": cannot open the configuration file"));
    }
}

TEST_CASE("bad arguments print the usage and exit 64", "[config][regiond]") {
    const TempDir dir;
    const std::vector<std::vector<std::string>> bad = {
        {"--bogus"},
        {"--check-config"},
        {"--config"},
        {"--check-config", "a.toml", "--config", "b.toml"},
        {"--version", "--check-config", "a.toml"},
        {"stray"},
        {"--version=2"},
        {"--config="},
    };
    for (const auto& args : bad) {
        INFO(args.front());
        const ProgramResult result = run_regiond(args, dir);
        CHECK(result.exit_code == EX_USAGE);
        CHECK(result.exit_code == 64);
        CHECK_THAT(result.err, Catch::Contains("usage: regiond"));
        CHECK(result.out.empty());
    }

    const ProgramResult help = run_regiond({"--help"}, dir);
    CHECK(help.exit_code == 0);
    CHECK_THAT(help.out, Catch::Contains("--check-config FILE"));
}
