// write: to the primary, once. A write whose endpoint failed may or may not
// have committed, so it is never sent again (Job::may_retry = false tells the
// endpoint the same); its error says so.
//
// A write with cache keys carries them to the endpoint, which records them in
// an invalidation row in the write's own transaction (the durable path). When
// the answer comes, before it is sent, the keys are evicted from this host's
// hot cache and fenced at the write's LSN; a committed write then fans out to
// every region's Redis (DEL + PUBLISH: the fast path). A failed write evicts
// here too (an eviction is never wrong) but publishes nothing: if it did
// commit after all, its row reaches every region by the durable path.
#pragma once

#include "daemon/cache/cache_service.hpp"
#include "daemon/operation_handler.hpp"

namespace regiond::daemon {

class WriteHandler final : public OperationHandler {
public:
    explicit WriteHandler(cache::CacheService& cache) : cache_(cache) {}
    void start(PendingRequest& request, DispatchContext& context) override;
    void on_answer(PendingRequest& request, const pg::Outcome& outcome, DispatchContext& context) override;

private:
    cache::CacheService& cache_;
};

}  // namespace regiond::daemon
