// Fences (daemon/cache/fences.hpp): what an invalidation forbids afterwards.
#include <catch2/catch.hpp>

#include "daemon/cache/fences.hpp"

using regiond::daemon::cache::Fences;

TEST_CASE("a fill of an unfenced key is admitted from any snapshot") {
    Fences fences;
    const auto started = fences.start("k");
    CHECK(fences.admits("k", started, 1));
    CHECK(fences.admits_now("k", 0));
}

TEST_CASE("an invalidation at L refuses values older than L, whenever they arrive") {
    Fences fences;
    fences.invalidate("k", 1000);
    CHECK(fences.fence("k") == 1000);
    CHECK_FALSE(fences.admits_now("k", 999));
    CHECK(fences.admits_now("k", 1000));
    const auto started = fences.start("k");
    CHECK_FALSE(fences.admits("k", started, 999));
    CHECK(fences.admits("k", started, 1500));
    // Other keys are not affected.
    CHECK(fences.admits_now("other", 1));
}

TEST_CASE("a fill whose read started before an invalidation is refused even when its floor is newer") {
    Fences fences;
    const auto started = fences.start("k");
    fences.invalidate("k", 0);  // the LSN is unknown (an admin flush, a write of unknown outcome)
    CHECK_FALSE(fences.admits("k", started, 1u << 30));
    // A fill that starts afterwards is fine.
    CHECK(fences.admits("k", fences.start("k"), 5));
}

TEST_CASE("fences only rise") {
    Fences fences;
    fences.invalidate("k", 2000);
    fences.invalidate("k", 1000);  // an older message arriving late
    CHECK(fences.fence("k") == 2000);
}

TEST_CASE("invalidate_all refuses fills in flight and raises the floor") {
    Fences fences;
    const auto started = fences.start("k");
    fences.invalidate_all(700);
    CHECK_FALSE(fences.admits("k", started, 800));
    CHECK(fences.floor() == 700);
    CHECK_FALSE(fences.admits_now("any", 699));
    CHECK(fences.admits_now("any", 700));
    fences.invalidate_all(100);  // never lowers it
    CHECK(fences.floor() == 700);
}

TEST_CASE("past max_keys the oldest fence is dropped and the floor takes over what it refused") {
    Fences fences(2);
    fences.invalidate("a", 100);
    fences.invalidate("b", 300);
    const auto started_c = fences.start("c");
    fences.invalidate("c", 200);  // drops "a"
    CHECK(fences.size() == 2);
    CHECK(fences.fence("a") == 0);
    CHECK(fences.floor() == 100);
    CHECK_FALSE(fences.admits_now("a", 99));  // still refused, by the floor
    CHECK(fences.admits_now("a", 100));
    // A fill of "c" that started before its invalidation stays refused.
    CHECK_FALSE(fences.admits("c", started_c, 250));
    // Re-invalidating a key moves it to the young end: "b" is dropped next.
    fences.invalidate("c", 250);
    fences.invalidate("d", 50);
    CHECK(fences.fence("b") == 0);
    CHECK(fences.floor() == 300);
    CHECK(fences.fence("c") == 250);
}

TEST_CASE("a fill that started before its key's fence was dropped is refused") {
    Fences fences(1);
    fences.invalidate("k", 10);
    const auto started = fences.start("k");  // version 1 of "k"
    fences.invalidate("x", 5);               // drops "k"
    fences.invalidate("k", 10);              // back, version 1 again: the epoch tells them apart
    CHECK_FALSE(fences.admits("k", started, 20));
}

TEST_CASE("fences are bounded by the bytes of their keys too") {
    Fences fences(1000, 10);
    fences.invalidate("aaaa", 1);
    fences.invalidate("bbbb", 2);
    CHECK(fences.key_bytes() == 8);
    fences.invalidate("cccc", 3);  // 12 > 10: "aaaa" goes
    CHECK(fences.size() == 2);
    CHECK(fences.key_bytes() == 8);
    CHECK(fences.fence("aaaa") == 0);
    CHECK(fences.floor() == 1);
    fences.invalidate(std::string(50, 'x'), 9);  // larger than the bound alone: kept, everything else dropped
    CHECK(fences.size() == 1);
    CHECK(fences.floor() == 3);
}
