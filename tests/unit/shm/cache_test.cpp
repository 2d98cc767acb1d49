// The hot cache: CacheWriter (through StateSegment) and CacheReader (through a
// read-only StateView): hits, misses, expiry, erase, clear, FIFO eviction,
// replacement, displacement, refusals, the seed, and a reader fed garbage.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cache_test_helpers.hpp"
#include "shm/cache_arena.hpp"
#include "shm/cache_reader.hpp"
#include "shm/cache_writer.hpp"
#include "shm/state_segment.hpp"
#include "test_helpers.hpp"

using namespace regiond::shm;
using namespace regiond::shm::test;

namespace {

constexpr std::uint64_t kNever = ~std::uint64_t{0};
constexpr std::uint64_t kNow = 1'000'000'000;

using Params = std::vector<std::optional<std::string_view>>;

// A daemon's segment and a client's read-only view of it.
struct Cache {
    explicit Cache(std::uint64_t bytes, std::uint64_t seed = 0x5EED5EED5EED5EEDull) {
        StateSegmentOptions o;
        o.name = unique_shm_name("cache");
        o.cache_bytes = bytes;
        o.cache_seed = seed;
        auto s = StateSegment::create(o);
        REQUIRE(s);
        segment.emplace(std::move(*s));
        auto v = StateView::open(o.name);
        REQUIRE(v);
        view.emplace(std::move(*v));
        reader = view->cache_reader();
    }
    CacheWriter& writer() { return segment->cache(); }
    bool hit(std::string_view key, std::string_view sql, const Params& params = {}, std::uint64_t now = kNow) {
        return reader.lookup(key, sql, params, now, out);
    }
    // The section as the daemon sees it (read/write), to play a corrupting writer.
    std::byte* rw_section() {
        if (rw == nullptr) {
            const int fd = ::shm_open(segment->name().c_str(), O_RDWR, 0);
            REQUIRE(fd >= 0);
            void* p = ::mmap(nullptr, segment->size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            ::close(fd);
            REQUIRE(p != MAP_FAILED);
            rw = static_cast<std::byte*>(p);
        }
        return rw + segment->header().cache.offset;
    }
    ~Cache() {
        if (rw != nullptr) ::munmap(rw, segment->size());
    }

    std::optional<StateSegment> segment;
    std::optional<StateView> view;
    CacheReader reader;
    std::vector<std::byte> out;
    std::byte* rw = nullptr;
};

std::string key_of(int i) {
    return "key:" + std::to_string(i);
}

// A value of exactly `size` bytes (padding in a column of its row).
std::vector<std::byte> value_of_size(std::string_view sql, std::size_t size, std::string_view tag) {
    // small_value's note column is NULL (4 bytes); as a string of n bytes it takes 4 + n.
    const std::vector<std::byte> v = small_value(sql, tag);
    REQUIRE(v.size() <= size);
    const std::string pad(size - v.size(), 'p');
    static const std::string_view columns[] = {"id", "email", "note"};
    const Row rows[] = {{tag, std::string_view("user@example.com"), std::string_view(pad)}};
    std::vector<std::byte> sized = cache_value(sql, {}, columns, rows);
    REQUIRE(sized.size() == size);
    return sized;
}

}  // namespace

TEST_CASE("cache: a hit returns the whole blob; other keys and other queries miss", "[cache]") {
    Cache c(1 << 16);
    const Params params = {std::string_view("42"), std::nullopt};
    const std::vector<std::byte> blob = small_value("SELECT * FROM users WHERE id = $1 AND $2", "42", params);
    REQUIRE(c.writer().insert("user:42", blob, kNever));

    REQUIRE(c.hit("user:42", "SELECT * FROM users WHERE id = $1 AND $2", params));
    CHECK(c.out == blob);
    const auto v = parse_cache_value(c.out);
    REQUIRE(v);
    CHECK(v->token_lsn == 0x16B3748);

    CHECK_FALSE(c.hit("user:43", "SELECT * FROM users WHERE id = $1 AND $2", params));
    CHECK_FALSE(c.hit("user:4", "SELECT * FROM users WHERE id = $1 AND $2", params));
    CHECK_FALSE(c.hit("user:42 ", "SELECT * FROM users WHERE id = $1 AND $2", params));
    CHECK_FALSE(c.hit("", "SELECT * FROM users WHERE id = $1 AND $2", params));
    // Same key, another query: one client cannot read rows of a query it did not send.
    CHECK_FALSE(c.hit("user:42", "SELECT * FROM users", params));
    CHECK_FALSE(c.hit("user:42", "SELECT * FROM users WHERE id = $1 AND $2", {std::string_view("43"), std::nullopt}));
    CHECK_FALSE(c.hit("user:42", "SELECT * FROM users WHERE id = $1 AND $2", {std::string_view("42"), ""}));
    CHECK_FALSE(c.hit("user:42", "SELECT * FROM users WHERE id = $1 AND $2", {std::string_view("42")}));

    const auto peeked = c.reader.peek("user:42");
    REQUIRE(peeked);
    CHECK(peeked->value_bytes == blob.size());
    CHECK(peeked->expires_mono_ns == kNever);
    CHECK_FALSE(c.reader.peek("user:43"));

    const CacheStats s = c.reader.stats();
    CHECK(s.entries == 1);
    CHECK(s.inserts == 1);
    CHECK(s.bytes_used == cache_entry_bytes(7, blob.size()));
    CHECK(s.capacity == c.writer().capacity());
    CHECK(c.writer().stats().entries == 1);
}

TEST_CASE("cache: an entry expires at its CLOCK_MONOTONIC deadline", "[cache]") {
    Cache c(1 << 16);
    REQUIRE(c.writer().insert("k", small_value("q", "1"), kNow + 100));
    REQUIRE(c.writer().insert("later", small_value("q", "2"), kNow + 1000));
    CHECK(c.hit("k", "q", {}, kNow));
    CHECK(c.hit("k", "q", {}, kNow + 99));
    CHECK_FALSE(c.hit("k", "q", {}, kNow + 100));
    CHECK_FALSE(c.hit("k", "q", {}, kNow + 101));
    CHECK(c.reader.peek("k"));  // still stored until expire() or eviction

    CHECK(c.writer().expire(kNow + 100) == 1);
    CHECK_FALSE(c.reader.peek("k"));
    CHECK(c.hit("later", "q", {}, kNow + 100));
    CHECK(c.reader.stats().expired == 1);
    CHECK(c.reader.stats().entries == 1);
}

TEST_CASE("cache: expire_some sweeps a bounded slice per call and goes round", "[cache]") {
    Cache c(1 << 16);
    const std::uint32_t slots = c.writer().index_slots();
    REQUIRE(slots > 8);
    for (int i = 0; i < 20; ++i) REQUIRE(c.writer().insert(key_of(i), small_value("q", "v"), kNow + 10));
    REQUIRE(c.writer().insert("keep", small_value("q", "v"), kNow + 1000));
    // One slot per call removes at most one entry.
    CHECK(c.writer().expire_some(kNow + 10, 1) <= 1);
    std::uint64_t removed = 0;
    std::uint32_t calls = 0;
    while (c.reader.stats().entries > 1 && calls < 2 * slots) {
        removed += c.writer().expire_some(kNow + 10, 8);
        ++calls;
    }
    // Every expired entry is gone within one pass over the index (plus the first call).
    CHECK(c.reader.stats().entries == 1);
    CHECK(calls <= slots / 8 + 1);
    CHECK(c.hit("keep", "q", {}, kNow + 10));
    CHECK(c.reader.stats().expired == 20);
}

TEST_CASE("cache: erase and clear", "[cache]") {
    Cache c(1 << 16);
    for (int i = 0; i < 10; ++i) REQUIRE(c.writer().insert(key_of(i), small_value("q", key_of(i)), kNever));
    CHECK(c.writer().erase(key_of(3)));
    CHECK_FALSE(c.writer().erase(key_of(3)));
    CHECK_FALSE(c.writer().erase("absent"));
    CHECK_FALSE(c.hit(key_of(3), "q"));
    CHECK(c.hit(key_of(4), "q"));
    CHECK(c.reader.stats().erased == 1);
    CHECK(c.reader.stats().entries == 9);

    c.writer().clear();
    for (int i = 0; i < 10; ++i) CHECK_FALSE(c.hit(key_of(i), "q"));
    CHECK(c.reader.stats().entries == 0);
    CHECK(c.reader.stats().bytes_used == 0);
    // And it fills again after a clear.
    REQUIRE(c.writer().insert(key_of(3), small_value("q", "again"), kNever));
    CHECK(c.hit(key_of(3), "q"));
}

TEST_CASE("cache: replacing a key's value", "[cache]") {
    Cache c(1 << 16);
    const std::vector<std::byte> v1 = small_value("q", "first");
    const std::vector<std::byte> v2 = value_of_size("q", 700, "second");
    REQUIRE(c.writer().insert("k", v1, kNever));
    REQUIRE(c.writer().insert("k", v2, kNever));
    REQUIRE(c.hit("k", "q"));
    CHECK(c.out == v2);
    CHECK(c.reader.stats().entries == 1);
    CHECK(c.reader.stats().bytes_used == cache_entry_bytes(1, v2.size()));
    // A replacement with another query: the old query misses now.
    REQUIRE(c.writer().insert("k", small_value("other", "third"), kNever));
    CHECK_FALSE(c.hit("k", "q"));
    CHECK(c.hit("k", "other"));
    CHECK(c.reader.stats().entries == 1);
    CHECK(c.reader.stats().inserts == 3);
}

TEST_CASE("cache: the log wraps and evicts the oldest entries first (FIFO)", "[cache]") {
    Cache c(1 << 16);  // 256 slots, 56 KiB arena
    const std::uint64_t capacity = c.writer().capacity();
    REQUIRE(capacity == (1 << 16) - 256 * 32);
    const std::size_t value_size = 1000;
    const std::uint64_t entry = cache_entry_bytes(key_of(100).size(), value_size);
    const int n = 400;  // ~6.5 times around the arena
    for (int i = 0; i < n; ++i) {
        INFO("insert " << i);
        REQUIRE(c.writer().insert(key_of(100 + i), value_of_size("q", value_size, key_of(100 + i)), kNever));
        // Every live entry fits in the arena.
        CHECK(c.reader.stats().bytes_used <= capacity);
    }
    const CacheStats s = c.reader.stats();
    REQUIRE(s.displaced == 0);  // so that only the log decides what is gone
    CHECK(s.evictions == static_cast<std::uint64_t>(n) - s.entries);
    CHECK(s.entries * entry == s.bytes_used);
    // What is left is exactly the newest entries: a suffix of the insertions,
    // as many as fit in the arena (at least capacity / entry - 1 with the gap).
    CHECK(s.entries >= capacity / entry - 1);
    CHECK(s.entries <= capacity / entry);
    for (int i = 0; i < n; ++i) {
        INFO("key " << i);
        const bool present = c.reader.peek(key_of(100 + i)).has_value();
        CHECK(present == (i >= n - static_cast<int>(s.entries)));
    }
    REQUIRE(c.hit(key_of(100 + n - 1), "q"));
    CHECK(c.out == value_of_size("q", value_size, key_of(100 + n - 1)));
}

TEST_CASE("cache: a full probe window gives up its oldest entry", "[cache]") {
    Cache c(3072);  // 8 slots: every key shares the one probe window; 2816 arena bytes hold 9 entries
    REQUIRE(c.writer().index_slots() == 8);
    for (int i = 0; i < 8; ++i) REQUIRE(c.writer().insert(key_of(i), small_value("q", key_of(i)), kNever));
    CHECK(c.reader.stats().entries == 8);
    CHECK(c.reader.stats().displaced == 0);
    REQUIRE(c.writer().insert(key_of(8), small_value("q", key_of(8)), kNever));
    CHECK(c.reader.stats().displaced == 1);
    CHECK(c.reader.stats().entries == 8);
    CHECK_FALSE(c.hit(key_of(0), "q"));  // the oldest
    for (int i = 1; i <= 8; ++i) CHECK(c.hit(key_of(i), "q"));
    // Replacing a key in a full window displaces nobody.
    REQUIRE(c.writer().insert(key_of(5), small_value("q", "five"), kNever));
    CHECK(c.reader.stats().displaced == 1);
    for (int i = 1; i <= 8; ++i) CHECK(c.hit(key_of(i), "q"));
}

TEST_CASE("cache: refusals (too large, malformed, no cache)", "[cache]") {
    Cache c(1 << 16);
    CacheWriter& w = c.writer();
    CHECK(w.max_value_bytes() == w.capacity() / 8);
    CHECK(w.max_key_bytes() == 4096);
    CHECK(c.reader.max_value_bytes() == w.max_value_bytes());

    const std::vector<std::byte> fits = value_of_size("q", w.max_value_bytes(), "big");
    CHECK(w.insert("big", fits, kNever));
    CHECK(c.hit("big", "q"));
    const std::vector<std::byte> too_big = value_of_size("q", w.max_value_bytes() + 1, "big");
    CHECK_FALSE(w.insert("too big", too_big, kNever));
    CHECK_FALSE(w.insert(std::string(w.max_key_bytes() + 1, 'k'), small_value("q", "x"), kNever));
    CHECK(w.insert(std::string(w.max_key_bytes(), 'k'), small_value("q", "x"), kNever));
    CHECK(c.hit(std::string(w.max_key_bytes(), 'k'), "q"));
    // A lookup of a key too long to be stored is a miss, not a fault.
    CHECK_FALSE(c.hit(std::string(w.max_key_bytes() + 1, 'k'), "q"));

    std::vector<std::byte> malformed = small_value("q", "x");
    malformed[0] = std::byte{'X'};
    CHECK_FALSE(w.insert("malformed", malformed, kNever));
    CHECK_FALSE(w.insert("empty", {}, kNever));
    CHECK_FALSE(c.reader.peek("malformed"));
    CHECK(c.reader.stats().inserts == 2);

    SECTION("cache.memory 0: no cache") {
        Cache none(0);
        CHECK_FALSE(none.writer().enabled());
        CHECK(none.writer().capacity() == 0);
        CHECK(none.writer().max_value_bytes() == 0);
        CHECK_FALSE(none.writer().insert("k", small_value("q", "x"), kNever));
        CHECK_FALSE(none.writer().erase("k"));
        none.writer().clear();
        CHECK(none.writer().expire(kNow) == 0);
        CHECK_FALSE(none.reader.enabled());
        CHECK_FALSE(none.hit("k", "q"));
        CHECK(none.reader.stats().capacity == 0);
    }
}

TEST_CASE("cache: the seed is random per segment and decides the slot", "[cache]") {
    Cache a(1 << 16, 0);
    Cache b(1 << 16, 0);
    const std::uint64_t seed_a = shared_at<CacheHeader>(a.view->bytes().data() + a.view->header().cache.offset)->seed;
    const std::uint64_t seed_b = shared_at<CacheHeader>(b.view->bytes().data() + b.view->header().cache.offset)->seed;
    CHECK(seed_a != 0);
    CHECK(seed_a != seed_b);

    // With a fixed seed the key sits in the slot its hash names.
    Cache fixed(1 << 16, 0x1234);
    const CacheHeader& h = *shared_at<CacheHeader>(fixed.view->bytes().data() + fixed.view->header().cache.offset);
    CHECK(h.seed == 0x1234);
    REQUIRE(fixed.writer().insert("user:42", small_value("q", "x"), kNever));
    const std::uint64_t hash = cache_key_hash(0x1234, "user:42");
    const auto* slots = shared_at<CacheSlot>(reinterpret_cast<const std::byte*>(&h) + h.index_offset);
    CacheSlotData d{};
    REQUIRE(slots[hash & (h.index_slots - 1)].read(d));
    CHECK(d.hash == hash);
    CHECK(d.key_len == 7);
    CHECK(cache_key_hash(0x1235, "user:42") != hash);
}

TEST_CASE("cache: the reader validates what it copies", "[cache]") {
    Cache c(1 << 16, 0x77);
    const std::vector<std::byte> blob = small_value("q", "x");
    REQUIRE(c.writer().insert("k", blob, kNever));
    std::byte* section = c.rw_section();
    CacheHeader& h = *shared_at<CacheHeader>(section);
    CacheSlot* slots = shared_at<CacheSlot>(section + h.index_offset);
    SharedU64* arena = shared_at<SharedU64>(section + h.arena_offset);
    const std::uint64_t slot = cache_key_hash(0x77, "k") & (h.index_slots - 1);
    CacheSlotData d{};
    REQUIRE(slots[slot].read(d));
    REQUIRE(c.hit("k", "q"));

    SECTION("reclaimed past the entry: rejected") {
        h.reclaimed.store(d.pos + 8);
        CHECK_FALSE(c.hit("k", "q"));
        CHECK_FALSE(c.reader.peek("k"));
    }
    SECTION("a blob that no longer parses: a miss, though the entry is there") {
        const std::uint64_t magic_word =
            (d.pos % h.arena_capacity) / 8 + kCacheEntryHeaderWords + 1;  // key "k": 1 word
        arena[magic_word].store(arena[magic_word].load() ^ 0xFF);
        CHECK_FALSE(c.hit("k", "q"));
        CHECK(c.reader.peek("k"));
    }
    SECTION("the entry's header disagrees with its slot: a miss") {
        const std::uint64_t header_word = (d.pos % h.arena_capacity) / 8 + 1;  // key_len | value_len
        arena[header_word].store(arena[header_word].load() + 1);
        CHECK_FALSE(c.hit("k", "q"));
    }
    SECTION("a writer stuck mid-write (odd seq): a miss, after bounded retries") {
        slots[slot].seq.store(slots[slot].seq.load() + 1);
        CHECK_FALSE(c.hit("k", "q"));
    }
}

TEST_CASE("cache: a reader fed garbage never faults and never hangs", "[cache]") {
    // Every index and arena word random, then slots aimed at the arena's edges
    // with huge lengths: lookups must stay inside the section (ASan watches).
    Cache c(1 << 16, 0x99);
    std::byte* section = c.rw_section();
    CacheHeader& h = *shared_at<CacheHeader>(section);
    CacheSlot* slots = shared_at<CacheSlot>(section + h.index_offset);
    SharedU64* arena = shared_at<SharedU64>(section + h.arena_offset);
    XorShift rng(12345);
    const std::string keys[] = {"k", "user:42", std::string(100, 'x'), ""};
    for (int round = 0; round < 50; ++round) {
        for (std::uint32_t i = 0; i < h.index_slots; ++i) {
            slots[i].seq.store(rng.next() & ~std::uint64_t{1});
            for (auto& w : slots[i].words) w.store(rng.next());
            if (round % 2 == 0) {
                // Make the slots plausible for our keys so the reader goes further.
                const std::string& key = keys[rng.below(4)];
                slots[i].words[0].store(cache_key_hash(0x99, key));
                const std::uint64_t pos = round % 4 == 0 ? rng.next() & ~std::uint64_t{7} : h.arena_capacity - 8;
                slots[i].words[1].store(pos);
                slots[i].words[2].store(key.size() | (std::uint64_t{rng.below(1 << 21)} << 32));
            }
        }
        for (std::uint64_t i = 0; i < h.arena_capacity / 8; i += 1 + rng.below(16)) arena[i].store(rng.next());
        h.reclaimed.store(round % 3 == 0 ? 0 : rng.next());
        for (const std::string& key : keys) {
            c.hit(key, "q");
            c.reader.peek(key);
        }
    }
    SUCCEED("no fault, no hang");
}
