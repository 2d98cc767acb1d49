// Where a tailer of regiond.invalidations stands, and which rows of a page it
// has not delivered yet: transactional-outbox tailing by transaction id, pure
// logic (no I/O), driven by InvalidationTailer (daemon/invalidation_tailer.hpp).
//
// Why not "rows with id > the last id seen": ids are taken when a row is
// inserted, and transactions commit in another order. A transaction that took
// id 10 and commits after the one that took id 11 was invisible when 11 was
// read; paging by id alone would skip it forever.
//
// What is used instead is the snapshot's xmin: every transaction with an xid
// below the xmin of a snapshot had ended when the snapshot was taken (this
// holds on a hot standby too, where the xmin comes from the standby's known
// running transactions; its xip list is NOT usable there: pg_current_snapshot()
// on a standby reports none). So after a poll whose statement ran with a
// snapshot of xmin X, every committed row with xid < X has been seen, and the
// next poll reads the rows with xid >= X ("the window"): those may belong to
// transactions that were still running. The rows of the window that were
// delivered already are remembered by id and skipped; they are forgotten once
// a later snapshot's xmin passes their xid (then no later poll reads them).
//
// One poll is a cycle of pages (`page_rows` rows each, in id order, continuing
// with id > the last one while a page is full). The position advances only at
// the end of a cycle, to the xmin of the cycle's FIRST page: a row visible to
// that snapshot is visible to every later one, so the pages together cover it;
// a row that became visible only during the cycle is read again by the next
// cycle (its xid is >= that xmin) and skipped as already delivered.
//
// The start: the first cycle only establishes the position. The rows of its
// first page (committed before the tailer started) are remembered, not
// delivered; the tailer reports the start as a gap.
//
// Memory: the remembered ids are the delivered rows of the window, i.e. the
// rows committed since the oldest transaction still running began. A
// long-running writing transaction keeps the window open; past `max_tracked`
// rows the cursor gives up (overflow: the tailer reports a gap), forgets
// everything, and waits until the snapshot's xmin has passed the transaction
// that held it (reading nothing but the snapshot), then establishes anew.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

namespace regiond::daemon::pg {

struct OutboxRow {
    std::uint64_t id = 0;
    std::uint64_t xid = 0;
    std::vector<std::string> keys;
};

struct OutboxLimits {
    std::size_t page_rows = 1000;      ///< rows per page (per statement)
    std::size_t max_tracked = 100000;  ///< remembered ids of the window, at most
};

class OutboxCursor {
public:
    using Limits = OutboxLimits;

    explicit OutboxCursor(Limits limits = {});

    /// What the next page's statement reads: rows with xid >= low (nullopt: the
    /// statement's own snapshot xmin, to establish the position) and id >
    /// after_id, in id order, at most `limit` (0: none, the snapshot only).
    struct Query {
        std::optional<std::uint64_t> low;
        std::uint64_t after_id = 0;
        std::size_t limit = 0;
    };
    Query next_query() const;

    enum class Step : std::uint8_t {
        next_page,  ///< the page was full (or the wait ended): read the next page at once
        caught_up,  ///< the cycle is complete and the position advanced
        overflow,   ///< the window holds more than max_tracked rows: position dropped (a gap)
        waiting,    ///< after an overflow: the window that overflowed is still open
    };

    /// One page's answer: the xmin of the snapshot its statement ran with and
    /// its rows in id order (as asked by next_query()). Appends to `deliver`
    /// the indexes (into `rows`) of the rows to deliver, in order.
    Step page(std::uint64_t snapshot_xmin, const std::vector<OutboxRow>& rows, std::vector<std::size_t>& deliver);

    /// Forgets the position and the window (the table was dropped, or the
    /// endpoint is another cluster): the next cycle establishes anew.
    void reset();

    /// A cycle has completed since the last reset (the position is known).
    bool positioned() const { return mode_ == Mode::tailing; }
    /// The position: rows with xid below it have all been seen. 0 when not positioned.
    std::uint64_t low() const { return mode_ == Mode::tailing ? low_ : 0; }
    std::size_t tracked() const { return ids_.size(); }
    const Limits& limits() const { return limits_; }

private:
    enum class Mode : std::uint8_t { establishing, tailing, waiting };

    bool track(const OutboxRow& row);  ///< false: over max_tracked
    void forget_below(std::uint64_t xid);
    void end_cycle();

    Limits limits_;
    Mode mode_ = Mode::establishing;
    std::uint64_t low_ = 0;
    /// waiting: until a snapshot's xmin is above this (the overflowed window's xmin).
    std::uint64_t hold_ = 0;
    // The cycle in progress (pages read so far).
    bool in_cycle_ = false;
    std::uint64_t cycle_xmin_ = 0;  ///< the first page's snapshot xmin
    std::uint64_t after_id_ = 0;
    // Delivered (or, when establishing, pre-existing) rows of the window.
    std::unordered_set<std::uint64_t> ids_;
    std::set<std::pair<std::uint64_t, std::uint64_t>> by_xid_;  ///< (xid, id): forgotten in xid order
};

/// A replica's replay crossed `retention` / 2 of the primary's commit
/// timestamps between two successive good polls (microseconds since the
/// epoch, pg_last_xact_replay_timestamp(); nullopt when unknown): rows
/// committed and deleted by the retention cleanup within that stretch may have
/// been replayed and removed between the two polls, unseen. With the cleanup
/// deleting rows an hour after they were written (their `at` precedes their
/// commit by the commit alone) a loss needs a jump of nearly an hour; half the
/// retention leaves room for slow commits. An idle primary also jumps (the
/// next commit after a long pause): a harmless extra gap.
bool replay_jumped_past_retention(std::optional<std::int64_t> before_us, std::optional<std::int64_t> after_us,
                                  std::int64_t retention_us);

}  // namespace regiond::daemon::pg
