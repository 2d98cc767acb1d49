// The in-flight ledger (daemon/in_flight.hpp): per client until release, then
// per uid once the client is gone.
#include <catch2/catch.hpp>

#include "daemon/in_flight.hpp"

using regiond::daemon::InFlightLedger;

TEST_CASE("a client is full at the cap until a release", "[in_flight]") {
    InFlightLedger ledger(2);
    ledger.open(1, 1000);
    ledger.take(1);
    CHECK_FALSE(ledger.client_full(1));
    ledger.take(1);
    CHECK(ledger.client_full(1));
    const auto r = ledger.release(1);
    CHECK(r.known);
    CHECK(r.client_below_cap);
    CHECK_FALSE(r.uid_below_cap);
    CHECK(ledger.in_flight(1) == 1);
    CHECK_FALSE(ledger.release(1).client_below_cap);  // it was not full
    CHECK_FALSE(ledger.release(1).known);             // nothing left to release
}

TEST_CASE("a client that goes away leaves orphans on its uid until they are released", "[in_flight]") {
    InFlightLedger ledger(2);
    ledger.open(1, 1000);
    ledger.open(2, 1000);
    ledger.open(3, 2000);
    ledger.take(1);
    ledger.take(1);
    ledger.take(3);
    CHECK(ledger.total() == 3);
    ledger.close(1);
    CHECK(ledger.total() == 3);  // orphans still count
    CHECK(ledger.orphans(1000) == 2);
    CHECK(ledger.orphans_total() == 2);
    CHECK(ledger.uid_blocked(1000));  // every session of uid 1000 waits
    CHECK_FALSE(ledger.uid_blocked(2000));
    ledger.take(1);  // a closed client takes nothing more
    CHECK(ledger.orphans(1000) == 2);

    const auto first = ledger.release(1);
    CHECK(first.known);
    CHECK(first.uid == 1000);
    CHECK(first.uid_below_cap);
    CHECK_FALSE(ledger.uid_blocked(1000));
    CHECK_FALSE(ledger.release(1).uid_below_cap);
    CHECK(ledger.orphans(1000) == 0);
    CHECK(ledger.orphans_total() == 0);
    CHECK(ledger.total() == 1);
    CHECK_FALSE(ledger.release(1).known);  // forgotten once its last job ended

    // A client with nothing in flight leaves nothing behind.
    ledger.close(2);
    CHECK(ledger.orphans(1000) == 0);
}

TEST_CASE("a lower cap after a reload blocks at once and unblocks at the new cap", "[in_flight]") {
    InFlightLedger ledger(4);
    ledger.open(1, 1000);
    for (int i = 0; i < 3; ++i) ledger.take(1);
    ledger.close(1);
    CHECK_FALSE(ledger.uid_blocked(1000));
    ledger.set_cap(2);
    CHECK(ledger.uid_blocked(1000));
    CHECK_FALSE(ledger.release(1).uid_below_cap);  // 3 -> 2: still at the cap
    CHECK(ledger.release(1).uid_below_cap);        // 2 -> 1
}
