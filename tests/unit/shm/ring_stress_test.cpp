// Multithreaded fuzz/stress test of the ring: a producer thread pushes records of
// random sizes through every push API, a consumer thread checks each one. Hidden
// tag: run by the 'shm_ring_stress_run' meson test, bounded by
// REGIOND_STRESS_SECONDS (default 2 s).
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "shm/ring.hpp"
#include "test_helpers.hpp"

using namespace regiond::shm;
using namespace regiond::shm::test;
using namespace std::chrono_literals;

namespace {

double stress_seconds() {
    const char* env = std::getenv("REGIOND_STRESS_SECONDS");
    const double s = env != nullptr ? std::atof(env) : 2.0;
    return s > 0 ? s : 2.0;
}

// The content of record `seq` is a pure function of seq, so the consumer can
// verify it without any shared state besides the ring.
std::uint32_t size_of_record(std::uint64_t seq, std::uint32_t max_payload) {
    XorShift r(seq * 0x9E3779B97F4A7C15ull + 1);
    const std::uint32_t pick = r.below(100);
    if (pick < 60) return r.below(64);               // mostly small
    if (pick < 95) return r.below(max_payload / 4);  // some medium
    return max_payload - r.below(16);                // a few maximal ones
}

void fill_record(std::uint64_t seq, std::span<std::byte> out) {
    XorShift r(seq + 7);
    for (auto& b : out) b = static_cast<std::byte>(r.next());
}

struct StressResult {
    std::uint64_t records = 0;
    std::uint64_t bytes = 0;
    std::uint64_t errors = 0;
    std::uint64_t wakeups = 0;
    std::uint64_t lost_wakeups = 0;
};

StressResult run_stress(std::uint32_t capacity, std::uint32_t consumer_spin, double seconds) {
    const std::size_t size = ring_region_size(capacity);
    std::unique_ptr<std::byte, decltype(&std::free)> mem(
        static_cast<std::byte*>(std::aligned_alloc(64, align_up(size, 64))), &std::free);
    const std::span<std::byte> region(mem.get(), size);
    REQUIRE(ring_initialize(region, capacity));
    RingProducer producer(region, capacity);
    RingConsumer consumer(region, capacity);
    const std::uint32_t max_payload = producer.max_payload();

    StressResult result;

    std::thread consumer_thread([&] {
        AdaptiveSpinner spinner(consumer_spin);
        std::vector<std::byte> buf(max_payload), expected(max_payload);
        std::uint64_t seq = 0;
        for (;;) {
            const PopResult r = consumer.try_pop(buf);
            if (r && r.kind == RecordKind::cancel) break;  // the producer's end marker
            if (r) {
                const std::uint32_t want = size_of_record(seq, max_payload);
                fill_record(seq, {expected.data(), want});
                const bool good = r.request_id == seq && r.size == want &&
                                  r.kind == (seq % 2 ? RecordKind::response : RecordKind::request) &&
                                  r.flags == (seq % 3 == 0 ? kRecordFlagLast : 0) &&
                                  std::memcmp(buf.data(), expected.data(), want) == 0;
                if (!good) ++result.errors;
                result.bytes += r.size;
                ++seq;
                continue;
            }
            if (r.error != RingError::empty) {
                ++result.errors;
                break;
            }
            // Every push that finds the flag raised wakes us, so a long sleep
            // without data means a lost wake-up.
            if (consumer.wait(&spinner, 10s) == WaitResult::timed_out) {
                ++result.lost_wakeups;
                break;
            }
        }
        result.records = seq;
    });

    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    std::vector<std::byte> scratch(max_payload);
    std::uint64_t seq = 0;
    XorShift choice(99);
    while (std::chrono::steady_clock::now() < deadline) {
        for (int burst = 0; burst < 64; ++burst) {
            const std::uint32_t n = size_of_record(seq, max_payload);
            const RecordKind kind = seq % 2 ? RecordKind::response : RecordKind::request;
            const std::uint16_t flags = seq % 3 == 0 ? kRecordFlagLast : 0;
            PushResult r;
            for (;;) {
                switch (choice.below(3)) {
                    case 0:
                        fill_record(seq, {scratch.data(), n});
                        r = producer.try_push(kind, flags, seq, {scratch.data(), n});
                        break;
                    case 1: {
                        fill_record(seq, {scratch.data(), n});
                        const std::uint32_t split = choice.below(n + 1);
                        r = producer.try_push(kind, flags, seq, {scratch.data(), split},
                                              {scratch.data() + split, n - split});
                        break;
                    }
                    default: {
                        const std::uint32_t extra = choice.below(32);
                        const std::uint32_t reserve = n + extra > max_payload ? n : n + extra;
                        Reservation res = producer.try_reserve(reserve);
                        if (!res) {
                            r = PushResult{res.error, false};
                            break;
                        }
                        fill_record(seq, res.payload.first(n));
                        r = producer.commit(kind, flags, seq, n);
                        break;
                    }
                }
                if (r.needs_wakeup) {
                    producer.wake_consumer_futex();
                    ++result.wakeups;
                }
                if (r) break;
                REQUIRE(r.error == RingError::full);
                std::this_thread::yield();
            }
            ++seq;
        }
    }
    for (;;) {  // end marker, through the same wake-up protocol
        const PushResult r = producer.try_push(RecordKind::cancel, 0, ~std::uint64_t{0}, {});
        if (r.needs_wakeup) producer.wake_consumer_futex();
        if (r) break;
        std::this_thread::yield();
    }
    consumer_thread.join();
    CHECK(result.lost_wakeups == 0);
    CHECK(result.records == seq);
    return result;
}

}  // namespace

TEST_CASE("ring stress: spinning consumer, random sizes, checksummed", "[.][stress]") {
    const StressResult r = run_stress(4096, AdaptiveSpinner::kDefaultMax, stress_seconds() / 2);
    INFO("records " << r.records << ", bytes " << r.bytes << ", wake-ups " << r.wakeups);
    CHECK(r.errors == 0);
    CHECK(r.records > 1000);
}

TEST_CASE("ring stress: sleeping consumer exercises the wake-up protocol", "[.][stress]") {
    const StressResult r = run_stress(1024, 0, stress_seconds() / 2);
    INFO("records " << r.records << ", bytes " << r.bytes << ", wake-ups " << r.wakeups);
    CHECK(r.errors == 0);
    CHECK(r.records > 1000);
}
