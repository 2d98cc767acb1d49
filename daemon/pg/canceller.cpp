#include "daemon/pg/canceller.hpp"

#include "daemon/pg/connection.hpp"

namespace regiond::daemon::pg {

Canceller::Canceller(EventLoop& loop) : shared_(std::make_shared<Shared>()), scope_(loop) {
    shared_->loop = &loop;
}

Canceller::~Canceller() {
    bool busy = false;
    {
        std::lock_guard lock(shared_->mu);
        shared_->stopping = true;
        shared_->loop = nullptr;
        shared_->queue.clear();
        busy = shared_->busy;
    }
    shared_->wake.notify_all();
    if (!worker_.joinable()) return;
    // Not busy: the worker is waiting (or about to) and sees `stopping` at once.
    // Busy: it may be blocked in PQcancel on a dead network; never wait for it.
    if (busy) {
        worker_.detach();
    } else {
        worker_.join();
    }
}

void Canceller::request(PGcancel* cancel, Done done) {
    Request r{std::unique_ptr<PGcancel, CancelFree>(cancel), std::move(done)};
    if (!r.cancel) {
        scope_.defer([done = std::move(r.done)] { done(false, "no cancel key for this connection"); });
        return;
    }
    {
        std::lock_guard lock(shared_->mu);
        shared_->queue.push_back(std::move(r));
    }
    if (!worker_.joinable()) worker_ = std::thread(run, shared_, scope_.token());
    shared_->wake.notify_one();
}

void Canceller::run(std::shared_ptr<Shared> shared, std::weak_ptr<const bool> alive) {
    std::unique_lock lock(shared->mu);
    for (;;) {
        shared->wake.wait(lock, [&] { return shared->stopping || !shared->queue.empty(); });
        if (shared->stopping) return;
        Request r = std::move(shared->queue.front());
        shared->queue.pop_front();
        shared->busy = true;
        lock.unlock();
        char error[256] = {};
        const bool ok = PQcancel(r.cancel.get(), error, sizeof error) == 1;
        r.cancel.reset();
        std::string message = ok ? std::string() : clean_libpq_message(error);
        lock.lock();
        shared->busy = false;
        if (shared->loop == nullptr) return;  // the Canceller is gone (and maybe the loop)
        shared->loop->post([alive, done = std::move(r.done), ok, message = std::move(message)] {
            if (!alive.expired()) done(ok, message);
        });
    }
}

}  // namespace regiond::daemon::pg
