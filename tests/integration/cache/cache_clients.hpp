// What the client processes of the cache tests do: forked children that use
// libregiond as an application would (cached_read, write with keys) and
// report one line each to the parent, which makes the verdicts. The children
// never touch Catch2.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace regiond::testing::cache {

/// Shared with forked children (an anonymous shared mapping made before the
/// fork).
struct Shared {
    std::atomic<int> stop{0};   ///< the parent: stop looping
    std::atomic<int> ready{0};  ///< callers at the barrier
    std::atomic<int> go{0};     ///< the parent: release the barrier
    std::atomic<long> answers{0};
    std::atomic<long> writes{0};
};
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<long>::is_always_lock_free);

/// Owns one Shared in a MAP_SHARED anonymous mapping.
class SharedBlock {
public:
    SharedBlock();
    ~SharedBlock();
    SharedBlock(const SharedBlock&) = delete;
    SharedBlock& operator=(const SharedBlock&) = delete;
    Shared* operator->() const { return shared_; }
    Shared* get() const { return shared_; }

private:
    Shared* shared_ = nullptr;
};

/// The value of `key` at `version`: "KEY|VERSION|" and a filler derived from
/// both, of a length (60 .. ~12,000 bytes) that varies with both, so that
/// values of different keys and versions differ everywhere and a torn copy
/// (parts of two entries) cannot pass for either.
std::string stress_value(const std::string& key, long version);
/// Checks answers against stress_value: "" if `v` and `md5` are a value
/// stress_value made for `key` and its md5 (as PostgreSQL computed it), else
/// what is wrong. Remembers each (key, version)'s value and md5, so that a
/// check costs a comparison and readers spend their time reading.
class StressChecker {
public:
    std::string check(const std::string& key, const std::string& v, const std::string& md5);

private:
    std::unordered_map<std::string, std::pair<std::string, std::string>> known_;  ///< "key|version|" -> value, md5
};

/// Answers of a reader, by where they came from, and what was wrong.
struct ReadTally {
    long answers = 0;
    long local = 0;  ///< cache:local
    long redis = 0;  ///< cache:redis
    long database = 0;
    long bad = 0;  ///< a value that failed its check
    long errors = 0;
    std::string problem;  ///< the first thing wrong
    std::string line() const;
    static ReadTally parse(const std::string& line);  ///< throws on a line that is not a tally
    ReadTally& operator+=(const ReadTally& other);
    std::string summary() const;
};

/// cached_read of keys among `keys` through the daemon at `socket` until
/// shared->stop, at random or (`cyclic`) one after the other, checking every
/// answer's value against its md5 and its structure (StressChecker).
ReadTally stress_reader(const std::string& socket, const std::vector<std::string>& keys, bool cyclic, unsigned seed,
                        Shared* shared);
/// Writes new versions of random keys among `keys` (v = stress_value, the key
/// invalidated) until shared->stop; versions start at `first_version`.
ReadTally stress_writer(const std::string& socket, const std::vector<std::string>& keys, long first_version,
                        unsigned seed, Shared* shared);

/// `threads` threads sharing one client, each waits at the barrier (counts
/// itself in shared->ready, spins until shared->go), then makes one
/// cached_read of (key, sql, [key]). One line per thread:
/// ok|error, served_by, first value, error text; "\n"-separated.
std::string barrier_reads(const std::string& socket, int threads, const std::string& key, const std::string& sql,
                          Shared* shared);

/// One cached_read in this process; "\x1f"-separated: ok|error, served_by,
/// route_reason, first value, error, and CLOCK_MONOTONIC ns at the call's start
/// and end.
std::string one_cached_read(const std::string& socket, const std::string& key, const std::string& sql,
                            const std::vector<std::string>& params);

struct OneCached {
    bool ok = false;
    std::string served_by, route_reason, value, error;
    std::uint64_t started_ns = 0, ended_ns = 0;
    static OneCached parse(const std::string& line);
    std::string describe() const;
};

/// CLOCK_MONOTONIC in ns (comparable between processes on one host).
std::uint64_t monotonic_ns();

/// `reads` cached_reads of (key, sql, [key]) through `socket`: every answer's
/// first value must be `want`. A ReadTally line.
ReadTally expect_reads(const std::string& socket, const std::string& key, const std::string& sql,
                       const std::string& want, int reads);

}  // namespace regiond::testing::cache
