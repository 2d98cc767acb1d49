// Many clients at once (issue 9): readers in several processes never see a
// torn value while the daemon fills, evicts (a small arena that wraps) and
// invalidates; and 100 concurrent misses of one key cost the database one
// query, counted on the server.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../isolation/clients.hpp"
#include "cache_clients.hpp"
#include "cache_fixture.hpp"

using namespace std::chrono_literals;
using namespace regiond::testing;
using namespace regiond::testing::cache;
using Clock = std::chrono::steady_clock;

TEST_CASE(
    "torn values: 4 reader processes for 3 s while the daemon fills and evicts a 1 MiB hot cache that wraps "
    "and a writer invalidates; every answer matches its md5",
    "[cache][torn]") {
    ensure_schema();
    // 1 MiB (the smallest cache.memory): an arena of ~900 KiB. 40 hot keys
    // (~15 KiB each on average: ~600 KiB, they fit) read at random by three
    // processes, mostly hits copied out of the segment; 120 cold keys read
    // one after the other by a fourth, every read a miss and a fill, so the
    // log wraps many times a second and overwrites hot entries while readers
    // copy them (FIFO eviction); a writer invalidates keys of both.
    const Host eu(kEu, {{"memory", "\"1MiB\""}});
    wait_vouched(eu);
    REQUIRE(hot_cache(eu)["capacity_bytes"].num() <= 1024 * 1024);

    const std::string base = unique_key("torn");
    std::vector<std::string> hot, cold, keys;
    {
        std::ostringstream insert;
        insert << "insert into " << kTable << " (k, v) values ";
        for (int i = 0; i < 160; ++i) {
            keys.push_back(base + ":" + std::to_string(i));
            (i < 40 ? hot : cold).push_back(keys.back());
            insert << (i == 0 ? "" : ", ") << "('" << keys.back() << "', '" << stress_value(keys.back(), 0) << "')";
        }
        consistency::superuser("us-east-1").exec(insert.str());
        const std::uint64_t lsn = consistency::primary_lsn();
        consistency::wait_replayed(kEu, lsn);
    }

    const std::uint64_t evictions = eu.counter("cache_evictions");
    const std::uint64_t applied = eu.counter("invalidations_applied");
    const std::uint64_t fills = eu.counter("cache_fills");
    SharedBlock shared;
    constexpr int kReaders = 4;
    isolation::Children children(kReaders + 1, [&](int i) {
        if (i == kReaders) return stress_writer(eu.socket(), keys, 1, 77, shared.get()).line();
        if (i == kReaders - 1) return stress_reader(eu.socket(), cold, true, 0, shared.get()).line();
        return stress_reader(eu.socket(), hot, false, static_cast<unsigned>(1000 + i), shared.get()).line();
    });
    // A bounded run: the length of the stress, not a wait for something.
    const auto until = Clock::now() + 3s;
    while (Clock::now() < until && !children.done()) std::this_thread::sleep_for(50ms);
    shared->stop.store(1);
    const std::vector<std::string> lines = children.collect(60s);
    ReadTally readers, writer;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        INFO("child " << i << " reported: " << lines[i]);
        REQUIRE_NOTHROW((i == kReaders ? writer : readers) += ReadTally::parse(lines[i]));
    }
    const std::uint64_t evicted = eu.counter("cache_evictions") - evictions;
    const std::uint64_t invalidated = eu.counter("invalidations_applied") - applied;
    const std::uint64_t filled = eu.counter("cache_fills") - fills;
    std::printf(
        "[cache] torn values: readers %s; writer: %ld writes, %ld errors; daemon: %llu fills, %llu evictions, "
        "%llu invalidations applied\n",
        readers.summary().c_str(), writer.answers, writer.errors, static_cast<unsigned long long>(filled),
        static_cast<unsigned long long>(evicted), static_cast<unsigned long long>(invalidated));
    std::fflush(stdout);
    INFO("readers: " << readers.summary() << "\nwriter: " << writer.summary() << "\n" << log_tail(eu));
    CHECK(readers.bad == 0);
    CHECK(readers.errors == 0);
    CHECK(writer.errors == 0);
    // The stress did what it is for: reads in the segment, fills, a log that
    // wrapped, invalidations.
    CHECK(readers.local > 0);
    CHECK(filled > 0);
    CHECK(evicted > 0);
    CHECK(writer.answers > 0);
    CHECK(invalidated > 0);
}

TEST_CASE(
    "single-flight: 100 concurrent misses of one new key (10 processes x 10 threads, released together) "
    "cost exactly one database query; all get the same right answer",
    "[cache][single-flight]") {
    ensure_schema();
    const Host eu(kEu);
    wait_vouched(eu);
    // The function logs a line per execution on the server that runs it (the
    // eu-west-1 replica). The pg_sleep keeps the read open for a while, so
    // the 100 calls do arrive while it is in flight (coalesced), not after
    // its value is stored (hits).
    const std::string sql = std::string("select ") + kCountedFunction + "($1) from pg_sleep(0.3)";

    // The count is exact: after an answer, the line of the execution behind
    // it is in the log (the backend writes it before sending the result), and
    // a hit runs nothing.
    const std::string probe = unique_key("single-flight-probe");
    put_row(probe, "probe-value");
    const Answer miss = cached(eu, probe, sql, {probe});
    REQUIRE(miss.status == 0);
    REQUIRE(miss.first() == "probe-value");
    CHECK(server_log_count(kEu, "rgd-cache-counted " + probe) == 1);
    const Answer hit = cached(eu, probe, sql, {probe});
    REQUIRE(hit.served_by == "cache:local");
    CHECK(server_log_count(kEu, "rgd-cache-counted " + probe) == 1);

    const std::string key = unique_key("single-flight");
    put_row(key, "the-one-value");
    const std::uint64_t coalesced = eu.counter("cache_misses_coalesced");
    const std::uint64_t misses = eu.counter("cache_misses");

    SharedBlock shared;
    constexpr int kProcesses = 10;
    constexpr int kThreads = 10;
    isolation::Children children(kProcesses,
                                 [&](int) { return barrier_reads(eu.socket(), kThreads, key, sql, shared.get()); });
    {
        const bool ready = eventually([&] { return shared->ready.load() == kProcesses * kThreads; }, 30s);
        INFO(shared->ready.load() << " of " << kProcesses * kThreads << " callers at the barrier");
        REQUIRE(ready);
    }
    shared->go.store(1);
    const std::vector<std::string> lines = children.collect(60s);

    long ok = 0, right = 0, local = 0, redis = 0, database = 0;
    std::string first_wrong;
    for (const std::string& child : lines) {
        std::istringstream in(child);
        std::string line;
        while (std::getline(in, line)) {
            std::vector<std::string> f(1);
            for (char c : line) {
                if (c == '\x1f')
                    f.emplace_back();
                else
                    f.back() += c;
            }
            if (f.size() != 4) {
                if (first_wrong.empty()) first_wrong = "a report that is not a read: " + line;
                continue;
            }
            if (f[0] == "ok") ++ok;
            if (f[0] == "ok" && f[2] == "the-one-value")
                ++right;
            else if (first_wrong.empty())
                first_wrong = f[0] + " " + f[1] + ": " + f[2] + " " + f[3];
            (f[1] == "cache:local" ? local : f[1] == "cache:redis" ? redis : database)++;
        }
    }
    const std::size_t executions = server_log_count(kEu, "rgd-cache-counted " + key);
    const std::uint64_t joined = eu.counter("cache_misses_coalesced") - coalesced;
    const std::uint64_t missed = eu.counter("cache_misses") - misses;
    std::printf(
        "[cache] single-flight: %ld of 100 answered (%ld right): database %ld, cache:local %ld, cache:redis "
        "%ld; daemon: %llu misses, %llu coalesced; executions on the replica: %zu\n",
        ok, right, database, local, redis, static_cast<unsigned long long>(missed),
        static_cast<unsigned long long>(joined), executions);
    std::fflush(stdout);
    INFO("first wrong answer: " << first_wrong << "\n" << log_tail(eu));
    CHECK(ok == 100);
    CHECK(right == 100);
    CHECK(executions == 1);
    CHECK(missed == 1);
}
