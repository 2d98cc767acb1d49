#include "shm/cache_writer.hpp"

#include <algorithm>

#include <atomic>
#include <cstring>
#include <limits>
#include <new>

#include "shm/cache_arena.hpp"
#include "shm/cache_value.hpp"

namespace regiond::shm {

namespace {

// Single writer: a load and a store (no locked read-modify-write) suffice.
// Relaxed: see CacheHeader, line 2.
void bump(SharedU64& counter, std::uint64_t delta = 1) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
}
void drop(SharedU64& counter, std::uint64_t delta = 1) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) - delta, std::memory_order_relaxed);
}

}  // namespace

void cache_initialize(std::span<std::byte> section, std::uint64_t seed) noexcept {
    CacheHeader* h = construct_shared<CacheHeader>(section.data());
    h->slot_size = sizeof(CacheSlot);
    h->probe_limit = kCacheProbeLimit;
    h->data_offset = sizeof(CacheHeader);
    h->data_length = section.size() - sizeof(CacheHeader);
    h->seed = seed;
    const CacheGeometry g = cache_geometry(h->data_length);
    if (!g.enabled) return;  // cache_format 0: no cache
    h->index_offset = g.index_offset;
    h->index_slots = g.index_slots;
    h->arena_offset = g.arena_offset;
    h->arena_capacity = g.arena_capacity;
    // The index slots and the arena words are NOT constructed one by one: the
    // section is fresh from ftruncate (zero-filled by the kernel), zero bytes are
    // the representation of a zero SharedU64 (lock-free, same size as u64:
    // layout.hpp), and constructing them would touch every page of cache.memory
    // at each daemon start (0.35-0.7 s per 64 MiB measured on the 2-core test
    // machine: page faults) for memory the cache may never fill. The writer,
    // like every reader in other processes, reaches them through std::launder
    // (shared_at), the established practice for shared memory (layout.hpp).
    h->cache_format = kCacheFormat;
}

CacheWriter::CacheWriter(std::span<std::byte> section) noexcept {
    header_ = shared_at<CacheHeader>(section.data());
    if (header_->cache_format != kCacheFormat) return;  // no cache
    slots_ = shared_at<CacheSlot>(section.data() + header_->index_offset);
    arena_ = shared_at<SharedU64>(section.data() + header_->arena_offset);
    capacity_ = header_->arena_capacity;
    index_slots_ = header_->index_slots;
    seed_ = header_->seed;
    // Our own values (0 on a fresh section); never read back afterwards.
    head_ = header_->head.load(std::memory_order_relaxed);
    tail_ = header_->reclaimed.load(std::memory_order_relaxed);
}

CacheSlotData CacheWriter::slot_data(std::uint32_t slot) const noexcept {
    // Relaxed: we are the only writer, so our own loads see our last stores.
    std::uint64_t words[CacheSlot::kWords];
    for (std::size_t i = 0; i < CacheSlot::kWords; ++i)
        words[i] = slots_[slot].words[i].load(std::memory_order_relaxed);
    CacheSlotData d;
    std::memcpy(&d, words, sizeof d);
    return d;
}

CacheEntryHeader CacheWriter::entry_header(std::uint64_t pos) const noexcept {
    std::byte bytes[sizeof(CacheEntryHeader)];
    load_arena_words(word_at(pos), kCacheEntryHeaderWords, bytes);
    CacheEntryHeader e;
    std::memcpy(&e, bytes, sizeof e);
    return e;
}

std::int64_t CacheWriter::find(std::uint64_t hash, std::string_view key) const noexcept {
    for (std::uint32_t k = 0; k < kCacheProbeLimit; ++k) {
        const std::uint32_t i = static_cast<std::uint32_t>((hash + k) & (index_slots_ - 1));
        const CacheSlotData d = slot_data(i);
        if (d.value_len != 0 && d.hash == hash && d.key_len == key.size() &&
            arena_words_equal(word_at(d.pos) + kCacheEntryHeaderWords, key))
            return i;
    }
    return -1;
}

void CacheWriter::remove(std::uint32_t slot, const CacheSlotData& d) noexcept {
    // Seqlocked write of the empty slot: a reader that copied the old entry sees
    // the sequence change and drops its copy.
    slots_[slot].write(CacheSlotData{});
    drop(header_->entries);
    drop(header_->bytes_used, cache_entry_bytes(d.key_len, d.value_len));
}

void CacheWriter::reclaim(std::uint64_t target, std::uint64_t next_start, std::uint32_t skip_slot) noexcept {
    // Invariant: tail_ is the position of the oldest entry or gap in the log
    // (tail_ <= head_); every live entry lies in [tail_, head_).
    while (tail_ < target && tail_ < head_) {
        const std::uint64_t to_end = capacity_ - tail_ % capacity_;
        // An entry never starts where its header does not fit (every entry is
        // larger than a header), so such a rest of the arena is always a gap.
        if (to_end < sizeof(CacheEntryHeader)) {
            tail_ += to_end;
            continue;
        }
        const CacheEntryHeader e = entry_header(tail_);
        if (e.key_len == kCacheGapMarker) {
            tail_ += to_end;
            continue;
        }
        // The entry is live iff its slot still points at it (erase, clear,
        // replacement and displacement leave dead entries behind in the log).
        if (e.slot != skip_slot && e.slot < index_slots_) {
            const CacheSlotData d = slot_data(e.slot);
            if (d.value_len != 0 && d.pos == tail_) {
                remove(e.slot, d);
                bump(header_->evictions);
            }
        }
        tail_ += cache_entry_bytes(e.key_len, e.value_len);
    }
    // An empty log: nothing lives before the next entry (only, perhaps, the gap
    // in front of it), so the tail moves there and the next walk starts at an
    // entry boundary.
    if (tail_ >= head_) tail_ = next_start;
    header_->reclaimed.store(tail_, std::memory_order_relaxed);
    // SYNC POINT: release fence between the reclaimed store above and every arena
    // store that follows (the overwrite). Pairs with the reader's acquire fence
    // between its arena loads and its load of reclaimed (CacheReader): a reader
    // that copied any word stored below sees reclaimed >= tail_ > its entry's pos.
    std::atomic_thread_fence(std::memory_order_release);
}

bool CacheWriter::insert(std::string_view key, std::span<const std::byte> value_blob,
                         std::uint64_t expires_mono_ns) noexcept {
    if (!enabled() || key.size() > max_key_bytes() || value_blob.empty() || value_blob.size() > max_value_bytes())
        return false;
    if (!parse_cache_value(value_blob)) return false;
    const std::uint64_t hash = cache_key_hash(seed_, key);
    const std::uint64_t need = cache_entry_bytes(key.size(), value_blob.size());

    // 1. The slot: the key's own, else an empty one, else the window's oldest.
    std::int64_t existing = -1, empty = -1, oldest = -1;
    std::uint64_t oldest_pos = std::numeric_limits<std::uint64_t>::max();
    CacheSlotData target_data{};
    for (std::uint32_t k = 0; k < kCacheProbeLimit && existing < 0; ++k) {
        const std::uint32_t i = static_cast<std::uint32_t>((hash + k) & (index_slots_ - 1));
        const CacheSlotData d = slot_data(i);
        if (d.value_len == 0) {
            if (empty < 0) empty = i;
        } else if (d.hash == hash && d.key_len == key.size() &&
                   arena_words_equal(word_at(d.pos) + kCacheEntryHeaderWords, key)) {
            existing = i;
            target_data = d;
        } else if (d.pos < oldest_pos) {
            oldest = i;
            oldest_pos = d.pos;
        }
    }
    const std::int64_t chosen = existing >= 0 ? existing : empty >= 0 ? empty : oldest;
    const auto target = static_cast<std::uint32_t>(chosen);
    if (existing < 0 && empty < 0) {
        target_data = slot_data(target);
        bump(header_->displaced);
    }
    if (target_data.value_len != 0) {
        // The old entry stays readable until the slot is rewritten below (a
        // replaced value is never absent in between); only the accounting goes.
        drop(header_->entries);
        drop(header_->bytes_used, cache_entry_bytes(target_data.key_len, target_data.value_len));
    }

    // 2. Where the entry goes: at head_, or at the start of the arena when it
    // does not fit before the end (the rest becomes a gap).
    const std::uint64_t to_end = capacity_ - head_ % capacity_;
    const std::uint64_t start = to_end < need ? head_ + to_end : head_;
    const std::uint64_t end = start + need;

    // 3. Evict what the append overwrites: the physical bytes of logical
    // positions below end - capacity (FIFO), then publish reclaimed.
    reclaim(end > capacity_ ? end - capacity_ : 0, start, target);

    // 4. The bytes: a gap marker if the arena's rest holds one, then the entry.
    if (start != head_ && to_end >= sizeof(CacheEntryHeader)) {
        CacheEntryHeader gap{};
        gap.key_len = kCacheGapMarker;
        store_arena_words(word_at(head_), std::as_bytes(std::span(&gap, 1)));
    }
    CacheEntryHeader entry{};
    entry.expires_mono_ns = expires_mono_ns;
    entry.key_len = static_cast<std::uint32_t>(key.size());
    entry.value_len = static_cast<std::uint32_t>(value_blob.size());
    entry.slot = target;
    SharedU64* words = word_at(start);
    store_arena_words(words, std::as_bytes(std::span(&entry, 1)));
    words += kCacheEntryHeaderWords;
    store_arena_words(words, std::as_bytes(std::span(key.data(), key.size())));
    words += align_up(key.size(), 8) / 8;
    store_arena_words(words, value_blob);

    // 5. Publish. SYNC POINT: Seqlock::write ends with a release store of the
    // slot's seq, pairing with the reader's acquire load of it: a reader that sees
    // the new seq sees every arena word stored above.
    slots_[target].write(CacheSlotData{hash, start, entry.key_len, entry.value_len});
    head_ = end;
    header_->head.store(head_, std::memory_order_relaxed);  // relaxed: statistics only
    bump(header_->entries);
    bump(header_->bytes_used, need);
    bump(header_->inserts);
    return true;
}

bool CacheWriter::erase(std::string_view key) noexcept {
    if (!enabled() || key.size() > max_key_bytes()) return false;
    const std::int64_t i = find(cache_key_hash(seed_, key), key);
    if (i < 0) return false;
    const auto slot = static_cast<std::uint32_t>(i);
    remove(slot, slot_data(slot));
    bump(header_->erased);
    return true;
}

void CacheWriter::clear() noexcept {
    if (!enabled()) return;
    for (std::uint32_t i = 0; i < index_slots_; ++i) {
        const CacheSlotData d = slot_data(i);
        if (d.value_len != 0) remove(i, d);
    }
    // The log is empty: nothing below head_ is live. Relaxed, like every
    // reclaimed store; the fence before the next overwrite is in reclaim().
    tail_ = head_;
    header_->reclaimed.store(tail_, std::memory_order_relaxed);
}

std::uint64_t CacheWriter::expire(std::uint64_t now_mono_ns) noexcept {
    return expire_some(now_mono_ns, index_slots_);
}

std::uint64_t CacheWriter::expire_some(std::uint64_t now_mono_ns, std::uint32_t max_slots) noexcept {
    if (!enabled()) return 0;
    std::uint64_t removed = 0;
    const std::uint32_t n = std::min(max_slots, index_slots_);
    for (std::uint32_t k = 0; k < n; ++k) {
        const std::uint32_t i = expire_cursor_;
        expire_cursor_ = expire_cursor_ + 1 == index_slots_ ? 0 : expire_cursor_ + 1;
        const CacheSlotData d = slot_data(i);
        if (d.value_len == 0 || entry_header(d.pos).expires_mono_ns > now_mono_ns) continue;
        remove(i, d);
        ++removed;
    }
    bump(header_->expired, removed);
    return removed;
}

CacheStats CacheWriter::stats() const noexcept {
    if (header_ == nullptr) return {};
    return load_cache_stats(*header_, capacity_, index_slots_);
}

}  // namespace regiond::shm
