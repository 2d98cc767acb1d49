// Read-after-write, three strategies side by side on the same trace (issue 8's
// benchmark). Each emulated host (eu-west-1, ap-northeast-1) runs a few
// sessions; a session's operation is a write through its own host's regiond
// (an upsert that sets a fresh value), then a read of the same row by one of:
//   regiond     rgd_read_consistent with the write's token
//   seed-rule   the seed's rule, with libpq: ask the local replica
//               `now() - pg_last_xact_replay_timestamp()`, and read the local
//               replica only when (client now - write_time) >= that + 100 ms,
//               else the primary (write_time: the client's clock when the
//               write returned)
//   primary     always the primary, with libpq
// The writes are the same for all three (rgd_write), so only the read differs.
// Every read is checked by value: it must see the value its write set (a
// different value, or no row, is a stale answer). Strategies take turns within
// each round (the order rotates), so load changes hit all three alike.
//
// Usage (bench/consistency.sh sets everything up):
//   bench_consistency --max-wait-ms 50 [--ops 150] [--sessions 4] [--rounds 3]
//       [--keys 40] [--warmup 3] [--think-ms 0] [--check-replica]
//       --host REGION --socket PATH --replica CONNINFO --primary CONNINFO --local-rtt-ms MS
//       [--host ...]
// The libpq connections should go through the same emulated links as the
// daemon's (the script passes the wanproxy's ports). Prints the table, the
// route_reason histogram of read_consistent and the goals as met/MISSED.
// Exit 1 when it cannot run (bad arguments, a connection or the table setup
// fails); failed calls during the run are counted and shown, never fatal.
#include <libpq-fe.h>
#include <regiond/client.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using Steady = std::chrono::steady_clock;
using Wall = std::chrono::system_clock;

constexpr const char* kWrite =
    "insert into rc_bench (id, v) values ($1, $2) on conflict (id) do update set v = excluded.v";
constexpr const char* kRead = "select v from rc_bench where id = $1";
// The seed's lag figure, as it computed it: the replica's clock minus the
// commit time (the primary's clock) of the last transaction it replayed.
constexpr const char* kSeedLag = "select extract(epoch from now() - pg_last_xact_replay_timestamp())::float8";
constexpr double kSeedMarginS = 0.100;

struct HostSpec {
    std::string region, socket, replica_conninfo, primary_conninfo;
    double local_rtt_ms = -1;
};

struct Options {
    std::vector<HostSpec> hosts;
    int ops = 150;      ///< operations per host per strategy per round
    int sessions = 4;   ///< concurrent sessions per host
    int rounds = 3;
    int keys = 40;      ///< rows per session (each session writes only its own)
    int warmup = 3;     ///< operations per session and strategy before measuring
    double max_wait_ms = -1;
    bool check_replica = false;
    int think_ms = 0;  ///< pause of each session before each operation (a sparser trace)  ///< diagnostic: ask the replica for its replay LSN between write and read
};

enum class Strategy { regiond, seed_rule, primary };
constexpr Strategy kStrategies[] = {Strategy::regiond, Strategy::seed_rule, Strategy::primary};
const char* name_of(Strategy s) {
    switch (s) {
        case Strategy::regiond: return "regiond read_consistent";
        case Strategy::seed_rule: return "seed rule (libpq)";
        case Strategy::primary: return "always primary (libpq)";
    }
    return "?";
}
char letter_of(Strategy s) {
    switch (s) {
        case Strategy::regiond: return 'a';
        case Strategy::seed_rule: return 'b';
        case Strategy::primary: return 'c';
    }
    return '?';
}

struct Record {
    std::size_t host = 0;
    Strategy strategy = Strategy::regiond;
    double write_ms = 0, read_ms = 0;
    bool local = false, stale = false;
    std::string error;              ///< "" when the write and the read both answered
    std::string served_by, reason;  ///< regiond's, for read_consistent
    double seed_lag_s = NAN;        ///< the seed's lag figure (NAN: NULL or not this strategy)
    double seed_since_write_s = NAN;
    int replica_had_token = -1;  ///< --check-replica: 1 if the local replica had replayed the write when it returned
};

using PgConnPtr = std::unique_ptr<PGconn, decltype(&PQfinish)>;
using PgResultPtr = std::unique_ptr<PGresult, decltype(&PQclear)>;

PgConnPtr pg_connect(const std::string& conninfo, const std::string& what) {
    PgConnPtr conn(PQconnectdb(conninfo.c_str()), &PQfinish);
    if (PQstatus(conn.get()) != CONNECTION_OK) throw std::runtime_error(what + ": " + PQerrorMessage(conn.get()));
    return conn;
}

void pg_prepare(PGconn* conn, const char* name, const char* sql, int nparams, const std::string& what) {
    PgResultPtr r(PQprepare(conn, name, sql, nparams, nullptr), &PQclear);
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK)
        throw std::runtime_error(what + ": prepare " + name + ": " + PQerrorMessage(conn));
}

double ms_between(Steady::time_point a, Steady::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

// One session of one host: its own rgd_client and its own libpq connections to
// the host's replica and to the primary (the seed's application kept both).
class Session {
public:
    Session(const HostSpec& host, std::size_t host_index, int index, int keys, bool check_replica)
        : check_replica_(check_replica),
          host_(host),
          host_index_(host_index),
          replica_(pg_connect(host.replica_conninfo, host.region + " replica")),
          primary_(pg_connect(host.primary_conninfo, host.region + " -> primary")) {
        char err[512];
        client_ = rgd_connect(host.socket.c_str(), err, sizeof err);
        if (client_ == nullptr) throw std::runtime_error(host.region + ": " + err);
        rgd_set_timeout_ms(client_, 10000);
        pg_prepare(replica_.get(), "lag", kSeedLag, 0, host.region + " replica");
        pg_prepare(replica_.get(), "read", kRead, 1, host.region + " replica");
        pg_prepare(replica_.get(), "has", "select pg_last_wal_replay_lsn() >= $1::pg_lsn", 1, host.region + " replica");
        pg_prepare(primary_.get(), "read", kRead, 1, host.region + " -> primary");
        key_base_ = static_cast<long>(host_index + 1) * 1'000'000 + static_cast<long>(index) * 10'000;
        keys_ = keys;
    }
    ~Session() { rgd_disconnect(client_); }
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    /// One write-then-read operation on row key_base + key_offset.
    Record run(Strategy strategy, int key_offset, const std::string& value) {
        Record rec;
        rec.host = host_index_;
        rec.strategy = strategy;
        const std::string key = std::to_string(key_base_ + (key_offset % keys_));
        const char* wparams[] = {key.c_str(), value.c_str()};
        const auto w0 = Steady::now();
        rgd_result* w = rgd_write(client_, kWrite, 2, wparams, 0, nullptr);
        rec.write_ms = ms_between(w0, Steady::now());
        const Wall::time_point write_time = Wall::now();  // the seed's write_time: when the write returned
        if (rgd_ok(w) != 1) {
            rec.error = std::string("write: ") + rgd_error(w);
            rgd_free(w);
            return rec;
        }
        const std::string token = rgd_token(w);
        rgd_free(w);

        const char* rparams[] = {key.c_str()};
        switch (strategy) {
            case Strategy::regiond: {
                if (check_replica_) {
                    // Diagnostic only (adds a local round trip before the read):
                    // had the local replica replayed the write when it returned?
                    const std::string lsn = token.substr(token.find('/') + 1);
                    const char* p[] = {lsn.c_str()};
                    PgResultPtr has(PQexecPrepared(replica_.get(), "has", 1, p, nullptr, nullptr, 0), &PQclear);
                    if (PQresultStatus(has.get()) == PGRES_TUPLES_OK && PQntuples(has.get()) == 1)
                        rec.replica_had_token = std::strcmp(PQgetvalue(has.get(), 0, 0), "t") == 0 ? 1 : 0;
                }
                const auto r0 = Steady::now();
                rgd_result* r = rgd_read_consistent(client_, token.c_str(), kRead, 1, rparams);
                rec.read_ms = ms_between(r0, Steady::now());
                rec.served_by = rgd_served_by(r);
                rec.reason = rgd_route_reason(r);
                if (rgd_ok(r) != 1) {
                    rec.error = std::string("read_consistent: ") + rgd_error(r);
                } else {
                    rec.local = rec.served_by == host_.region + "/replica";
                    rec.stale = !(rgd_nrows(r) == 1 && rgd_value(r, 0, 0) != nullptr && value == rgd_value(r, 0, 0));
                }
                rgd_free(r);
                break;
            }
            case Strategy::seed_rule: {
                const auto r0 = Steady::now();
                PgResultPtr lag(PQexecPrepared(replica_.get(), "lag", 0, nullptr, nullptr, nullptr, 0), &PQclear);
                if (PQresultStatus(lag.get()) != PGRES_TUPLES_OK || PQntuples(lag.get()) != 1) {
                    rec.error = std::string("seed lag query: ") + PQerrorMessage(replica_.get());
                    break;
                }
                const double since = std::chrono::duration<double>(Wall::now() - write_time).count();
                rec.seed_since_write_s = since;
                // NULL (nothing replayed since the replica started): no lag figure, so the primary.
                if (!PQgetisnull(lag.get(), 0, 0)) {
                    rec.seed_lag_s = std::strtod(PQgetvalue(lag.get(), 0, 0), nullptr);
                    rec.local = since >= rec.seed_lag_s + kSeedMarginS;
                }
                rec.served_by = rec.local ? host_.region + "/replica" : "primary";
                PGconn* conn = rec.local ? replica_.get() : primary_.get();
                read_pg(conn, rparams, value, rec);
                rec.read_ms = ms_between(r0, Steady::now());  // the lag query is part of the rule's cost
                break;
            }
            case Strategy::primary: {
                const auto r0 = Steady::now();
                rec.served_by = "primary";
                read_pg(primary_.get(), rparams, value, rec);
                rec.read_ms = ms_between(r0, Steady::now());
                break;
            }
        }
        return rec;
    }

private:
    static void read_pg(PGconn* conn, const char* const* params, const std::string& value, Record& rec) {
        PgResultPtr r(PQexecPrepared(conn, "read", 1, params, nullptr, nullptr, 0), &PQclear);
        if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
            rec.error = std::string("read: ") + PQerrorMessage(conn);
            return;
        }
        rec.stale = !(PQntuples(r.get()) == 1 && value == PQgetvalue(r.get(), 0, 0));
    }

    bool check_replica_;
    HostSpec host_;
    std::size_t host_index_;
    PgConnPtr replica_, primary_;
    rgd_client* client_ = nullptr;
    long key_base_ = 0;
    int keys_ = 1;
};

double percentile(std::vector<double> v, double q) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

// A route_reason with its numbers (durations, LSNs, rtts) replaced by '#', so
// reasons of the same kind count together: "waited # for the local replica
// (at # >= token #)".
std::string reason_shape(const std::string& reason) {
    std::string out, word;
    auto flush = [&] {
        if (word.empty()) return;
        if (std::any_of(word.begin(), word.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            std::size_t b = 0, e = word.size();
            while (b < e && (word[b] == '(')) ++b;
            while (e > b && (word[e - 1] == ')' || word[e - 1] == ',' || word[e - 1] == ';')) --e;
            word = word.substr(0, b) + "#" + word.substr(e);
        }
        out += word;
        word.clear();
    };
    for (char c : reason) {
        if (c == ' ') {
            flush();
            out += ' ';
        } else {
            word += c;
        }
    }
    flush();
    return out.empty() ? "(empty)" : out;
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
            return argv[++i];
        };
        auto host = [&]() -> HostSpec& {
            if (o.hosts.empty()) throw std::runtime_error(a + " before any --host");
            return o.hosts.back();
        };
        if (a == "--host") {
            o.hosts.push_back(HostSpec{});
            o.hosts.back().region = next();
        } else if (a == "--socket")
            host().socket = next();
        else if (a == "--replica")
            host().replica_conninfo = next();
        else if (a == "--primary")
            host().primary_conninfo = next();
        else if (a == "--local-rtt-ms")
            host().local_rtt_ms = std::stod(next());
        else if (a == "--max-wait-ms")
            o.max_wait_ms = std::stod(next());
        else if (a == "--ops")
            o.ops = std::stoi(next());
        else if (a == "--sessions")
            o.sessions = std::stoi(next());
        else if (a == "--rounds")
            o.rounds = std::stoi(next());
        else if (a == "--keys")
            o.keys = std::stoi(next());
        else if (a == "--warmup")
            o.warmup = std::stoi(next());
        else if (a == "--think-ms")
            o.think_ms = std::stoi(next());
        else if (a == "--check-replica")
            o.check_replica = true;
        else
            throw std::runtime_error("unknown argument " + a);
    }
    if (o.hosts.empty()) throw std::runtime_error("at least one --host is required");
    for (const HostSpec& h : o.hosts)
        if (h.socket.empty() || h.replica_conninfo.empty() || h.primary_conninfo.empty() || h.local_rtt_ms < 0)
            throw std::runtime_error("--host " + h.region + " needs --socket, --replica, --primary and --local-rtt-ms");
    if (o.max_wait_ms < 0) throw std::runtime_error("--max-wait-ms is required (consistency.max_wait of the daemons)");
    if (o.ops < 1 || o.sessions < 1 || o.rounds < 1 || o.keys < 1) throw std::runtime_error("counts must be >= 1");
    return o;
}

const char* verdict(bool met) {
    return met ? "met" : "MISSED";
}

// The trace: for each host, the row (offset within its session's rows) of
// each operation; operation i belongs to session i % sessions. The same for
// every strategy and round.
std::vector<std::vector<int>> make_trace(const Options& o) {
    std::vector<std::vector<int>> trace(o.hosts.size());
    std::mt19937 rng(20261201);
    std::uniform_int_distribution<int> pick(0, o.keys - 1);
    for (auto& ops : trace)
        for (int i = 0; i < o.ops; ++i) ops.push_back(pick(rng));
    return trace;
}

// Runs one strategy on every host at once, each host's sessions in parallel.
std::vector<Record> run_strategy(Strategy s, int round, const std::vector<std::vector<std::unique_ptr<Session>>>& sessions,
                                 const std::vector<std::vector<int>>& trace, const Options& o, bool measured) {
    std::vector<std::vector<Record>> per_thread;
    std::vector<std::thread> threads;
    const int ops = measured ? o.ops : o.warmup * o.sessions;
    for (std::size_t h = 0; h < sessions.size(); ++h)
        for (int k = 0; k < o.sessions; ++k) per_thread.emplace_back();
    std::size_t slot = 0;
    for (std::size_t h = 0; h < sessions.size(); ++h) {
        for (int k = 0; k < o.sessions; ++k, ++slot) {
            threads.emplace_back([&, h, k, slot] {
                Session& session = *sessions[h][static_cast<std::size_t>(k)];
                for (int i = k; i < ops; i += o.sessions) {
                    // The trace's pace, not a wait for a condition.
                    if (o.think_ms > 0 && measured) std::this_thread::sleep_for(std::chrono::milliseconds(o.think_ms));
                    char value[64];
                    std::snprintf(value, sizeof value, "%c-%s-r%d-h%zu-op%d", letter_of(s), measured ? "m" : "w",
                                  round, h, i);
                    const int key = trace[h][static_cast<std::size_t>(i) % trace[h].size()];
                    per_thread[slot].push_back(session.run(s, key, value));
                }
            });
        }
    }
    for (auto& t : threads) t.join();
    std::vector<Record> out;
    for (auto& v : per_thread) out.insert(out.end(), v.begin(), v.end());
    return out;
}

struct Group {
    std::vector<double> read_ms, local_read_ms, write_ms, seed_lag_s, seed_since_s;
    std::size_t reads = 0, local = 0, stale = 0, errors = 0, replica_checked = 0, replica_had = 0;
    std::map<std::string, std::size_t> served_by, reasons;
    std::map<std::string, std::string> example;  ///< a reason as it came, per shape
    std::vector<std::string> first_errors;
    void add(const Record& r) {
        write_ms.push_back(r.write_ms);
        if (!r.error.empty()) {
            ++errors;
            if (first_errors.size() < 3) first_errors.push_back(r.error);
            return;
        }
        ++reads;
        read_ms.push_back(r.read_ms);
        if (r.local) {
            ++local;
            local_read_ms.push_back(r.read_ms);
        }
        if (r.stale) ++stale;
        ++served_by[r.served_by];
        if (r.strategy == Strategy::regiond) {
            const std::string shape = reason_shape(r.reason);
            if (++reasons[shape] == 1) example[shape] = r.reason;
        }
        if (r.replica_had_token >= 0) {
            ++replica_checked;
            replica_had += static_cast<std::size_t>(r.replica_had_token);
        }
        if (!std::isnan(r.seed_lag_s)) seed_lag_s.push_back(r.seed_lag_s);
        if (!std::isnan(r.seed_since_write_s)) seed_since_s.push_back(r.seed_since_write_s);
    }
    double local_share() const { return reads == 0 ? 0 : 100.0 * static_cast<double>(local) / static_cast<double>(reads); }
};

}  // namespace

int main(int argc, char** argv) {
    try {
        const Options o = parse(argc, argv);
        std::vector<std::vector<std::unique_ptr<Session>>> sessions(o.hosts.size());
        for (std::size_t h = 0; h < o.hosts.size(); ++h)
            for (int k = 0; k < o.sessions; ++k)
                sessions[h].push_back(std::make_unique<Session>(o.hosts[h], h, k, o.keys, o.check_replica));
        const auto trace = make_trace(o);

        // Warm-up: every path's connections opened, statements prepared, the
        // table on every replica. Not recorded.
        for (Strategy s : kStrategies) {
            for (const Record& r : run_strategy(s, 0, sessions, trace, o, false))
                if (!r.error.empty()) std::fprintf(stderr, "bench_consistency: warm-up: %s\n", r.error.c_str());
        }

        std::map<std::pair<std::size_t, Strategy>, Group> groups;
        std::map<Strategy, Group> totals;
        const auto start = Steady::now();
        for (int round = 1; round <= o.rounds; ++round) {
            for (int j = 0; j < 3; ++j) {
                const Strategy s = kStrategies[static_cast<std::size_t>((round - 1 + j) % 3)];
                for (const Record& r : run_strategy(s, round, sessions, trace, o, true)) {
                    groups[{r.host, s}].add(r);
                    totals[s].add(r);
                }
            }
        }
        const double seconds = std::chrono::duration<double>(Steady::now() - start).count();

        std::printf(
            "write then read the same row, %d ops per host per strategy per round, %d sessions per host, %d rounds "
            "(%.0f s), think time %d ms; consistency.max_wait %.0f ms\n\n",
            o.ops, o.sessions, o.rounds, seconds, o.think_ms, o.max_wait_ms);
        std::printf(
            "| host | strategy | reads | served locally | read p50 ms | read p99 ms | local read p50 ms | local read "
            "p99 ms | stale | errors | write p50 ms |\n");
        std::printf("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        auto row = [](const std::string& host, Strategy s, const Group& g) {
            auto num = [](double v) {
                char b[32];
                if (std::isnan(v))
                    std::snprintf(b, sizeof b, "-");
                else
                    std::snprintf(b, sizeof b, "%.1f", v);
                return std::string(b);
            };
            std::printf("| %s | %s | %zu | %.1f %% | %s | %s | %s | %s | %zu | %zu | %s |\n", host.c_str(), name_of(s),
                        g.reads, g.local_share(), num(percentile(g.read_ms, 0.50)).c_str(),
                        num(percentile(g.read_ms, 0.99)).c_str(), num(percentile(g.local_read_ms, 0.50)).c_str(),
                        num(percentile(g.local_read_ms, 0.99)).c_str(), g.stale, g.errors,
                        num(percentile(g.write_ms, 0.50)).c_str());
        };
        for (std::size_t h = 0; h < o.hosts.size(); ++h)
            for (Strategy s : kStrategies) row(o.hosts[h].region, s, groups[{h, s}]);
        for (Strategy s : kStrategies) row("all", s, totals[s]);

        std::printf("\nread_consistent: where the reads went and why (route_reason with numbers as #)\n");
        for (std::size_t h = 0; h < o.hosts.size(); ++h) {
            const Group& g = groups[{h, Strategy::regiond}];
            std::printf("  %s\n", o.hosts[h].region.c_str());
            for (const auto& [by, n] : g.served_by) std::printf("    %6zu  served_by %s\n", n, by.c_str());
            if (g.replica_checked > 0)
                std::printf("    --check-replica: the local replica had replayed the write when it returned: %zu of %zu\n",
                            g.replica_had, g.replica_checked);
            std::vector<std::pair<std::size_t, std::string>> sorted;
            for (const auto& [shape, n] : g.reasons) sorted.emplace_back(n, shape);
            std::sort(sorted.rbegin(), sorted.rend());
            for (const auto& [n, shape] : sorted)
                std::printf("    %6zu  %s\n            e.g. \"%s\"\n", n, shape.c_str(), g.example.at(shape).c_str());
        }
        std::printf("\nseed rule: its figures at the moment it decided (s)\n");
        for (std::size_t h = 0; h < o.hosts.size(); ++h) {
            const Group& g = groups[{h, Strategy::seed_rule}];
            std::printf(
                "  %s: lag figure p50 %.3f, max %.3f; time since the write p50 %.4f, max %.4f; local %zu of %zu\n",
                o.hosts[h].region.c_str(), percentile(g.seed_lag_s, 0.5), percentile(g.seed_lag_s, 1.0),
                percentile(g.seed_since_s, 0.5), percentile(g.seed_since_s, 1.0), g.local, g.reads);
        }
        bool any_errors = false;
        for (const auto& [key, g] : groups)
            for (const std::string& e : g.first_errors) {
                if (!any_errors) std::printf("\nfirst errors:\n");
                any_errors = true;
                std::printf("  %s, %s: %s\n", o.hosts[key.first].region.c_str(), name_of(key.second), e.c_str());
            }

        std::printf("\n| goal (read_consistent) | value | target | verdict |\n| --- | ---: | ---: | --- |\n");
        const Group& all = totals[Strategy::regiond];
        std::printf("| served locally, replay running, all hosts | %.1f %% | >= 95 %% | %s |\n", all.local_share(),
                    verdict(all.local_share() >= 95.0 && all.reads > 0));
        for (std::size_t h = 0; h < o.hosts.size(); ++h) {
            const Group& g = groups[{h, Strategy::regiond}];
            std::printf("| served locally, %s | %.1f %% | >= 95 %% | %s |\n", o.hosts[h].region.c_str(),
                        g.local_share(), verdict(g.local_share() >= 95.0 && g.reads > 0));
        }
        std::printf("| stale answers | %zu | 0 | %s |\n", all.stale, verdict(all.stale == 0));
        for (std::size_t h = 0; h < o.hosts.size(); ++h) {
            const Group& g = groups[{h, Strategy::regiond}];
            const double p99 = percentile(g.local_read_ms, 0.99);
            const double target = o.hosts[h].local_rtt_ms + o.max_wait_ms;
            char value[32];
            if (std::isnan(p99))
                std::snprintf(value, sizeof value, "none served locally");
            else
                std::snprintf(value, sizeof value, "%.1f ms", p99);
            std::printf("| p99 of a locally served read, %s | %s | <= %.1f ms (rtt %.1f + max_wait %.0f) | %s |\n",
                        o.hosts[h].region.c_str(), value, target, o.hosts[h].local_rtt_ms, o.max_wait_ms,
                        verdict(!std::isnan(p99) && p99 <= target));
        }
        if (all.errors > 0) std::printf("(%zu read_consistent operations failed: see first errors)\n", all.errors);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_consistency: %s\n", e.what());
        return 1;
    }
}
