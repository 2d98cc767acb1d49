// End-to-end read latency, throughput and CPU cost, side by side in one run:
//   regiond    rgd_read_local through the daemon (which holds a prepared
//              statement per pooled connection to the same-host replica)
//   direct     libpq straight to the replica, prepared once per connection
//   pgbouncer  libpq to pgbouncer (transaction mode) in front of the replica,
//              simple protocol (pgbouncer 1.18 cannot keep prepared statements
//              in transaction mode)
// Each path is measured at each client count with one thread per client, each
// thread with its own connection (its own rgd_client for regiond). Paths run in
// turns, several rounds each, so a load change on this shared machine hits all
// three alike. Every answer is checked (the row count, and the id asked for).
//
// Parts of a run (bench/e2e.sh chooses them):
//   the curve     a primary-key SELECT at each of --clients (skip: --no-curve)
//   --result-rows a query returning N rows (`where id <= N`) for each N, at
//                 each of --result-clients: rows/s as well as requests/s
//   --idle        --idle-clients regiond clients (in --idle-procs forked
//                 processes) connected and sending nothing for --idle-seconds:
//                 the CPU of the daemon and of those processes as % of one core
//                 (target < 1 %), then the first request after that idle (one
//                 client, then --idle-probes more idle clients one at a time)
//                 against the p99 of a 1-client regiond run made right after
//   --streamer-rows N  (alone) the regiond path alone and while one more client
//                 fetches an N-row result through regiond in a loop (issue 7)
//
// CPU per request: over each measured span, the user and system time of
//   client     this process (getrusage; the paths run in turns, so it is the
//              client threads of the path being measured, plus a /proc scan)
//   daemon     --daemon-pid (/proc/PID/stat, all its threads)
//   pgbouncer  --pgbouncer-pid
//   postgres   every process whose parent is --pg-postmaster-pid (backends and
//              the replica's own auxiliary processes, which idle here)
// divided by the requests measured in that span. /proc counts in clock ticks
// (10 ms), so short spans with few requests are coarse.
//
// Usage (bench/e2e.sh sets everything up):
//   bench_e2e --regiond SOCKET --direct CONNINFO --pgbouncer CONNINFO
//             [--clients 1,16] [--seconds 3] [--rounds 3] [--rows 10000]
//             [--paths regiond,direct,pgbouncer] [--no-curve]
//             [--result-rows 1,10,100] [--result-clients 1,16]
//             [--result-seconds S] [--result-rounds N]
//             [--idle] [--idle-seconds 10] [--idle-clients 200] [--idle-procs 4]
//             [--idle-probes 8] [--idle-csv FILE]
//             [--daemon-pid PID] [--pg-postmaster-pid PID] [--pgbouncer-pid PID]
//             [--csv FILE] [--streamer-rows 200000]
// Prints tables and the ratios against the targets. Exit 1 on any
// failed query; targets missed are reported, never an exit status.
#include <dirent.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <regiond/client.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kPkSql = "select id, name, balance from rgd_bench where id = $1";
constexpr const char* kRangeSql = "select id, name, balance from rgd_bench where id <= $1";

struct Options {
    std::string regiond_socket;
    std::string direct_conninfo;
    std::string pgbouncer_conninfo;
    std::vector<int> clients{1, 16};
    double seconds = 3;
    int rounds = 3;
    int rows = 10000;                                                  ///< rows in rgd_bench (ids 1..rows)
    std::vector<std::string> paths{"regiond", "direct", "pgbouncer"};  // --paths: a subset, for profiling one
    bool curve = true;
    std::vector<int> result_rows;  ///< the result-size sweep; empty: none
    std::vector<int> result_clients{1, 16};
    double result_seconds = 0;  ///< 0: --seconds
    int result_rounds = 0;      ///< 0: --rounds
    bool idle = false;
    double idle_seconds = 10;
    int idle_clients = 200;
    int idle_procs = 4;
    int idle_probes = 8;
    std::string idle_csv;
    pid_t daemon_pid = 0, postmaster_pid = 0, pgbouncer_pid = 0;
    std::string csv;
    int streamer_rows = 0;  ///< > 0: also measure regiond while a client fetches this many rows in a loop
};

// ---------------------------------------------------------------- CPU time

struct Cpu {
    double user_us = 0, sys_us = 0;
    double total() const { return user_us + sys_us; }
    Cpu& operator+=(const Cpu& o) {
        user_us += o.user_us;
        sys_us += o.sys_us;
        return *this;
    }
    Cpu operator-(const Cpu& o) const { return {user_us - o.user_us, sys_us - o.sys_us}; }
};

// utime and stime of a process (all its threads) and its parent, from
// /proc/PID/stat; false if it is gone.
bool read_proc_stat(pid_t pid, Cpu& cpu, pid_t* ppid = nullptr) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
    std::FILE* f = std::fopen(path, "re");
    if (f == nullptr) return false;
    char buf[1024];
    const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = '\0';
    const char* p = std::strrchr(buf, ')');  // the command name may hold spaces and parentheses
    if (p == nullptr) return false;
    // Fields after the name: 3 state, 4 ppid, ..., 14 utime, 15 stime.
    std::istringstream in(p + 1);
    std::string state;
    long long parent = 0, skip = 0, utime = 0, stime = 0;
    in >> state >> parent;
    for (int field = 5; field <= 13; ++field) in >> skip;
    in >> utime >> stime;
    if (!in) return false;
    static const double us_per_tick = 1e6 / static_cast<double>(sysconf(_SC_CLK_TCK));
    cpu.user_us = static_cast<double>(utime) * us_per_tick;
    cpu.sys_us = static_cast<double>(stime) * us_per_tick;
    if (ppid != nullptr) *ppid = static_cast<pid_t>(parent);
    return true;
}

Cpu proc_cpu(pid_t pid) {
    Cpu c;
    if (pid > 0) read_proc_stat(pid, c);
    return c;
}

Cpu self_cpu() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return {static_cast<double>(u.ru_utime.tv_sec) * 1e6 + static_cast<double>(u.ru_utime.tv_usec),
            static_cast<double>(u.ru_stime.tv_sec) * 1e6 + static_cast<double>(u.ru_stime.tv_usec)};
}

std::map<pid_t, Cpu> children_of(pid_t parent) {
    std::map<pid_t, Cpu> out;
    if (parent <= 0) return out;
    DIR* d = opendir("/proc");
    if (d == nullptr) return out;
    while (const dirent* e = readdir(d)) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
        const auto pid = static_cast<pid_t>(std::atoi(e->d_name));
        Cpu c;
        pid_t pp = 0;
        if (read_proc_stat(pid, c, &pp) && pp == parent) out[pid] = c;
    }
    closedir(d);
    return out;
}

struct Probes {
    pid_t daemon = 0, postmaster = 0, pgbouncer = 0;
};

struct CpuSnapshot {
    Cpu self, daemon, pgbouncer;
    std::map<pid_t, Cpu> pg;
};

CpuSnapshot snapshot(const Probes& p) {
    CpuSnapshot s;
    s.pg = children_of(p.postmaster);
    s.daemon = proc_cpu(p.daemon);
    s.pgbouncer = proc_cpu(p.pgbouncer);
    s.self = self_cpu();
    return s;
}

// CPU used between two snapshots, by source.
struct CpuUse {
    Cpu client, daemon, pg, pgbouncer;
    CpuUse& operator+=(const CpuUse& o) {
        client += o.client;
        daemon += o.daemon;
        pg += o.pg;
        pgbouncer += o.pgbouncer;
        return *this;
    }
};

CpuUse between(const CpuSnapshot& a, const CpuSnapshot& b) {
    CpuUse u;
    u.client = b.self - a.self;
    u.daemon = b.daemon - a.daemon;
    u.pgbouncer = b.pgbouncer - a.pgbouncer;
    for (const auto& [pid, cpu] : b.pg) {  // a process that started in between counts whole; one that ended is lost
        const auto was = a.pg.find(pid);
        u.pg += was == a.pg.end() ? cpu : cpu - was->second;
    }
    return u;
}

// ---------------------------------------------------------------- workloads

// What each request asks: a primary-key lookup of a random id in 1..table_rows
// (one row, that id), or the first result_rows rows (`where id <= N`).
struct Workload {
    bool range = false;
    int table_rows = 10000;
    int result_rows = 1;
    int rows_per_request() const { return range ? result_rows : 1; }
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

// The check every path applies: `rows` rows, and for a lookup the id asked for.
bool answer_ok(bool range, int arg, int rows, const char* first_id, std::string& error) {
    char text[16];
    std::snprintf(text, sizeof text, "%d", arg);
    if (range ? rows == arg : rows == 1 && first_id != nullptr && std::strcmp(first_id, text) == 0) return true;
    error = "wrong answer: " + std::to_string(rows) + " rows for " + text;
    return false;
}

// One client's connection on one path; query(arg) (an id, or a row count)
// returns false on a wrong or failed answer (message in error()).
class Session {
public:
    explicit Session(bool range) : range_(range) {}
    virtual ~Session() = default;
    virtual bool query(int arg) = 0;
    const std::string& error() const { return error_; }

protected:
    bool range_;
    std::string error_;
};

class RegiondSession final : public Session {
public:
    RegiondSession(const std::string& socket, bool range) : Session(range) {
        char err[512];
        client_ = rgd_connect(socket.c_str(), err, sizeof err);
        if (client_ == nullptr) throw std::runtime_error(std::string("regiond: ") + err);
        rgd_set_timeout_ms(client_, 120000);  // a 100 000-row result among 16 clients on 2 cores
    }
    ~RegiondSession() override { rgd_disconnect(client_); }
    bool query(int arg) override {
        char text[16];
        std::snprintf(text, sizeof text, "%d", arg);
        const char* params[] = {text};
        rgd_result* r = rgd_read_local(client_, range_ ? kRangeSql : kPkSql, 1, params);
        bool ok = rgd_ok(r) == 1;
        if (ok)
            ok = answer_ok(range_, arg, rgd_nrows(r), rgd_value(r, 0, 0), error_);
        else
            error_ = rgd_error(r);
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

bool check(PGresult* r, bool range, int arg, std::string& error, PGconn* conn) {
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        error = PQerrorMessage(conn);
        return false;
    }
    const int rows = PQntuples(r);
    return answer_ok(range, arg, rows, rows > 0 ? PQgetvalue(r, 0, 0) : nullptr, error);
}

class DirectSession final : public Session {
public:
    DirectSession(const std::string& conninfo, bool range) : Session(range), conn_(pg_connect(conninfo, "direct")) {
        PgResultPtr r(PQprepare(conn_.get(), "q", range ? kRangeSql : kPkSql, 1, nullptr), &PQclear);
        if (PQresultStatus(r.get()) != PGRES_COMMAND_OK)
            throw std::runtime_error(std::string("direct: prepare: ") + PQerrorMessage(conn_.get()));
    }
    bool query(int arg) override {
        char text[16];
        std::snprintf(text, sizeof text, "%d", arg);
        const char* params[] = {text};
        PgResultPtr r(PQexecPrepared(conn_.get(), "q", 1, params, nullptr, nullptr, 0), &PQclear);
        return check(r.get(), range_, arg, error_, conn_.get());
    }

private:
    PgConnPtr conn_;
};

class PgbouncerSession final : public Session {
public:
    PgbouncerSession(const std::string& conninfo, bool range)
        : Session(range), conn_(pg_connect(conninfo, "pgbouncer")) {}
    bool query(int arg) override {
        // Simple protocol: the argument (an int this program generated) is part
        // of the text, as for any pgbouncer transaction-mode user without
        // prepared statements. Never do this with untrusted input.
        char sql[96];
        std::snprintf(sql, sizeof sql, "select id, name, balance from rgd_bench where id %s %d", range_ ? "<=" : "=",
                      arg);
        PgResultPtr r(PQexec(conn_.get(), sql), &PQclear);
        return check(r.get(), range_, arg, error_, conn_.get());
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

std::unique_ptr<Session> open_session(Path p, const Options& o, bool range) {
    switch (p) {
        case Path::regiond: return std::make_unique<RegiondSession>(o.regiond_socket, range);
        case Path::direct: return std::make_unique<DirectSession>(o.direct_conninfo, range);
        case Path::pgbouncer: return std::make_unique<PgbouncerSession>(o.pgbouncer_conninfo, range);
    }
    return nullptr;
}

struct Sample {
    std::vector<std::uint32_t> latencies_ns;  // every call of every client
    double seconds = 0;                       // measured wall time
    CpuUse cpu;                               // over the measured wall time
    std::string error;                        // first failure, "" if none

    void add(const Sample& s) {
        latencies_ns.insert(latencies_ns.end(), s.latencies_ns.begin(), s.latencies_ns.end());
        seconds += s.seconds;
        cpu += s.cpu;
    }
};

// One round: `clients` threads, each with its own session, run for `seconds`
// after a warm-up (connections opened, statements prepared, caches hot): at
// least 300 ms and until every client has had an answer, so that long calls
// (a 100 000-row result among 16 clients) are out of step before measuring.
// A call counts if it ended inside the measured span (throughput is the calls
// ended per second of it); CPU is sampled at the span's two ends.
Sample run_round(Path path, int clients, const Workload& w, double seconds, const Options& o, const Probes& probes) {
    std::vector<std::unique_ptr<Session>> sessions;
    for (int i = 0; i < clients; ++i) sessions.push_back(open_session(path, o, w.range));
    std::atomic<int> phase{0};     // 0 warm-up, 1 measure, 2 stop (relaxed: a flag, no data published through it)
    std::atomic<int> answered{0};  // clients that had a first answer (or failed)
    std::vector<std::vector<std::uint32_t>> per_thread(static_cast<std::size_t>(clients));
    std::vector<std::string> errors(static_cast<std::size_t>(clients));
    std::vector<std::thread> threads;
    for (int t = 0; t < clients; ++t) {
        threads.emplace_back([&, t] {
            std::mt19937 rng(static_cast<unsigned>(t * 7919 + 1));
            std::uniform_int_distribution<int> pick(1, w.table_rows);
            auto& mine = per_thread[static_cast<std::size_t>(t)];
            mine.reserve(w.range ? 1 << 12 : 1 << 18);
            bool first = true;
            while (phase.load(std::memory_order_relaxed) != 2) {
                const auto t0 = Clock::now();
                const bool ok = sessions[static_cast<std::size_t>(t)]->query(w.range ? w.result_rows : pick(rng));
                const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
                if (first) answered.fetch_add(1, std::memory_order_relaxed);
                first = false;
                if (!ok) {
                    errors[static_cast<std::size_t>(t)] = sessions[static_cast<std::size_t>(t)]->error();
                    break;
                }
                if (phase.load(std::memory_order_relaxed) == 1)
                    mine.push_back(static_cast<std::uint32_t>(std::min<long long>(ns, UINT32_MAX)));
            }
        });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // warm-up: at least a fixed span by design
    while (answered.load(std::memory_order_relaxed) < clients)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const CpuSnapshot before = snapshot(probes);
    phase.store(1, std::memory_order_relaxed);
    const auto start = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));  // the measured span
    phase.store(2, std::memory_order_relaxed);
    const auto stop = Clock::now();
    const CpuSnapshot after = snapshot(probes);
    for (auto& t : threads) t.join();
    Sample s;
    s.seconds = std::chrono::duration<double>(stop - start).count();
    s.cpu = between(before, after);
    for (auto& v : per_thread) s.latencies_ns.insert(s.latencies_ns.end(), v.begin(), v.end());
    for (auto& e : errors)
        if (!e.empty() && s.error.empty()) s.error = e;
    return s;
}

double percentile_us(std::vector<std::uint32_t>& v, double q) {
    if (v.empty()) return 0;
    const std::size_t k = std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k] / 1000.0;
}

struct Summary {
    double p50_us = 0, p99_us = 0, per_second = 0, seconds = 0;
    std::size_t calls = 0;
    CpuUse cpu_per_call;  // µs per request
};

Cpu per_call(const Cpu& c, std::size_t calls) {
    const double n = calls == 0 ? 1 : static_cast<double>(calls);
    return {c.user_us / n, c.sys_us / n};
}

Summary summarize(Sample& m) {
    Summary sum;
    sum.calls = m.latencies_ns.size();
    sum.seconds = m.seconds;
    sum.per_second = static_cast<double>(sum.calls) / m.seconds;
    sum.p50_us = percentile_us(m.latencies_ns, 0.50);
    sum.p99_us = percentile_us(m.latencies_ns, 0.99);
    sum.cpu_per_call.client = per_call(m.cpu.client, sum.calls);
    sum.cpu_per_call.daemon = per_call(m.cpu.daemon, sum.calls);
    sum.cpu_per_call.pg = per_call(m.cpu.pg, sum.calls);
    sum.cpu_per_call.pgbouncer = per_call(m.cpu.pgbouncer, sum.calls);
    return sum;
}

// The CPU a request costs on its own path: client + postgres, plus the daemon
// for regiond and pgbouncer for pgbouncer.
double path_total_us(Path p, const Summary& s) {
    double t = s.cpu_per_call.client.total() + s.cpu_per_call.pg.total();
    if (p == Path::regiond) t += s.cpu_per_call.daemon.total();
    if (p == Path::pgbouncer) t += s.cpu_per_call.pgbouncer.total();
    return t;
}

// ---------------------------------------------------------------- output

std::string cpu_cell(const Cpu& c, bool measured = true) {
    if (!measured) return "—";
    char b[64];
    std::snprintf(b, sizeof b, "%.1f (%.1fu %.1fs)", c.total(), c.user_us, c.sys_us);
    return b;
}

struct Point {
    std::string kind;  // "pk" (the curve) or "rows" (the result-size sweep)
    Path path;
    int clients;
    int rows;  // rows per request
    Summary s;
};

void print_points(const std::vector<Point>& points, const Probes& probes, bool rows_column) {
    std::printf(
        "| clients |%s path | p50 µs | p99 µs | requests/s |%s calls | CPU µs/req: client | daemon | pgbouncer | "
        "postgres | path total |\n",
        rows_column ? " rows |" : "", rows_column ? " rows/s |" : "");
    std::printf("| ---: |%s --- | ---: | ---: | ---: |%s ---: | ---: | ---: | ---: | ---: | ---: |\n",
                rows_column ? " ---: |" : "", rows_column ? " ---: |" : "");
    for (const Point& pt : points) {
        const Summary& s = pt.s;
        char rows_cell[32] = "", rate_cell[32] = "";
        if (rows_column) {
            std::snprintf(rows_cell, sizeof rows_cell, " %d |", pt.rows);
            std::snprintf(rate_cell, sizeof rate_cell, " %.0f |", s.per_second * pt.rows);
        }
        std::printf("| %d |%s %s | %.1f | %.1f | %.0f |%s %zu | %s | %s | %s | %s | %.1f |\n", pt.clients, rows_cell,
                    name_of(pt.path), s.p50_us, s.p99_us, s.per_second, rate_cell, s.calls,
                    cpu_cell(s.cpu_per_call.client).c_str(),
                    cpu_cell(s.cpu_per_call.daemon, pt.path == Path::regiond && probes.daemon > 0).c_str(),
                    cpu_cell(s.cpu_per_call.pgbouncer, pt.path == Path::pgbouncer && probes.pgbouncer > 0).c_str(),
                    cpu_cell(s.cpu_per_call.pg, probes.postmaster > 0).c_str(), path_total_us(pt.path, s));
    }
}

void write_csv(const std::string& file, const std::vector<Point>& points) {
    std::ofstream out(file);
    if (!out) throw std::runtime_error("cannot write " + file);
    out << "kind,path,clients,rows,seconds,calls,req_per_s,rows_per_s,p50_us,p99_us,"
           "client_user_us,client_sys_us,daemon_user_us,daemon_sys_us,pg_user_us,pg_sys_us,"
           "pgbouncer_user_us,pgbouncer_sys_us,path_total_us\n";
    char line[512];
    for (const Point& pt : points) {
        const Summary& s = pt.s;
        const CpuUse& c = s.cpu_per_call;
        std::snprintf(line, sizeof line,
                      "%s,%s,%d,%d,%.2f,%zu,%.1f,%.1f,%.1f,%.1f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f\n",
                      pt.kind.c_str(), name_of(pt.path), pt.clients, pt.rows, s.seconds, s.calls, s.per_second,
                      s.per_second * pt.rows, s.p50_us, s.p99_us, c.client.user_us, c.client.sys_us, c.daemon.user_us,
                      c.daemon.sys_us, c.pg.user_us, c.pg.sys_us, c.pgbouncer.user_us, c.pgbouncer.sys_us,
                      path_total_us(pt.path, s));
        out << line;
    }
    if (!out) throw std::runtime_error("cannot write " + file);
}

// "met", or "MISSED by N %" of the target.
std::string verdict(double value, double target, bool at_least) {
    const bool met = at_least ? value >= target : value <= target;
    if (met) return "met";
    char b[48];
    std::snprintf(b, sizeof b, "MISSED by %.0f %%", 100.0 * std::fabs(value - target) / target);
    return b;
}

void print_ratios(const std::vector<Point>& points, const std::vector<int>& clients) {
    auto find = [&](int c, Path p) -> const Summary* {
        for (const Point& pt : points)
            if (pt.clients == c && pt.path == p) return &pt.s;
        return nullptr;
    };
    std::printf("\n| ratio | value | target | verdict |\n| --- | ---: | ---: | --- |\n");
    auto row = [](const std::string& what, double value, const char* target_text, double target, bool at_least) {
        std::printf("| %s | %.2f | %s | %s |\n", what.c_str(), value, target_text,
                    verdict(value, target, at_least).c_str());
    };
    for (int c : clients) {
        const Summary* r = find(c, Path::regiond);
        const Summary* d = find(c, Path::direct);
        const Summary* b = find(c, Path::pgbouncer);
        if (r == nullptr || d == nullptr || b == nullptr) continue;
        const std::string at = std::to_string(c) + (c == 1 ? " client" : " clients");
        if (c == 1) {
            row("p50 regiond/direct, " + at, r->p50_us / d->p50_us, "≤ 1.10", 1.10, false);
            row("p99 regiond/direct, " + at, r->p99_us / d->p99_us, "≤ 1.5", 1.5, false);
        } else {
            std::printf("| p50 regiond/direct, %s | %.2f | — | |\n", at.c_str(), r->p50_us / d->p50_us);
            std::printf("| p99 regiond/direct, %s | %.2f | — | |\n", at.c_str(), r->p99_us / d->p99_us);
        }
        const double vs_direct = r->per_second / d->per_second;
        row("throughput regiond/direct, " + at, vs_direct, "≥ 0.8", 0.8, true);
        if (c == 16) row("throughput regiond/direct, " + at + " (aim)", vs_direct, "≥ 1.0", 1.0, true);
        row("throughput regiond/pgbouncer, " + at, r->per_second / b->per_second, "≥ 1.5", 1.5, true);
    }
}

// ---------------------------------------------------------------- measurements

std::vector<Path> chosen_paths(const Options& o) {
    std::vector<Path> paths;
    for (Path p : {Path::regiond, Path::direct, Path::pgbouncer})
        if (std::find(o.paths.begin(), o.paths.end(), name_of(p)) != o.paths.end()) paths.push_back(p);
    return paths;
}

// Each path at each client count, the paths in turns within each round.
// Throws on a failed query.
std::vector<Point> measure(const std::string& kind, const std::vector<int>& clients_list, const Workload& w,
                           double seconds, int rounds, const Options& o, const Probes& probes) {
    const std::vector<Path> paths = chosen_paths(o);
    std::vector<Point> points;
    for (int clients : clients_list) {
        std::map<Path, Sample> merged;
        for (int round = 0; round < rounds; ++round)
            for (Path p : paths) {
                Sample s = run_round(p, clients, w, seconds, o, probes);
                if (!s.error.empty())
                    throw std::runtime_error(std::string(name_of(p)) + ", " + std::to_string(clients) + " clients, " +
                                             std::to_string(w.rows_per_request()) + " rows: " + s.error);
                merged[p].add(s);
            }
        for (Path p : paths) points.push_back({kind, p, clients, w.rows_per_request(), summarize(merged[p])});
    }
    return points;
}

// The regiond path alone and beside a client streaming a large result, the
// two alternating round by round so load changes hit both alike.
int streamer_table(const Options& o, const Probes& probes) {
    std::printf(
        "primary-key SELECT through regiond (read_local), alone and while one more client fetches a "
        "%d-row result in a loop; %d rounds x %.1f s\n\n",
        o.streamer_rows, o.rounds, o.seconds);
    std::printf(
        "| clients | p50 µs alone | p99 µs alone | p50 µs streaming | p99 µs streaming | p99 ratio | "
        "queries/s alone | queries/s streaming | large results fetched |\n");
    std::printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    const Workload w{false, o.rows, 1};
    for (int clients : o.clients) {
        Sample alone, streaming;
        int fetched = 0;
        for (int round = 0; round < o.rounds; ++round) {
            Sample a = run_round(Path::regiond, clients, w, o.seconds, o, probes);
            Sample b;
            {
                Streamer streamer(o.regiond_socket, o.streamer_rows);
                b = run_round(Path::regiond, clients, w, o.seconds, o, probes);
                fetched += streamer.fetched();
                if (!streamer.error().empty()) b.error = streamer.error();
            }
            for (const Sample* x : {&a, &b}) {
                if (!x->error.empty()) {
                    std::fprintf(stderr, "bench_e2e: %d clients: %s\n", clients, x->error.c_str());
                    return 1;
                }
            }
            alone.add(a);
            streaming.add(b);
        }
        const Summary sa = summarize(alone), sb = summarize(streaming);
        std::printf("| %d | %.1f | %.1f | %.1f | %.1f | %.2f | %.0f | %.0f | %d |\n", clients, sa.p50_us, sa.p99_us,
                    sb.p50_us, sb.p99_us, sb.p99_us / sa.p99_us, sa.per_second, sb.per_second, fetched);
    }
    return 0;
}

// ---------------------------------------------------------------- idle

bool read_full(int fd, void* buf, std::size_t n) {
    auto* p = static_cast<char*>(buf);
    while (n > 0) {
        const ssize_t r = ::read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

bool write_full(int fd, const void* buf, std::size_t n) {
    const auto* p = static_cast<const char*>(buf);
    while (n > 0) {
        const ssize_t r = ::write(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

// A forked process holding `count` connected regiond clients that send nothing
// until told: command {int32 index} sends one primary-key read on that client
// and answers {int64 ns}, -1 on failure; index -1 disconnects all and exits.
// Reports {int64 0} once all are connected ({int64 -1} and exit if one fails).
[[noreturn]] void idle_child(const Options& o, int count, int cmd_fd, int status_fd) {
    std::vector<rgd_client*> clients;
    std::int64_t status = 0;
    for (int i = 0; i < count; ++i) {
        char err[512];
        rgd_client* c = rgd_connect(o.regiond_socket.c_str(), err, sizeof err);
        if (c == nullptr) {
            std::fprintf(stderr, "bench_e2e: idle client %d: %s\n", i, err);
            status = -1;
            break;
        }
        clients.push_back(c);
    }
    write_full(status_fd, &status, sizeof status);
    if (status != 0) _exit(1);
    for (;;) {
        std::int32_t index = -1;
        if (!read_full(cmd_fd, &index, sizeof index) || index < 0 || index >= count) break;
        char text[16];
        const int id = 1 + index % o.rows;
        std::snprintf(text, sizeof text, "%d", id);
        const char* params[] = {text};
        const auto t0 = Clock::now();
        rgd_result* r = rgd_read_local(clients[static_cast<std::size_t>(index)], kPkSql, 1, params);
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
        std::string error;
        const bool ok = rgd_ok(r) == 1 && answer_ok(false, id, rgd_nrows(r), rgd_value(r, 0, 0), error);
        if (!ok)
            std::fprintf(stderr, "bench_e2e: idle client %d: %s\n", index,
                         rgd_ok(r) == 1 ? error.c_str() : rgd_error(r));
        rgd_free(r);
        const std::int64_t answer = ok ? ns : -1;
        if (!write_full(status_fd, &answer, sizeof answer)) break;
    }
    for (rgd_client* c : clients) rgd_disconnect(c);
    _exit(0);
}

struct IdleChild {
    pid_t pid = -1;
    int cmd_fd = -1, status_fd = -1;
    int clients = 0;
};

int idle_part(const Options& o, const Probes& probes) {
    const int procs = std::max(1, std::min(o.idle_procs, o.idle_clients));
    std::printf("\nidle: %d regiond clients in %d processes, connected and sending nothing for %.0f s\n\n",
                o.idle_clients, procs, o.idle_seconds);
    // The daemon's own idle cost first, with no client connected: what the
    // 200 clients add is the difference.
    const Cpu a0 = proc_cpu(probes.daemon);
    const auto alone_t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(o.idle_seconds));
    const Cpu alone = proc_cpu(probes.daemon) - a0;
    const double alone_pct =
        100.0 * alone.total() / std::chrono::duration<double, std::micro>(Clock::now() - alone_t0).count();

    std::fflush(stdout);  // before fork: no buffered output copied into the children
    std::vector<IdleChild> children;
    for (int i = 0; i < procs; ++i) {
        IdleChild ch;
        ch.clients = o.idle_clients / procs + (i < o.idle_clients % procs ? 1 : 0);
        int cmd[2], status[2];
        if (pipe2(cmd, O_CLOEXEC) != 0 || pipe2(status, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
        ch.pid = fork();
        if (ch.pid < 0) throw std::runtime_error("fork failed");
        if (ch.pid == 0) {
            ::close(cmd[1]);
            ::close(status[0]);
            for (const IdleChild& earlier : children) {
                ::close(earlier.cmd_fd);
                ::close(earlier.status_fd);
            }
            idle_child(o, ch.clients, cmd[0], status[1]);
        }
        ::close(cmd[0]);
        ::close(status[1]);
        ch.cmd_fd = cmd[1];
        ch.status_fd = status[0];
        children.push_back(ch);
    }
    auto finish = [&] {
        for (IdleChild& ch : children) {
            const std::int32_t quit = -1;
            write_full(ch.cmd_fd, &quit, sizeof quit);
            ::close(ch.cmd_fd);
            ::close(ch.status_fd);
        }
        bool clean = true;
        for (IdleChild& ch : children) {
            int st = 0;
            waitpid(ch.pid, &st, 0);
            clean = clean && WIFEXITED(st) && WEXITSTATUS(st) == 0;
        }
        return clean;
    };
    for (IdleChild& ch : children) {
        std::int64_t st = -1;
        if (!read_full(ch.status_fd, &st, sizeof st) || st != 0) {
            finish();
            std::fprintf(stderr, "bench_e2e: idle: a client process could not connect its clients\n");
            return 1;
        }
    }
    // Let the connections' first exchanges and any spin after them settle.
    std::this_thread::sleep_for(std::chrono::seconds(1));

    auto clients_cpu = [&] {
        Cpu c;
        for (const IdleChild& ch : children) c += proc_cpu(ch.pid);
        return c;
    };
    // A direct libpq connection, prepared and idle for the same span: what the
    // first query after a long idle costs without regiond (sleeping vCPUs and
    // an idle backend pay their own wake-ups).
    std::unique_ptr<DirectSession> direct;
    if (!o.direct_conninfo.empty()) direct = std::make_unique<DirectSession>(o.direct_conninfo, false);
    const Cpu d0 = proc_cpu(probes.daemon), c0 = clients_cpu(), s0 = self_cpu();
    const auto pg0 = children_of(probes.postmaster);
    const auto t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(o.idle_seconds));
    const double span_us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    const Cpu d = proc_cpu(probes.daemon) - d0, c = clients_cpu() - c0, s = self_cpu() - s0;
    Cpu pg;
    for (const auto& [pid, cpu] : children_of(probes.postmaster)) {
        const auto was = pg0.find(pid);
        pg += was == pg0.end() ? cpu : cpu - was->second;
    }
    auto pct = [&](const Cpu& x) { return 100.0 * x.total() / span_us; };
    Cpu all_clients = c;
    all_clients += s;
    const double together = pct(d) + pct(all_clients);

    // The first request after the idle: one client, then more idle clients one
    // at a time, each after a pause so the daemon has gone back to sleep.
    auto ask = [&](int k) -> double {
        IdleChild& ch = children[static_cast<std::size_t>(k % procs)];
        const std::int32_t index = (k / procs) % ch.clients;
        std::int64_t ns = -1;
        if (!write_full(ch.cmd_fd, &index, sizeof index) || !read_full(ch.status_fd, &ns, sizeof ns) || ns < 0)
            return -1;
        return static_cast<double>(ns) / 1000.0;
    };
    const double first_us = ask(0);
    std::vector<double> later;
    for (int k = 1; k <= o.idle_probes && first_us >= 0; ++k) {
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        const double us = ask(k);
        if (us < 0) break;
        later.push_back(us);
    }
    // The same for direct libpq, right after (the processes it needs slept as long).
    std::vector<double> direct_first;
    for (int k = 0; direct && k <= o.idle_probes; ++k) {
        if (k != 0) std::this_thread::sleep_for(std::chrono::milliseconds(250));
        const auto t = Clock::now();
        if (!direct->query(1 + k)) break;
        direct_first.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
    }
    const bool children_ok = finish();
    if (first_us < 0 || static_cast<int>(later.size()) != o.idle_probes || !children_ok) {
        std::fprintf(stderr, "bench_e2e: idle: a request after the idle failed\n");
        return 1;
    }

    // The reference: a short 1-client regiond run right after.
    Sample ref = run_round(Path::regiond, 1, Workload{false, o.rows, 1}, o.seconds, o, probes);
    if (!ref.error.empty()) {
        std::fprintf(stderr, "bench_e2e: idle: reference run: %s\n", ref.error.c_str());
        return 1;
    }
    const Summary rs = summarize(ref);
    std::sort(later.begin(), later.end());
    const double later_median = later.empty() ? 0 : later[later.size() / 2];
    const double later_max = later.empty() ? 0 : later.back();

    std::printf("| idle, %.0f s | CPU user | CPU system | %% of one core |\n| --- | ---: | ---: | ---: |\n",
                o.idle_seconds);
    std::printf("| daemon, no client connected (before, for comparison) | %.0f ms | %.0f ms | %.3f %% |\n",
                alone.user_us / 1000, alone.sys_us / 1000, alone_pct);
    std::printf("| daemon | %.0f ms | %.0f ms | %.3f %% |\n", d.user_us / 1000, d.sys_us / 1000, pct(d));
    std::printf("| %d client processes (+ this one) | %.0f ms | %.0f ms | %.3f %% |\n", procs,
                all_clients.user_us / 1000, all_clients.sys_us / 1000, pct(all_clients));
    if (probes.postmaster > 0)
        std::printf("| postgres (replica, for information) | %.0f ms | %.0f ms | %.3f %% |\n", pg.user_us / 1000,
                    pg.sys_us / 1000, pct(pg));
    std::printf("\n| after the idle | µs | target | verdict |\n| --- | ---: | ---: | --- |\n");
    std::printf("| daemon + clients CPU, %% of one core | %.3f | < 1 | %s |\n", together,
                verdict(together, 1.0, false).c_str());
    std::printf("| first request after %.0f s idle | %.1f | ≤ p99 %.1f | %s |\n", o.idle_seconds, first_us, rs.p99_us,
                verdict(first_us, rs.p99_us, false).c_str());
    std::printf("| %d more idle clients' first requests, median | %.1f | ≤ p99 %.1f | %s |\n", o.idle_probes,
                later_median, rs.p99_us, verdict(later_median, rs.p99_us, false).c_str());
    std::printf("| %d more idle clients' first requests, max | %.1f | ≤ p99 %.1f | %s |\n", o.idle_probes, later_max,
                rs.p99_us, verdict(later_max, rs.p99_us, false).c_str());
    if (!direct_first.empty()) {
        std::vector<double> rest(direct_first.begin() + 1, direct_first.end());
        std::sort(rest.begin(), rest.end());
        std::printf("| for comparison: direct libpq, first query after the same idle | %.1f | — | |\n",
                    direct_first.front());
        if (!rest.empty())
            std::printf(
                "| for comparison: direct libpq, %zu more after 250 ms pauses, median / max | %.1f / %.1f | — | |\n",
                rest.size(), rest[rest.size() / 2], rest.back());
    }
    std::printf("(reference: 1-client regiond run of %.1f s right after: p50 %.1f µs, p99 %.1f µs, %zu calls)\n",
                o.seconds, rs.p50_us, rs.p99_us, rs.calls);

    if (!o.idle_csv.empty()) {
        std::ofstream out(o.idle_csv);
        out << "idle_clients,procs,seconds,daemon_user_ms,daemon_sys_ms,daemon_pct,clients_user_ms,clients_sys_ms,"
               "clients_pct,pg_pct,daemon_no_clients_pct,first_request_us,later_first_median_us,later_first_max_us,ref_"
               "p50_us,ref_p99_us\n";
        char line[512];
        std::snprintf(line, sizeof line,
                      "%d,%d,%.1f,%.1f,%.1f,%.3f,%.1f,%.1f,%.3f,%.3f,%.3f,%.1f,%.1f,%.1f,%.1f,%.1f\n", o.idle_clients,
                      procs, o.idle_seconds, d.user_us / 1000, d.sys_us / 1000, pct(d), all_clients.user_us / 1000,
                      all_clients.sys_us / 1000, pct(all_clients), pct(pg), alone_pct, first_us, later_median,
                      later_max, rs.p50_us, rs.p99_us);
        out << line;
        if (!out) throw std::runtime_error("cannot write " + o.idle_csv);
    }
    return 0;
}

// ---------------------------------------------------------------- main

std::vector<std::string> split_commas(const std::string& s) {
    std::vector<std::string> out;
    for (std::size_t at = 0;;) {
        const auto comma = s.find(',', at);
        out.push_back(s.substr(at, comma == std::string::npos ? std::string::npos : comma - at));
        if (comma == std::string::npos) return out;
        at = comma + 1;
    }
}

std::vector<int> ints(const std::string& s) {
    std::vector<int> out;
    for (const std::string& n : split_commas(s)) out.push_back(std::stoi(n));
    return out;
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
        else if (a == "--clients")
            o.clients = ints(next());
        else if (a == "--seconds")
            o.seconds = std::stod(next());
        else if (a == "--rounds")
            o.rounds = std::stoi(next());
        else if (a == "--rows")
            o.rows = std::stoi(next());
        else if (a == "--paths")
            o.paths = split_commas(next());
        else if (a == "--no-curve")
            o.curve = false;
        else if (a == "--result-rows")
            o.result_rows = ints(next());
        else if (a == "--result-clients")
            o.result_clients = ints(next());
        else if (a == "--result-seconds")
            o.result_seconds = std::stod(next());
        else if (a == "--result-rounds")
            o.result_rounds = std::stoi(next());
        else if (a == "--idle")
            o.idle = true;
        else if (a == "--idle-seconds")
            o.idle_seconds = std::stod(next());
        else if (a == "--idle-clients")
            o.idle_clients = std::stoi(next());
        else if (a == "--idle-procs")
            o.idle_procs = std::stoi(next());
        else if (a == "--idle-probes")
            o.idle_probes = std::stoi(next());
        else if (a == "--idle-csv")
            o.idle_csv = next();
        else if (a == "--daemon-pid")
            o.daemon_pid = static_cast<pid_t>(std::stoi(next()));
        else if (a == "--pg-postmaster-pid")
            o.postmaster_pid = static_cast<pid_t>(std::stoi(next()));
        else if (a == "--pgbouncer-pid")
            o.pgbouncer_pid = static_cast<pid_t>(std::stoi(next()));
        else if (a == "--csv")
            o.csv = next();
        else if (a == "--streamer-rows")
            o.streamer_rows = std::stoi(next());
        else
            throw std::runtime_error("unknown argument " + a);
    }
    if (o.regiond_socket.empty() || o.direct_conninfo.empty() || o.pgbouncer_conninfo.empty())
        throw std::runtime_error("--regiond, --direct and --pgbouncer are required");
    for (int n : o.result_rows)
        if (n < 1 || n > o.rows)
            throw std::runtime_error("--result-rows " + std::to_string(n) + " is outside 1..--rows (" +
                                     std::to_string(o.rows) + ")");
    if (o.result_seconds <= 0) o.result_seconds = o.seconds;
    if (o.result_rounds <= 0) o.result_rounds = o.rounds;
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Options o = parse(argc, argv);
        const Probes probes{o.daemon_pid, o.postmaster_pid, o.pgbouncer_pid};
        if (o.streamer_rows > 0) return streamer_table(o, probes);
        const bool all_paths = chosen_paths(o).size() == 3;
        std::vector<Point> all;

        if (o.curve) {
            const std::vector<Point> curve =
                measure("pk", o.clients, Workload{false, o.rows, 1}, o.seconds, o.rounds, o, probes);
            std::printf(
                "primary-key SELECT on the same-host replica (table of %d rows); %d rounds x %.1f s per path and "
                "client count; CPU in µs per request, user+system (user, system)\n\n",
                o.rows, o.rounds, o.seconds);
            print_points(curve, probes, false);
            if (all_paths) print_ratios(curve, o.clients);
            all.insert(all.end(), curve.begin(), curve.end());
            std::fflush(stdout);
        }

        if (!o.result_rows.empty()) {
            std::vector<Point> sweep;
            for (int clients : o.result_clients)
                for (int n : o.result_rows) {
                    std::vector<Point> p = measure("rows", {clients}, Workload{true, o.rows, n}, o.result_seconds,
                                                   o.result_rounds, o, probes);
                    sweep.insert(sweep.end(), p.begin(), p.end());
                }
            std::printf(
                "\nresult-size sweep: `where id <= N` (every answer's row count checked); %d rounds x %.1f s per path, "
                "client count and N\n\n",
                o.result_rounds, o.result_seconds);
            print_points(sweep, probes, true);
            all.insert(all.end(), sweep.begin(), sweep.end());
            std::fflush(stdout);
        }

        if (!o.csv.empty()) {
            write_csv(o.csv, all);
            std::printf("\n(wrote %s)\n", o.csv.c_str());
        }
        if (o.idle && idle_part(o, probes) != 0) return 1;
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_e2e: %s\n", e.what());
        return 1;
    }
}
