// Unit tests of the SPSC byte ring: records, wrap/padding, full and maximal
// records, hostile control values, the need-wake-up protocol, and a cross-process
// run with futex sleeping.
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "shm/ring.hpp"
#include "test_helpers.hpp"

using namespace regiond::shm;
using namespace regiond::shm::test;
using namespace std::chrono_literals;

namespace {

// Heap memory of exactly the ring's size, so AddressSanitizer flags any access
// outside the region (an mmap'd region would hide overruns into the next page).
struct RingMemory {
    explicit RingMemory(std::uint32_t capacity)
        : capacity(capacity),
          size(ring_region_size(capacity)),
          base(static_cast<std::byte*>(std::aligned_alloc(64, align_up(size, 64)))) {
        std::memset(base.get(), 0xAB, size);  // garbage in the data area is fine
        REQUIRE(ring_initialize(region(), capacity));
    }
    std::span<std::byte> region() const { return {base.get(), size}; }
    RingControl& control() const { return *shared_at<RingControl>(base.get()); }
    std::byte* data() const { return base.get() + sizeof(RingControl); }

    struct Free {
        void operator()(std::byte* p) const { std::free(p); }
    };
    std::uint32_t capacity;
    std::size_t size;
    std::unique_ptr<std::byte, Free> base;
};

std::vector<std::byte> payload_of(std::size_t n, std::uint8_t seed) {
    std::vector<std::byte> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>(seed + i * 7);
    return v;
}

PopResult pop(RingConsumer& c, std::vector<std::byte>& out) {
    out.assign(c.max_payload(), std::byte{0});
    PopResult r = c.try_pop(out);
    if (r) out.resize(r.size);
    return r;
}

}  // namespace

TEST_CASE("ring geometry helpers", "[ring]") {
    CHECK(ring_capacity_valid(256));
    CHECK(ring_capacity_valid(1u << 20));
    CHECK_FALSE(ring_capacity_valid(255));
    CHECK_FALSE(ring_capacity_valid(128));
    CHECK_FALSE(ring_capacity_valid(1000));
    CHECK_FALSE(ring_capacity_valid(std::uint64_t{1} << 31));
    CHECK(ring_region_size(4096) == 192 + 4096);
    CHECK(ring_max_payload(4096) == 2048 - 16);
    CHECK(record_footprint(0) == 16);
    CHECK(record_footprint(1) == 24);
    CHECK(record_footprint(8) == 24);
    CHECK(record_footprint(9) == 32);
    std::vector<std::byte> small(100);
    CHECK_FALSE(ring_initialize(small, 256));
    CHECK_THROWS_AS(RingProducer(small, 256), std::invalid_argument);
}

TEST_CASE("ring push and pop preserve records", "[ring]") {
    RingMemory mem(4096);
    RingProducer p(mem.region(), mem.capacity);
    RingConsumer c(mem.region(), mem.capacity);
    std::vector<std::byte> out;

    CHECK(pop(c, out).error == RingError::empty);
    CHECK_FALSE(c.has_data());

    const auto a = payload_of(13, 1);
    REQUIRE(p.try_push(RecordKind::request, kRecordFlagLast, 42, a));
    CHECK(c.has_data());
    PopResult r = pop(c, out);
    REQUIRE(r);
    CHECK(r.kind == RecordKind::request);
    CHECK(r.flags == kRecordFlagLast);
    CHECK(r.request_id == 42);
    CHECK(r.size == 13);
    CHECK(out == a);
    CHECK(pop(c, out).error == RingError::empty);

    SECTION("empty payload") {
        REQUIRE(p.try_push(RecordKind::cancel, 0, 7, {}));
        r = pop(c, out);
        REQUIRE(r);
        CHECK(r.kind == RecordKind::cancel);
        CHECK(r.size == 0);
    }
    SECTION("gather push concatenates both parts") {
        const auto head = payload_of(5, 10), body = payload_of(300, 20);
        REQUIRE(p.try_push(RecordKind::response, 0, 9, head, body));
        r = pop(c, out);
        REQUIRE(r);
        REQUIRE(r.size == 305);
        CHECK(std::memcmp(out.data(), head.data(), 5) == 0);
        CHECK(std::memcmp(out.data() + 5, body.data(), 300) == 0);
    }
    SECTION("reserve and commit write in place, commit may use less") {
        Reservation res = p.try_reserve(100);
        REQUIRE(res);
        REQUIRE(res.payload.size() == 100);
        std::memset(res.payload.data(), 0x5A, 60);
        CHECK_FALSE(c.has_data());  // nothing visible before commit
        REQUIRE(p.commit(RecordKind::response, kRecordFlagLast, 3, 60));
        r = pop(c, out);
        REQUIRE(r);
        CHECK(r.size == 60);
        CHECK(out == std::vector<std::byte>(60, std::byte{0x5A}));
        CHECK(p.commit(RecordKind::response, 0, 3, 1).error == RingError::invalid);  // nothing reserved
    }
    SECTION("many records in order") {
        for (std::uint64_t i = 0; i < 1000; ++i) {
            const auto v = payload_of(i % 97, static_cast<std::uint8_t>(i));
            REQUIRE(p.try_push(RecordKind::request, 0, i, v));
            r = pop(c, out);
            REQUIRE(r);
            REQUIRE(r.request_id == i);
            REQUIRE(out == v);
        }
    }
    SECTION("padding kind and unknown kinds cannot be pushed") {
        CHECK(p.try_push(RecordKind::padding, 0, 1, a).error == RingError::invalid);
        CHECK(p.try_push(static_cast<RecordKind>(99), 0, 1, a).error == RingError::invalid);
    }
}

TEST_CASE("ring wraps with a padding record", "[ring]") {
    RingMemory mem(256);
    RingProducer p(mem.region(), mem.capacity);
    RingConsumer c(mem.region(), mem.capacity);
    std::vector<std::byte> out;

    // Footprints 128 + 120 = 248: 8 bytes left before the end, less than a header.
    REQUIRE(p.try_push(RecordKind::request, 0, 1, payload_of(112, 1)));
    REQUIRE(p.try_push(RecordKind::request, 0, 2, payload_of(104, 2)));
    REQUIRE(pop(c, out).request_id == 1);
    REQUIRE(pop(c, out).request_id == 2);
    CHECK(mem.control().head.load() == 248);

    const auto v = payload_of(8, 3);
    REQUIRE(p.try_push(RecordKind::request, 0, 3, v));
    CHECK(mem.control().head.load() == 256 + 24);  // 8 padding bytes + a 24-byte record at offset 0
    std::uint16_t kind_at_248;
    std::memcpy(&kind_at_248, mem.data() + 248 + 4, 2);
    CHECK(kind_at_248 == static_cast<std::uint16_t>(RecordKind::padding));
    PopResult r = pop(c, out);
    REQUIRE(r);
    CHECK(r.request_id == 3);
    CHECK(out == v);
    CHECK(mem.control().tail.load() == 280);

    SECTION("a larger gap is padded too") {
        // Now at offset 24; push 112 (footprint 128) -> offset 152; then 112 again
        // does not fit the remaining 104 bytes -> padding of 104, record at 0.
        REQUIRE(p.try_push(RecordKind::request, 0, 4, payload_of(112, 4)));
        REQUIRE(pop(c, out).request_id == 4);
        REQUIRE(p.try_push(RecordKind::request, 0, 5, payload_of(112, 5)));
        r = pop(c, out);
        REQUIRE(r);
        CHECK(r.request_id == 5);
        CHECK(out == payload_of(112, 5));
        CHECK(mem.control().tail.load() == 280 + 128 + 104 + 128);
    }
}

TEST_CASE("ring full, maximal records and caller limits", "[ring]") {
    RingMemory mem(1024);
    RingProducer p(mem.region(), mem.capacity);
    RingConsumer c(mem.region(), mem.capacity);
    std::vector<std::byte> out;

    SECTION("full until the consumer frees space") {
        int pushed = 0;
        while (p.try_push(RecordKind::request, 0, static_cast<std::uint64_t>(pushed), payload_of(48, 0))) ++pushed;
        CHECK(pushed == 1024 / 64);
        CHECK(p.try_push(RecordKind::request, 0, 99, payload_of(48, 0)).error == RingError::full);
        REQUIRE(pop(c, out).request_id == 0);
        CHECK(p.try_push(RecordKind::request, 0, 99, payload_of(48, 0)));
    }
    SECTION("max payload fits an empty ring at every offset") {
        const std::uint32_t max = p.max_payload();
        CHECK(max == 512 - 16);
        CHECK(p.try_push(RecordKind::request, 0, 0, payload_of(max + 1, 0)).error == RingError::too_large);
        for (std::uint32_t shift = 0; shift < 1024; shift += 8) {
            // Move the counters by `shift` bytes with a small record, then a maximal one.
            if (shift % 64 == 8) {
                REQUIRE(p.try_push(RecordKind::request, 0, 1, {}));
                REQUIRE(pop(c, out));
            }
            REQUIRE(p.try_push(RecordKind::request, 0, 2, payload_of(max, 9)));
            PopResult r = pop(c, out);
            REQUIRE(r);
            REQUIRE(r.size == max);
            REQUIRE(out == payload_of(max, 9));
        }
    }
    SECTION("a record larger than the caller's buffer is skipped and reported") {
        REQUIRE(p.try_push(RecordKind::request, 0, 5, payload_of(200, 1)));
        REQUIRE(p.try_push(RecordKind::request, 0, 6, payload_of(10, 1)));
        std::vector<std::byte> small(100);
        PopResult r = c.try_pop(small);
        CHECK(r.error == RingError::too_large);
        CHECK(r.request_id == 5);
        CHECK(r.size == 200);
        r = c.try_pop(small);
        REQUIRE(r);
        CHECK(r.request_id == 6);
    }
}

TEST_CASE("ring consumer rejects hostile control values and records", "[ring][hostile]") {
    RingMemory mem(1024);
    RingProducer p(mem.region(), mem.capacity);
    RingConsumer c(mem.region(), mem.capacity);
    std::vector<std::byte> out;
    // Advance both counters a bit so "head < tail" is expressible.
    REQUIRE(p.try_push(RecordKind::request, 0, 1, payload_of(40, 1)));
    REQUIRE(pop(c, out));
    const std::uint64_t tail = mem.control().tail.load();
    REQUIRE(tail == 56);
    RingControl& ctl = mem.control();

    auto write_header = [&](std::uint64_t offset, std::uint32_t size, std::uint16_t kind, std::uint16_t flags) {
        const RecordHeader h{size, kind, flags, 77};
        std::memcpy(mem.data() + offset, &h, sizeof h);
    };

    SECTION("head behind tail") {
        ctl.head.store(tail - 8);
    }
    SECTION("head more than capacity ahead") {
        ctl.head.store(tail + 1024 + 8);
    }
    SECTION("head far ahead (wrapped around u64)") {
        ctl.head.store(tail - 1024);
    }
    SECTION("misaligned head") {
        ctl.head.store(tail + 20);
    }
    SECTION("huge size field") {
        write_header(tail, 0xFFFFFF00u, 1, 0);
        ctl.head.store(tail + 64);
    }
    SECTION("size beyond max payload but within capacity") {
        write_header(tail, 600, 1, 0);
        ctl.head.store(tail + 640);
    }
    SECTION("record longer than what was published") {
        write_header(tail, 100, 1, 0);
        ctl.head.store(tail + 16);
    }
    SECTION("unknown kind") {
        write_header(tail, 8, 77, 0);
        ctl.head.store(tail + 24);
    }
    SECTION("padding with a non-zero size") {
        write_header(tail, 8, 0, 0);
        ctl.head.store(tail + (1024 - 56));
    }
    SECTION("padding not fully published") {
        write_header(tail, 0, 0, 0);
        ctl.head.store(tail + 16);
    }
    PopResult r = c.try_pop(out);
    CHECK(r.error == RingError::corrupt);
    CHECK(c.is_corrupt());
    // Sticky: even a repaired ring stays rejected.
    ctl.head.store(tail);
    CHECK(c.try_pop(out).error == RingError::corrupt);
    CHECK(c.has_data());  // so that a waiting caller wakes up and sees it
}

TEST_CASE("ring consumer rejects a record crossing the end of the data area", "[ring][hostile]") {
    RingMemory mem(1024);
    RingProducer p(mem.region(), mem.capacity);
    RingConsumer c(mem.region(), mem.capacity);
    std::vector<std::byte> out;
    for (int i = 0; i < 15; ++i) {  // 15 x 64 bytes: the consumer is at offset 960
        REQUIRE(p.try_push(RecordKind::request, 0, 1, payload_of(48, 1)));
        REQUIRE(pop(c, out));
    }
    // A record of 100 payload bytes (footprint 120) cannot start at 960 (64 left):
    // a valid size, a valid kind, fully "published", but it would wrap.
    const RecordHeader h{100, 1, 0, 5};
    std::memcpy(mem.data() + 960, &h, sizeof h);
    mem.control().head.store(960 + 200);
    CHECK(pop(c, out).error == RingError::corrupt);
}

TEST_CASE("ring consumer rejects a padding record at offset 0", "[ring][hostile]") {
    RingMemory mem(256);
    RingConsumer c(mem.region(), mem.capacity);
    const RecordHeader h{0, 0, 0, 0};
    std::memcpy(mem.data(), &h, sizeof h);
    mem.control().head.store(256);
    std::vector<std::byte> out(256);
    CHECK(c.try_pop(out).error == RingError::corrupt);
}

TEST_CASE("ring producer rejects a hostile tail", "[ring][hostile]") {
    RingMemory mem(256);
    RingProducer p(mem.region(), mem.capacity);
    RingConsumer c(mem.region(), mem.capacity);
    std::vector<std::byte> out;
    for (int i = 0; i < 10; ++i) {  // move the counters away from zero
        REQUIRE(p.try_push(RecordKind::response, 0, 1, payload_of(48, 1)));
        REQUIRE(pop(c, out));
    }
    // Fill the ring so the producer must re-read tail.
    while (p.try_push(RecordKind::response, 0, 1, payload_of(48, 1))) {}
    const std::uint64_t head = mem.control().head.load();
    SECTION("tail ahead of head") {
        mem.control().tail.store(head + 64);
    }
    SECTION("tail more than capacity behind") {
        mem.control().tail.store(head - 264);
    }
    SECTION("misaligned tail") {
        mem.control().tail.store(head - 60);
    }
    CHECK(p.try_push(RecordKind::response, 0, 1, payload_of(48, 1)).error == RingError::corrupt);
    CHECK(p.is_corrupt());
    CHECK(p.try_reserve(8).error == RingError::corrupt);
}

TEST_CASE("ring consumer survives random garbage without looping or overrunning", "[ring][hostile]") {
    XorShift rng(12345);
    for (int round = 0; round < 2000; ++round) {
        RingMemory mem(256);
        RingConsumer c(mem.region(), mem.capacity);
        for (std::size_t i = 0; i < 256; ++i) mem.data()[i] = static_cast<std::byte>(rng.next());
        // Sometimes plausible records, sometimes noise.
        if (rng.below(2) == 0) {
            const RecordHeader h{rng.below(300), static_cast<std::uint16_t>(rng.below(5)),
                                 static_cast<std::uint16_t>(rng.below(2)), rng.next()};
            std::memcpy(mem.data() + 8 * rng.below(31), &h, sizeof h);  // header fully inside
        }
        std::vector<std::byte> out(rng.below(200));
        for (int step = 0; step < 50; ++step) {
            const std::uint64_t head = rng.below(3) == 0 ? rng.next() : 8 * rng.below(80);
            mem.control().head.store(head);
            const PopResult r = c.try_pop(out);
            REQUIRE((r.error == RingError::ok || r.error == RingError::empty || r.error == RingError::too_large ||
                     r.error == RingError::corrupt));
            if (r.error == RingError::ok) REQUIRE(r.size <= out.size());
            if (c.is_corrupt()) break;
        }
    }
}

TEST_CASE("need-wake-up flag protocol", "[ring][wakeup]") {
    RingMemory mem(1024);
    RingProducer p(mem.region(), mem.capacity);
    RingConsumer c(mem.region(), mem.capacity);
    std::vector<std::byte> out;

    PushResult pushed = p.try_push(RecordKind::request, 0, 1, payload_of(8, 1));
    REQUIRE(pushed);
    CHECK_FALSE(pushed.needs_wakeup);  // nobody asked

    SECTION("no sleep when data is there") {
        const SleepTicket t = c.prepare_sleep();
        CHECK_FALSE(t.may_sleep);
        CHECK(mem.control().consumer_sleeping.load() == 0);
    }
    SECTION("flag raised when empty, one wake-up per sleep") {
        REQUIRE(pop(c, out));
        const SleepTicket t = c.prepare_sleep();
        CHECK(t.may_sleep);
        CHECK(mem.control().consumer_sleeping.load() == 1);
        pushed = p.try_push(RecordKind::request, 0, 2, payload_of(8, 1));
        REQUIRE(pushed);
        CHECK(pushed.needs_wakeup);
        CHECK(mem.control().consumer_sleeping.load() == 0);  // the producer took the wake-up
        pushed = p.try_push(RecordKind::request, 0, 3, payload_of(8, 1));
        CHECK_FALSE(pushed.needs_wakeup);
        const std::uint32_t before = mem.control().futex_word.load();
        p.wake_consumer_futex();
        CHECK(mem.control().futex_word.load() == before + 1);
        c.end_sleep();
    }
    SECTION("wait times out on an empty ring") {
        REQUIRE(pop(c, out));
        const auto start = std::chrono::steady_clock::now();
        CHECK(c.wait(nullptr, 30ms) == WaitResult::timed_out);
        CHECK(std::chrono::steady_clock::now() - start >= 30ms);
        CHECK(mem.control().consumer_sleeping.load() == 0);
    }
    SECTION("a sleeping consumer is woken by another thread's push") {
        REQUIRE(pop(c, out));
        // The producer pushes once the consumer has asked for a wake-up (its flag
        // is up, and nothing is in the ring, so it stays up until a push or the
        // consumer's timeout): that push must report needs_wakeup, and only the
        // wake it triggers gets the consumer out of its 5 s wait.
        std::atomic<bool> saw_flag{false};
        std::atomic<bool> needs_wakeup{false};
        std::thread producer([&] {
            const auto deadline = std::chrono::steady_clock::now() + 5s;
            while (mem.control().consumer_sleeping.load(std::memory_order_acquire) == 0 &&
                   std::chrono::steady_clock::now() < deadline)
                std::this_thread::yield();
            saw_flag = mem.control().consumer_sleeping.load(std::memory_order_acquire) == 1;
            const PushResult r = p.try_push(RecordKind::request, 0, 9, payload_of(8, 1));
            needs_wakeup = r.needs_wakeup;
            if (r.needs_wakeup) p.futex_waker().wake();
        });
        AdaptiveSpinner no_spin(0);
        const auto start = std::chrono::steady_clock::now();
        const WaitResult waited = c.wait(&no_spin, 5s);
        const auto waited_for = std::chrono::steady_clock::now() - start;
        producer.join();
        CHECK(saw_flag);
        CHECK(needs_wakeup);
        CHECK(waited == WaitResult::ready);
        CHECK(waited_for < 5s);  // woken, not timed out (5 s is the lost-wake-up bound, not a timing)
        CHECK(mem.control().consumer_sleeping.load() == 0);
        REQUIRE(pop(c, out).request_id == 9);
    }
}

TEST_CASE("wakers: futex word, eventfd, callback", "[ring][wakeup]") {
    SharedU32 word{5};
    Waker::futex(word).wake();
    CHECK(word.load() == 6);

    const int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    REQUIRE(efd >= 0);
    Waker::eventfd(efd).wake();
    Waker::eventfd(efd).wake();
    std::uint64_t count = 0;
    CHECK(::read(efd, &count, sizeof count) == sizeof count);
    CHECK(count == 2);
    ::close(efd);

    int calls = 0;
    Waker::callback([](void* c) noexcept { ++*static_cast<int*>(c); }, &calls).wake();
    CHECK(calls == 1);
    Waker::none().wake();

    // A futex wait with a stale value returns at once; a timed wait times out.
    CHECK(futex_wait(word, 5, std::chrono::milliseconds(100)) == FutexWaitResult::value_changed);
    CHECK(futex_wait(word, 6, std::chrono::milliseconds(5)) == FutexWaitResult::timed_out);
}

TEST_CASE("adaptive spinner grows on success and backs off on failure", "[ring][wakeup]") {
    AdaptiveSpinner s(1024);
    const std::uint32_t initial = s.budget();
    CHECK(initial == 256);
    CHECK_FALSE(s.spin([] { return false; }));
    CHECK(s.budget() == 128);
    for (int i = 0; i < 10; ++i) (void)s.spin([] { return false; });
    CHECK(s.budget() == AdaptiveSpinner::kFloor);
    int calls = 0;
    CHECK(s.spin([&] { return ++calls == 3; }));
    CHECK(s.budget() == 2 * AdaptiveSpinner::kFloor);
    for (int i = 0; i < 10; ++i) (void)s.spin([] { return true; });
    CHECK(s.budget() == 1024);
    s.set_max(0);
    CHECK(s.budget() == 0);
    calls = 0;
    CHECK_FALSE(s.spin([&] {
        ++calls;
        return false;
    }));
    CHECK(calls == 1);  // a single look, no spinning
}

namespace {

// Shared between parent and child after fork().
struct CrossProcessStats {
    std::atomic<std::uint32_t> child_sleeps;
    std::atomic<std::uint32_t> child_errors;
};

constexpr std::uint32_t kCap = 4096;
constexpr std::size_t kRingOffset = 0;
constexpr std::size_t kRing2Offset = 8192;
constexpr std::size_t kStatsOffset = 16384;

int wait_child(pid_t pid) {
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST_CASE("cross-process: a futex-sleeping consumer gets every record", "[ring][process]") {
    SharedMapping shm(20480);
    REQUIRE(shm.data() != nullptr);
    const std::span<std::byte> region = shm.span().subspan(kRingOffset, ring_region_size(kCap));
    REQUIRE(ring_initialize(region, kCap));
    auto* stats = ::new (shm.data() + kStatsOffset) CrossProcessStats{};
    RingProducer producer(region, kCap);
    RingConsumer consumer(region, kCap);
    constexpr std::uint64_t kRecords = 3000;

    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // Child: consume, verifying order and content. Spin briefly, then sleep.
        AdaptiveSpinner spinner(64);
        std::vector<std::byte> buf(consumer.max_payload());
        for (std::uint64_t i = 0; i < kRecords; ++i) {
            for (;;) {
                const PopResult r = consumer.try_pop(buf);
                if (r) {
                    if (r.request_id != i || r.size != i % 301 ||
                        fnv1a({buf.data(), r.size}) != fnv1a(payload_of(i % 301, static_cast<std::uint8_t>(i))))
                        stats->child_errors.fetch_add(1);
                    break;
                }
                if (r.error != RingError::empty) ::_exit(2);
                if (!consumer.has_data() && !spinner.spin([&] { return consumer.has_data(); })) {
                    stats->child_sleeps.fetch_add(1);
                    if (consumer.wait(nullptr, 10s) == WaitResult::timed_out) ::_exit(3);  // lost wake-up
                }
            }
        }
        ::_exit(0);
    }

    // Parent: produce in bursts with pauses, so the child goes to sleep often.
    std::uint32_t wakes = 0;
    for (std::uint64_t i = 0; i < kRecords; ++i) {
        const auto v = payload_of(i % 301, static_cast<std::uint8_t>(i));
        for (;;) {
            const PushResult r = producer.try_push(RecordKind::request, 0, i, v);
            if (r.needs_wakeup) {
                producer.wake_consumer_futex();
                ++wakes;
            }
            if (r) break;
            REQUIRE(r.error == RingError::full);
            std::this_thread::yield();
        }
        if (i % 100 == 99) std::this_thread::sleep_for(1ms);
    }
    CHECK(wait_child(pid) == 0);
    CHECK(stats->child_errors.load() == 0);
    CHECK(stats->child_sleeps.load() > 0);
    CHECK(wakes > 0);
}

TEST_CASE("cross-process: ping-pong with both sides sleeping on futexes", "[ring][process]") {
    SharedMapping shm(20480);
    REQUIRE(shm.data() != nullptr);
    const auto ping_region = shm.span().subspan(kRingOffset, ring_region_size(kCap));
    const auto pong_region = shm.span().subspan(kRing2Offset, ring_region_size(kCap));
    REQUIRE(ring_initialize(ping_region, kCap));
    REQUIRE(ring_initialize(pong_region, kCap));
    RingProducer ping_out(ping_region, kCap);
    RingConsumer ping_in(ping_region, kCap);
    RingProducer pong_out(pong_region, kCap);
    RingConsumer pong_in(pong_region, kCap);
    constexpr std::uint64_t kRounds = 300;

    auto receive = [](RingConsumer& in, std::vector<std::byte>& buf) -> PopResult {
        for (;;) {
            PopResult r = in.try_pop(buf);
            if (r.error != RingError::empty) return r;
            if (in.wait(nullptr, 10s) == WaitResult::timed_out) return PopResult{};  // lost wake-up
        }
    };
    auto send = [](RingProducer& out, std::uint64_t id) {
        const PushResult r = out.try_push(RecordKind::response, kRecordFlagLast, id, {});
        if (r.needs_wakeup) out.wake_consumer_futex();
        return static_cast<bool>(r);
    };

    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        std::vector<std::byte> buf(64);
        for (std::uint64_t i = 0; i < kRounds; ++i) {
            const PopResult r = receive(ping_in, buf);
            if (!r || r.request_id != i) ::_exit(2);
            if (!send(pong_out, i)) ::_exit(3);
        }
        ::_exit(0);
    }
    std::vector<std::byte> buf(64);
    std::uint64_t answered = 0;
    for (std::uint64_t i = 0; i < kRounds; ++i) {
        if (!send(ping_out, i)) break;
        const PopResult r = receive(pong_in, buf);
        if (!r || r.request_id != i) break;
        ++answered;
    }
    CHECK(answered == kRounds);
    CHECK(wait_child(pid) == 0);
}
