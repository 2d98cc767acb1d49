#include "daemon/cache/tailer_durable_path.hpp"

#include "daemon/invalidation_tailer.hpp"

namespace regiond::daemon::cache {
namespace {

class TailerDurablePath final : public DurablePath {
public:
    TailerDurablePath(EventLoop& loop, const pg::EndpointOptions& endpoint, bool cleanup, Hooks hooks)
        : hooks_(std::move(hooks)),
          tailer_(loop, InvalidationTailer::options_for(endpoint, cleanup),
                  InvalidationTailer::Hooks{
                      [this](std::vector<std::string> keys, std::uint64_t lsn) {
                          hooks_.on_invalidation(std::move(keys), lsn);
                      },
                      [this](std::string reason) { hooks_.on_gap(std::move(reason)); },
                      [this] { hooks_.on_caught_up(tailer_.last_lsn()); },
                  }) {}

    void start() override { tailer_.start(); }
    void poll_now() override { tailer_.poll_now(); }

private:
    Hooks hooks_;
    InvalidationTailer tailer_;  // last: its callbacks use hooks_
};

}  // namespace

std::unique_ptr<DurablePath> make_tailer_durable_path(EventLoop& loop, const pg::EndpointOptions& endpoint,
                                                      bool cleanup, DurablePath::Hooks hooks) {
    return std::make_unique<TailerDurablePath>(loop, endpoint, cleanup, std::move(hooks));
}

}  // namespace regiond::daemon::cache
