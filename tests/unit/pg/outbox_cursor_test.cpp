// OutboxCursor (daemon/pg/outbox_cursor.hpp): which rows of
// regiond.invalidations a tailer delivers, page by page, given each page's
// snapshot xmin. Hand-made cases for the rules, then a model of transactions
// committing in random order (xids, ids and commits interleaved as a server
// allows) against which every row must be delivered exactly once.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <vector>

#include "daemon/pg/outbox_cursor.hpp"

using regiond::daemon::pg::OutboxCursor;
using regiond::daemon::pg::OutboxLimits;
using regiond::daemon::pg::OutboxRow;
using regiond::daemon::pg::replay_jumped_past_retention;
using CursorStep = OutboxCursor::Step;

namespace {

OutboxRow row(std::uint64_t id, std::uint64_t xid) {
    return OutboxRow{id, xid, {"k" + std::to_string(id)}};
}

// Feeds one page; returns the ids delivered.
std::vector<std::uint64_t> feed(OutboxCursor& c, std::uint64_t xmin, const std::vector<OutboxRow>& rows, CursorStep expect) {
    std::vector<std::size_t> deliver;
    const CursorStep got = c.page(xmin, rows, deliver);
    CHECK(got == expect);
    std::vector<std::uint64_t> ids;
    for (auto i : deliver) ids.push_back(rows.at(i).id);
    return ids;
}

using Ids = std::vector<std::uint64_t>;

}  // namespace

TEST_CASE("the first cycle establishes the position and delivers nothing from before it", "[outbox]") {
    OutboxCursor c;
    CHECK_FALSE(c.positioned());
    auto q = c.next_query();
    CHECK_FALSE(q.low.has_value());  // the statement's own snapshot xmin
    CHECK(q.after_id == 0);
    CHECK(q.limit == 1000);
    // Rows with xid >= xmin that were visible at the start: remembered only.
    CHECK(feed(c, 100, {row(1, 100), row(2, 101)}, CursorStep::caught_up).empty());
    CHECK(c.positioned());
    CHECK(c.low() == 100);
    // Read again by the next cycle (still in the window): not delivered.
    CHECK(feed(c, 100, {row(1, 100), row(2, 101), row(3, 102)}, CursorStep::caught_up) == Ids{3});
    CHECK(c.next_query().low == std::optional<std::uint64_t>(100));
}

TEST_CASE("a transaction that commits after a younger one is delivered, once", "[outbox]") {
    OutboxCursor c;
    feed(c, 100, {}, CursorStep::caught_up);
    // A (xid 100, id 1) is open; B (xid 101, id 2) committed: only B is visible.
    CHECK(feed(c, 100, {row(2, 101)}, CursorStep::caught_up) == Ids{2});
    // A paging by id would now ask for id > 2 and never see id 1. The cursor
    // still reads from xid 100 (the snapshot's xmin: A was running).
    CHECK(c.next_query().low == std::optional<std::uint64_t>(100));
    CHECK(c.next_query().after_id == 0);
    CHECK(feed(c, 100, {row(2, 101)}, CursorStep::caught_up).empty());
    // A commits; the xmin moves past both.
    CHECK(feed(c, 102, {row(1, 100), row(2, 101)}, CursorStep::caught_up) == Ids{1});
    CHECK(c.low() == 102);
    CHECK(c.tracked() == 0);  // nothing below the position is remembered
    CHECK(feed(c, 102, {}, CursorStep::caught_up).empty());
}

TEST_CASE("pages: full pages continue by id, the position moves to the first page's xmin", "[outbox]") {
    OutboxCursor c(OutboxLimits{2, 100});
    feed(c, 10, {}, CursorStep::caught_up);
    CHECK(feed(c, 12, {row(1, 10), row(2, 11)}, CursorStep::next_page) == (Ids{1, 2}));
    auto q = c.next_query();
    CHECK(q.low == std::optional<std::uint64_t>(10));  // the cycle keeps the old position
    CHECK(q.after_id == 2);
    CHECK(q.limit == 2);
    // A later page's snapshot is newer; its xmin is not the cycle's.
    CHECK(feed(c, 20, {row(3, 12)}, CursorStep::caught_up) == Ids{3});
    CHECK(c.low() == 12);
    CHECK(c.next_query().after_id == 0);
    // Row 3 (xid 12) is still in the window: read again, not delivered again.
    CHECK(feed(c, 20, {row(3, 12), row(4, 19)}, CursorStep::next_page) == Ids{4});
    CHECK(feed(c, 21, {}, CursorStep::caught_up).empty());
    CHECK(c.low() == 20);
}

TEST_CASE("a row that becomes visible during a cycle's later page is delivered once", "[outbox]") {
    OutboxCursor c(OutboxLimits{1, 100});
    feed(c, 50, {}, CursorStep::caught_up);
    // Page 1 (xmin 50): row 1 only; xid 50 (id 2) still running.
    CHECK(feed(c, 50, {row(1, 51)}, CursorStep::next_page) == Ids{1});
    // Page 2 (newer snapshot): xid 50 committed meanwhile: delivered now.
    CHECK(feed(c, 52, {row(2, 50)}, CursorStep::next_page) == Ids{2});
    CHECK(feed(c, 52, {}, CursorStep::caught_up).empty());
    CHECK(c.low() == 50);  // the first page's xmin
    // The next cycle reads both again (xid >= 50): neither twice.
    CHECK(feed(c, 52, {row(1, 51)}, CursorStep::next_page).empty());
    CHECK(feed(c, 52, {row(2, 50)}, CursorStep::next_page).empty());
    CHECK(feed(c, 52, {}, CursorStep::caught_up).empty());
}

TEST_CASE("the position never goes back", "[outbox]") {
    OutboxCursor c;
    feed(c, 100, {}, CursorStep::caught_up);
    feed(c, 90, {}, CursorStep::caught_up);
    CHECK(c.low() == 100);
}

TEST_CASE("overflow: too many rows in the window drops the position until the window closes", "[outbox]") {
    OutboxCursor c(OutboxLimits{100, 3});
    feed(c, 10, {}, CursorStep::caught_up);
    // xid 10 stays open; rows of younger transactions pile up in the window.
    CHECK(feed(c, 10, {row(2, 11), row(3, 12), row(4, 13)}, CursorStep::caught_up).size() == 3);
    std::vector<std::size_t> deliver;
    CHECK(c.page(10, {row(2, 11), row(3, 12), row(4, 13), row(5, 14)}, deliver) == CursorStep::overflow);
    CHECK_FALSE(c.positioned());
    CHECK(c.tracked() == 0);
    // Waiting: the snapshot only, until its xmin passes the one that overflowed.
    CHECK(c.next_query().limit == 0);
    CHECK(feed(c, 10, {}, CursorStep::waiting).empty());
    CHECK(c.next_query().limit == 0);
    CHECK(feed(c, 15, {}, CursorStep::next_page).empty());  // the window closed: establish at once
    auto q = c.next_query();
    CHECK_FALSE(q.low.has_value());
    CHECK(q.limit == 100);
    CHECK(feed(c, 15, {}, CursorStep::caught_up).empty());
    CHECK(c.positioned());
    CHECK(c.low() == 15);
}

TEST_CASE("reset forgets the position and the window", "[outbox]") {
    OutboxCursor c;
    feed(c, 100, {}, CursorStep::caught_up);
    feed(c, 100, {row(1, 100)}, CursorStep::caught_up);
    c.reset();
    CHECK_FALSE(c.positioned());
    CHECK(c.tracked() == 0);
    CHECK_FALSE(c.next_query().low.has_value());
}

TEST_CASE("replay jumps: half the retention between two polls is a gap", "[outbox]") {
    const std::int64_t hour = 3600LL * 1000000;
    CHECK_FALSE(replay_jumped_past_retention(std::nullopt, 5, hour));
    CHECK_FALSE(replay_jumped_past_retention(5, std::nullopt, hour));
    CHECK_FALSE(replay_jumped_past_retention(0, hour / 2 - 1, hour));
    CHECK(replay_jumped_past_retention(0, hour / 2, hour));
    CHECK_FALSE(replay_jumped_past_retention(hour, 0, hour));  // backwards (another replica): no jump
}

// ---- a model of the server ----

namespace {

// Transactions that take an xid, insert their row (id from a sequence, at
// any time after the xid), and commit or abort, interleaved at random. A
// poll's page sees the committed rows with xid >= low and id > after, by id,
// and the snapshot's xmin: the oldest xid still running, else the next xid.
struct Model {
    std::mt19937_64 rng;
    std::uint64_t next_xid = 1000;
    std::uint64_t next_id = 1;
    struct Txn {
        std::uint64_t xid;
        std::optional<std::uint64_t> id;
    };
    std::vector<Txn> running;
    std::map<std::uint64_t, std::uint64_t> committed;  // id -> xid

    explicit Model(std::uint64_t seed) : rng(seed) {}

    std::uint64_t xmin() const {
        std::uint64_t m = next_xid;
        for (const auto& t : running) m = std::min(m, t.xid);
        return m;
    }

    void step() {
        const auto r = rng() % 10;
        if (r < 3 || running.empty()) {
            running.push_back(Txn{next_xid++, std::nullopt});
            return;
        }
        const std::size_t i = rng() % running.size();
        Txn& t = running[i];
        if (!t.id) {
            t.id = next_id++;
            return;
        }
        if (r < 9) committed.emplace(*t.id, t.xid);  // else aborted: its row never visible
        running.erase(running.begin() + static_cast<std::ptrdiff_t>(i));
    }

    std::vector<OutboxRow> page(const OutboxCursor::Query& q, std::uint64_t xmin) const {
        std::vector<OutboxRow> rows;
        const std::uint64_t low = q.low.value_or(xmin);
        for (auto it = committed.upper_bound(q.after_id); it != committed.end() && rows.size() < q.limit; ++it) {
            if (it->second >= low) rows.push_back(row(it->first, it->second));
        }
        return rows;
    }
};

}  // namespace

TEST_CASE("model: rows committed in any order are each delivered exactly once", "[outbox][model]") {
    for (std::uint64_t seed = 1; seed <= 200; ++seed) {
        INFO("seed " << seed);
        Model m(seed);
        OutboxCursor c(OutboxLimits{1 + seed % 7, 1000000});
        std::map<std::uint64_t, int> delivered;
        std::set<std::uint64_t> before_start;  // visible to the establishing first page
        bool establishing_first = true;
        for (int i = 0; i < 50; ++i) m.step();  // history before the tailer starts
        auto poll_cycle = [&](bool server_moves) {
            for (int pages = 0; pages < 10000; ++pages) {
                const std::uint64_t xmin = m.xmin();
                const auto q = c.next_query();
                const auto rows = m.page(q, xmin);
                if (establishing_first) {
                    for (const auto& [id, xid] : m.committed) before_start.insert(id);
                    establishing_first = false;
                }
                std::vector<std::size_t> deliver;
                const CursorStep s = c.page(xmin, rows, deliver);
                for (auto k : deliver) ++delivered[rows[k].id];
                REQUIRE(s != CursorStep::overflow);
                if (s == CursorStep::caught_up) return;
                // Between pages the server moves on.
                if (server_moves && m.rng() % 2 == 0) m.step();
            }
            FAIL("a cycle never ended");
        };
        for (int round = 0; round < 300; ++round) {
            const int events = static_cast<int>(m.rng() % 6);
            for (int e = 0; e < events; ++e) m.step();
            poll_cycle(true);
        }
        // Everything ends; two more polls see the last commits.
        while (!m.running.empty()) {
            auto& t = m.running.back();
            if (!t.id) t.id = m.next_id++;
            m.committed.emplace(*t.id, t.xid);
            m.running.pop_back();
        }
        poll_cycle(false);
        poll_cycle(false);
        for (const auto& [id, n] : delivered) {
            INFO("row " << id);
            CHECK(n == 1);
        }
        for (const auto& [id, xid] : m.committed) {
            if (before_start.count(id) != 0) continue;
            INFO("row " << id << " xid " << xid);
            CHECK(delivered.count(id) == 1);
        }
        // Bounded: nothing below the final position is remembered.
        CHECK(c.tracked() == 0);
    }
}
