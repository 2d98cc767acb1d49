#include "cache_clients.hpp"

#include <sys/mman.h>
#include <time.h>

#include <regiond/client.hpp>

#include <chrono>
#include <new>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "cache_fixture.hpp"
#include "md5.hpp"

namespace regiond::testing::cache {
namespace {

constexpr char kSep = '\x1f';

std::vector<std::string> split(const std::string& line, char sep = kSep) {
    std::vector<std::string> out(1);
    for (char c : line) {
        if (c == sep)
            out.emplace_back();
        else
            out.back() += c;
    }
    return out;
}

regiond::Client connect_or_throw(const std::string& socket) {
    regiond::Client c = regiond::Client::connect(socket);
    if (!c) throw std::runtime_error("connect " + socket + ": " + c.connect_error());
    return c;
}

std::string cell(const regiond::Result& r, int row, int col) {
    if (!r.ok() || r.nrows() <= row || r.ncols() <= col) return "<no cell>";
    const regiond::Value v = r.value(row, col);
    return v ? std::string(*v) : "<null>";
}

std::uint64_t fnv1a(const std::string& text) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : text) {
        h ^= c;
        h *= 0x100000001b3ull;
    }
    return h;
}

std::uint64_t splitmix(std::uint64_t& state) {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void note(ReadTally& t, const regiond::Result& r) {
    const std::string_view by = r.served_by();
    if (by == "cache:local")
        ++t.local;
    else if (by == "cache:redis")
        ++t.redis;
    else
        ++t.database;
}

void fail(ReadTally& t, long ReadTally::*what, const std::string& text) {
    ++(t.*what);
    if (t.problem.empty()) t.problem = text;
}

}  // namespace

SharedBlock::SharedBlock() {
    void* p = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap of the shared block failed");
    shared_ = new (p) Shared;
}

SharedBlock::~SharedBlock() {
    shared_->~Shared();
    ::munmap(shared_, sizeof(Shared));
}

std::string stress_value(const std::string& key, long version) {
    const std::string head = key + "|" + std::to_string(version) + "|";
    std::uint64_t state = fnv1a(head);
    const std::size_t length = 60 + splitmix(state) % 30000;
    static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    std::string v = head;
    v.reserve(head.size() + length);
    for (std::size_t i = 0; i < length; ++i) v += kAlphabet[splitmix(state) % (sizeof kAlphabet - 1)];
    return v;
}

std::string StressChecker::check(const std::string& key, const std::string& v, const std::string& md5) {
    const std::string prefix = key + "|";
    if (v.compare(0, prefix.size(), prefix) != 0) return "a value of another key: " + v.substr(0, 80);
    const std::size_t bar = v.find('|', prefix.size());
    if (bar == std::string::npos || bar == prefix.size() || v.find_first_not_of("0123456789", prefix.size()) != bar)
        return "no version in " + v.substr(0, 80);
    const std::string head = v.substr(0, bar + 1);
    auto it = known_.find(head);
    if (it == known_.end()) {
        const long version = std::stol(v.substr(prefix.size(), bar - prefix.size()));
        std::string want = stress_value(key, version);
        std::string want_md5 = md5_hex(want);
        it = known_.emplace(head, std::pair{std::move(want), std::move(want_md5)}).first;
    }
    const auto& [want, want_md5] = it->second;
    if (v != want || md5 != want_md5)
        return "torn: not version " + head + "'s value: the value " + (v != want ? "differs" : "matches") +
               ", the md5 " + (md5 != want_md5 ? "differs" : "matches") + " (the row's md5 " + md5 + ", the value's " +
               md5_hex(v) + ", " + std::to_string(v.size()) + " bytes, wanted " + std::to_string(want.size()) + ")";
    return {};
}

std::string ReadTally::line() const {
    std::ostringstream s;
    s << "reads" << kSep << answers << kSep << local << kSep << redis << kSep << database << kSep << bad << kSep
      << errors << kSep << problem;
    return s.str();
}

ReadTally ReadTally::parse(const std::string& line) {
    const std::vector<std::string> f = split(line);
    if (f.size() != 8 || f[0] != "reads") throw std::runtime_error("a child did not report a tally: " + line);
    ReadTally t;
    long* numbers[] = {&t.answers, &t.local, &t.redis, &t.database, &t.bad, &t.errors};
    for (std::size_t i = 0; i < 6; ++i) *numbers[i] = std::stol(f[i + 1]);
    t.problem = f[7];
    return t;
}

ReadTally& ReadTally::operator+=(const ReadTally& o) {
    answers += o.answers;
    local += o.local;
    redis += o.redis;
    database += o.database;
    bad += o.bad;
    errors += o.errors;
    if (problem.empty()) problem = o.problem;
    return *this;
}

std::string ReadTally::summary() const {
    std::ostringstream s;
    s << answers << " answers (cache:local " << local << ", cache:redis " << redis << ", database " << database
      << "): " << bad << " bad, " << errors << " errors";
    if (!problem.empty()) s << "; first problem: " << problem;
    return s.str();
}

ReadTally stress_reader(const std::string& socket, const std::vector<std::string>& keys, bool cyclic, unsigned seed,
                        Shared* shared) {
    const regiond::Client c = connect_or_throw(socket);
    const std::string sql = select_sql();
    std::mt19937 random(seed);
    std::uniform_int_distribution<std::size_t> pick(0, keys.size() - 1);
    StressChecker checker;
    ReadTally t;
    for (std::size_t n = 0; shared->stop.load(std::memory_order_relaxed) == 0; ++n) {
        const std::string& key = keys[cyclic ? n % keys.size() : pick(random)];
        const regiond::Result r = c.cached_read(key, std::chrono::seconds(60), sql, {key});
        ++t.answers;
        if (!r.ok()) {
            fail(t, &ReadTally::errors, key + ": " + std::string(r.error()));
            continue;
        }
        note(t, r);
        if (r.nrows() != 1 || r.ncols() != 2) {
            fail(t, &ReadTally::bad,
                 key + ": " + std::to_string(r.nrows()) + " rows of " + std::to_string(r.ncols()) + " columns from " +
                     std::string(r.served_by()));
            continue;
        }
        const std::string problem = checker.check(key, cell(r, 0, 0), cell(r, 0, 1));
        if (!problem.empty()) fail(t, &ReadTally::bad, key + " from " + std::string(r.served_by()) + ": " + problem);
        shared->answers.fetch_add(1, std::memory_order_relaxed);
    }
    return t;
}

ReadTally stress_writer(const std::string& socket, const std::vector<std::string>& keys, long first_version,
                        unsigned seed, Shared* shared) {
    const regiond::Client c = connect_or_throw(socket);
    const std::string sql = std::string("update ") + kTable + " set v = $2 where k = $1";
    std::mt19937 random(seed);
    std::uniform_int_distribution<std::size_t> pick(0, keys.size() - 1);
    ReadTally t;
    for (long version = first_version; shared->stop.load(std::memory_order_relaxed) == 0; ++version) {
        const std::string& key = keys[pick(random)];
        const regiond::Result w = c.write(sql, {key, stress_value(key, version)}, {key});
        ++t.answers;
        if (!w.ok() || w.affected() != 1)
            fail(t, &ReadTally::errors, "write " + key + ": " + std::string(w.error()));
        else
            shared->writes.fetch_add(1, std::memory_order_relaxed);
    }
    return t;
}

std::string barrier_reads(const std::string& socket, int threads, const std::string& key, const std::string& sql,
                          Shared* shared) {
    const regiond::Client c = connect_or_throw(socket);
    std::vector<std::string> lines(static_cast<std::size_t>(threads));
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i)
        pool.emplace_back([&, i] {
            shared->ready.fetch_add(1);
            // Spin (with yields) rather than sleep: the parent releases every
            // caller at once, and a sleeping thread would miss the moment.
            while (shared->go.load() == 0) std::this_thread::yield();
            const regiond::Result r = c.cached_read(key, std::chrono::seconds(60), sql, {key});
            std::ostringstream s;
            s << (r.ok() ? "ok" : "error") << kSep << r.served_by() << kSep << cell(r, 0, 0) << kSep << r.error();
            lines[static_cast<std::size_t>(i)] = s.str();
        });
    for (auto& t : pool) t.join();
    std::string out;
    for (const std::string& l : lines) out += l + "\n";
    return out;
}

std::uint64_t monotonic_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::string one_cached_read(const std::string& socket, const std::string& key, const std::string& sql,
                            const std::vector<std::string>& params) {
    const regiond::Client c = connect_or_throw(socket);
    std::vector<regiond::Value> values;
    for (const std::string& p : params) values.emplace_back(p);
    const std::uint64_t started = monotonic_ns();
    const regiond::Result r = c.cached_read(key, std::chrono::seconds(60), sql, regiond::Params(values));
    const std::uint64_t ended = monotonic_ns();
    std::ostringstream s;
    s << (r.ok() ? "ok" : "error") << kSep << r.served_by() << kSep << r.route_reason() << kSep << cell(r, 0, 0) << kSep
      << r.error() << kSep << started << kSep << ended;
    return s.str();
}

OneCached OneCached::parse(const std::string& line) {
    const std::vector<std::string> f = split(line);
    if (f.size() != 7) throw std::runtime_error("a child did not report a read: " + line);
    OneCached o;
    o.ok = f[0] == "ok";
    o.served_by = f[1];
    o.route_reason = f[2];
    o.value = f[3];
    o.error = f[4];
    o.started_ns = std::stoull(f[5]);
    o.ended_ns = std::stoull(f[6]);
    return o;
}

std::string OneCached::describe() const {
    if (!ok) return "error: " + error + " (served_by " + served_by + ")";
    return "value " + value + " from " + served_by + " (" + route_reason + ")";
}

ReadTally expect_reads(const std::string& socket, const std::string& key, const std::string& sql,
                       const std::string& want, int reads) {
    const regiond::Client c = connect_or_throw(socket);
    ReadTally t;
    for (int i = 0; i < reads; ++i) {
        const regiond::Result r = c.cached_read(key, std::chrono::seconds(60), sql, {key});
        ++t.answers;
        if (!r.ok()) {
            fail(t, &ReadTally::errors, "read " + std::to_string(i) + ": " + std::string(r.error()));
            continue;
        }
        note(t, r);
        const std::string got = cell(r, 0, 0);
        if (got != want)
            fail(t, &ReadTally::bad,
                 "read " + std::to_string(i) + ": " + got + " from " + std::string(r.served_by()) + " (" +
                     std::string(r.route_reason()) + "), wanted " + want);
    }
    return t;
}

}  // namespace regiond::testing::cache
