#include "daemon/classifier_worker.hpp"

namespace regiond::daemon {

ClassifierWorker::ClassifierWorker(EventLoop& loop) : loop_(loop) {}

ClassifierWorker::~ClassifierWorker() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
        tasks_.clear();
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
}

void ClassifierWorker::classify(std::string sql, pg::Operation op, Done done) {
    {
        std::lock_guard lock(mu_);
        tasks_.push_back(Task{std::move(sql), op, std::move(done)});
    }
    // The thread's default stack (8 MiB, RLIMIT_STACK) covers the parser's
    // sql::kInlineStack; deeper texts get their own thread inside classify().
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    wake_.notify_one();
}

void ClassifierWorker::run() {
    const std::weak_ptr<const bool> alive = alive_;
    for (;;) {
        Task task;
        {
            std::unique_lock lock(mu_);
            wake_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
            if (stopping_) return;
            task = std::move(tasks_.front());
            tasks_.pop_front();
        }
        auto result = std::make_shared<const pg::Classification>(pg::classify(task.sql, task.op));
        loop_.post([alive, done = std::move(task.done), result = std::move(result)] {
            if (!alive.expired()) done(result);
        });
    }
}

}  // namespace regiond::daemon
