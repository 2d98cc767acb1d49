// regionctl's commands, run from parsed options. Output goes to the given
// streams so that tests can capture it.
#pragma once

#include <iosfwd>
#include <span>
#include <string_view>

#include "cli.hpp"
#include "format.hpp"

namespace regiond {
class Result;
}

namespace regiond::ctl {

/// Parses and runs; returns the exit status (0, 1, or 64 for a usage error).
int run_regionctl(std::span<const std::string_view> args, std::ostream& out, std::ostream& err);

/// Runs parsed options.
int run(const Options& options, std::ostream& out, std::ostream& err);

/// The rows and facts of a successful query result.
Table table_from(const regiond::Result& result);

}  // namespace regiond::ctl
