#include "daemon/in_flight.hpp"

namespace regiond::daemon {

void InFlightLedger::open(ClientId client, uid_t uid) {
    clients_[client] = Entry{uid, 0, true};
}

void InFlightLedger::take(ClientId client) {
    auto it = clients_.find(client);
    if (it != clients_.end() && it->second.open) {
        ++it->second.count;
        ++total_;
    }
}

InFlightLedger::Released InFlightLedger::release(ClientId client) {
    Released r;
    auto it = clients_.find(client);
    if (it == clients_.end() || it->second.count == 0) return r;
    Entry& e = it->second;
    r.known = true;
    r.uid = e.uid;
    --e.count;
    --total_;
    if (e.open) {
        r.client_below_cap = e.count + 1 == cap_;
        return r;
    }
    auto orphans = orphans_.find(e.uid);
    --orphans->second;
    --orphans_total_;
    r.uid_below_cap = orphans->second + 1 == cap_;
    if (orphans->second == 0) orphans_.erase(orphans);
    if (e.count == 0) clients_.erase(it);
    return r;
}

void InFlightLedger::close(ClientId client) {
    auto it = clients_.find(client);
    if (it == clients_.end() || !it->second.open) return;
    Entry& e = it->second;
    if (e.count == 0) {
        clients_.erase(it);
        return;
    }
    e.open = false;
    orphans_[e.uid] += e.count;
    orphans_total_ += e.count;
}

std::size_t InFlightLedger::in_flight(ClientId client) const noexcept {
    auto it = clients_.find(client);
    return it == clients_.end() ? 0 : it->second.count;
}

std::size_t InFlightLedger::orphans(uid_t uid) const noexcept {
    auto it = orphans_.find(uid);
    return it == orphans_.end() ? 0 : it->second;
}

}  // namespace regiond::daemon
