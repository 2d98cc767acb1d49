// The per-client response backlog (daemon/output_queue.hpp): order, retry
// back-off, and when a client that does not read is dropped.
#include <catch2/catch.hpp>

#include "daemon/backlog.hpp"
#include "daemon/output_queue.hpp"

using namespace regiond::daemon;
using namespace std::chrono_literals;
using regiond::shm::PushResult;
using regiond::shm::RingError;
using Clock = OutputQueue::Clock;

namespace {

OutgoingRecord record(std::uint64_t id, std::size_t bytes) {
    OutgoingRecord r;
    r.request_id = id;
    r.payload.resize(bytes);
    return r;
}

// A ring with room for `slots` records.
struct FakeRing {
    explicit FakeRing(std::size_t room) : slots(room) {}
    std::size_t slots = 0;
    std::vector<std::uint64_t> received;
    bool sleeping = false;
    bool corrupt = false;
    PushResult operator()(const OutgoingRecord& r) {
        if (corrupt) return PushResult{RingError::corrupt, false};
        if (slots == 0) return PushResult{RingError::full, false};
        --slots;
        received.push_back(r.request_id);
        const bool wake = sleeping;
        sleeping = false;
        return PushResult{RingError::ok, wake};
    }
};

}  // namespace

TEST_CASE("queued records leave in order as room appears", "[output]") {
    OutputQueue q;
    const auto t0 = Clock::now();
    for (std::uint64_t id = 1; id <= 5; ++id) q.push_back(record(id, 100), t0);
    CHECK(q.size() == 5);
    CHECK(q.bytes() == 500);

    FakeRing ring(2);
    ring.sleeping = true;
    FlushResult r = q.flush(ring, t0);
    CHECK(r.pushed == 2);
    CHECK(r.needs_wakeup);
    CHECK(q.bytes() == 300);

    ring.slots = 10;
    r = q.flush(ring, t0);
    CHECK(r.pushed == 3);
    CHECK_FALSE(r.needs_wakeup);
    CHECK(q.empty());
    CHECK(ring.received == std::vector<std::uint64_t>{1, 2, 3, 4, 5});
}

TEST_CASE("the retry delay backs off without progress and resets with it", "[output]") {
    OutputQueue q;
    const auto t0 = Clock::now();
    q.push_back(record(1, 10), t0);
    q.push_back(record(2, 10), t0);
    CHECK(q.retry_delay() == 1ms);
    FakeRing full(0);
    (void)q.flush(full, t0);
    CHECK(q.retry_delay() == 2ms);
    for (int i = 0; i < 10; ++i) (void)q.flush(full, t0);
    CHECK(q.retry_delay() == OutputQueue::kMaxRetry);
    FakeRing one(1);
    (void)q.flush(one, t0);
    CHECK(q.retry_delay() == 1ms);
}

TEST_CASE("a client that does not read is dropped when it stalls", "[output]") {
    OutputLimits limits;
    limits.max_stall = 10s;
    const auto t0 = Clock::now();

    OutputQueue slow(limits);
    slow.push_back(record(1, 10), t0);
    slow.push_back(record(2, 10), t0);
    FakeRing full(0);
    (void)slow.flush(full, t0 + 5s);
    CHECK(slow.verdict(t0 + 9s) == OutputQueue::Verdict::ok);
    CHECK(slow.verdict(t0 + 11s) == OutputQueue::Verdict::stalled);
    // Progress restarts the stall clock.
    FakeRing one(1);
    (void)slow.flush(one, t0 + 11s);
    CHECK(slow.verdict(t0 + 20s) == OutputQueue::Verdict::ok);
    CHECK(slow.verdict(t0 + 22s) == OutputQueue::Verdict::stalled);
    // An empty queue is never a problem.
    OutputQueue empty(limits);
    CHECK(empty.verdict(t0 + 1000s) == OutputQueue::Verdict::ok);
}

TEST_CASE("a corrupt ring stops the flush and is reported", "[output]") {
    OutputQueue q;
    const auto t0 = Clock::now();
    q.push_back(record(1, 10), t0);
    FakeRing ring(5);
    ring.corrupt = true;
    const FlushResult r = q.flush(ring, t0);
    CHECK(r.corrupt);
    CHECK(r.pushed == 0);
    CHECK(q.size() == 1);
}

TEST_CASE("backlog: the window, and who is dropped over daemon.max_backlog", "[output][backlog]") {
    CHECK(stream_window(64 * 1024) == 1u << 20);
    CHECK(stream_window(4u << 20) == 4u << 20);

    const ClientBacklog within[] = {{1, 400}, {2, 0}, {3, 600}};
    CHECK_FALSE(backlog_victim(within, 1000).has_value());

    const ClientBacklog over[] = {{1, 400}, {2, 0}, {3, 700}, {4, 100}};
    const auto v = backlog_victim(over, 1000);
    REQUIRE(v.has_value());
    CHECK(v->client == 3);
    CHECK(v->bytes == 700);
    CHECK(v->clients == 3);  // client 2 has no backlog and no share
    CHECK(v->share == 333);
    CHECK(v->total == 1200);
    CHECK_FALSE(backlog_victim({}, 0).has_value());
}
