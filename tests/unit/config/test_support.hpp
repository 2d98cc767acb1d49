// Helpers shared by the config unit tests.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/parse.hpp"

namespace regiond::config::test {

// The name every parse_config_string call in these tests uses.
inline constexpr std::string_view test_file = "test.toml";

// A minimal valid configuration, 8 lines, so tests can append lines whose
// numbers are easy to count (the first appended line is line 9). It uses group
// "root", which exists on every Linux host.
inline constexpr std::string_view minimal_config = R"([daemon]
region = "us"
client_group = "root"

[[regions]]
name = "us"
primary = "host=db1 dbname=app"
redis = "redis://127.0.0.1:6379"
)";

ParseOutcome parse(std::string_view text);

// The diagnostics with this key, in file order.
std::vector<Diagnostic> errors_for(const ParseOutcome& outcome, std::string_view key);

// Every diagnostic joined, one per line, for assertions about what is absent.
std::string all_messages(const ParseOutcome& outcome);

// A directory under $TMPDIR (or /tmp) removed with everything in it at scope end.
class TempDir {
public:
    TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir();

    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    // Writes `name` in the directory; returns its path.
    std::string write(std::string_view name, std::string_view content) const;

private:
    std::string path_;
};

struct ProgramResult {
    int exit_code = -1;  // -1 when it did not exit normally
    std::string out;
    std::string err;
};

// Runs `program` with `args`, no shell involved, capturing stdout and stderr
// through files in `scratch`.
ProgramResult run_program(const std::string& program, const std::vector<std::string>& args, const TempDir& scratch);

// The value of an environment variable meson sets for this test; fails the
// test with a clear message when it is missing (run through `meson test`).
std::string required_env(const char* name);

}  // namespace regiond::config::test
