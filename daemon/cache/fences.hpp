// Fences: what an invalidation forbids afterwards.
//
// An invalidation of key K at LSN L means "every copy of K read from a snapshot
// older than L is stale". Evicting the copies that exist is not enough: a read
// that ran on a lagging replica, or a Redis value set by a daemon that has not
// heard of the invalidation yet, could put the stale value back a moment later.
// So the daemon remembers L as K's fence, and a fill of K is admitted only when
//
//   * the value's floor LSN (a lower bound of the snapshot it was read at)
//     is >= K's fence and >= the global floor, and
//   * nothing that could have made it stale arrived while it was being read:
//     K's fence and the global floor are what they were when the fill's read
//     started, and the cache was not flushed since (epoch).
//
// The second rule covers what the first cannot see: an invalidation whose LSN
// is unknown (a write whose outcome is unknown, an admin flush), and the window
// where a primary read's floor is not yet comparable.
//
// Memory is bounded: past `max_keys` fences the oldest one is dropped and the
// global floor rises to its LSN, which refuses at least everything the dropped
// fence refused (and more: a fill from an older snapshot of any key), so
// dropping a fence can only cost misses, never a stale value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

namespace regiond::daemon::cache {

/// Taken when a fill's read starts; checked when its value would be stored.
struct FillStart {
    std::uint64_t key_version = 0;  ///< Fences::version(key) then
    std::uint64_t epoch = 0;        ///< Fences::epoch() then
};

class Fences {
public:
    /// At most `max_keys` fences holding at most `max_key_bytes` of keys (a
    /// write may carry 65,535 keys of any length: the bytes bound matters).
    explicit Fences(std::size_t max_keys = 1 << 20, std::size_t max_key_bytes = 64 << 20)
        : max_keys_(max_keys == 0 ? 1 : max_keys), max_key_bytes_(max_key_bytes) {}

    /// K was invalidated at `lsn` (0: LSN unknown; the key is still fenced
    /// against fills that started before now).
    void invalidate(std::string_view key, std::uint64_t lsn);
    /// Everything read before now is suspect (the hot cache was flushed, a
    /// subscription or the durable path lost its place): fills that started
    /// before refuse, and values older than `lsn` (if given) refuse forever.
    void invalidate_all(std::uint64_t lsn = 0);

    /// The fence of `key` (0: none) and the global floor.
    std::uint64_t fence(std::string_view key) const;
    std::uint64_t floor() const noexcept { return floor_; }
    /// The lowest snapshot a value of `key` may come from: max(fence, floor).
    std::uint64_t required_lsn(std::string_view key) const;

    FillStart start(std::string_view key) const;
    /// May a value of `key` read from a snapshot of at least `value_floor`,
    /// whose read started at `started`, be stored?
    bool admits(std::string_view key, const FillStart& started, std::uint64_t value_floor) const;
    /// May a value of `key` from elsewhere (Redis), tagged `value_floor`, be
    /// trusted now?
    bool admits_now(std::string_view key, std::uint64_t value_floor) const { return value_floor >= required_lsn(key); }

    std::uint64_t epoch() const noexcept { return epoch_; }
    std::size_t size() const noexcept { return by_key_.size(); }
    std::size_t max_keys() const noexcept { return max_keys_; }
    std::size_t key_bytes() const noexcept { return key_bytes_; }

private:
    struct Entry {
        std::uint64_t lsn = 0;
        std::uint64_t version = 0;  ///< bumped by every invalidation of the key
        std::list<std::string>::iterator age;
    };
    std::uint64_t version(std::string_view key) const;
    void drop_oldest();

    std::size_t max_keys_;
    std::size_t max_key_bytes_;
    std::size_t key_bytes_ = 0;
    std::unordered_map<std::string, Entry> by_key_;
    std::list<std::string> oldest_first_;  ///< keys by the time of their last invalidation
    std::uint64_t floor_ = 0;
    std::uint64_t epoch_ = 0;
    /// Dropped keys' versions are gone: a fill that started before a drop is
    /// refused by comparing the drop count too (folded into epoch_).
};

}  // namespace regiond::daemon::cache
