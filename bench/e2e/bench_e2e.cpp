// End-to-end read latency and throughput, side by side in one run:
//   regiond    rgd_read_local through the daemon (which holds a prepared
//              statement per pooled connection to the same-host replica)
//   direct     libpq straight to the replica, prepared once per connection
//   pgbouncer  libpq to pgbouncer (transaction mode) in front of the replica,
//              simple protocol (pgbouncer 1.18 cannot keep prepared statements
//              in transaction mode)
// Each path is measured at each client count with one thread per client, each
// thread with its own connection (its own rgd_client for regiond). Paths run in
// turns, several rounds each, so a load change on this shared machine hits all
// three alike. Every answer is checked (one row, the id asked for).
//
// With --streamer-rows N, the regiond path is measured twice per round: alone,
// and while one more client fetches an N-row result through regiond in a loop
// (issue 7: other clients' p99 must stay flat while a 200k-row result
// streams); both are printed side by side.
//
// Usage (bench/e2e.sh sets everything up):
//   bench_e2e --regiond SOCKET --direct CONNINFO --pgbouncer CONNINFO
//             [--clients 1,16] [--seconds 3] [--rounds 3] [--rows 10000]
//             [--paths regiond,direct,pgbouncer] [--streamer-rows 200000]
// Prints one table and the ratios against the targets. Exit 1 on any
// failed query; targets missed are reported, never an exit status.
#include <libpq-fe.h>
#include <regiond/client.h>

#include <algorithm>
#include <atomic>
#include <chrono>
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

using Clock = std::chrono::steady_clock;

constexpr const char* kSql = "select id, name, balance from rgd_bench where id = $1";

struct Options {
    std::string regiond_socket;
    std::string direct_conninfo;
    std::string pgbouncer_conninfo;
    std::vector<int> clients{1, 16};
    double seconds = 3;
    int rounds = 3;
    int rows = 10000;
    std::vector<std::string> paths{"regiond", "direct", "pgbouncer"};  // --paths: a subset, for profiling one
    int streamer_rows = 0;  ///< > 0: also measure regiond while a client fetches this many rows in a loop
};

// One more regiond client fetching a large result in a loop (its own thread and
// rgd_client) until stopped; every answer is checked.
class Streamer {
public:
    Streamer(const std::string& socket, int rows) : rows_(rows) {
        char err[512];
        client_ = rgd_connect(socket.c_str(), err, sizeof err);
        if (client_ == nullptr) throw std::runtime_error(std::string("streamer: ") + err);
        rgd_set_timeout_ms(client_, 120000);
        sql_ =
            "select g, 'row-' || g || repeat('.', 20) as label from generate_series(1, " + std::to_string(rows) + ") g";
        thread_ = std::thread([this] { run(); });
    }
    ~Streamer() {
        stop_.store(true, std::memory_order_relaxed);
        thread_.join();
        rgd_disconnect(client_);
    }
    Streamer(const Streamer&) = delete;
    Streamer& operator=(const Streamer&) = delete;
    /// Results fetched so far (relaxed: a counter read after join or for display).
    int fetched() const { return fetched_.load(std::memory_order_relaxed); }
    const std::string& error() const { return error_; }  ///< valid after destruction began (join)

private:
    void run() {
        while (!stop_.load(std::memory_order_relaxed)) {
            rgd_result* r = rgd_read_local(client_, sql_.c_str(), 0, nullptr);
            const bool ok = rgd_ok(r) == 1 && rgd_nrows(r) == rows_;
            if (!ok) error_ = rgd_ok(r) == 1 ? "streamer: wrong row count" : std::string("streamer: ") + rgd_error(r);
            rgd_free(r);
            if (!ok) return;
            fetched_.fetch_add(1, std::memory_order_relaxed);
        }
    }
    int rows_;
    rgd_client* client_ = nullptr;
    std::string sql_;
    std::atomic<bool> stop_{false};
    std::atomic<int> fetched_{0};
    std::string error_;
    std::thread thread_;
};

// One client's connection on one path; query(id) returns false on a wrong or
// failed answer (message in error()).
class Session {
public:
    virtual ~Session() = default;
    virtual bool query(int id) = 0;
    const std::string& error() const { return error_; }

protected:
    std::string error_;
};

class RegiondSession final : public Session {
public:
    explicit RegiondSession(const std::string& socket) {
        char err[512];
        client_ = rgd_connect(socket.c_str(), err, sizeof err);
        if (client_ == nullptr) throw std::runtime_error(std::string("regiond: ") + err);
    }
    ~RegiondSession() override { rgd_disconnect(client_); }
    bool query(int id) override {
        char text[16];
        std::snprintf(text, sizeof text, "%d", id);
        const char* params[] = {text};
        rgd_result* r = rgd_read_local(client_, kSql, 1, params);
        const bool ok = rgd_ok(r) == 1 && rgd_nrows(r) == 1 && std::strcmp(rgd_value(r, 0, 0), text) == 0;
        if (!ok) error_ = rgd_ok(r) == 1 ? "wrong answer" : rgd_error(r);
        rgd_free(r);
        return ok;
    }

private:
    rgd_client* client_ = nullptr;
};

using PgConnPtr = std::unique_ptr<PGconn, decltype(&PQfinish)>;
using PgResultPtr = std::unique_ptr<PGresult, decltype(&PQclear)>;

PgConnPtr pg_connect(const std::string& conninfo, const char* what) {
    PgConnPtr conn(PQconnectdb(conninfo.c_str()), &PQfinish);
    if (PQstatus(conn.get()) != CONNECTION_OK)
        throw std::runtime_error(std::string(what) + ": " + PQerrorMessage(conn.get()));
    return conn;
}

bool check(PGresult* r, const char* id, std::string& error, PGconn* conn) {
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        error = PQerrorMessage(conn);
        return false;
    }
    if (PQntuples(r) != 1 || std::strcmp(PQgetvalue(r, 0, 0), id) != 0) {
        error = "wrong answer";
        return false;
    }
    return true;
}

class DirectSession final : public Session {
public:
    explicit DirectSession(const std::string& conninfo) : conn_(pg_connect(conninfo, "direct")) {
        PgResultPtr r(PQprepare(conn_.get(), "q", kSql, 1, nullptr), &PQclear);
        if (PQresultStatus(r.get()) != PGRES_COMMAND_OK)
            throw std::runtime_error(std::string("direct: prepare: ") + PQerrorMessage(conn_.get()));
    }
    bool query(int id) override {
        char text[16];
        std::snprintf(text, sizeof text, "%d", id);
        const char* params[] = {text};
        PgResultPtr r(PQexecPrepared(conn_.get(), "q", 1, params, nullptr, nullptr, 0), &PQclear);
        return check(r.get(), text, error_, conn_.get());
    }

private:
    PgConnPtr conn_;
};

class PgbouncerSession final : public Session {
public:
    explicit PgbouncerSession(const std::string& conninfo) : conn_(pg_connect(conninfo, "pgbouncer")) {}
    bool query(int id) override {
        // Simple protocol: the id (an int this program generated) is part of the
        // text, as for any pgbouncer transaction-mode user without prepared
        // statements. Never do this with untrusted input.
        char text[16], sql[96];
        std::snprintf(text, sizeof text, "%d", id);
        std::snprintf(sql, sizeof sql, "select id, name, balance from rgd_bench where id = %d", id);
        PgResultPtr r(PQexec(conn_.get(), sql), &PQclear);
        return check(r.get(), text, error_, conn_.get());
    }

private:
    PgConnPtr conn_;
};

enum class Path { regiond, direct, pgbouncer };
const char* name_of(Path p) {
    switch (p) {
        case Path::regiond: return "regiond";
        case Path::direct: return "direct";
        case Path::pgbouncer: return "pgbouncer";
    }
    return "?";
}

std::unique_ptr<Session> open_session(Path p, const Options& o) {
    switch (p) {
        case Path::regiond: return std::make_unique<RegiondSession>(o.regiond_socket);
        case Path::direct: return std::make_unique<DirectSession>(o.direct_conninfo);
        case Path::pgbouncer: return std::make_unique<PgbouncerSession>(o.pgbouncer_conninfo);
    }
    return nullptr;
}

struct Sample {
    std::vector<std::uint32_t> latencies_ns;  // every call of every client
    double seconds = 0;                       // measured wall time
    std::string error;                        // first failure, "" if none
};

// One round: `clients` threads, each with its own session, run for o.seconds
// after a short warm-up (connections opened, statements prepared, caches hot).
Sample run_round(Path path, int clients, const Options& o) {
    std::vector<std::unique_ptr<Session>> sessions;
    for (int i = 0; i < clients; ++i) sessions.push_back(open_session(path, o));
    std::atomic<int> phase{0};  // 0 warm-up, 1 measure, 2 stop (relaxed: a flag, no data published through it)
    std::vector<std::vector<std::uint32_t>> per_thread(static_cast<std::size_t>(clients));
    std::vector<std::string> errors(static_cast<std::size_t>(clients));
    std::vector<std::thread> threads;
    for (int t = 0; t < clients; ++t) {
        threads.emplace_back([&, t] {
            std::mt19937 rng(static_cast<unsigned>(t * 7919 + 1));
            std::uniform_int_distribution<int> pick(1, o.rows);
            auto& mine = per_thread[static_cast<std::size_t>(t)];
            mine.reserve(1 << 18);
            for (;;) {
                const int ph = phase.load(std::memory_order_relaxed);
                if (ph == 2) break;
                const auto t0 = Clock::now();
                if (!sessions[static_cast<std::size_t>(t)]->query(pick(rng))) {
                    errors[static_cast<std::size_t>(t)] = sessions[static_cast<std::size_t>(t)]->error();
                    break;
                }
                const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
                if (ph == 1) mine.push_back(static_cast<std::uint32_t>(std::min<long long>(ns, UINT32_MAX)));
            }
        });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // warm-up: a fixed span by design
    phase.store(1, std::memory_order_relaxed);
    const auto start = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));  // the measured span
    phase.store(2, std::memory_order_relaxed);
    const auto stop = Clock::now();
    for (auto& t : threads) t.join();
    Sample s;
    s.seconds = std::chrono::duration<double>(stop - start).count();
    for (auto& v : per_thread) s.latencies_ns.insert(s.latencies_ns.end(), v.begin(), v.end());
    for (auto& e : errors)
        if (!e.empty() && s.error.empty()) s.error = e;
    return s;
}

struct Summary {
    double p50_us = 0, p99_us = 0, per_second = 0;
    std::size_t calls = 0;
};

double percentile_us(std::vector<std::uint32_t>& v, double q) {
    if (v.empty()) return 0;
    const std::size_t k = std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k] / 1000.0;
}

std::vector<std::string> split_commas(const std::string& s) {
    std::vector<std::string> out;
    for (std::size_t at = 0;;) {
        const auto comma = s.find(',', at);
        out.push_back(s.substr(at, comma == std::string::npos ? std::string::npos : comma - at));
        if (comma == std::string::npos) return out;
        at = comma + 1;
    }
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
            return argv[++i];
        };
        if (a == "--regiond")
            o.regiond_socket = next();
        else if (a == "--direct")
            o.direct_conninfo = next();
        else if (a == "--pgbouncer")
            o.pgbouncer_conninfo = next();
        else if (a == "--clients") {
            o.clients.clear();
            for (const std::string& n : split_commas(next())) o.clients.push_back(std::stoi(n));
        } else if (a == "--seconds")
            o.seconds = std::stod(next());
        else if (a == "--rounds")
            o.rounds = std::stoi(next());
        else if (a == "--rows")
            o.rows = std::stoi(next());
        else if (a == "--paths")
            o.paths = split_commas(next());
        else if (a == "--streamer-rows")
            o.streamer_rows = std::stoi(next());
        else
            throw std::runtime_error("unknown argument " + a);
    }
    if (o.regiond_socket.empty() || o.direct_conninfo.empty() || o.pgbouncer_conninfo.empty())
        throw std::runtime_error("--regiond, --direct and --pgbouncer are required");
    return o;
}

const char* verdict(bool met) {
    return met ? "met" : "MISSED";
}

Summary summarize(Sample& m) {
    Summary sum;
    sum.calls = m.latencies_ns.size();
    sum.per_second = static_cast<double>(sum.calls) / m.seconds;
    sum.p50_us = percentile_us(m.latencies_ns, 0.50);
    sum.p99_us = percentile_us(m.latencies_ns, 0.99);
    return sum;
}

// The regiond path alone and beside a client streaming a large result, the
// two alternating round by round so load changes hit both alike.
int streamer_table(const Options& o) {
    std::printf(
        "primary-key SELECT through regiond (read_local), alone and while one more client fetches a "
        "%d-row result in a loop; %d rounds x %.1f s\n\n",
        o.streamer_rows, o.rounds, o.seconds);
    std::printf(
        "| clients | p50 µs alone | p99 µs alone | p50 µs streaming | p99 µs streaming | p99 ratio | "
        "queries/s alone | queries/s streaming | large results fetched |\n");
    std::printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (int clients : o.clients) {
        Sample alone, streaming;
        int fetched = 0;
        for (int round = 0; round < o.rounds; ++round) {
            Sample a = run_round(Path::regiond, clients, o);
            Sample b;
            {
                Streamer streamer(o.regiond_socket, o.streamer_rows);
                b = run_round(Path::regiond, clients, o);
                fetched += streamer.fetched();
                if (!streamer.error().empty()) b.error = streamer.error();
            }
            for (const Sample* x : {&a, &b}) {
                if (!x->error.empty()) {
                    std::fprintf(stderr, "bench_e2e: %d clients: %s\n", clients, x->error.c_str());
                    return 1;
                }
            }
            alone.latencies_ns.insert(alone.latencies_ns.end(), a.latencies_ns.begin(), a.latencies_ns.end());
            alone.seconds += a.seconds;
            streaming.latencies_ns.insert(streaming.latencies_ns.end(), b.latencies_ns.begin(), b.latencies_ns.end());
            streaming.seconds += b.seconds;
        }
        const Summary sa = summarize(alone), sb = summarize(streaming);
        std::printf("| %d | %.1f | %.1f | %.1f | %.1f | %.2f | %.0f | %.0f | %d |\n", clients, sa.p50_us, sa.p99_us,
                    sb.p50_us, sb.p99_us, sb.p99_us / sa.p99_us, sa.per_second, sb.per_second, fetched);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Options o = parse(argc, argv);
        std::vector<Path> paths;
        for (Path p : {Path::regiond, Path::direct, Path::pgbouncer})
            if (std::find(o.paths.begin(), o.paths.end(), name_of(p)) != o.paths.end()) paths.push_back(p);
        const bool all_paths = paths.size() == 3;
        std::map<std::pair<int, Path>, Summary> table;
        for (int clients : o.clients) {
            std::map<Path, Sample> merged;
            for (int round = 0; round < o.rounds; ++round) {
                for (Path p : paths) {
                    Sample s = run_round(p, clients, o);
                    if (!s.error.empty()) {
                        std::fprintf(stderr, "bench_e2e: %s, %d clients: %s\n", name_of(p), clients, s.error.c_str());
                        return 1;
                    }
                    Sample& m = merged[p];
                    m.latencies_ns.insert(m.latencies_ns.end(), s.latencies_ns.begin(), s.latencies_ns.end());
                    m.seconds += s.seconds;
                }
            }
            for (Path p : paths) {
                Sample& m = merged[p];
                Summary& sum = table[{clients, p}];
                sum.calls = m.latencies_ns.size();
                sum.per_second = static_cast<double>(sum.calls) / m.seconds;
                sum.p50_us = percentile_us(m.latencies_ns, 0.50);
                sum.p99_us = percentile_us(m.latencies_ns, 0.99);
            }
        }

        if (o.streamer_rows > 0) return streamer_table(o);
        std::printf("primary-key SELECT on the same-host replica; %d rounds x %.1f s per path and client count\n\n",
                    o.rounds, o.seconds);
        std::printf("| clients | path | p50 µs | p99 µs | queries/s | calls |\n");
        std::printf("| ---: | --- | ---: | ---: | ---: | ---: |\n");
        for (int clients : o.clients)
            for (Path p : paths) {
                const Summary& s = table[{clients, p}];
                std::printf("| %d | %s | %.1f | %.1f | %.0f | %zu |\n", clients, name_of(p), s.p50_us, s.p99_us,
                            s.per_second, s.calls);
            }
        if (!all_paths) return 0;  // ratios need all three
        std::printf("\n| ratio | value | target | verdict |\n| --- | ---: | ---: | --- |\n");
        for (int clients : o.clients) {
            const Summary& r = table[{clients, Path::regiond}];
            const Summary& d = table[{clients, Path::direct}];
            const Summary& b = table[{clients, Path::pgbouncer}];
            const double p50 = r.p50_us / d.p50_us;
            const double vs_direct = r.per_second / d.per_second;
            const double vs_bouncer = r.per_second / b.per_second;
            if (clients == 1) {
                std::printf("| p50 regiond/direct, 1 client | %.2f | ≤ 1.10 | %s |\n", p50, verdict(p50 <= 1.10));
            } else {
                std::printf("| p50 regiond/direct, %d clients | %.2f | — | |\n", clients, p50);
            }
            if (clients == 16) {
                std::printf("| throughput regiond/direct, 16 clients | %.2f | ≥ 1.0 | %s |\n", vs_direct,
                            verdict(vs_direct >= 1.0));
                std::printf("| throughput regiond/pgbouncer, 16 clients | %.2f | ≥ 1.5 | %s |\n", vs_bouncer,
                            verdict(vs_bouncer >= 1.5));
            } else {
                std::printf("| throughput regiond/direct, %d clients | %.2f | — | |\n", clients, vs_direct);
                std::printf("| throughput regiond/pgbouncer, %d clients | %.2f | — | |\n", clients, vs_bouncer);
            }
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_e2e: %s\n", e.what());
        return 1;
    }
}
