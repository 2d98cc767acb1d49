// Per-connection cache of server-side prepared statements (LRU).
//
// An entry is created "preparing" when its PQsendPrepare is queued and becomes
// "ready" when the server answers the Parse with success. Only ready entries are
// used by later commands (PQsendQueryPrepared); a command that meets a preparing
// entry goes unnamed (PQsendQueryParams), because that Parse may still fail (a
// syntax error, or its pipeline segment aborted) and a later job must then get
// the real error, not "prepared statement does not exist". Preparing entries are
// never evicted. Evicted names are handed back so the connection can DEALLOCATE
// them on the server.
#pragma once

#include <cstdint>
#include <list>
#include <string>
#include <unordered_map>
#include <vector>

namespace regiond::daemon::pg {

class StatementCache {
public:
    enum class State : std::uint8_t { miss, preparing, ready };
    struct Lookup {
        State state = State::miss;
        std::uint64_t id = 0;  ///< statement name is name_of(id)
    };

    explicit StatementCache(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

    /// Finds `key` and marks it most recently used.
    Lookup find(const std::string& key);
    /// Adds `key` as preparing (the caller checked find() missed); returns its id.
    /// Entries beyond the capacity (least recently used, ready ones only) are
    /// evicted and their ids appended to `evicted`.
    std::uint64_t insert(const std::string& key, std::vector<std::uint64_t>& evicted);
    /// The Parse succeeded.
    void confirm(std::uint64_t id);
    /// The Parse failed or never ran, or the statement became unusable.
    void forget(std::uint64_t id);
    void clear();
    std::size_t size() const { return lru_.size(); }
    std::size_t capacity() const { return capacity_; }

    static std::string name_of(std::uint64_t id) { return "rgd_s" + std::to_string(id); }

private:
    struct Entry {
        std::string key;
        std::uint64_t id;
        bool ready;
    };
    using Iter = std::list<Entry>::iterator;
    std::size_t capacity_;
    std::uint64_t next_id_ = 1;
    std::list<Entry> lru_;  ///< front = most recently used
    std::unordered_map<std::string, Iter> by_key_;
    std::unordered_map<std::uint64_t, Iter> by_id_;
};

}  // namespace regiond::daemon::pg
