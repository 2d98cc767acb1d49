#include <catch2/catch.hpp>

#include "daemon/pg/statement_cache.hpp"

using regiond::daemon::pg::StatementCache;
using State = StatementCache::State;

TEST_CASE("a statement is preparing until confirmed, then ready", "[cache]") {
    StatementCache c(4);
    std::vector<std::uint64_t> evicted;
    CHECK(c.find("a").state == State::miss);
    const auto id = c.insert("a", evicted);
    CHECK(c.find("a").state == State::preparing);
    CHECK(c.find("a").id == id);
    c.confirm(id);
    CHECK(c.find("a").state == State::ready);
    CHECK(evicted.empty());
    CHECK(StatementCache::name_of(id) == "rgd_s" + std::to_string(id));
}

TEST_CASE("names are never reused", "[cache]") {
    StatementCache c(4);
    std::vector<std::uint64_t> evicted;
    const auto a = c.insert("a", evicted);
    c.forget(a);
    CHECK(c.find("a").state == State::miss);
    const auto a2 = c.insert("a", evicted);
    CHECK(a2 != a);
}

TEST_CASE("the least recently used ready statement is evicted", "[cache]") {
    StatementCache c(3);
    std::vector<std::uint64_t> evicted;
    const auto a = c.insert("a", evicted);
    const auto b = c.insert("b", evicted);
    const auto d = c.insert("d", evicted);
    c.confirm(a);
    c.confirm(b);
    c.confirm(d);
    CHECK(c.find("a").state == State::ready);  // a is now the most recently used
    c.insert("e", evicted);
    REQUIRE(evicted.size() == 1);
    CHECK(evicted[0] == b);
    CHECK(c.find("b").state == State::miss);
    CHECK(c.size() == 3);
}

TEST_CASE("statements still preparing are not evicted", "[cache]") {
    StatementCache c(2);
    std::vector<std::uint64_t> evicted;
    c.insert("a", evicted);
    c.insert("b", evicted);
    c.insert("c", evicted);  // a and b still preparing: the cache grows past capacity
    CHECK(evicted.empty());
    CHECK(c.size() == 3);
    const auto a = c.find("a").id;
    c.confirm(a);
    c.insert("d", evicted);
    REQUIRE(evicted.size() == 1);
    CHECK(evicted[0] == a);
}

TEST_CASE("clear forgets everything", "[cache]") {
    StatementCache c(2);
    std::vector<std::uint64_t> evicted;
    c.insert("a", evicted);
    c.clear();
    CHECK(c.size() == 0);
    CHECK(c.find("a").state == State::miss);
}
