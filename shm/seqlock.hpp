// Seqlock: one writer (the daemon), any number of readers in other processes that
// map the memory read-only. Readers never write anything.
//
// Writer:  seq = s+1 (odd: write in progress); release fence; store the data words
//          (relaxed); seq = s+2 (release).
// Reader:  s1 = seq (acquire); if odd, retry; load the data words (relaxed);
//          acquire fence; s2 = seq (relaxed); success iff s1 == s2.
//
// Why the data is an array of std::atomic<uint64_t> accessed with relaxed loads
// and stores instead of a plain T copied with memcpy: a reader copying while the
// writer writes is a data race, which is undefined behaviour in C++ even if the
// result is thrown away. Relaxed atomic word accesses make the concurrent access
// well-defined; the fences give the ordering (H.-J. Boehm, "Can seqlocks get along
// with programming language memory models?", 2012; rigtorp/Seqlock):
//  * the writer's release fence after the odd store orders that store before the
//    data stores: a reader that sees any new data word and then (after its acquire
//    fence) re-reads seq sees at least the odd value, so s1 != s2;
//  * the reader's acquire fence before the second seq load orders the data loads
//    before it (loads are not moved below the fence);
//  * the writer's final release store pairs with the reader's first acquire load:
//    a reader that sees the even value s+2 sees all the data of that write.
// Relaxed word copies cost the same as memcpy on x86-64/aarch64 (plain moves).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "shm/layout.hpp"
#include "shm/wakeup.hpp"

namespace regiond::shm {

/// Default reader retry budget: enough to ride out several concurrent writes
/// (a write of a few hundred bytes takes well under a microsecond), bounded so a
/// reader never hangs on a writer that died mid-write (odd forever).
inline constexpr std::uint32_t kSeqlockDefaultRetries = 1000;

/// A seqlocked T stored in shared memory. T must be trivially copyable (a shared
/// POD following layout.hpp). sizeof(Seqlock<T>) = 8 + sizeof(T) rounded up to 8.
template <class T>
struct Seqlock {
    static_assert(std::is_trivially_copyable_v<T>, "seqlocked data is copied word by word");
    static constexpr std::size_t kWords = (sizeof(T) + 7) / 8;

    /// Even: stable. Odd: a write is in progress. Starts at 0 (zero-filled memory).
    SharedU64 seq;
    std::array<SharedU64, kWords> words;

    /// Writer only (single writer; callers serialise). Never blocks.
    void write(const T& value) noexcept {
        std::uint64_t buffer[kWords] = {};
        std::memcpy(buffer, &value, sizeof(T));
        const std::uint64_t s = seq.load(std::memory_order_relaxed);  // only we write it
        seq.store(s + 1, std::memory_order_relaxed);
        // SYNC POINT: release fence orders the odd store above before the data
        // stores below; pairs with the reader's acquire fence before its re-read
        // of seq (read()).
        std::atomic_thread_fence(std::memory_order_release);
        for (std::size_t i = 0; i < kWords; ++i) words[i].store(buffer[i], std::memory_order_relaxed);
        // SYNC POINT: release pairs with the reader's acquire load of seq (s1): a
        // reader that sees s + 2 sees every word stored above.
        seq.store(s + 2, std::memory_order_release);
    }

    /// Any process, read-only memory is fine (only loads). Returns false if no
    /// consistent snapshot was obtained within `max_retries` attempts (a writer is
    /// writing continuously, or died in the middle of a write); `out` is then
    /// unspecified.
    bool read(T& out, std::uint32_t max_retries = kSeqlockDefaultRetries) const noexcept {
        std::uint64_t buffer[kWords];
        for (std::uint32_t attempt = 0; attempt <= max_retries; ++attempt) {
            // SYNC POINT: acquire pairs with the writer's final release store.
            const std::uint64_t s1 = seq.load(std::memory_order_acquire);
            if (s1 & 1) {
                cpu_relax();
                continue;
            }
            for (std::size_t i = 0; i < kWords; ++i) buffer[i] = words[i].load(std::memory_order_relaxed);
            // SYNC POINT: acquire fence keeps the data loads above before the seq
            // re-read below; pairs with the writer's release fence after its odd store.
            std::atomic_thread_fence(std::memory_order_acquire);
            const std::uint64_t s2 = seq.load(std::memory_order_relaxed);
            if (s1 == s2) {
                std::memcpy(&out, buffer, sizeof(T));
                return true;
            }
            cpu_relax();
        }
        return false;
    }

    /// The sequence number (even when stable); readers may use it to see whether
    /// anything changed since their last read.
    std::uint64_t version() const noexcept { return seq.load(std::memory_order_acquire); }
};

}  // namespace regiond::shm
