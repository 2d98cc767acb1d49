// Seqlock: basic behaviour, a reader on a read-only mapping (so it provably never
// writes), a dead writer (odd sequence forever), and reader/writer stress.
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "shm/seqlock.hpp"
#include "shm/unique_fd.hpp"
#include "test_helpers.hpp"

using namespace regiond::shm;
using namespace regiond::shm::test;
using namespace std::chrono_literals;

namespace {

// Every field carries the same value, so a torn read shows as unequal fields.
struct Sample {
    std::uint64_t values[23];
    std::uint32_t tail_a;
    std::uint32_t tail_b;
};
static_assert(sizeof(Sample) == 192);

Sample make_sample(std::uint64_t v) {
    Sample s{};
    for (auto& x : s.values) x = v;
    s.tail_a = static_cast<std::uint32_t>(v);
    s.tail_b = static_cast<std::uint32_t>(v * 3);
    return s;
}

bool consistent(const Sample& s) {
    for (auto x : s.values)
        if (x != s.values[0]) return false;
    return s.tail_a == static_cast<std::uint32_t>(s.values[0]) &&
           s.tail_b == static_cast<std::uint32_t>(s.values[0] * 3);
}

double stress_seconds() {
    const char* env = std::getenv("REGIOND_STRESS_SECONDS");
    const double s = env != nullptr ? std::atof(env) : 2.0;
    return s > 0 ? s : 2.0;
}

// A memfd mapped twice: read/write (the writer) and read-only (the readers).
struct DualMapping {
    explicit DualMapping(std::size_t size) : size(size) {
        fd.reset(::memfd_create("seqlock-test", MFD_CLOEXEC));
        REQUIRE(fd);
        REQUIRE(::ftruncate(fd.get(), static_cast<off_t>(size)) == 0);
        void* w = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
        void* r = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd.get(), 0);
        REQUIRE(w != MAP_FAILED);
        REQUIRE(r != MAP_FAILED);
        rw = static_cast<std::byte*>(w);
        ro = static_cast<const std::byte*>(r);
    }
    ~DualMapping() {
        ::munmap(rw, size);
        ::munmap(const_cast<std::byte*>(ro), size);
    }
    std::size_t size;
    UniqueFd fd;
    std::byte* rw = nullptr;
    const std::byte* ro = nullptr;
};

}  // namespace

TEST_CASE("seqlock layout", "[seqlock]") {
    CHECK(sizeof(Seqlock<Sample>) == 8 + 192);
    CHECK(sizeof(Seqlock<std::uint32_t>) == 16);
    CHECK(Seqlock<std::array<char, 9>>::kWords == 2);
}

TEST_CASE("seqlock write then read, readers on a read-only mapping", "[seqlock]") {
    DualMapping m(4096);
    auto* writer = construct_shared<Seqlock<Sample>>(m.rw);
    const auto* reader = shared_at<Seqlock<Sample>>(m.ro);

    Sample out{};
    REQUIRE(reader->read(out));  // zero-initialised: a consistent all-zero sample
    CHECK(consistent(out));
    CHECK(out.values[0] == 0);
    CHECK(reader->version() == 0);

    writer->write(make_sample(41));
    REQUIRE(reader->read(out));
    CHECK(consistent(out));
    CHECK(out.values[0] == 41);
    CHECK(reader->version() == 2);
}

TEST_CASE("seqlock reader gives up on a writer that died mid-write", "[seqlock]") {
    Seqlock<Sample> lock{};
    lock.write(make_sample(1));
    lock.seq.store(3);  // odd: a write that never finished
    Sample out{};
    const auto start = std::chrono::steady_clock::now();
    CHECK_FALSE(lock.read(out, 100));
    CHECK(std::chrono::steady_clock::now() - start < 1s);
}

TEST_CASE("seqlock readers never see a torn value (threads)", "[seqlock]") {
    Seqlock<Sample> lock{};
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> torn{0}, reads{0}, failed{0};
    std::thread reader([&] {
        Sample s{};
        std::uint64_t last = 0;
        while (!stop.load(std::memory_order_relaxed)) {
            if (!lock.read(s)) {
                failed.fetch_add(1);
                continue;
            }
            if (!consistent(s) || s.values[0] < last) torn.fetch_add(1);
            last = s.values[0];
            reads.fetch_add(1, std::memory_order_relaxed);
        }
    });
    const auto until = std::chrono::steady_clock::now() + 300ms;
    std::uint64_t v = 0;
    while (std::chrono::steady_clock::now() < until) {
        for (int i = 0; i < 100; ++i) lock.write(make_sample(++v));
    }
    stop = true;
    reader.join();
    INFO("writes " << v << ", reads " << reads.load() << ", failed reads " << failed.load());
    CHECK(torn.load() == 0);
    CHECK(reads.load() > 0);
}

TEST_CASE("seqlock stress: writer process, reader processes on read-only mappings", "[.][stress]") {
    DualMapping m(4096);
    auto* writer = construct_shared<Seqlock<Sample>>(m.rw);
    const auto* reader = shared_at<Seqlock<Sample>>(m.ro);
    auto* stop = ::new (m.rw + 1024) std::atomic<std::uint32_t>{0};
    const auto* stop_ro = shared_at<std::atomic<std::uint32_t>>(m.ro + 1024);

    pid_t children[2];
    for (pid_t& child : children) {
        child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            Sample s{};
            std::uint64_t last = 0, reads = 0;
            while (stop_ro->load(std::memory_order_relaxed) == 0) {
                if (!reader->read(s)) continue;
                if (!consistent(s) || s.values[0] < last) ::_exit(2);
                last = s.values[0];
                ++reads;
            }
            ::_exit(reads > 0 ? 0 : 3);
        }
    }
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(stress_seconds());
    std::uint64_t v = 0;
    while (std::chrono::steady_clock::now() < until) {
        for (int i = 0; i < 100; ++i) writer->write(make_sample(++v));
        std::this_thread::yield();  // 2 cores: let the readers run
    }
    stop->store(1);
    for (pid_t child : children) {
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
    }
    INFO("writes " << v);
    CHECK(v > 1000);
}
