// rgd-demo: what regiond does for an application in eu-west-1, measured in
// process (no process start or connect in the numbers):
//   1. a write, which goes to the primary in us-east-1, with its rows affected
//      and consistency token;
//   2. the same primary-key read, N times each, through read_local (served by
//      this region's replica) and read_primary (sent across the ocean), with
//      where each was served and the median and best time of each.
//
//   rgd-demo [--socket PATH] [--reads N]
// Exit status 1 when a call fails (the message says which and why).
#include <regiond/client.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

[[noreturn]] void fail(const char* what, const regiond::Result& r) {
    std::fprintf(stderr, "rgd-demo: %s failed: %.*s\n", what, static_cast<int>(r.error().size()), r.error().data());
    std::exit(1);
}

struct Timed {
    std::vector<double> ms;
    std::string served_by;
    double median() {
        std::sort(ms.begin(), ms.end());
        return ms[ms.size() / 2];
    }
    double best() { return *std::min_element(ms.begin(), ms.end()); }
};

template <class Call>
Timed time_reads(int n, Call&& call, const char* what) {
    Timed t;
    for (int i = 0; i < n; ++i) {
        const auto t0 = Clock::now();
        regiond::Result r = call();
        const double ms = ms_since(t0);
        if (!r) fail(what, r);
        t.ms.push_back(ms);
        t.served_by = std::string(r.served_by());
    }
    return t;
}

}  // namespace

int main(int argc, char** argv) {
    std::string socket;
    int reads = 20;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--socket" && i + 1 < argc)
            socket = argv[++i];
        else if (a == "--reads" && i + 1 < argc)
            reads = std::max(1, std::atoi(argv[++i]));
        else {
            std::fprintf(stderr, "usage: rgd-demo [--socket PATH] [--reads N]\n");
            return 2;
        }
    }
    regiond::Client db = socket.empty() ? regiond::Client::connect() : regiond::Client::connect(socket);
    if (!db) {
        std::fprintf(stderr, "rgd-demo: %s\n", db.connect_error().c_str());
        return 1;
    }

    regiond::Result ddl = db.write("create table if not exists demo_items (id int primary key, v text)");
    if (!ddl) fail("create table", ddl);

    const std::string text = "hello from Frankfurt";
    std::printf("== a write from eu-west-1\n");
    const auto w0 = Clock::now();
    regiond::Result w = db.write("insert into demo_items values ($1, $2) on conflict (id) do update set v = excluded.v",
                                 {"1", text}, {"demo_items:1"});
    const double write_ms = ms_since(w0);
    if (!w) fail("write", w);
    std::printf("served_by %.*s, %lld row affected, token %.*s, %.1f ms\n", static_cast<int>(w.served_by().size()),
                w.served_by().data(), w.affected(), static_cast<int>(w.token().size()), w.token().data(), write_ms);

    // The local replica has it once it replayed the write: poll, with a deadline.
    const char* sql = "select id, v from demo_items where id = $1";
    const auto seen0 = Clock::now();
    for (;;) {
        regiond::Result r = db.read_local(sql, {"1"});
        if (r && r.nrows() == 1 && r.value(0, 1) == text) break;
        if (ms_since(seen0) > 30000) {
            std::fprintf(stderr, "rgd-demo: the eu-west-1 replica did not show the write within 30 s\n");
            return 1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::printf("visible on the local replica %.0f ms after the write returned\n\n", ms_since(seen0));

    std::printf("== the same read from eu-west-1, %d times each (in-process, ms)\n", reads);
    Timed local = time_reads(
        reads, [&] { return db.read_local(sql, {"1"}); }, "read_local");
    Timed primary = time_reads(
        reads, [&] { return db.read_primary(sql, {"1"}); }, "read_primary");
    std::printf("%-13s %-22s %10s %8s\n", "call", "served_by", "median", "best");
    std::printf("%-13s %-22s %10.2f %8.2f\n", "read_local", local.served_by.c_str(), local.median(), local.best());
    std::printf("%-13s %-22s %10.2f %8.2f\n", "read_primary", primary.served_by.c_str(), primary.median(),
                primary.best());
    std::printf("\nEU read: %.0f ms -> %.1f ms (%.0fx)\n", primary.median(), local.median(),
                primary.median() / local.median());
    return 0;
}
