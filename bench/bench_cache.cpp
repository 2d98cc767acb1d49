// The hot cache, in one process (no daemon, no libclient): what a hit costs
// before libclient adds its part. A 64 MiB cache (the default cache.memory)
// holding 10,000 small values; lookups through a read-only StateView.
//
//   cache_lookup_hit_hot          CacheReader::lookup of a 1-row, 3-column value,
//                                 the same key every time (its lines in the CPU cache)
//   cache_lookup_hit              the same, striding over all 10,000 keys (the slot
//                                 and the entry come from memory: cache and TLB misses)
//   cache_lookup_hit_and_decode   the same, then parse + ResponseDecoder into a
//                                 shm::Response with served_by/token/route_reason set
//   cache_lookup_miss_absent      a key that is not there
//   cache_lookup_miss_other_query the key is there, the SQL differs
//   cache_insert_replace          CacheWriter::insert replacing a key's value
//
// Run: build/bench/bench_cache --benchmark_min_time=0.5
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "shm/cache_reader.hpp"
#include "shm/cache_value.hpp"
#include "shm/codec.hpp"
#include "shm/state_segment.hpp"

using namespace regiond::shm;

namespace {

constexpr int kKeys = 10000;
const char* const kSql = "SELECT id, email, created_at FROM users WHERE id = $1";

std::string key_of(int i) {
    return "user:" + std::to_string(100000 + i);
}

// One row, three columns, as the cache stores it.
std::vector<std::byte> small_value(const std::string& id) {
    static const std::string_view columns[] = {"id", "email", "created_at"};
    ResponseEncoder enc(4096);
    ResponseHeadView head;
    head.columns = columns;
    enc.begin(head);
    const std::string email = "user" + id + "@example.com";
    const std::optional<std::string_view> row[] = {std::string_view(id), std::string_view(email),
                                                   std::string_view("2024-05-01 12:00:00+00")};
    enc.add_row(row);
    const auto chunk = enc.take_chunk(true);
    const std::vector<std::byte> response(chunk.begin(), chunk.end());
    const std::optional<std::string_view> params[] = {std::string_view(id)};
    const std::vector<std::byte> query = encode_cache_query(kSql, params);
    CacheValueView v;
    v.floor_lsn = 0x16B3700;
    v.token_lsn = 0x16B3748;
    v.system_id = 7312345678901234567ull;
    v.query = query;
    v.response = response;
    return encode_cache_value(v);
}

struct Fixture {
    Fixture() {
        StateSegmentOptions o;
        o.name = "/regiond-bench-cache-" + std::to_string(::getpid());
        o.cache_bytes = std::uint64_t{64} << 20;
        o.replace_existing = true;
        auto s = StateSegment::create(o);
        if (!s) std::abort();
        segment.emplace(std::move(*s));
        for (int i = 0; i < kKeys; ++i) {
            ids.push_back(std::to_string(100000 + i));
            keys.push_back(key_of(i));
            if (!segment->cache().insert(keys.back(), small_value(ids.back()), ~std::uint64_t{0})) std::abort();
        }
        auto v = StateView::open(o.name);
        if (!v) std::abort();
        view.emplace(std::move(*v));
        reader = view->cache_reader();
    }
    std::optional<StateSegment> segment;
    std::optional<StateView> view;
    CacheReader reader;
    std::vector<std::string> ids, keys;
};

Fixture& fixture() {
    static Fixture f;
    return f;
}

void cache_lookup_hit(benchmark::State& state) {
    Fixture& f = fixture();
    std::vector<std::byte> out;
    std::size_t i = 0, hits = 0;
    for (auto _ : state) {
        const std::optional<std::string_view> params[] = {std::string_view(f.ids[i])};
        hits += f.reader.lookup(f.keys[i], kSql, params, monotonic_now_ns(), out);
        i = (i + 7919) % kKeys;  // stride over the table: not one hot cache line
        benchmark::DoNotOptimize(out.data());
    }
    if (hits != static_cast<std::size_t>(state.iterations())) state.SkipWithError("a lookup missed");
    state.counters["value_bytes"] = static_cast<double>(out.size());
}

void cache_lookup_hit_hot(benchmark::State& state) {
    Fixture& f = fixture();
    std::vector<std::byte> out;
    const std::optional<std::string_view> params[] = {std::string_view(f.ids[42])};
    std::size_t hits = 0;
    for (auto _ : state) {
        hits += f.reader.lookup(f.keys[42], kSql, params, monotonic_now_ns(), out);
        benchmark::DoNotOptimize(out.data());
    }
    if (hits != static_cast<std::size_t>(state.iterations())) state.SkipWithError("a lookup missed");
}

void cache_lookup_hit_and_decode(benchmark::State& state) {
    Fixture& f = fixture();
    std::vector<std::byte> out;
    ResponseDecoder decoder;
    std::size_t i = 0;
    for (auto _ : state) {
        const std::optional<std::string_view> params[] = {std::string_view(f.ids[i])};
        if (!f.reader.lookup(f.keys[i], kSql, params, monotonic_now_ns(), out)) state.SkipWithError("miss");
        const auto v = parse_cache_value(out);
        decoder.reset();
        if (!v || decoder.feed(v->response) != CodecError::ok) state.SkipWithError("decode");
        Response r = decoder.take();
        r.served_by = "cache:local";
        r.token = "7312345678901234567/0/16B3748";
        r.route_reason = "hot cache on this host";
        benchmark::DoNotOptimize(r.nrows());
        i = (i + 7919) % kKeys;
    }
}

void cache_lookup_miss_absent(benchmark::State& state) {
    Fixture& f = fixture();
    std::vector<std::byte> out;
    const std::optional<std::string_view> params[] = {std::string_view("1")};
    for (auto _ : state)
        benchmark::DoNotOptimize(f.reader.lookup("user:absent", kSql, params, monotonic_now_ns(), out));
}

void cache_lookup_miss_other_query(benchmark::State& state) {
    Fixture& f = fixture();
    std::vector<std::byte> out;
    const std::optional<std::string_view> params[] = {std::string_view(f.ids[0])};
    for (auto _ : state)
        benchmark::DoNotOptimize(
            f.reader.lookup(f.keys[0], "SELECT 1 WHERE $1 IS NOT NULL", params, monotonic_now_ns(), out));
}

void cache_insert_replace(benchmark::State& state) {
    Fixture& f = fixture();
    const std::vector<std::byte> value = small_value(f.ids[1]);
    for (auto _ : state) benchmark::DoNotOptimize(f.segment->cache().insert(f.keys[1], value, ~std::uint64_t{0}));
}

}  // namespace

BENCHMARK(cache_lookup_hit_hot);
BENCHMARK(cache_lookup_hit);
BENCHMARK(cache_lookup_hit_and_decode);
BENCHMARK(cache_lookup_miss_absent);
BENCHMARK(cache_lookup_miss_other_query);
BENCHMARK(cache_insert_replace);
BENCHMARK_MAIN();
