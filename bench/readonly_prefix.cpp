// What the read-only prefix costs a read on the primary (docs/design.md,
// "Session isolation"): one libpq connection in pipeline mode, as the daemon
// uses it, runs the same prepared primary-key SELECT one round trip at a time,
//   plain     Execute(read); Sync
//   prefixed  Execute(set_config('transaction_read_only', 'on', true)); Execute(read); Sync
//   single    as prefixed, the read in single-row mode (what the daemon sends)
// in alternating blocks, so load changes hit all three alike. Prints p50/p99
// per variant and the difference. Every answer is checked.
//
//   build/bench/bench_readonly_prefix 'host=127.0.0.1 port=... dbname=app user=app passfile=...'
//       [--reads 20000] [--rounds 5] [--rows 10000]
// (the table rgd_bench from bench/e2e.sh must exist: id 1..rows)
#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kRead = "select id, name, balance from rgd_bench where id = $1";
constexpr const char* kPrefix = "select set_config('transaction_read_only', 'on', true)";

enum class Variant { plain, prefixed, single };

struct Conn {
    PGconn* c;
    explicit Conn(const char* conninfo) : c(PQconnectdb(conninfo)) {
        if (PQstatus(c) != CONNECTION_OK) throw std::runtime_error(PQerrorMessage(c));
        for (auto [name, sql, n] : {std::tuple{"r", kRead, 1}, std::tuple{"p", kPrefix, 0}}) {
            PGresult* r = PQprepare(c, name, sql, n, nullptr);
            if (PQresultStatus(r) != PGRES_COMMAND_OK) throw std::runtime_error(PQerrorMessage(c));
            PQclear(r);
        }
        if (PQenterPipelineMode(c) != 1) throw std::runtime_error("pipeline mode");
    }
    ~Conn() { PQfinish(c); }

    // One read, one round trip; false on a wrong or failed answer.
    bool read(Variant v, int id) {
        char text[16];
        std::snprintf(text, sizeof text, "%d", id);
        const char* params[] = {text};
        if (v != Variant::plain) PQsendQueryPrepared(c, "p", 0, nullptr, nullptr, nullptr, 0);
        PQsendQueryPrepared(c, "r", 1, params, nullptr, nullptr, 0);
        PQpipelineSync(c);
        if (PQflush(c) != 0) return false;
        bool ok = false, armed = v != Variant::single;
        int commands = v == Variant::plain ? 1 : 2;
        for (;;) {
            if (!armed && commands == 1) {
                PQsetSingleRowMode(c);  // the read is at the head now (the prefix ended)
                armed = true;
            }
            PGresult* r = PQgetResult(c);
            if (r == nullptr) {
                --commands;
                continue;
            }
            const ExecStatusType st = PQresultStatus(r);
            if (st == PGRES_PIPELINE_SYNC) {
                PQclear(r);
                return ok;
            }
            if ((st == PGRES_TUPLES_OK || st == PGRES_SINGLE_TUPLE) && PQntuples(r) == 1 && PQnfields(r) == 3)
                ok = std::strcmp(PQgetvalue(r, 0, 0), text) == 0;
            else if (st == PGRES_FATAL_ERROR)
                ok = false;
            PQclear(r);
        }
    }
};

double percentile_us(std::vector<double>& v, double q) {
    const std::size_t k = std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc < 2)
            throw std::runtime_error("usage: bench_readonly_prefix CONNINFO [--reads N] [--rounds N] [--rows N]");
        int reads = 20000, rounds = 5, rows = 10000;
        for (int i = 2; i + 1 < argc; i += 2) {
            const std::string a = argv[i];
            if (a == "--reads")
                reads = std::atoi(argv[i + 1]);
            else if (a == "--rounds")
                rounds = std::atoi(argv[i + 1]);
            else if (a == "--rows")
                rows = std::atoi(argv[i + 1]);
            else
                throw std::runtime_error("unknown argument " + a);
        }
        Conn conn(argv[1]);
        std::mt19937 rng(7);
        std::uniform_int_distribution<int> pick(1, rows);
        const Variant variants[] = {Variant::plain, Variant::prefixed, Variant::single};
        std::vector<double> us[3];
        for (int round = 0; round < rounds; ++round) {
            for (int v = 0; v < 3; ++v) {
                for (int i = 0; i < reads; ++i) {
                    const auto t0 = Clock::now();
                    if (!conn.read(variants[v], pick(rng))) throw std::runtime_error("wrong answer");
                    us[v].push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
                }
            }
        }
        const char* names[] = {"plain read", "read-only prefix", "prefix + single-row"};
        std::printf("one connection, pipeline mode, one read per round trip; %d rounds x %d reads per variant\n\n",
                    rounds, reads);
        std::printf("| variant | p50 µs | p99 µs | mean µs |\n| --- | ---: | ---: | ---: |\n");
        double p50[3];
        for (int v = 0; v < 3; ++v) {
            double sum = 0;
            for (double x : us[v]) sum += x;
            p50[v] = percentile_us(us[v], 0.50);
            std::printf("| %s | %.1f | %.1f | %.1f |\n", names[v], p50[v], percentile_us(us[v], 0.99),
                        sum / static_cast<double>(us[v].size()));
        }
        std::printf("\nprefix costs %.1f µs at p50 (%.1f%%); with single-row mode %.1f µs (%.1f%%)\n", p50[1] - p50[0],
                    100 * (p50[1] - p50[0]) / p50[0], p50[2] - p50[0], 100 * (p50[2] - p50[0]) / p50[0]);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_readonly_prefix: %s\n", e.what());
        return 1;
    }
}
