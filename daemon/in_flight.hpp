// Requests in flight per client, and the orphans of clients that went away, per
// uid (docs/design.md, "Resource bounds"). Pure bookkeeping: unit-tested.
//
// A client's count goes up when the daemon takes a request from its ring and
// down when the request's job has ended on the server (release). When the
// client goes away (close), what it still has in flight becomes orphans of its
// uid: the jobs were cancelled but run until the server has stopped them.
//
//   a client may take another request  <=>  count(client) < cap
//                                       and orphans(uid) < cap
//
// So one process cannot hold more than `cap` jobs by cancelling
// (cancel does not release), and a uid cannot hold more than `cap` orphans
// (plus `cap` per live session) by disconnecting and reconnecting.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <unordered_map>

namespace regiond::daemon {

class InFlightLedger {
public:
    using ClientId = std::uint64_t;

    explicit InFlightLedger(std::size_t cap) : cap_(cap) {}

    /// daemon.max_in_flight_per_client (SIGHUP may change it: the caller then
    /// re-checks every waiting client, since no release marks the crossing).
    void set_cap(std::size_t cap) noexcept { cap_ = cap; }
    std::size_t cap() const noexcept { return cap_; }

    /// A new client session.
    void open(ClientId client, uid_t uid);
    /// A request taken from the client's ring.
    void take(ClientId client);

    struct Released {
        bool known = false;             ///< the client was counting anything
        bool client_below_cap = false;  ///< a live client went from full to not full
        bool uid_below_cap = false;     ///< the uid's orphans went from the cap to just below it
        uid_t uid = 0;
    };
    /// A request's job ended (or it was answered without one).
    Released release(ClientId client);
    /// The client went away: its count becomes orphans of its uid.
    void close(ClientId client);

    std::size_t in_flight(ClientId client) const noexcept;
    std::size_t orphans(uid_t uid) const noexcept;
    std::size_t orphans_total() const noexcept { return orphans_total_; }
    /// Every request counted, live clients and orphans together.
    std::size_t total() const noexcept { return total_; }
    /// count(client) >= cap: no more requests from it until one is released.
    bool client_full(ClientId client) const noexcept { return in_flight(client) >= cap_; }
    /// orphans(uid) >= cap: no more requests from any session of this uid.
    bool uid_blocked(uid_t uid) const noexcept { return orphans(uid) >= cap_; }

private:
    struct Entry {
        uid_t uid = 0;
        std::size_t count = 0;
        bool open = true;
    };
    std::size_t cap_;
    std::unordered_map<ClientId, Entry> clients_;  ///< live clients, and gone ones until their count is 0
    std::unordered_map<uid_t, std::size_t> orphans_;
    std::size_t orphans_total_ = 0;
    std::size_t total_ = 0;
};

}  // namespace regiond::daemon
