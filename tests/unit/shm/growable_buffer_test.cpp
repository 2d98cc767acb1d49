// GrowableBuffer (shm/growable_buffer.hpp): the realloc-grown storage of a
// decoded response's cells and values.
#include "shm/growable_buffer.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <utility>

using regiond::shm::GrowableBuffer;

TEST_CASE("growable buffer: push, append, copy, move, clear", "[growable_buffer]") {
    GrowableBuffer<char> b;
    CHECK(b.empty());
    CHECK(b.data() == nullptr);
    b.append("abc", 3);
    b.push_back('\0');
    REQUIRE(b.size() == 4);
    CHECK(std::string(b.data()) == "abc");

    // Large enough to be mmapped by malloc and advised as huge pages: values survive every growth.
    std::string big(9u << 20, 'x');
    for (std::size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>('a' + (i / 4096) % 26);
    for (std::size_t i = 0; i < big.size(); i += 1000)
        b.append(big.data() + i, std::min<std::size_t>(1000, big.size() - i));
    REQUIRE(b.size() == 4 + big.size());
    CHECK(std::string(b.data() + 4, big.size()) == big);
    CHECK(b.capacity() >= b.size());

    GrowableBuffer<char> copy(b);
    REQUIRE(copy.size() == b.size());
    CHECK(std::string(copy.data(), copy.size()) == std::string(b.data(), b.size()));
    CHECK(copy.data() != b.data());

    GrowableBuffer<char> moved(std::move(copy));
    CHECK(moved.size() == b.size());
    CHECK(copy.size() == 0);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
    CHECK(copy.data() == nullptr);

    GrowableBuffer<char> assigned;
    assigned = b;
    assigned = std::move(moved);
    CHECK(assigned.size() == b.size());

    b.clear();
    CHECK(b.empty());
    CHECK(b.capacity() > 0);

    struct Cell {
        std::uint64_t offset;
        std::uint32_t length;
    };
    GrowableBuffer<Cell> cells;
    for (std::uint32_t i = 0; i < 100000; ++i) cells.push_back(Cell{i * 3ull, i});
    REQUIRE(cells.size() == 100000);
    CHECK(cells[99999].offset == 299997);
    CHECK(cells[12345].length == 12345);
}
