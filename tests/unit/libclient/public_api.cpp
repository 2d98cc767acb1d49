// Compiles and links against ONLY the public headers (<regiond/client.hpp> and
// the <regiond/client.h> it includes): the C++ wrapper needs nothing internal.
// Instantiates every wrapper member; runs the parts that need no daemon.
#include <regiond/client.hpp>

#include <cstdio>
#include <string>
#include <vector>

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "failed: %s\n", what);
        ++failures;
    }
}

}  // namespace

int main() {
    using namespace std::chrono_literals;
    regiond::Client db = regiond::Client::connect("/nonexistent/regiond.sock");
    expect(!db, "no daemon: no client");
    expect(db.connect_error() == "daemon not running at /nonexistent/regiond.sock", "connect error text");

    db.set_timeout(250ms);
    const std::vector<regiond::Value> params = {"a", std::nullopt};
    const std::vector<std::string_view> keys = {"k"};
    regiond::Result results[] = {
        db.read_local("select 1"),
        db.read_local("select $1", {"x"}),
        db.read_local("select $1, $2", params),
        db.read_primary("select 1", {std::nullopt}),
        db.write("insert", params, keys),
        db.write("insert", {"x"}, {"k1", "k2"}),
        db.read_consistent("1/0/1", "select 1", {"x"}),
        db.cached_read("k", 10s, "select 1", {"x"}),
        db.health(),
    };
    for (const regiond::Result& r : results) {
        expect(!r.ok() && !r, "error results");
        expect(!r.error().empty(), "error text");
        expect(r.sqlstate().empty() && r.token().empty() && r.served_by().empty() && r.route_reason().empty(),
               "empty fields");
        expect(r.affected() == -1 && r.nrows() == 0 && r.ncols() == 0, "no rows");
        expect(r.begin() == r.end(), "no iteration");
        expect(!r.value(0, 0) && r.column(0).empty(), "out of range");
    }
    regiond::Result moved = std::move(results[0]);
    expect(!moved.ok() && results[0].get() == nullptr, "move");
    try {
        std::move(moved).value_or_throw();
        expect(false, "value_or_throw throws on error");
    } catch (const regiond::Error& e) {
        expect(std::string(e.what()).size() > 0, "exception text");
    }
    regiond::Result empty;
    expect(!empty.ok() && empty.error().find("out of memory") != std::string_view::npos, "null result");

    expect(regiond::token_cmp("1/0/1", "1/0/2") == -1, "token_cmp older");
    expect(regiond::token_cmp("1/1/0", "1/0/FFFFFFFF") == 1, "token_cmp high half");
    expect(regiond::token_cmp("", "1/0/1") == -1, "token_cmp no token yet");
    expect(!regiond::token_cmp("1/0/1", "2/0/1"), "token_cmp two clusters");
    expect(!regiond::token_cmp("x", "1/0/1"), "token_cmp malformed");

    if (failures == 0) std::printf("public C++ API ok\n");
    return failures == 0 ? 0 : 1;
}
