#include "daemon/pg/pool.hpp"

#include <algorithm>

namespace regiond::daemon::pg {

Slot::Slot(Pool& p, EndpointContext& ctx) : pool(p), conn(ctx.loop, ctx.settings, *this) {}

void Slot::on_connected(Connection&) {
    pool.listener().slot_connected(*this);
}
void Slot::on_closed(Connection&, const CloseInfo& info, bool was_ready) {
    pool.listener().slot_closed(*this, info, was_ready);
}
void Slot::on_work_done(Connection&) {
    pool.listener().slot_work_done(*this);
}

Pool::Pool(EndpointContext& ctx, PoolListener& listener) : ctx_(ctx), listener_(listener) {}

void Pool::ensure(std::size_t waiting, std::function<void()> retry) {
    const auto now = Clock::now();
    std::size_t open = 0, connecting = 0;
    for (const auto& s : slots_) {
        if (s->conn.state() != Connection::State::closed) ++open;
        if (s->conn.state() == Connection::State::connecting) ++connecting;
    }
    std::size_t wanted = waiting > connecting ? waiting - connecting : 0;
    if (open == 0) wanted = std::max<std::size_t>(wanted, 1);
    Clock::time_point retry_at = Clock::time_point::max();
    for (auto& s : slots_) {
        if (wanted == 0) break;
        if (s->conn.state() != Connection::State::closed) continue;
        if (s->next_attempt > now) {
            retry_at = std::min(retry_at, s->next_attempt);
            continue;
        }
        s->conn.connect();
        --wanted;
    }
    while (wanted > 0 && slots_.size() < ctx_.options.pool_size) {
        slots_.push_back(std::make_unique<Slot>(*this, ctx_));
        slots_.back()->conn.connect();
        --wanted;
    }
    if (wanted > 0 && retry_at != Clock::time_point::max() && !retry_timer_.pending()) {
        retry_timer_ = ctx_.loop.timer(retry_at, std::move(retry));
    }
}

Slot* Pool::pick(bool write, bool batchable, Clock::time_point now) {
    if (batchable) {
        // Reads arriving together join an open batch (up to kBatchTarget) before
        // they take another idle connection: fewer, larger batches cost the
        // server and the daemon fewer system calls per read.
        for (auto& s : slots_) {
            if (s->usable() && s->batched_in_pass > 0 && s->batched_in_pass < kBatchTarget &&
                s->conn.depth() < kMaxPipelineDepth)
                return s.get();
        }
    }
    for (auto& s : slots_) {
        if (s->usable() && s->conn.depth() == 0 && s->jobs.empty()) return s.get();
    }
    if (write || can_grow(now)) return nullptr;
    Slot* best = nullptr;
    for (auto& s : slots_) {
        if (!s->usable() || s->conn.depth() >= kMaxPipelineDepth) continue;
        if (best == nullptr || s->conn.depth() < best->conn.depth()) best = s.get();
    }
    return best;
}

void Pool::end_batches() {
    for (auto& s : slots_) {
        s->conn.end_batch();
        s->batched_in_pass = 0;
    }
}

bool Pool::any_ready() const {
    return std::any_of(slots_.begin(), slots_.end(), [](const auto& s) { return s->conn.ready(); });
}

bool Pool::can_grow(Clock::time_point now) const {
    if (slots_.size() < ctx_.options.pool_size) return true;
    return std::any_of(slots_.begin(), slots_.end(), [&](const auto& s) {
        return s->conn.state() == Connection::State::closed && s->next_attempt <= now;
    });
}

std::uint32_t Pool::in_use() const {
    return static_cast<std::uint32_t>(
        std::count_if(slots_.begin(), slots_.end(), [](const auto& s) { return !s->jobs.empty(); }));
}

void Pool::close_all() {
    retry_timer_.cancel();
    for (auto& s : slots_) s->conn.close("", CloseCause::reset, nullptr, false);
}

void Pool::set_connect_timeout(std::chrono::milliseconds timeout) {
    for (auto& s : slots_) s->conn.set_connect_timeout(timeout);
}

}  // namespace regiond::daemon::pg
