#include "daemon/pg/outbox_cursor.hpp"

#include <algorithm>

namespace regiond::daemon::pg {

OutboxCursor::OutboxCursor(Limits limits) : limits_(limits) {
    if (limits_.page_rows == 0) limits_.page_rows = 1;
}

OutboxCursor::Query OutboxCursor::next_query() const {
    Query q;
    switch (mode_) {
        case Mode::waiting: return q;  // the snapshot only
        case Mode::establishing:
            // The first page takes its own snapshot's xmin; the later pages of
            // the establishing cycle keep to the first one's.
            if (in_cycle_) q.low = cycle_xmin_;
            break;
        case Mode::tailing: q.low = low_; break;
    }
    q.after_id = after_id_;
    q.limit = limits_.page_rows;
    return q;
}

bool OutboxCursor::track(const OutboxRow& row) {
    if (ids_.size() >= limits_.max_tracked) return false;
    ids_.insert(row.id);
    by_xid_.emplace(row.xid, row.id);
    return true;
}

void OutboxCursor::forget_below(std::uint64_t xid) {
    // No later cycle reads a row whose xid is below the position: its id need
    // not be remembered any more.
    auto end = by_xid_.lower_bound({xid, 0});
    for (auto it = by_xid_.begin(); it != end; ++it) ids_.erase(it->second);
    by_xid_.erase(by_xid_.begin(), end);
}

void OutboxCursor::end_cycle() {
    // Every row visible to the first page's snapshot has been read by one of
    // the cycle's pages; every transaction below that snapshot's xmin had
    // ended. A position never goes back: transactions that had ended stay ended.
    if (mode_ == Mode::establishing) {
        mode_ = Mode::tailing;
        low_ = cycle_xmin_;
    } else {
        low_ = std::max(low_, cycle_xmin_);
    }
    forget_below(low_);
    in_cycle_ = false;
    after_id_ = 0;
}

OutboxCursor::Step OutboxCursor::page(std::uint64_t snapshot_xmin, const std::vector<OutboxRow>& rows,
                                      std::vector<std::size_t>& deliver) {
    if (mode_ == Mode::waiting) {
        if (snapshot_xmin <= hold_) return Step::waiting;
        // The transaction that held the window open has ended: establish anew.
        mode_ = Mode::establishing;
        return Step::next_page;
    }
    const bool first_page = !in_cycle_;
    if (first_page) {
        in_cycle_ = true;
        cycle_xmin_ = snapshot_xmin;
    }
    // The first page of the establishing cycle holds rows committed before the
    // start: remembered, not delivered. Its later pages may hold rows that
    // committed during the cycle, after the start: delivered (a row from
    // before the start delivered as well only costs a needless eviction).
    const bool before_start = mode_ == Mode::establishing && first_page;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const OutboxRow& row = rows[i];
        if (ids_.contains(row.id)) continue;  // delivered by an earlier cycle (or page)
        if (!track(row)) {
            // Too many rows in the window to remember: give up the position.
            // Wait until the snapshot's xmin has passed this cycle's (the
            // transaction holding the window open has ended) before
            // establishing again, or the same window would overflow again.
            const std::uint64_t hold = cycle_xmin_;
            reset();
            mode_ = Mode::waiting;
            hold_ = hold;
            return Step::overflow;
        }
        if (!before_start) deliver.push_back(i);
    }
    if (rows.size() >= limits_.page_rows) {
        after_id_ = rows.back().id;
        return Step::next_page;
    }
    end_cycle();
    return Step::caught_up;
}

void OutboxCursor::reset() {
    mode_ = Mode::establishing;
    low_ = 0;
    hold_ = 0;
    in_cycle_ = false;
    cycle_xmin_ = 0;
    after_id_ = 0;
    ids_.clear();
    by_xid_.clear();
}

bool replay_jumped_past_retention(std::optional<std::int64_t> before_us, std::optional<std::int64_t> after_us,
                                  std::int64_t retention_us) {
    if (!before_us || !after_us) return false;
    return *after_us - *before_us >= retention_us / 2;
}

}  // namespace regiond::daemon::pg
