// Multi-process stress of the hot cache: one writer (this process, through the
// StateSegment) and several reader processes (fork, each with its own read-only
// StateView) looking keys up. Every value a reader accepts must carry the
// checksum of its own bytes and the key it was looked up under: a torn or
// misplaced copy that got past validation fails the test. Two workloads, each
// half of the time:
//  * mixed: inserts of fresh values of 0..6000 payload bytes (new and
//    replacing), erases and a rare clear on random keys; the ~56 KiB arena wraps
//    every ~20 inserts, so entries die while readers copy them;
//  * in place: every entry the same size, the arena an exact multiple of it,
//    keys inserted round robin, so each insert replaces the OLDEST entry, its own
//    key's, at the very same arena offset (the entry is reclaimed without its
//    slot being emptied first, so only the reclaimed check can catch a reader
//    copying it while it is overwritten).
// Bounded in time (1.5 s in the default run; the hidden [stress] variant runs
// REGIOND_STRESS_SECONDS) but sure to do its work on a slow machine: the writer
// goes on past the deadline until it has wrapped the arena a few times, the
// readers until the writer says stop (a flag, no sleeps), and then read once
// more from the stable cache the writer leaves (every key present), so every
// reader sees hits. No timing assertions.
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <csignal>
#include <cstdlib>
#include <string>
#include <vector>

#include "cache_test_helpers.hpp"
#include "shm/cache_reader.hpp"
#include "shm/cache_value.hpp"
#include "shm/codec.hpp"
#include "shm/state_segment.hpp"
#include "test_helpers.hpp"

using namespace regiond::shm;
using namespace regiond::shm::test;

namespace {

constexpr std::size_t kMaxPayload = 6000;
constexpr const char* kSql = "SELECT key, n, payload FROM stress WHERE key = $1";
constexpr std::uint64_t kCacheBytes = 64 << 10;  // 256 slots, a 56 KiB arena

enum class Workload { mixed, in_place };

// Shared between the writer and the readers (MAP_SHARED, survives fork).
struct Results {
    std::atomic<std::uint64_t> lookups;
    std::atomic<std::uint64_t> hits;
    std::atomic<std::uint64_t> bad_checksum;  ///< accepted bytes that are not what was stored
    std::atomic<std::uint64_t> bad_key;       ///< accepted another key's value
    std::atomic<std::uint64_t> bad_decode;    ///< accepted a value that does not decode
    std::atomic<std::uint64_t> setup_failed;
    /// Set by the writer when it is done (release); the readers poll it (acquire).
    std::atomic<std::uint32_t> stop;
};

// Fixed width (9 bytes, 16 in the arena): entry sizes depend on the value only.
std::string stress_key_of(int i) {
    return "stress:" + std::to_string(100 + i).substr(1);
}

std::uint64_t checksum(std::string_view key, std::span<const std::byte> response) {
    return fnv1a(response, fnv1a(std::as_bytes(std::span(key.data(), key.size()))));
}

// A value for `key`: one row (key, n, payload); floor_lsn carries the checksum
// of the key and the response bytes. n is written with a fixed width, so the
// value's size depends on the payload's only.
std::vector<std::byte> stress_value(const std::string& key, std::uint64_t n, std::string_view payload) {
    static const std::string_view columns[] = {"key", "n", "payload"};
    std::string number = std::to_string(n);
    number.insert(0, 20 - number.size(), '0');
    const Row rows[] = {{std::string_view(key), std::string_view(number), payload}};
    const std::vector<std::byte> response = cache_response(columns, rows);
    const std::optional<std::string_view> params[] = {std::string_view(key)};
    const std::vector<std::byte> query = encode_cache_query(kSql, params);
    CacheValueView v;
    v.floor_lsn = checksum(key, response);
    v.token_lsn = n;
    v.query = query;
    v.response = response;
    return encode_cache_value(v);
}

void reader_process(const std::string& name, int keys, std::uint64_t seed, Results& results) {
    auto view = StateView::open(name);
    if (!view) {
        results.setup_failed.fetch_add(1);
        return;
    }
    const CacheReader cache = view->cache_reader();
    if (!cache.enabled()) {
        results.setup_failed.fetch_add(1);
        return;
    }
    std::vector<std::string> names;
    for (int i = 0; i < keys; ++i) names.push_back(stress_key_of(i));
    XorShift rng(seed);
    std::vector<std::byte> out;
    ResponseDecoder decoder;
    std::uint64_t lookups = 0, hits = 0;
    // Until the writer is done, then one last round over the stable cache.
    for (bool last = false; !last;) {
        last = results.stop.load(std::memory_order_acquire) != 0;
        for (int batch = 0; batch < 64; ++batch) {
            const std::string& key = names[rng.below(static_cast<std::uint32_t>(keys))];
            const std::optional<std::string_view> params[] = {std::string_view(key)};
            ++lookups;
            if (!cache.lookup(key, kSql, params, monotonic_now_ns(), out)) continue;
            ++hits;
            const auto v = parse_cache_value(out);
            if (!v) {
                results.bad_decode.fetch_add(1);
                continue;
            }
            if (v->floor_lsn != checksum(key, v->response)) results.bad_checksum.fetch_add(1);
            decoder.reset();
            if (decoder.feed(v->response) != CodecError::ok || !decoder.complete() || decoder.response().nrows() != 1 ||
                decoder.response().ncols() != 3) {
                results.bad_decode.fetch_add(1);
                continue;
            }
            if (decoder.response().value(0, 0) != std::optional<std::string_view>(key)) results.bad_key.fetch_add(1);
        }
    }
    results.lookups.fetch_add(lookups);
    results.hits.fetch_add(hits);
}

// The forked readers: told to stop and reaped on every path out of the test,
// a failed REQUIRE in the writer included (they poll the flag, never a clock).
struct ReaderProcesses {
    explicit ReaderProcesses(Results& r) : results(r) {}
    ReaderProcesses(const ReaderProcesses&) = delete;
    ReaderProcesses& operator=(const ReaderProcesses&) = delete;
    ~ReaderProcesses() { stop_and_reap(); }

    /// true if every reader exited normally with status 0.
    bool stop_and_reap() {
        // SYNC POINT: release pairs with the readers' acquire load of stop: their
        // last round starts after every insert the writer made.
        results.stop.store(1, std::memory_order_release);
        bool ok = true;
        for (const pid_t pid : pids) {
            int status = 0;
            const bool reaped = ::waitpid(pid, &status, 0) == pid;  // every child, whatever the others did
            ok = ok && reaped && WIFEXITED(status) && WEXITSTATUS(status) == 0;
        }
        pids.clear();
        return ok;
    }

    Results& results;
    std::vector<pid_t> pids;
};

struct WriterCounts {
    std::uint64_t inserts = 0, refused = 0, erases = 0, clears = 0;
};

// Each workload wraps the ~56 KiB arena at least this many times, however slow
// the machine (sanitizers, load), before it stops at the deadline.
constexpr std::uint64_t kMinArenaLaps = 5;

// Inserts (fresh values, sizes 0..6000), erases and a rare clear on random keys;
// at the end, every key once more, so the readers' last round finds them all.
WriterCounts write_mixed(CacheWriter& cache, int keys, std::uint64_t deadline) {
    std::vector<std::string> names;
    for (int i = 0; i < keys; ++i) names.push_back(stress_key_of(i));
    std::string letters(2 * kMaxPayload, 'a');
    XorShift rng(42);
    for (char& ch : letters) ch = static_cast<char>('a' + rng.below(26));
    WriterCounts c;
    std::uint64_t n = 0;
    auto insert = [&](const std::string& key) {
        ++n;
        const std::string_view payload(letters.data() + n % kMaxPayload, rng.below(kMaxPayload));
        (cache.insert(key, stress_value(key, n, payload), monotonic_now_ns() + 600'000'000'000ull) ? c.inserts
                                                                                                   : c.refused)++;
    };
    while (monotonic_now_ns() < deadline || cache.stats().evictions < kMinArenaLaps * 20) {
        const std::string& key = names[rng.below(static_cast<std::uint32_t>(keys))];
        const std::uint32_t op = rng.below(1000);
        if (op < 900) {
            insert(key);
        } else if (op < 998) {
            cache.erase(key);
            ++c.erases;
        } else {
            cache.clear();
            ++c.clears;
        }
    }
    for (const std::string& key : names)
        (cache.insert(key, stress_value(key, ++n, "final"), ~std::uint64_t{0}) ? c.inserts : c.refused)++;
    return c;
}

// The in-place workload's values: four versions per key, all `value_bytes`
// long, prepared before the clock starts so the writer only inserts.
struct InPlaceValues {
    std::vector<std::string> names;
    std::vector<std::vector<std::byte>> values;  ///< key i, version v at i * 4 + v
};

InPlaceValues in_place_values(int keys, std::uint64_t value_bytes) {
    InPlaceValues p;
    const std::size_t base = stress_value(stress_key_of(0), 0, "").size();
    REQUIRE(value_bytes > base);
    for (int i = 0; i < keys; ++i) {
        p.names.push_back(stress_key_of(i));
        for (int version = 0; version < 4; ++version) {
            const std::string payload(value_bytes - base, static_cast<char>('a' + (i + version) % 26));
            p.values.push_back(stress_value(p.names.back(), static_cast<std::uint64_t>(i * 4 + version), payload));
            REQUIRE(p.values.back().size() == value_bytes);
        }
    }
    return p;
}

// Every entry the same size and the arena a multiple of it: round robin over
// keys = capacity / entry size, each insert lands exactly on the oldest entry,
// which is the same key's. Consecutive values of a key differ.
WriterCounts write_in_place(CacheWriter& cache, const InPlaceValues& p, std::uint64_t deadline) {
    const auto keys = static_cast<std::uint64_t>(p.names.size());
    WriterCounts c;
    for (std::uint64_t n = 0; monotonic_now_ns() < deadline || n < kMinArenaLaps * keys;) {
        for (int batch = 0; batch < 64; ++batch, ++n) {
            const auto i = static_cast<std::size_t>(n % keys);
            const auto version = static_cast<std::size_t>((n / keys) % 4);
            (cache.insert(p.names[i], p.values[i * 4 + version], ~std::uint64_t{0}) ? c.inserts : c.refused)++;
        }
    }
    return c;
}

double seconds_from_env(double fallback) {
    const char* env = std::getenv("REGIOND_STRESS_SECONDS");
    const double s = env != nullptr ? std::atof(env) : fallback;
    return s > 0 ? s : fallback;
}

void run_stress(Workload workload, double seconds, int readers) {
    StateSegmentOptions o;
    o.name = unique_shm_name("cache-stress");
    o.cache_bytes = kCacheBytes;
    auto segment = StateSegment::create(o);
    REQUIRE(segment);
    CacheWriter& cache = segment->cache();
    REQUIRE(cache.max_value_bytes() > kMaxPayload + 200);

    // In place: 2048-byte entries (24 header + 16 key + 2008 value), 28 of them
    // filling the 57344-byte arena exactly.
    constexpr std::uint64_t kEntry = 2048;
    const std::uint64_t value_bytes = kEntry - sizeof(CacheEntryHeader) - 16;
    int keys = 24;
    if (workload == Workload::in_place) {
        REQUIRE(cache.capacity() % kEntry == 0);
        keys = static_cast<int>(cache.capacity() / kEntry);
    }
    REQUIRE(keys <= 100);  // key_of: two digits

    InPlaceValues prepared;
    if (workload == Workload::in_place) prepared = in_place_values(keys, value_bytes);

    SharedMapping shared(sizeof(Results));
    REQUIRE(shared.data() != nullptr);
    auto* results = new (shared.data()) Results{};

    ReaderProcesses children(*results);
    for (int r = 0; r < readers; ++r) {
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a test that died
            reader_process(o.name, keys, 1000 + static_cast<std::uint64_t>(r), *results);
            ::_exit(0);
        }
        children.pids.push_back(pid);
    }
    const std::uint64_t deadline = monotonic_now_ns() + static_cast<std::uint64_t>(seconds * 1e9);
    const WriterCounts w =
        workload == Workload::mixed ? write_mixed(cache, keys, deadline) : write_in_place(cache, prepared, deadline);
    const bool children_ok = children.stop_and_reap();
    const CacheStats stats = cache.stats();
    INFO((workload == Workload::mixed ? "mixed" : "in place")
         << " writer: " << w.inserts << " inserts, " << w.refused << " refused, " << w.erases << " erases, " << w.clears
         << " clears; " << stats.evictions << " evictions, " << stats.displaced << " displaced");
    INFO("readers: " << results->lookups.load() << " lookups, " << results->hits.load() << " hits");
    CHECK(w.refused == 0);
    CHECK(children_ok);
    CHECK(results->setup_failed.load() == 0);
    CHECK(results->bad_checksum.load() == 0);
    CHECK(results->bad_key.load() == 0);
    CHECK(results->bad_decode.load() == 0);
    // The run exercised what it claims to: the log wrapped, readers hit (at
    // least in their last round, every key present).
    CHECK(stats.inserts * kEntry > kMinArenaLaps * cache.capacity());
    CHECK(results->hits.load() > 0);
    if (workload == Workload::mixed) CHECK(stats.evictions >= kMinArenaLaps * 20);
    results->~Results();
}

}  // namespace

TEST_CASE("cache stress: readers in other processes never accept a torn value (1.5 s)", "[cache][cache-stress]") {
    run_stress(Workload::mixed, 0.75, 3);
    run_stress(Workload::in_place, 0.75, 3);
}

TEST_CASE("cache stress: longer run (REGIOND_STRESS_SECONDS)", "[.stress][cache]") {
    const double seconds = seconds_from_env(2.0);
    run_stress(Workload::mixed, seconds / 2, 4);
    run_stress(Workload::in_place, seconds / 2, 4);
}
