#include "shm/cache_reader.hpp"

#include <atomic>
#include <cstring>

#include "shm/cache_arena.hpp"
#include "shm/cache_value.hpp"
#include "shm/wakeup.hpp"

namespace regiond::shm {

namespace {

// A reader's own bound on the probe window, whatever the header says.
constexpr std::uint32_t kMaxProbeLimit = 64;
constexpr std::uint64_t kMaxIndexSlots = std::uint64_t{1} << 30;

}  // namespace

CacheReader::CacheReader(std::span<const std::byte> section) noexcept {
    // Validated once: these fields are static (written before the segment's
    // layout_version was published, which the StateView acquired).
    if (section.size() < sizeof(CacheHeader) || reinterpret_cast<std::uintptr_t>(section.data()) % kCacheLine != 0)
        return;
    const CacheHeader* h = shared_at<CacheHeader>(section.data());
    const std::uint64_t size = section.size();
    const std::uint64_t slots = h->index_slots;
    const std::uint64_t capacity = h->arena_capacity;
    if (h->cache_format != kCacheFormat || h->slot_size != sizeof(CacheSlot)) return;
    if (!is_power_of_two(slots) || slots > kMaxIndexSlots) return;
    if (h->probe_limit == 0 || h->probe_limit > slots || h->probe_limit > kMaxProbeLimit) return;
    if (h->index_offset < sizeof(CacheHeader) || h->index_offset % kCacheLine != 0 ||
        !range_within(h->index_offset, slots * sizeof(CacheSlot), size))
        return;
    if (h->arena_offset < sizeof(CacheHeader) || h->arena_offset % kCacheLine != 0 || capacity < kCacheLine ||
        capacity % 8 != 0 || !range_within(h->arena_offset, capacity, size))
        return;
    if (h->index_offset + slots * sizeof(CacheSlot) > h->arena_offset && h->arena_offset + capacity > h->index_offset)
        return;  // overlapping
    header_ = h;
    slots_ = shared_at<CacheSlot>(section.data() + h->index_offset);
    arena_ = shared_at<SharedU64>(section.data() + h->arena_offset);
    capacity_ = capacity;
    index_slots_ = static_cast<std::uint32_t>(slots);
    probe_limit_ = h->probe_limit;
    seed_ = h->seed;
}

CacheReader::Read CacheReader::read_slot(const CacheSlot& slot, std::uint64_t hash, std::string_view key,
                                         std::vector<std::byte>& value, CacheEntryHeader& entry) const {
    // SYNC POINT: acquire pairs with the release store of seq that ends the
    // writer's Seqlock::write of this slot (CacheWriter::insert, step 5): seeing
    // that even value, we see every arena word of the entry it points to.
    const std::uint64_t s1 = slot.seq.load(std::memory_order_acquire);
    if (s1 & 1) return Read::torn;
    std::uint64_t words[CacheSlot::kWords];
    for (std::size_t i = 0; i < CacheSlot::kWords; ++i) words[i] = slot.words[i].load(std::memory_order_relaxed);
    CacheSlotData d;
    std::memcpy(&d, words, sizeof d);

    // Nothing below is trusted until the copy is validated; until then it only
    // has to stay inside the arena: every bound is checked before any access.
    const bool ours = d.value_len != 0 && d.hash == hash && d.key_len == key.size();
    const std::uint64_t phys = d.pos % capacity_;
    const std::uint64_t bytes = cache_entry_bytes(d.key_len, d.value_len);
    const bool in_bounds =
        d.pos % 8 == 0 && d.key_len <= max_key_bytes() && d.value_len <= max_value_bytes() && bytes <= capacity_ - phys;
    bool key_equal = false;
    if (ours && in_bounds) {
        const SharedU64* at = arena_ + phys / 8;
        std::byte header[sizeof(CacheEntryHeader)];
        load_arena_words(at, kCacheEntryHeaderWords, header);
        std::memcpy(&entry, header, sizeof entry);
        at += kCacheEntryHeaderWords;
        key_equal = arena_words_equal(at, key);
        at += align_up(d.key_len, 8) / 8;
        const std::size_t value_words = align_up(d.value_len, 8) / 8;
        value.resize(value_words * 8);
        load_arena_words(at, value_words, value.data());
    }
    // SYNC POINT: acquire fence. (a) Keeps the slot and arena loads above before
    // the seq re-read below; pairs with the release fence after the odd seq store
    // in the writer's Seqlock::write: if we read any word of a later write of
    // this slot, we read seq odd or newer, so s1 != s2. (b) Pairs with the
    // release fence after the writer's store of reclaimed (CacheWriter::reclaim):
    // if we copied any arena word that overwrites our entry, we see reclaimed
    // past its position.
    std::atomic_thread_fence(std::memory_order_acquire);
    const std::uint64_t s2 = slot.seq.load(std::memory_order_relaxed);
    const std::uint64_t reclaimed = header_->reclaimed.load(std::memory_order_relaxed);
    if (s1 != s2) return Read::torn;
    // The slot is stable. Another key's or empty: not here.
    if (!ours || !in_bounds) return Read::miss;
    // Overwritten while we copied (or about to be: the writer evicts the slot or
    // rewrites it next): try again, the slot will say where the key is now.
    if (d.pos < reclaimed) return Read::torn;
    // Validated: the copy is the entry the slot pointed to, whole.
    if (entry.key_len != d.key_len || entry.value_len != d.value_len || !key_equal) return Read::miss;
    value.resize(d.value_len);
    return Read::hit;
}

bool CacheReader::find(std::string_view key, std::vector<std::byte>& value, CacheEntryHeader& entry) const {
    if (!enabled() || key.size() > max_key_bytes()) return false;
    const std::uint64_t hash = cache_key_hash(seed_, key);
    for (std::uint32_t k = 0; k < probe_limit_; ++k) {
        const CacheSlot& slot = slots_[(hash + k) & (index_slots_ - 1)];
        // A filter only (relaxed, not validated): a slot whose hash differs now
        // is skipped; a stale match costs one read_slot.
        if (slot.words[kCacheSlotHashWord].load(std::memory_order_relaxed) != hash) continue;
        for (std::uint32_t attempt = 0; attempt < kCacheReadRetries; ++attempt) {
            const Read r = read_slot(slot, hash, key, value, entry);
            if (r == Read::hit) return true;
            if (r == Read::miss) break;
            cpu_relax();
        }
    }
    return false;
}

bool CacheReader::lookup(std::string_view key, std::string_view sql,
                         std::span<const std::optional<std::string_view>> params, std::uint64_t now_mono_ns,
                         std::vector<std::byte>& value_out) const {
    CacheEntryHeader entry{};
    if (!find(key, value_out, entry) || now_mono_ns >= entry.expires_mono_ns) return false;
    const std::optional<CacheValueView> value = parse_cache_value(value_out);
    return value && cache_query_matches(value->query, sql, params);
}

std::optional<CacheReader::Entry> CacheReader::peek(std::string_view key, std::vector<std::byte>* value_out) const {
    std::vector<std::byte> local;
    std::vector<std::byte>& value = value_out != nullptr ? *value_out : local;
    CacheEntryHeader entry{};
    if (!find(key, value, entry)) return std::nullopt;
    return Entry{entry.expires_mono_ns, value.size()};
}

CacheStats CacheReader::stats() const noexcept {
    if (header_ == nullptr) return {};
    return load_cache_stats(*header_, capacity_, index_slots_);
}

}  // namespace regiond::shm
