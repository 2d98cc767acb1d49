// Issue 9's benchmark against running daemons (bench/cache.sh sets them up, and
// scripts/demo.sh runs the `demo` part against the demo's daemons). Every time
// is taken in this process (no process start or connect in the numbers), and
// every answer is checked by value.
//
//   tiers         one host: rgd_cached_read served from the hot cache (the
//                 state segment), a synchronous hiredis GET of the same value on
//                 the region's redis-server directly (loopback), and the same
//                 read from the local replica through regiond (rgd_read_local);
//                 p50 and p99 of each, the ratios, and where a hit's time goes
//                 (the segment lookup alone, lookup + decode, the timer itself)
//   dashboard     the APAC dashboard: three queries from the ap-northeast-1 host
//                 with rgd_cached_read, cold (both cache tiers miss: new keys),
//                 warm from the hot cache, warm from the region's Redis (after
//                 `regionctl cache flush` empties the hot cache), against the
//                 same three with rgd_read_primary; totals per round
//   invalidation  a write with a key from the eu-west-1 host, and the time until
//                 the key is gone from ap-northeast-1's segment (peeked read-only,
//                 shm::CacheReader::peek), against the one-way delay between them
//   demo          one short run of the dashboard and of the invalidation, for
//                 scripts/demo.sh
//
// Usage:
//   bench_cache_e2e tiers --socket S --segment NAME --redis-port P --region R
//                   [--rounds 5] [--hits 200000] [--gets 20000] [--reads 5000]
//                   [--hit-loop N]  (only N hits, untimed, then exit: for perf)
//   bench_cache_e2e dashboard --socket S --admin-socket A --regionctl PATH --region R
//                   [--rounds 5] [--warm-reps 1000] [--setup-socket S]
//   bench_cache_e2e invalidation --writer-socket S --writer-region R --socket S
//                   --segment NAME --region R --one-way-ms MS [--writes 50] [--pause-ms 100]
//   bench_cache_e2e demo --writer-socket S --writer-region R --socket S --segment NAME
//                   --region R --one-way-ms MS
// The tables are created (if missing) and filled through regiond itself: a
// write on the --setup-socket / --writer-socket / --socket host, then polls of
// the host's replica until it has them.
// Exit 1 when a call fails or an answer is wrong; goals missed are reported,
// never an exit status.
#include <hiredis/hiredis.h>
#include <regiond/client.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "shm/cache_answer.hpp"
#include "shm/cache_reader.hpp"
#include "shm/state_segment.hpp"

namespace {

// --- small helpers ----------------------------------------------------------

std::uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

double wall_s() {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double ms(std::uint64_t ns) {
    return static_cast<double>(ns) / 1e6;
}

void sleep_ns(long ns) {
    timespec ts{ns / 1000000000L, ns % 1000000000L};
    nanosleep(&ts, nullptr);
}

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "bench_cache_e2e: %s\n", what.c_str());
    std::exit(1);
}

// A result that frees itself.
class Result {
public:
    explicit Result(rgd_result* r) : r_(r) {
        if (r_ == nullptr) die("out of memory");
    }
    ~Result() { rgd_free(r_); }
    Result(const Result&) = delete;
    Result& operator=(const Result&) = delete;
    Result(Result&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
    bool ok() const { return rgd_ok(r_) == 1; }
    std::string error() const { return rgd_error(r_); }
    std::string served_by() const { return rgd_served_by(r_); }
    std::string route_reason() const { return rgd_route_reason(r_); }
    std::string token() const { return rgd_token(r_); }
    int nrows() const { return rgd_nrows(r_); }
    std::string value(int row, int col) const {
        const char* v = rgd_value(r_, row, col);
        return v != nullptr ? v : "NULL";
    }
    long long affected() const { return rgd_affected(r_); }
    /// Every cell, for comparing two answers by value.
    std::string cells() const {
        std::string s;
        for (int i = 0; i < rgd_nrows(r_); ++i) {
            for (int j = 0; j < rgd_ncols(r_); ++j) {
                const char* v = rgd_value(r_, i, j);
                s += v != nullptr ? v : "\\N";
                s += '\t';
            }
            s += '\n';
        }
        return s;
    }
    const Result& check(const char* what) const {
        if (!ok()) die(std::string(what) + " failed: " + error() + " (served_by \"" + served_by() + "\")");
        return *this;
    }

private:
    rgd_result* r_;
};

rgd_client* connect(const std::string& socket) {
    char err[512];
    rgd_client* c = rgd_connect(socket.c_str(), err, sizeof err);
    if (c == nullptr) die("connect to " + socket + ": " + err);
    rgd_set_timeout_ms(c, 60000);
    return c;
}

struct Params {
    std::vector<std::string> values;
    std::vector<const char*> ptrs;
    explicit Params(std::vector<std::string> v) : values(std::move(v)) {
        for (const auto& s : values) ptrs.push_back(s.c_str());
    }
    int n() const { return static_cast<int>(ptrs.size()); }
    const char* const* p() const { return ptrs.empty() ? nullptr : ptrs.data(); }
};

Result write(rgd_client* c, const std::string& sql, const Params& params = Params({}),
             const std::vector<std::string>& keys = {}) {
    std::vector<const char*> k;
    for (const auto& s : keys) k.push_back(s.c_str());
    return Result(rgd_write(c, sql.c_str(), params.n(), params.p(), static_cast<int>(k.size()), k.data()));
}

// Polls the host's replica (rgd_read_local) until `sql` (one value) answers `want`.
void wait_for_replica(rgd_client* c, const std::string& sql, const std::string& want, const std::string& what) {
    const std::uint64_t deadline = now_ns() + 60'000'000'000ull;
    for (;;) {
        Result r(rgd_read_local(c, sql.c_str(), 0, nullptr));
        if (r.ok() && r.nrows() == 1 && r.value(0, 0) == want) return;
        if (now_ns() > deadline) die(what + ": the replica did not answer " + want + " within 60 s");
        sleep_ns(50'000'000);
    }
}

// Percentiles over samples in nanoseconds (nearest rank).
struct Dist {
    std::vector<std::uint64_t> v;
    void sort() { std::sort(v.begin(), v.end()); }
    std::uint64_t pct(double p) const {
        if (v.empty()) return 0;
        std::size_t rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
        return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
    }
    double mean() const {
        if (v.empty()) return 0;
        long double s = 0;
        for (auto x : v) s += x;
        return static_cast<double>(s / v.size());
    }
};

std::string nonce() {
    std::random_device rd;
    char buf[32];
    std::snprintf(buf, sizeof buf, "%08x", rd());
    return buf;
}

struct Args {
    std::map<std::string, std::string> kv;
    std::string get(const std::string& k, const std::string& def = "") const {
        auto it = kv.find(k);
        if (it != kv.end()) return it->second;
        if (def.empty()) die("missing --" + k);
        return def;
    }
    long num(const std::string& k, long def) const {
        auto it = kv.find(k);
        return it == kv.end() ? def : std::stol(it->second);
    }
};

// --- tiers -------------------------------------------------------------------

constexpr const char* kRowSql = "select id, name, balance from cache_bench where id = $1";
constexpr int kBenchRows = 1000;

void setup_cache_bench(rgd_client* c) {
    write(c,
          "create table if not exists cache_bench (id int primary key, name text not null, balance numeric not null)")
        .check("create table cache_bench");
    write(c, "insert into cache_bench select g, 'user-' || g, g * 1.5 from generate_series(1, " +
                 std::to_string(kBenchRows) + ") g on conflict (id) do nothing")
        .check("fill cache_bench");
    wait_for_replica(c, "select count(*) from cache_bench", std::to_string(kBenchRows), "cache_bench");
}

struct Tier {
    const char* name;
    Dist all;
    std::vector<double> round_p50_ns;
    std::size_t wrong = 0;
    std::string served_by;
};

template <class Call>
void measure(Tier& t, long n, Call&& call) {
    for (long i = 0; i < std::min(n / 10, 1000L); ++i) (void)call();  // warm up, untimed
    Dist round;
    round.v.reserve(static_cast<std::size_t>(n));
    for (long i = 0; i < n; ++i) {
        const std::uint64_t t0 = now_ns();
        const bool ok = call();
        const std::uint64_t t1 = now_ns();
        round.v.push_back(t1 - t0);
        if (!ok) ++t.wrong;
    }
    t.all.v.insert(t.all.v.end(), round.v.begin(), round.v.end());
    round.sort();
    t.round_p50_ns.push_back(static_cast<double>(round.pct(50)));
}

int run_tiers(const Args& a) {
    const std::string socket = a.get("socket"), segment = a.get("segment"), region = a.get("region");
    const int redis_port = static_cast<int>(a.num("redis-port", 0));
    const long rounds = a.num("rounds", 5), hits = a.num("hits", 200000), gets = a.num("gets", 20000),
               reads = a.num("reads", 5000);
    rgd_client* c = connect(socket);
    setup_cache_bench(c);

    // One key, one row of three columns (the shape bench/bench_cache uses).
    const std::string key = "bench:tiers:" + nonce() + ":user:42";
    const Params params({"42"});
    const std::string want_name = "user-42";
    const std::string replica = region + "/replica";
    std::map<std::string, int> fill_path;
    for (int i = 0;; ++i) {
        Result r(rgd_cached_read(c, key.c_str(), 3600, kRowSql, params.n(), params.p()));
        r.check("cached_read (fill)");
        ++fill_path[r.served_by()];
        if (r.served_by() == "cache:local") break;
        if (i == 50)
            die("the value never reached the hot cache: last answer from " + r.served_by() + ": " + r.route_reason());
    }

    // The same value in the region's Redis, and in the segment: byte for byte.
    auto view = regiond::shm::StateView::open(segment);
    if (!view) die("open segment " + segment + ": " + view.error().message);
    const regiond::shm::CacheReader reader = view->cache_reader();
    std::vector<std::byte> blob;
    if (!reader.peek(key, &blob)) die("the key is not in the segment after a cache:local hit");
    redisContext* rc = redisConnect("127.0.0.1", redis_port);
    if (rc == nullptr || rc->err) die("redis connect: " + std::string(rc != nullptr ? rc->errstr : "out of memory"));
    auto* rep = static_cast<redisReply*>(redisCommand(rc, "GET %b", key.data(), key.size()));
    if (rep == nullptr || rep->type != REDIS_REPLY_STRING)
        die("GET " + key + " on redis port " + std::to_string(redis_port) + ": not a string (did the fill set it?)");
    const bool same =
        static_cast<std::size_t>(rep->len) == blob.size() && std::memcmp(rep->str, blob.data(), blob.size()) == 0;
    const std::size_t value_bytes = static_cast<std::size_t>(rep->len);
    freeReplyObject(rep);

    if (const long loop = a.num("hit-loop", 0); loop > 0) {  // for a profiler: hits only, untimed
        for (long i = 0; i < loop; ++i)
            rgd_free(rgd_cached_read(c, key.c_str(), 3600, kRowSql, params.n(), params.p()));
        return 0;
    }

    Tier hit{"cached_read hit (cache:local)", {}, {}, 0, "cache:local"};
    Tier get{"Redis GET, loopback (hiredis, sync)", {}, {}, 0, "redis-server"};
    Tier local{"read_local (through regiond)", {}, {}, 0, replica};
    Tier timer{"clock_gettime pair (timer cost)", {}, {}, 0, ""};
    Tier lookup{"CacheReader::lookup only", {}, {}, 0, ""};
    Tier decode{"lookup + decode into shm::Response", {}, {}, 0, ""};

    auto do_hit = [&] {
        rgd_result* r = rgd_cached_read(c, key.c_str(), 3600, kRowSql, params.n(), params.p());
        const char* v = rgd_value(r, 0, 1);
        const bool ok =
            rgd_ok(r) && std::strcmp(rgd_served_by(r), "cache:local") == 0 && v != nullptr && want_name == v;
        rgd_free(r);
        return ok;
    };
    auto do_get = [&] {
        auto* g = static_cast<redisReply*>(redisCommand(rc, "GET %b", key.data(), key.size()));
        const bool ok =
            g != nullptr && g->type == REDIS_REPLY_STRING && static_cast<std::size_t>(g->len) == value_bytes;
        if (g == nullptr) die("redis: " + std::string(rc->errstr));
        freeReplyObject(g);
        return ok;
    };
    auto do_local = [&] {
        rgd_result* r = rgd_read_local(c, kRowSql, params.n(), params.p());
        const char* v = rgd_value(r, 0, 1);
        const bool ok = rgd_ok(r) && replica == rgd_served_by(r) && v != nullptr && want_name == v;
        rgd_free(r);
        return ok;
    };
    const std::optional<std::string_view> view_params[] = {std::string_view("42")};
    std::vector<std::byte> out;
    auto do_lookup = [&] { return reader.lookup(key, kRowSql, view_params, regiond::shm::monotonic_now_ns(), out); };
    auto do_decode = [&] {
        if (!reader.lookup(key, kRowSql, view_params, regiond::shm::monotonic_now_ns(), out)) return false;
        auto resp = regiond::shm::response_from_cache_value(out, "cache:local", "cache:local: this host's hot cache");
        return resp.has_value() && resp->nrows() == 1;
    };
    auto do_nothing = [] { return true; };

    char host[256] = "";
    gethostname(host, sizeof host);
    const std::uint64_t t_start = now_ns();
    for (long r = 0; r < rounds; ++r) {
        measure(hit, hits, do_hit);
        measure(get, gets, do_get);
        measure(local, reads, do_local);
        measure(timer, hits, do_nothing);
        measure(lookup, hits, do_lookup);
        measure(decode, hits, do_decode);
    }
    const double seconds = ms(now_ns() - t_start) / 1000;
    redisFree(rc);

    std::printf("key %s, %zu-byte value (1 row, 3 columns); fill: ", key.c_str(), value_bytes);
    for (const auto& [path, n] : fill_path) std::printf("%s x%d ", path.c_str(), n);
    std::printf("\nRedis holds the same bytes as the segment: %s\n", same ? "yes" : "NO");
    std::printf(
        "%ld rounds in %.1f s; per round, in turn: %ld hits, %ld GETs, %ld read_local calls, then the hit's "
        "parts\n\n",
        rounds, seconds, hits, gets, reads);

    auto us = [](double ns) { return ns / 1000.0; };
    auto row = [&](Tier& t) {
        t.all.sort();
        const auto [lo, hi] = std::minmax_element(t.round_p50_ns.begin(), t.round_p50_ns.end());
        std::printf("| %s | %.3f | %.3f | %.3f | %.3f–%.3f | %zu | %zu |\n", t.name, us(t.all.pct(50)),
                    us(t.all.pct(99)), us(t.all.mean()), us(*lo), us(*hi), t.all.v.size(), t.wrong);
    };
    std::printf("| path | p50 µs | p99 µs | mean µs | p50 per round µs (min–max) | calls | wrong |\n");
    std::printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    row(hit);
    row(get);
    row(local);

    auto ratio = [](Tier& num, Tier& den, double p) {
        return static_cast<double>(num.all.pct(p)) / static_cast<double>(den.all.pct(p));
    };
    std::vector<double> per_round;
    for (std::size_t i = 0; i < hit.round_p50_ns.size(); ++i)
        per_round.push_back(get.round_p50_ns[i] / hit.round_p50_ns[i]);
    const auto [rlo, rhi] = std::minmax_element(per_round.begin(), per_round.end());
    const double g50 = ratio(get, hit, 50), g99 = ratio(get, hit, 99);
    std::printf("\n| ratio | p50 | p99 | goal | verdict |\n| --- | ---: | ---: | ---: | --- |\n");
    std::printf("| Redis GET / hit | %.1fx (per round %.1f–%.1f) | %.1fx | >= 200x, p50 and p99 | %s |\n", g50, *rlo,
                *rhi, g99, g50 >= 200 && g99 >= 200 ? "met" : "MISSED");
    std::printf("| read_local / hit | %.1fx | %.1fx | — | |\n", ratio(local, hit, 50), ratio(local, hit, 99));
    std::printf("| read_local / Redis GET | %.2fx | %.2fx | — | |\n", ratio(local, get, 50), ratio(local, get, 99));
    if (g50 < 200 || g99 < 200) {
        std::printf("the hit would need p50 <= %.3f µs and p99 <= %.3f µs for 200x\n",
                    us(static_cast<double>(get.all.pct(50)) / 200), us(static_cast<double>(get.all.pct(99)) / 200));
    }

    std::printf(
        "\nwhere a hit's time goes (this process, the daemon's segment, the same key and query; each "
        "timed alone, the timer included):\n");
    std::printf("| step | p50 ns | p99 ns | mean ns |\n| --- | ---: | ---: | ---: |\n");
    for (Tier* t : {&timer, &lookup, &decode, &hit}) {
        t->all.sort();
        std::printf("| %s | %" PRIu64 " | %" PRIu64 " | %.0f |\n",
                    t == &hit ? "rgd_cached_read + rgd_free (the whole hit)" : t->name, t->all.pct(50), t->all.pct(99),
                    t->all.mean());
    }
    const std::size_t wrong = hit.wrong + get.wrong + local.wrong + lookup.wrong + decode.wrong;
    if (wrong != 0) {
        std::printf("\nWRONG answers: %zu (hit %zu, GET %zu, read_local %zu, lookup %zu, decode %zu)\n", wrong,
                    hit.wrong, get.wrong, local.wrong, lookup.wrong, decode.wrong);
        return 1;
    }
    rgd_disconnect(c);
    return 0;
}

// --- the APAC dashboard ------------------------------------------------------

struct DashQuery {
    const char* name;
    const char* key;
    const char* sql;
};
// Fixed dates so the three answers never change while the benchmark runs (a
// replica and the primary must give the same rows, checked by value).
constexpr DashQuery kDash[] = {
    {"revenue by region", "revenue_by_region",
     "select region, count(*) as orders, sum(amount) as revenue from dash_orders group by region order by region"},
    {"top products, last 7 days", "top_products_7d",
     "select product, sum(qty) as units, sum(amount) as revenue from dash_orders where day >= date '2026-11-24' "
     "group by product order by units desc, product limit 5"},
    {"orders per day, last 14 days", "orders_per_day_14d",
     "select day, count(*) as orders, sum(amount) as revenue from dash_orders where day >= date '2026-11-17' "
     "group by day order by day"},
};
constexpr int kDashRows = 50000;

void setup_dashboard(rgd_client* writer, rgd_client* reader) {
    write(writer,
          "create table if not exists dash_orders (id int primary key, region text not null, product int not null, "
          "qty int not null, amount numeric(10,2) not null, day date not null)")
        .check("create table dash_orders");
    write(writer,
          "insert into dash_orders select g, (array['ap-northeast-1','eu-west-1','us-east-1'])[1 + g % 3], "
          "1 + (g * 7) % 50, 1 + g % 5, ((g * 37) % 10000) / 100.0, date '2026-11-01' + (g % 30) "
          "from generate_series(1, " +
              std::to_string(kDashRows) + ") g on conflict (id) do nothing")
        .check("fill dash_orders");
    wait_for_replica(reader, "select count(*) from dash_orders", std::to_string(kDashRows), "dash_orders");
}

struct Pass {
    double total_ms = 0;
    double query_ms[3] = {0, 0, 0};
    std::string served_by[3];
    std::string cells[3];
};

enum class Mode { cached, primary };

Pass dashboard_pass(rgd_client* c, Mode mode, const std::string& prefix) {
    Pass p;
    for (int q = 0; q < 3; ++q) {
        const std::string key = prefix + kDash[q].key;
        const std::uint64_t t0 = now_ns();
        Result r(mode == Mode::cached ? rgd_cached_read(c, key.c_str(), 600, kDash[q].sql, 0, nullptr)
                                      : rgd_read_primary(c, kDash[q].sql, 0, nullptr));
        const std::uint64_t t1 = now_ns();
        r.check(kDash[q].name);
        p.query_ms[q] = ms(t1 - t0);
        p.total_ms += p.query_ms[q];
        p.served_by[q] = r.served_by();
        p.cells[q] = r.cells();
    }
    return p;
}

// The hot-cache pass repeated: its median (a single pass of ~µs is noise).
Pass warm_median(rgd_client* c, const std::string& prefix, long reps) {
    std::vector<Pass> passes;
    for (long i = 0; i < reps; ++i) passes.push_back(dashboard_pass(c, Mode::cached, prefix));
    std::sort(passes.begin(), passes.end(), [](const Pass& x, const Pass& y) { return x.total_ms < y.total_ms; });
    return passes[passes.size() / 2];
}

std::string served(const Pass& p) {
    std::string s = p.served_by[0];
    if (p.served_by[1] != s || p.served_by[2] != s) s += ", " + p.served_by[1] + ", " + p.served_by[2];
    return s;
}

bool same_cells(const Pass& a, const Pass& b) {
    return a.cells[0] == b.cells[0] && a.cells[1] == b.cells[1] && a.cells[2] == b.cells[2];
}

void flush_hot_cache(const std::string& regionctl, const std::string& admin) {
    const std::string cmd = "'" + regionctl + "' --socket '" + admin + "' cache flush >/dev/null";
    if (std::system(cmd.c_str()) != 0) die("failed: " + cmd);
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : (v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2);
}

int run_dashboard(const Args& a) {
    const std::string socket = a.get("socket"), admin = a.get("admin-socket"), regionctl = a.get("regionctl"),
                      region = a.get("region");
    const long rounds = a.num("rounds", 5), reps = a.num("warm-reps", 1000);
    rgd_client* c = connect(socket);
    rgd_client* setup = connect(a.get("setup-socket", socket));
    setup_dashboard(setup, c);

    std::printf("three queries over dash_orders (%d rows), run one after another from %s; times in ms, in process\n",
                kDashRows, region.c_str());
    std::printf(
        "cold: new keys (both tiers miss); Redis: after `regionctl cache flush` of this host's hot cache; "
        "hot: median of %ld passes\n\n",
        reps);
    std::printf(
        "| round | cold | warm, Redis tier | warm, hot cache | all-primary | hot / all-primary | Redis / "
        "all-primary |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    std::vector<double> cold, redis, hot, primary, hot_share, redis_share;
    std::map<std::string, int> served_cold, served_redis, served_hot, served_primary;
    bool values_equal = true;
    Pass last_cold, last_hot, last_redis, last_primary;
    for (long r = 0; r < rounds; ++r) {
        const std::string prefix = "dash:apac:" + nonce() + ":";
        const Pass pc = dashboard_pass(c, Mode::cached, prefix);
        const Pass ph = warm_median(c, prefix, reps);
        flush_hot_cache(regionctl, admin);
        const Pass pr = dashboard_pass(c, Mode::cached, prefix);
        const Pass pp = dashboard_pass(c, Mode::primary, prefix);
        values_equal = values_equal && same_cells(pc, ph) && same_cells(pc, pr) && same_cells(pc, pp);
        ++served_cold[served(pc)];
        ++served_hot[served(ph)];
        ++served_redis[served(pr)];
        ++served_primary[served(pp)];
        cold.push_back(pc.total_ms);
        hot.push_back(ph.total_ms);
        redis.push_back(pr.total_ms);
        primary.push_back(pp.total_ms);
        hot_share.push_back(100 * ph.total_ms / pp.total_ms);
        redis_share.push_back(100 * pr.total_ms / pp.total_ms);
        std::printf("| %ld | %.1f | %.2f | %.4f | %.1f | %.5f %% | %.2f %% |\n", r + 1, pc.total_ms, pr.total_ms,
                    ph.total_ms, pp.total_ms, hot_share.back(), redis_share.back());
        last_cold = pc, last_hot = ph, last_redis = pr, last_primary = pp;
    }
    auto range = [](const std::vector<double>& v, const char* fmt) {
        char buf[96], lo[32], hi[32];
        std::snprintf(lo, sizeof lo, fmt, *std::min_element(v.begin(), v.end()));
        std::snprintf(hi, sizeof hi, fmt, *std::max_element(v.begin(), v.end()));
        std::snprintf(buf, sizeof buf, "%s–%s", lo, hi);
        return std::string(buf);
    };
    std::printf("| median | %.1f | %.2f | %.4f | %.1f | %.5f %% | %.2f %% |\n", median(cold), median(redis),
                median(hot), median(primary), median(hot_share), median(redis_share));
    std::printf("| range | %s | %s | %s | %s | | |\n", range(cold, "%.1f").c_str(), range(redis, "%.2f").c_str(),
                range(hot, "%.4f").c_str(), range(primary, "%.1f").c_str());

    std::printf(
        "\nper query, last round (ms):\n| query | cold | warm, Redis | warm, hot | all-primary |\n"
        "| --- | ---: | ---: | ---: | ---: |\n");
    for (int q = 0; q < 3; ++q)
        std::printf("| %s | %.2f | %.3f | %.4f | %.1f |\n", kDash[q].name, last_cold.query_ms[q],
                    last_redis.query_ms[q], last_hot.query_ms[q], last_primary.query_ms[q]);
    auto print_served = [](const char* what, const std::map<std::string, int>& m) {
        std::printf("  %-12s", what);
        for (const auto& [s, n] : m) std::printf(" %s (%d rounds)", s.c_str(), n);
        std::printf("\n");
    };
    std::printf("\nserved_by:\n");
    print_served("cold", served_cold);
    print_served("Redis", served_redis);
    print_served("hot", served_hot);
    print_served("all-primary", served_primary);
    std::printf("values: the four passes gave the same rows in every round: %s\n", values_equal ? "yes" : "NO");
    const double share = median(hot_share);
    std::printf("\n| goal | value | target | verdict |\n| --- | ---: | ---: | --- |\n");
    std::printf("| warm (hot cache) / all-primary, median of rounds | %.5f %% | <= 0.5 %% | %s |\n", share,
                share <= 0.5 ? "met" : "MISSED");
    std::printf("| warm (Redis tier) / all-primary, median of rounds | %.2f %% | (not a goal) | |\n",
                median(redis_share));
    rgd_disconnect(c);
    rgd_disconnect(setup);
    return values_equal ? 0 : 1;
}

// --- invalidation ------------------------------------------------------------

constexpr const char* kInvRead = "select v from cache_inv where id = $1";
constexpr const char* kInvWrite = "update cache_inv set v = $1 where id = 1";

void setup_invalidation(rgd_client* writer, rgd_client* reader) {
    write(writer, "create table if not exists cache_inv (id int primary key, v text not null)")
        .check("create table cache_inv");
    write(writer, "insert into cache_inv values (1, 'initial') on conflict (id) do nothing").check("fill cache_inv");
    wait_for_replica(reader, "select count(*) from cache_inv", "1", "cache_inv");
}

struct Invalidation {
    std::string key, value;
    double write_ms = 0;   ///< rgd_write, call to answer, in the writer's region
    double seen_ms = 0;    ///< answer to the key gone from the reader's segment
    double seen_wall = 0;  ///< CLOCK_REALTIME when gone (compared with the row's commit time)
    double commit_to_seen_ms = -1;
    std::string token;
    std::string after_served_by, after_reason;
    bool after_fresh = false;
};

// Puts `key` into the reader's hot cache (a miss fills it; the next call must be
// a hit), then, after `pause_ns`, writes from the writer's host with the key and
// polls the reader's segment until the key is gone; then reads it back there.
Invalidation one_invalidation(rgd_client* writer, rgd_client* reader, const regiond::shm::CacheReader& segment,
                              const std::string& key, const std::string& value, long pause_ns) {
    const Params id({"1"});
    for (int i = 0;; ++i) {
        Result r(rgd_cached_read(reader, key.c_str(), 600, kInvRead, id.n(), id.p()));
        r.check("cached_read (fill)");
        if (r.served_by() == "cache:local" && segment.peek(key)) break;
        if (i == 100) die("the key never reached the reader's hot cache: " + r.served_by() + ": " + r.route_reason());
        if (i > 0) sleep_ns(5'000'000);
    }
    sleep_ns(pause_ns);
    Invalidation inv;
    inv.key = key;
    inv.value = value;
    const Params v({value});
    const std::uint64_t t_call = now_ns();
    Result w = write(writer, kInvWrite, v, {key});
    const std::uint64_t t_ack = now_ns();
    w.check("write with a key");
    if (w.affected() != 1) die("the write changed " + std::to_string(w.affected()) + " rows, expected 1");
    inv.token = w.token();
    std::uint64_t t_seen = 0;
    for (;;) {
        if (!segment.peek(key)) {
            t_seen = now_ns();
            inv.seen_wall = wall_s();
            break;
        }
        if (now_ns() - t_ack > 10'000'000'000ull) die("the key was still in the reader's segment 10 s after the write");
        sleep_ns(20'000);  // ~50-100 µs per poll on this VM: well under 0.1 % of the delay measured
    }
    inv.write_ms = ms(t_ack - t_call);
    inv.seen_ms = ms(t_seen - t_ack);
    Result after(rgd_cached_read(reader, key.c_str(), 600, kInvRead, id.n(), id.p()));
    after.check("cached_read after the invalidation");
    inv.after_served_by = after.served_by();
    inv.after_reason = after.route_reason();
    inv.after_fresh = after.nrows() == 1 && after.value(0, 0) == value;
    return inv;
}

// Commit times: the durable invalidation row's `at` (clock_timestamp() as the
// write's last statement, right before its commit; same machine, same clock).
void commit_times(rgd_client* c, std::vector<Invalidation>& invs, const std::string& prefix) {
    const Params like({prefix + "%"});
    Result r(rgd_read_primary(c,
                              "select keys[1], extract(epoch from at)::float8 from regiond.invalidations "
                              "where keys[1] like $1",
                              like.n(), like.p()));
    if (!r.ok()) {
        std::printf("(commit times not available: %s)\n", r.error().c_str());
        return;
    }
    std::map<std::string, double> at;
    for (int i = 0; i < r.nrows(); ++i) at[r.value(i, 0)] = std::stod(r.value(i, 1));
    for (auto& inv : invs) {
        auto it = at.find(inv.key);
        if (it != at.end()) inv.commit_to_seen_ms = (inv.seen_wall - it->second) * 1000;
    }
}

int run_invalidation(const Args& a, bool demo) {
    const std::string wsock = a.get("writer-socket"), wregion = a.get("writer-region"), socket = a.get("socket"),
                      segment_name = a.get("segment"), region = a.get("region");
    const double one_way = std::stod(a.get("one-way-ms"));
    const long n = demo ? 1 : a.num("writes", 50), pause_ms = a.num("pause-ms", 100);
    rgd_client* writer = connect(wsock);
    rgd_client* reader = connect(socket);
    setup_invalidation(writer, reader);
    auto view = regiond::shm::StateView::open(segment_name);
    if (!view) die("open segment " + segment_name + ": " + view.error().message);
    const regiond::shm::CacheReader segment = view->cache_reader();
    if (!segment.enabled()) die("segment " + segment_name + " has no hot cache");

    const std::string prefix = "inv:" + nonce() + ":";
    std::mt19937 rng(std::random_device{}());
    std::uniform_int_distribution<long> pause(0, std::max(0L, pause_ms) * 1000000L);
    std::vector<Invalidation> invs;
    for (long i = 0; i < n; ++i) {
        const std::string key = prefix + std::to_string(i);
        invs.push_back(one_invalidation(writer, reader, segment, key, "v-" + key, demo ? 0 : pause(rng)));
    }
    commit_times(writer, invs, prefix);

    if (demo) {
        const Invalidation& inv = invs.front();
        std::printf("write from %s with key %s: %.1f ms (to the primary and back), token %s\n", wregion.c_str(),
                    inv.key.c_str(), inv.write_ms, inv.token.c_str());
        std::printf("gone from %s's hot cache %.1f ms after the write returned", region.c_str(), inv.seen_ms);
        if (inv.commit_to_seen_ms >= 0) std::printf(" (%.1f ms after the commit)", inv.commit_to_seen_ms);
        std::printf("; one-way %s <-> %s: %.0f ms (%.2fx)\n", wregion.c_str(), region.c_str(), one_way,
                    inv.seen_ms / one_way);
        std::printf("cached_read in %s now: \"%s\" from %s (%s)\n", region.c_str(),
                    inv.after_fresh ? inv.value.c_str() : "STALE", inv.after_served_by.c_str(),
                    inv.after_reason.c_str());
        return inv.after_fresh ? 0 : 1;
    }

    Dist write_d, seen_d, commit_d;
    std::vector<double> ratios;
    std::size_t early = 0, stale = 0;
    std::map<std::string, int> after_served;
    for (const auto& inv : invs) {
        write_d.v.push_back(static_cast<std::uint64_t>(inv.write_ms * 1e6));
        seen_d.v.push_back(static_cast<std::uint64_t>(inv.seen_ms * 1e6));
        if (inv.commit_to_seen_ms >= 0) commit_d.v.push_back(static_cast<std::uint64_t>(inv.commit_to_seen_ms * 1e6));
        if (inv.seen_ms < one_way) ++early;
        if (!inv.after_fresh) ++stale;
        ++after_served[inv.after_served_by];
    }
    write_d.sort();
    seen_d.sort();
    commit_d.sort();
    std::printf(
        "%ld writes from %s, each with its own key held in %s's hot cache; a random pause of 0-%ld ms before "
        "each write\n\n",
        n, wregion.c_str(), region.c_str(), pause_ms);
    std::printf(
        "| ms | n | min | p10 | p50 | p90 | max | mean |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | "
        "---: |\n");
    auto row = [](const char* what, const Dist& d, double scale) {
        if (d.v.empty()) return;
        std::printf("| %s | %zu | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n", what, d.v.size(), d.pct(0) / scale,
                    d.pct(10) / scale, d.pct(50) / scale, d.pct(90) / scale, d.pct(100) / scale, d.mean() / scale);
    };
    row("write: call to answer (writer's host)", write_d, 1e6);
    row("write answered -> key gone from the remote segment", seen_d, 1e6);
    row("commit on the primary -> key gone", commit_d, 1e6);
    row("(answered -> gone) / one-way delay, x", seen_d, one_way * 1e6);
    std::vector<const Invalidation*> slow;
    for (const auto& inv : invs) slow.push_back(&inv);
    std::sort(slow.begin(), slow.end(), [](auto* x, auto* y) { return x->seen_ms > y->seen_ms; });
    std::printf("\nslowest:");
    for (std::size_t i = 0; i < std::min<std::size_t>(3, slow.size()); ++i)
        std::printf(" %.1f ms (write %.1f ms, commit -> gone %.1f ms);", slow[i]->seen_ms, slow[i]->write_ms,
                    slow[i]->commit_to_seen_ms);
    std::printf("\ngone sooner than one one-way delay after the answer (only the durable path can be): %zu of %zu\n",
                early, invs.size());
    std::printf("after each invalidation, cached_read in %s returned the new value: %zu of %zu (", region.c_str(),
                invs.size() - stale, invs.size());
    for (const auto& [s, k] : after_served) std::printf(" %s x%d", s.c_str(), k);
    std::printf(" )\n");
    const double p50 = static_cast<double>(seen_d.pct(50)) / 1e6 / one_way;
    const double p90 = static_cast<double>(seen_d.pct(90)) / 1e6 / one_way;
    const double mx = static_cast<double>(seen_d.pct(100)) / 1e6 / one_way;
    std::printf("\n| goal | value | target | verdict |\n| --- | ---: | ---: | --- |\n");
    std::printf("| p50 (answered -> gone) / one-way %.0f ms | %.3f | <= 1.1 | %s |\n", one_way, p50,
                p50 <= 1.1 ? "met" : "MISSED");
    std::printf("| p90 | %.3f | <= 1.1 | %s |\n", p90, p90 <= 1.1 ? "met" : "MISSED");
    std::printf("| max | %.3f | <= 1.1 | %s |\n", mx, mx <= 1.1 ? "met" : "MISSED");
    rgd_disconnect(writer);
    rgd_disconnect(reader);
    return stale == 0 ? 0 : 1;
}

// --- demo --------------------------------------------------------------------

int run_demo(const Args& a) {
    const std::string socket = a.get("socket"), region = a.get("region");
    rgd_client* c = connect(socket);
    rgd_client* writer = connect(a.get("writer-socket"));
    setup_dashboard(writer, c);
    const std::string prefix = "dash:apac:" + nonce() + ":";
    const Pass cold = dashboard_pass(c, Mode::cached, prefix);
    const Pass warm = warm_median(c, prefix, 101);
    const Pass primary = dashboard_pass(c, Mode::primary, prefix);
    std::printf(
        "== the APAC dashboard from %s: three queries, cached_read cold and warm vs. read_primary (in "
        "process, ms)\n",
        region.c_str());
    std::printf("%-30s %12s %12s %12s\n", "query", "cold (miss)", "warm (hit)", "all-primary");
    for (int q = 0; q < 3; ++q)
        std::printf("%-30s %12.2f %12.4f %12.1f\n", kDash[q].name, cold.query_ms[q], warm.query_ms[q],
                    primary.query_ms[q]);
    std::printf("%-30s %12.2f %12.4f %12.1f\n", "total", cold.total_ms, warm.total_ms, primary.total_ms);
    std::printf("served_by: cold %s, warm %s, all-primary %s\n", served(cold).c_str(), served(warm).c_str(),
                served(primary).c_str());
    const bool same = same_cells(cold, warm) && same_cells(cold, primary);
    std::printf("warm is %.4f %% of all-primary; the same rows all three ways: %s\n",
                100 * warm.total_ms / primary.total_ms, same ? "yes" : "NO");
    rgd_disconnect(c);
    rgd_disconnect(writer);
    std::printf("\n== a write in %s invalidates a key held in %s's hot cache\n", a.get("writer-region").c_str(),
                region.c_str());
    std::fflush(stdout);
    const int rc = run_invalidation(a, true);
    return same ? rc : 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) die("usage: bench_cache_e2e tiers|dashboard|invalidation|demo --option value ... (see the source)");
    const std::string cmd = argv[1];
    Args a;
    for (int i = 2; i < argc; ++i) {
        std::string k = argv[i];
        if (k.rfind("--", 0) != 0 || i + 1 >= argc) die("bad argument: " + k);
        a.kv[k.substr(2)] = argv[++i];
    }
    try {
        if (cmd == "tiers") return run_tiers(a);
        if (cmd == "dashboard") return run_dashboard(a);
        if (cmd == "invalidation") return run_invalidation(a, false);
        if (cmd == "demo") return run_demo(a);
    } catch (const std::exception& e) {
        die(e.what());
    }
    die("unknown command " + cmd);
}
