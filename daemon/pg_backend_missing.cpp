// TEMPORARY: links regiond while daemon/pg/ (the PostgreSQL backend, another
// engineer's folder) has no implementation yet. meson.build uses this file only
// when daemon/pg/meson.build does not define regiond_pg_dep; delete it once the
// backend has landed. Every endpoint stays down and every job fails with a
// message that says why.
#include "daemon/pg/endpoint.hpp"

namespace regiond::daemon::pg {
namespace {

constexpr const char* kMissing = "the PostgreSQL backend (daemon/pg/) is not built into this regiond yet";

class MissingEndpoint final : public Endpoint {
public:
    MissingEndpoint(EventLoop& loop, EndpointOptions options) : loop_(loop), options_(std::move(options))
    {
        health_.last_error = kMissing;
        health_.pool_size = options_.pool_size;
    }
    void start() override {}
    void submit(Job, Completion done) override
    {
        loop_.defer([done = std::move(done), max = options_.max_chunk_bytes] {
            shm::ResponseEncoder encoder(max);
            shm::ResponseHeadView head;
            head.status = shm::Status::error;
            head.error = kMissing;
            (void)encoder.begin(head);
            const auto chunk = encoder.take_chunk(true);
            Outcome outcome;
            outcome.chunks.emplace_back(chunk.begin(), chunk.end());
            done(std::move(outcome));
        });
    }
    const Health& health() const override { return health_; }
    const EndpointOptions& options() const override { return options_; }
    void on_health_change(std::function<void()>) override {}
    void set_lag_tracker(std::shared_ptr<LagTracker>) override {}
    void drain(std::string, std::function<void()> drained) override { loop_.defer(std::move(drained)); }
    std::size_t in_flight() const override { return 0; }

private:
    EventLoop& loop_;
    EndpointOptions options_;
    Health health_;
};

}  // namespace

std::unique_ptr<Endpoint> Endpoint::create(EventLoop& loop, EndpointOptions options)
{
    return std::make_unique<MissingEndpoint>(loop, std::move(options));
}

}  // namespace regiond::daemon::pg
