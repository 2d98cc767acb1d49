#include "daemon/pg/statement_cache.hpp"

namespace regiond::daemon::pg {

StatementCache::Lookup StatementCache::find(const std::string& key) {
    auto it = by_key_.find(key);
    if (it == by_key_.end()) return {};
    lru_.splice(lru_.begin(), lru_, it->second);
    return Lookup{it->second->ready ? State::ready : State::preparing, it->second->id};
}

std::uint64_t StatementCache::insert(const std::string& key, std::vector<std::uint64_t>& evicted) {
    const std::uint64_t id = next_id_++;
    lru_.push_front(Entry{key, id, false});
    by_key_[key] = lru_.begin();
    by_id_[id] = lru_.begin();
    // Walk from the least recently used end, skipping entries still preparing.
    auto it = lru_.end();
    while (lru_.size() > capacity_ && it != lru_.begin()) {
        --it;
        if (!it->ready) continue;
        evicted.push_back(it->id);
        by_key_.erase(it->key);
        by_id_.erase(it->id);
        it = lru_.erase(it);
    }
    return id;
}

void StatementCache::confirm(std::uint64_t id) {
    auto it = by_id_.find(id);
    if (it != by_id_.end()) it->second->ready = true;
}

void StatementCache::forget(std::uint64_t id) {
    auto it = by_id_.find(id);
    if (it == by_id_.end()) return;
    by_key_.erase(it->second->key);
    lru_.erase(it->second);
    by_id_.erase(it);
}

void StatementCache::clear() {
    lru_.clear();
    by_key_.clear();
    by_id_.clear();
}

}  // namespace regiond::daemon::pg
