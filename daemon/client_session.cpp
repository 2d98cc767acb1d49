#include "daemon/client_session.hpp"

#include <unistd.h>

#include <cstdint>

namespace regiond::daemon {

std::string ClientSession::describe() const {
    std::string text = "client " + std::to_string(info_.id) + " (pid " + std::to_string(info_.pid) + " uid " +
                       std::to_string(info_.uid);
    if (!info_.name.empty()) text += " " + info_.name;
    return text + ")";
}

void ClientSession::wake_client() noexcept {
    responses().wake_consumer_futex();
    if (segment_.client_wake() == shm::ClientWake::futex_and_eventfd) {
        const std::uint64_t one = 1;
        // Errors ignored: EAGAIN means the counter is already non-zero (the
        // client is awake anyway); a client that closed its copy is gone.
        [[maybe_unused]] const ssize_t n = ::write(client_eventfd_.get(), &one, sizeof one);
    }
}

bool ClientSession::send(OutgoingRecord record, OutputQueue::Clock::time_point now, bool& wake) {
    if (output_.empty()) {
        const shm::PushResult pushed =
            responses().try_push(record.kind, record.flags, record.request_id, record.payload);
        if (pushed.error == shm::RingError::ok) {
            wake = wake || pushed.needs_wakeup;
            return true;
        }
        if (pushed.error != shm::RingError::full) return false;
    }
    output_.push_back(std::move(record), now);
    return true;
}

bool ClientSession::flush(OutputQueue::Clock::time_point now, bool& wake, bool& progress) {
    progress = false;
    if (output_.empty()) return true;
    const FlushResult result = output_.flush(
        [this](const OutgoingRecord& r) { return responses().try_push(r.kind, r.flags, r.request_id, r.payload); },
        now);
    wake = wake || result.needs_wakeup;
    progress = result.pushed != 0;
    return !result.corrupt;
}

}  // namespace regiond::daemon
