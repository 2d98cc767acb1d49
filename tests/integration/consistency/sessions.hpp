// What the client processes of the read_consistent tests do: forked children
// that use libregiond as an application would (write then read back with the
// token, carry a session's newest token between hosts) and tally what they
// saw into one line for the parent, which makes the verdicts. The children
// never touch Catch2.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace regiond::testing::consistency {

/// Shared with forked children (an anonymous shared mapping made before the
/// fork): the parent says stop, the children report progress.
struct Shared {
    std::atomic<int> stop{0};
    std::atomic<long> pairs{0};      ///< pairs or reads completed, all children
    std::atomic<long> local{0};      ///< of those, answered by the reader's own replica
    std::atomic<long> writes{0};     ///< the version writer's committed increments
    std::atomic<int> replay_old{0};  ///< the parent: from now on, only re-read with old tokens
    std::atomic<int> replaying{0};   ///< children that have switched to old tokens
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

/// Where answers went, from served_by and route_reason, and what was wrong.
struct Tally {
    long pairs = 0;         ///< write/read pairs, or reads of a session
    long stale = 0;         ///< a value older than the token promised (or than the session saw)
    long errors = 0;        ///< failed calls
    long token_behind = 0;  ///< a read's token older than the token it was asked for
    long local = 0;         ///< the reader's own replica, at once
    long waited = 0;        ///< the reader's own replica, after a wait
    long elsewhere = 0;     ///< a replica of another region
    long primary = 0;
    std::string local_reason, waited_reason, elsewhere_reason, primary_reason;  ///< first of each
    std::string problem;                                                        ///< first thing wrong

    void note(const std::string& served_by, const std::string& route_reason, const std::string& reader_region);
    void fail(long Tally::*what, const std::string& text);
    Tally& operator+=(const Tally& other);
    std::string line() const;
    static Tally parse(const std::string& line);  ///< throws on a child's non-tally line
    std::string summary() const;
};

/// `count` pairs (count < 0: until shared->stop): write `v = n` for this
/// child's key through the daemon at `writer_socket`, then read_consistent
/// with the write's token through `reader_socket`, and check the value is n.
Tally write_read_pairs(const std::string& writer_socket, const std::string& reader_socket,
                       const std::string& reader_region, const std::string& key, long count, Shared* shared);

/// Pairs as above until shared->replay_old, keeping each pair's (value,
/// token); then, until shared->stop, read_consistent with those old tokens
/// again, newest first and round again: each must see at least the value its
/// token's write left (values only grow). Nothing is written meanwhile, so
/// the daemon learns where the replica is only from its own polls.
Tally old_token_reads(const std::string& socket, const std::string& region, const std::string& key, Shared* shared);

/// One session of `reads` read_consistent calls of `key`'s version,
/// alternating between the two hosts, always with the newest token the session
/// has seen (rgd_token_cmp); a version lower than one seen before is stale.
Tally monotonic_session(const std::string& socket_a, const std::string& region_a, const std::string& socket_b,
                        const std::string& region_b, const std::string& key, long reads, Shared* shared);

/// Increments `key`'s version through the daemon until shared->stop.
Tally version_writer(const std::string& socket, const std::string& key, Shared* shared);

/// One read_consistent in this process with a timeout; "\x1f"-separated:
/// ok|error, served_by, route_reason, first value, error text, elapsed ms,
/// rgd_token_cmp(token, token) (-2 for a token it cannot compare).
std::string one_read_consistent(const std::string& socket, const std::string& token, const std::string& sql,
                                const std::string& param, unsigned timeout_ms);

struct OneRead {
    bool ok = false;
    std::string served_by, route_reason, value, error;
    double ms = 0;
    int self_cmp = 0;
    static OneRead parse(const std::string& line);
};

}  // namespace regiond::testing::consistency
