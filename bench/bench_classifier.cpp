// Statement classifier: the cost of a cache miss (libpg_query parse + the tree
// walk + the scanner when the text has $n) for a typical one-table SELECT and a
// three-statement write, and of a cache hit (what a repeated statement costs on
// the loop thread).
#include <benchmark/benchmark.h>

#include <string>

#include "daemon/pg/statement_classifier.hpp"

using regiond::daemon::pg::Operation;
using regiond::daemon::pg::StatementClassifier;

namespace {

const std::string kSelect = "select id, email, created_at from users where id = $1";
const std::string kWrite =
    "insert into orders (user_id, total) values ($1, $2);"
    "update users set order_count = order_count + 1 where id = $1;"
    "insert into audit (what, at) values ('order', now())";

void classify_select(benchmark::State& state) {
    for (auto _ : state) benchmark::DoNotOptimize(regiond::daemon::pg::classify(kSelect, Operation::read));
}
BENCHMARK(classify_select);

void classify_three_statement_write(benchmark::State& state) {
    for (auto _ : state) benchmark::DoNotOptimize(regiond::daemon::pg::classify(kWrite, Operation::write));
}
BENCHMARK(classify_three_statement_write);

void cache_hit_select(benchmark::State& state) {
    StatementClassifier cache;
    cache.classify(kSelect, Operation::read);
    for (auto _ : state) benchmark::DoNotOptimize(cache.classify(kSelect, Operation::read));
}
BENCHMARK(cache_hit_select);

// What large texts cost (not cached above 64 KiB): a 64 KiB multi-row INSERT,
// and a 64 KiB left-deep expression (the parser's worst case per byte).
void classify_64k_insert(benchmark::State& state) {
    std::string sql = "insert into t values (0, 'x')";
    while (sql.size() < (std::size_t{64} << 10)) sql += ", (1, 'abcdefghijklmnopqrstuvwxyz')";
    for (auto _ : state) benchmark::DoNotOptimize(regiond::daemon::pg::classify(sql, Operation::write));
}
BENCHMARK(classify_64k_insert)->Unit(benchmark::kMillisecond);

void classify_64k_deep_expression(benchmark::State& state) {
    std::string sql = "select 1";
    while (sql.size() < (std::size_t{64} << 10)) sql += "+1";
    for (auto _ : state) benchmark::DoNotOptimize(regiond::daemon::pg::classify(sql, Operation::read));
}
BENCHMARK(classify_64k_deep_expression)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
