// rgd-demo: what regiond does for an application in eu-west-1, measured in
// process (no process start or connect in the numbers):
//   1. a write, which goes to the primary in us-east-1, with its rows affected
//      and consistency token;
//   2. the same primary-key read, N times each, through read_local (served by
//      this region's replica) and read_primary (sent across the ocean), with
//      where each was served and the median and best time of each;
//   3. with --ap-socket (the ap-northeast-1 host's daemon): read-after-write.
//      A user's profile is updated and read back at once, from eu-west-1, then
//      on the ap-northeast-1 host with the token carried over (a cookie), then
//      updated and read back there. Each operation is done twice on its own
//      write: read back with read_consistent and the write's token (served_by,
//      route_reason, time), and by the seed's rule (read the local replica only
//      when now - write_time >= (now() - pg_last_xact_replay_timestamp()) +
//      100 ms, else the primary; its lag query is a read_local on this host's
//      replica), so both read at once after their write. Every read is checked
//      by value.
//
//   rgd-demo [--socket PATH] [--reads N] [--ap-socket PATH]
// Exit status 1 when a call fails (the message says which and why).
#include <regiond/client.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using Wall = std::chrono::system_clock;

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

// --- read-after-write -------------------------------------------------------

constexpr const char* kProfileWrite =
    "insert into demo_profiles (id, name, city) values ($1, $2, $3) "
    "on conflict (id) do update set city = excluded.city";
constexpr const char* kProfileRead = "select city from demo_profiles where id = $1";

struct Update {
    std::string city;
    std::string token;
    Wall::time_point returned;  ///< the seed's write_time: when the write returned (this client's clock)
    double ms = 0;
};

Update update_profile(const regiond::Client& db, const std::string& city) {
    Update u;
    u.city = city;
    const auto t0 = Clock::now();
    regiond::Result w = db.write(kProfileWrite, {"1", "Ana", city}, {"profile:1"});
    u.ms = ms_since(t0);
    u.returned = Wall::now();
    if (!w) fail("profile update", w);
    u.token = std::string(w.token());
    return u;
}

struct Readback {
    std::string served_by, why, token;
    double ms = 0;
    bool fresh = false;
};

std::string seen(const regiond::Result& r, const std::string& city) {
    return r.nrows() == 1 && r.value(0, 0) == city ? "" : "STALE";
}

Readback read_consistent(const regiond::Client& db, const Update& u) {
    Readback b;
    const auto t0 = Clock::now();
    regiond::Result r = db.read_consistent(u.token, kProfileRead, {"1"});
    b.ms = ms_since(t0);
    if (!r) fail("read_consistent", r);
    b.served_by = std::string(r.served_by());
    b.why = std::string(r.route_reason());
    b.token = std::string(r.token());
    b.fresh = seen(r, u.city).empty();
    return b;
}

// The seed's rule, on this host: its lag query on the local replica, the
// comparison of this client's clock (time since the write) with the lag
// figure (the replica's clock minus the primary's commit time), 100 ms margin.
Readback seed_rule(const regiond::Client& db, const Update& u) {
    Readback b;
    const auto t0 = Clock::now();
    regiond::Result lag =
        db.read_local("select extract(epoch from now() - pg_last_xact_replay_timestamp())::float8");
    if (!lag) fail("the seed's lag query", lag);
    const double since = std::chrono::duration<double>(Wall::now() - u.returned).count();
    const auto figure = lag.value(0, 0);
    const double lag_s = figure ? std::strtod(std::string(*figure).c_str(), nullptr) : NAN;
    const bool local = figure && since >= lag_s + 0.100;
    regiond::Result r = local ? db.read_local(kProfileRead, {"1"}) : db.read_primary(kProfileRead, {"1"});
    b.ms = ms_since(t0);
    if (!r) fail("the seed's read", r);
    b.served_by = std::string(r.served_by());
    char why[160];
    if (!figure)
        std::snprintf(why, sizeof why, "no replay timestamp on the replica: primary");
    else
        std::snprintf(why, sizeof why, "%.3f s since the write %s lag %.3f s + 0.100 s: %s", since,
                      local ? ">=" : "<", lag_s, local ? "local replica" : "primary");
    b.why = why;
    b.fresh = seen(r, u.city).empty();
    return b;
}

void show(const char* strategy, const Update& u, const Readback& b) {
    std::printf("  %-22s write %6.1f  read %6.1f  %-20s %-5s %s\n", strategy, u.ms, b.ms, b.served_by.c_str(),
                b.fresh ? "fresh" : "STALE", b.why.c_str());
}

// The newest of two tokens (what a session keeps in its cookie).
std::string newest(const std::string& a, const std::string& b) {
    return rgd_token_cmp(a.c_str(), b.c_str()) >= 0 ? a : b;
}

int read_after_write(const regiond::Client& eu, const regiond::Client& ap) {
    regiond::Result ddl =
        eu.write("create table if not exists demo_profiles (id int primary key, name text not null, city text not null)");
    if (!ddl) fail("create table demo_profiles", ddl);
    // Both replicas have the table before the first timed read (read_consistent waits for it).
    for (const regiond::Client* db : {&eu, &ap}) {
        regiond::Result r = db->read_consistent(ddl.token(), "select count(*) from demo_profiles");
        if (!r) fail("read_consistent (table visible)", r);
    }
    // One warm-up round trip on every path the timed calls take.
    (void)update_profile(eu, "Porto");
    (void)ap.read_local("select 1");
    (void)ap.read_primary("select 1");

    int stale = 0;
    std::printf("== read-after-write: Ana's profile updated, then read back at once (in-process, ms)\n");
    std::printf("  %-22s %12s  %11s  %-20s %-5s %s\n", "", "", "", "served_by", "value", "route_reason / the rule");
    std::printf("-- on eu-west-1: update city, read it back\n");
    Update u = update_profile(eu, "Lisbon");
    Readback a = read_consistent(eu, u);
    show("read_consistent(token)", u, a);
    std::string cookie = newest(u.token, a.token);
    Update us = update_profile(eu, "Lisbon (seed)");
    Readback b = seed_rule(eu, us);
    show("seed rule", us, b);
    stale += !a.fresh + !b.fresh;

    std::printf("-- on ap-northeast-1, token carried over: updated on eu-west-1, read at once in Tokyo\n");
    u = update_profile(eu, "Tokyo bound");
    a = read_consistent(ap, u);
    show("read_consistent(token)", u, a);
    cookie = newest(newest(cookie, u.token), a.token);
    us = update_profile(eu, "Tokyo bound (seed)");
    b = seed_rule(ap, us);
    show("seed rule", us, b);
    stale += !a.fresh + !b.fresh;

    std::printf("-- on ap-northeast-1: update city, read it back (the cookie keeps the newest token)\n");
    u = update_profile(ap, "Kyoto");
    cookie = newest(cookie, u.token);
    u.token = cookie;
    a = read_consistent(ap, u);
    show("read_consistent(token)", u, a);
    us = update_profile(ap, "Kyoto (seed)");
    b = seed_rule(ap, us);
    show("seed rule", us, b);
    stale += !a.fresh + !b.fresh;
    std::printf("cookie after the session: %s\n", newest(cookie, a.token).c_str());
    if (stale > 0) {
        std::fprintf(stderr, "rgd-demo: %d stale read(s) above\n", stale);
        return 1;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::string socket, ap_socket;
    int reads = 20;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--socket" && i + 1 < argc)
            socket = argv[++i];
        else if (a == "--reads" && i + 1 < argc)
            reads = std::max(1, std::atoi(argv[++i]));
        else if (a == "--ap-socket" && i + 1 < argc)
            ap_socket = argv[++i];
        else {
            std::fprintf(stderr, "usage: rgd-demo [--socket PATH] [--reads N] [--ap-socket PATH]\n");
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
    if (ap_socket.empty()) return 0;

    regiond::Client ap = regiond::Client::connect(ap_socket);
    if (!ap) {
        std::fprintf(stderr, "rgd-demo: ap-northeast-1: %s\n", ap.connect_error().c_str());
        return 1;
    }
    std::printf("\n");
    return read_after_write(db, ap);
}
