// Word-by-word access to the cache arena (an array of SharedU64 in the state
// segment). The writer stores and readers load every arena word as a relaxed
// atomic: a reader copying an entry while the writer overwrites it is then not a
// data race (which would be undefined behaviour even if the copy is thrown away),
// only a torn copy that the reader's validation rejects (cache_layout.hpp). The
// ordering comes from the fences around these loops, not from the accesses
// themselves. Relaxed 8-byte loads and stores are plain moves on x86-64 and
// aarch64, so this costs what memcpy costs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "shm/layout.hpp"

namespace regiond::shm {

/// Stores `bytes` into words[0..], zero-padding the last word (relaxed stores).
inline void store_arena_words(SharedU64* words, std::span<const std::byte> bytes) noexcept {
    const std::size_t full = bytes.size() / 8;
    for (std::size_t i = 0; i < full; ++i) {
        std::uint64_t w;
        std::memcpy(&w, bytes.data() + i * 8, 8);
        words[i].store(w, std::memory_order_relaxed);
    }
    if (const std::size_t rest = bytes.size() % 8; rest != 0) {
        std::uint64_t w = 0;
        std::memcpy(&w, bytes.data() + full * 8, rest);
        words[full].store(w, std::memory_order_relaxed);
    }
}

/// Loads `n` words (relaxed) into `out` (n * 8 bytes).
inline void load_arena_words(const SharedU64* words, std::size_t n, std::byte* out) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
        const std::uint64_t w = words[i].load(std::memory_order_relaxed);
        std::memcpy(out + i * 8, &w, 8);
    }
}

/// Compares `key` with the zero-padded key stored in words[0..] (relaxed loads).
/// The answer is only meaningful once the copy has been validated.
inline bool arena_words_equal(const SharedU64* words, std::string_view key) noexcept {
    const std::size_t full = key.size() / 8;
    bool equal = true;
    for (std::size_t i = 0; i < full; ++i) {
        std::uint64_t expected;
        std::memcpy(&expected, key.data() + i * 8, 8);
        equal &= words[i].load(std::memory_order_relaxed) == expected;
    }
    if (const std::size_t rest = key.size() % 8; rest != 0) {
        std::uint64_t expected = 0;
        std::memcpy(&expected, key.data() + full * 8, rest);
        equal &= words[full].load(std::memory_order_relaxed) == expected;
    }
    return equal;
}

}  // namespace regiond::shm
