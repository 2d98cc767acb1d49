#include "daemon/cache/fences.hpp"

#include <algorithm>

namespace regiond::daemon::cache {

void Fences::invalidate(std::string_view key, std::uint64_t lsn) {
    auto it = by_key_.find(std::string(key));
    if (it == by_key_.end()) {
        while (!oldest_first_.empty() && (by_key_.size() >= max_keys_ || key_bytes_ + key.size() > max_key_bytes_))
            drop_oldest();
        oldest_first_.emplace_back(key);
        key_bytes_ += key.size();
        it = by_key_.emplace(oldest_first_.back(), Entry{0, 0, std::prev(oldest_first_.end())}).first;
    } else {
        oldest_first_.splice(oldest_first_.end(), oldest_first_, it->second.age);
    }
    it->second.lsn = std::max(it->second.lsn, lsn);
    ++it->second.version;
}

void Fences::drop_oldest() {
    // The floor takes over what the dropped fence refused, and the epoch
    // refuses fills that started while it stood (their FillStart holds a
    // version that no longer exists).
    const std::string& victim = oldest_first_.front();
    floor_ = std::max(floor_, by_key_.at(victim).lsn);
    key_bytes_ -= victim.size();
    by_key_.erase(victim);
    oldest_first_.pop_front();
    ++epoch_;
}

void Fences::invalidate_all(std::uint64_t lsn) {
    floor_ = std::max(floor_, lsn);
    ++epoch_;
}

std::uint64_t Fences::fence(std::string_view key) const {
    const auto it = by_key_.find(std::string(key));
    return it == by_key_.end() ? 0 : it->second.lsn;
}

std::uint64_t Fences::version(std::string_view key) const {
    const auto it = by_key_.find(std::string(key));
    return it == by_key_.end() ? 0 : it->second.version;
}

std::uint64_t Fences::required_lsn(std::string_view key) const {
    return std::max(fence(key), floor_);
}

FillStart Fences::start(std::string_view key) const {
    return FillStart{version(key), epoch_};
}

bool Fences::admits(std::string_view key, const FillStart& started, std::uint64_t value_floor) const {
    return started.epoch == epoch_ && started.key_version == version(key) && admits_now(key, value_floor);
}

}  // namespace regiond::daemon::cache
