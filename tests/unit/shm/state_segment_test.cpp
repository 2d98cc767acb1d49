// State segment: creation (mode, group, RAII removal), read-only client view,
// validation of a foreign, unfinished or newer segment.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "shm/state_segment.hpp"
#include "test_helpers.hpp"

using namespace regiond::shm;
using namespace regiond::shm::test;

namespace {

// Maps an existing POSIX shm object read/write, bypassing the library, to play a
// buggy or different daemon.
struct RawShm {
    explicit RawShm(const std::string& name, std::size_t size_if_create = 0) {
        int fd = ::shm_open(name.c_str(), O_RDWR | (size_if_create ? O_CREAT : 0), 0600);
        REQUIRE(fd >= 0);
        if (size_if_create) REQUIRE(::ftruncate(fd, static_cast<off_t>(size_if_create)) == 0);
        struct stat st {};
        REQUIRE(::fstat(fd, &st) == 0);
        size = static_cast<std::size_t>(st.st_size);
        if (size > 0) {
            void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            REQUIRE(p != MAP_FAILED);
            base = static_cast<std::byte*>(p);
        }
        ::close(fd);
    }
    ~RawShm() {
        if (base) ::munmap(base, size);
    }
    StateHeader& header() { return *shared_at<StateHeader>(base); }
    std::byte* base = nullptr;
    std::size_t size = 0;
};

// The permissions column of the /proc/self/maps line containing `addr`.
std::string mapping_permissions(const void* addr) {
    std::ifstream maps("/proc/self/maps");
    std::string line;
    const auto a = reinterpret_cast<std::uintptr_t>(addr);
    while (std::getline(maps, line)) {
        std::uintptr_t lo = 0, hi = 0;
        char perms[8] = {};
        if (std::sscanf(line.c_str(), "%lx-%lx %7s", &lo, &hi, perms) == 3 && a >= lo && a < hi) return perms;
    }
    return "";
}

StateSegmentOptions options_for(const std::string& name, std::uint64_t cache = 1 << 16) {
    StateSegmentOptions o;
    o.name = name;
    o.cache_bytes = cache;
    return o;
}

}  // namespace

TEST_CASE("state segment: create, write, read through a read-only view", "[state]") {
    const std::string name = unique_shm_name("state");
    auto seg = StateSegment::create(options_for(name));
    REQUIRE(seg.has_value());
    CHECK(seg->name() == name);
    CHECK(seg->generation() != 0);
    CHECK(seg->size() == state_geometry(1 << 16).total_size);

    auto view = StateView::open(name);
    REQUIRE(view.has_value());
    CHECK(view->generation() == seg->generation());
    CHECK(view->daemon_pid() == static_cast<std::uint32_t>(::getpid()));
    CHECK(view->max_regions() == kMaxRegions);
    CHECK(view->max_endpoints_per_region() == kMaxEndpointsPerRegion);
    CHECK(view->header().header_size == sizeof(StateHeader));
    CHECK(view->cache_data().size() == (1 << 16));

    EndpointStatus st{};
    std::snprintf(st.region, sizeof st.region, "%s", "eu-west-1");
    std::snprintf(st.endpoint, sizeof st.endpoint, "%s", "replica-1");
    st.in_use = 1;
    st.role = static_cast<std::uint8_t>(EndpointRole::replica);
    st.healthy = 1;
    st.cache_healthy = 1;
    st.lag_ms = 12;
    st.lag_bytes = 4096;
    st.replay_lsn = 0x16B3748;
    st.rtt_us = 850;
    st.pool_in_use = 3;
    st.pool_size = 20;
    REQUIRE(seg->write_endpoint(1, 2, st));
    CHECK_FALSE(seg->write_endpoint(kMaxRegions, 0, st));
    CHECK_FALSE(seg->write_endpoint(0, kMaxEndpointsPerRegion, st));

    EndpointStatus got{};
    REQUIRE(view->read_endpoint(1, 2, got));
    CHECK(std::string(got.region) == "eu-west-1");
    CHECK(std::string(got.endpoint) == "replica-1");
    CHECK(got.role == static_cast<std::uint8_t>(EndpointRole::replica));
    CHECK(got.lag_bytes == 4096);
    CHECK(got.replay_lsn == 0x16B3748);
    CHECK(got.pool_size == 20);
    REQUIRE(view->read_endpoint(0, 0, got));
    CHECK(got.in_use == 0);
    CHECK_FALSE(view->read_endpoint(kMaxRegions, 0, got));

    seg->add(Counter::cache_hits_local, 5);
    seg->add(Counter::cache_hits_local);
    seg->set(Counter::errors, 9);
    CHECK(view->counter(Counter::cache_hits_local) == 6);
    CHECK(view->counter(Counter::errors) == 9);

    seg->heartbeat(123456789);
    CHECK(view->heartbeat_ns() == 123456789);
    seg->heartbeat_now();
    CHECK(view->heartbeat_age() < std::chrono::seconds(5));

    // The hot cache: written through the segment, read through the view.
    CHECK(view->cache_data().size() == (1 << 16));
    const CacheReader cache = view->cache_reader();
    REQUIRE(cache.enabled());
    CHECK(cache.capacity() == seg->cache().capacity());
    CHECK(cache.stats().entries == 0);
}

TEST_CASE("state view is read-only: const API and a PROT_READ mapping", "[state]") {
    const std::string name = unique_shm_name("ro");
    auto seg = StateSegment::create(options_for(name));
    REQUIRE(seg);
    auto view = StateView::open(name);
    REQUIRE(view);

    static_assert(std::is_const_v<std::remove_reference_t<decltype(view->header())>>);
    static_assert(std::is_same_v<decltype(view->bytes()), std::span<const std::byte>>);
    const std::string perms = mapping_permissions(view->bytes().data());
    INFO("mapping permissions: " << perms);
    REQUIRE(perms.size() == 4);
    CHECK(perms[0] == 'r');
    CHECK(perms[1] == '-');  // not writable
    CHECK(perms[3] == 's');  // shared

    // And the kernel enforces it: a write through the view faults, in the
    // endpoint table and in the hot cache (its header, index and arena).
    const std::uint64_t cache_offset = view->header().cache.offset;
    const std::uint64_t targets[] = {200, cache_offset + offsetof(CacheHeader, reclaimed),
                                     cache_offset + sizeof(CacheHeader) + 8, view->bytes().size() - 8};
    for (const std::uint64_t offset : targets) {
        INFO("offset " << offset);
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::signal(SIGSEGV, SIG_DFL);  // die of it, without Catch's report from the child
            auto* p = const_cast<std::byte*>(view->bytes().data()) + offset;
            *reinterpret_cast<volatile std::byte*>(p) = std::byte{1};
            ::_exit(0);  // reached only if the write succeeded
        }
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        const bool faulted = WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
        CHECK(faulted);  // SIGSEGV (or the sanitizer's report of it)
    }
}

TEST_CASE("state segment: mode, group and RAII removal", "[state]") {
    const std::string name = unique_shm_name("mode");
    {
        StateSegmentOptions o = options_for(name, 0);
        o.group = ::getuid() == 0 ? 4242 : ::getegid();
        const mode_t old_umask = ::umask(077);  // Boost applies the mode with fchmod, so the umask must not matter
        auto seg = StateSegment::create(o);
        ::umask(old_umask);
        REQUIRE(seg);
        struct stat st {};
        REQUIRE(::stat(("/dev/shm" + name).c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0640);
        CHECK(st.st_gid == *o.group);

        auto again = StateSegment::create(options_for(name, 0));
        REQUIRE_FALSE(again);
        CHECK(again.error().code == EEXIST);
        CHECK_THAT(again.error().message, Catch::Contains("already exists"));
    }
    auto gone = StateView::open(name);
    REQUIRE_FALSE(gone);
    CHECK(gone.error().code == ENOENT);
    CHECK_THAT(gone.error().message, Catch::Contains("is regiond running"));
}

TEST_CASE("state segment: replace_existing removes a stale one", "[state]") {
    const std::string name = unique_shm_name("stale");
    auto first = StateSegment::create(options_for(name));
    REQUIRE(first);
    first->release_name();  // simulate a crashed daemon that left its segment
    const std::uint64_t old_generation = first->generation();
    first = Error{};  // drop the mapping, keep the name
    StateSegmentOptions o = options_for(name);
    o.replace_existing = true;
    auto second = StateSegment::create(o);
    REQUIRE(second);
    CHECK(second->generation() != old_generation);
    auto view = StateView::open(name);
    REQUIRE(view);
    CHECK(view->generation() == second->generation());
}

TEST_CASE("state view refuses other versions, foreign and unfinished segments", "[state]") {
    const std::string name = unique_shm_name("bad");
    auto seg = StateSegment::create(options_for(name));
    REQUIRE(seg);
    RawShm raw(name);

    SECTION("newer layout version: the message names both versions") {
        raw.header().layout_version.store(kStateLayoutVersion + 1);
        auto v = StateView::open(name);
        REQUIRE_FALSE(v);
        CHECK(v.error().message == "state segment " + name + " has layout version " +
                                       std::to_string(kStateLayoutVersion + 1) + ", this library understands " +
                                       std::to_string(kStateLayoutVersion) + ": upgrade libregiond or the daemon");
    }
    SECTION("not ready (version 0)") {
        raw.header().layout_version.store(0);
        auto v = StateView::open(name);
        REQUIRE_FALSE(v);
        CHECK(v.error().code == EAGAIN);
        CHECK_THAT(v.error().message, Catch::Contains("not ready"));
    }
    SECTION("bad magic") {
        raw.header().magic[0] = 'X';
        auto v = StateView::open(name);
        REQUIRE_FALSE(v);
        CHECK_THAT(v.error().message, Catch::Contains("not a regiond state segment"));
    }
    SECTION("section outside the segment") {
        raw.header().cache.length = raw.size;
        auto v = StateView::open(name);
        REQUIRE_FALSE(v);
        CHECK_THAT(v.error().message, Catch::Contains("malformed"));
    }
    SECTION("total size larger than the object") {
        raw.header().total_size = raw.size + 4096;
        CHECK_FALSE(StateView::open(name));
    }
    SECTION("region table larger than its section") {
        raw.header().max_regions = 17;
        CHECK_FALSE(StateView::open(name));
    }
    SECTION("cache header pointing outside its section: no cache data, no crash") {
        shared_at<CacheHeader>(raw.base + raw.header().cache.offset)->data_length = 1ull << 40;
        auto v = StateView::open(name);
        REQUIRE(v);
        CHECK(v->cache_data().empty());
    }
    SECTION("cache index or arena outside the section: a reader that always misses") {
        CacheHeader& cache = *shared_at<CacheHeader>(raw.base + raw.header().cache.offset);
        SECTION("arena") {
            cache.arena_capacity = raw.header().cache.length;
        }
        SECTION("index") {
            cache.index_slots = 1u << 30;
        }
        SECTION("unknown format") {
            cache.cache_format = 2;
        }
        auto v = StateView::open(name);
        REQUIRE(v);
        const CacheReader reader = v->cache_reader();
        CHECK_FALSE(reader.enabled());
        std::vector<std::byte> out;
        CHECK_FALSE(reader.lookup("k", "select 1", {}, 0, out));
        CHECK_FALSE(reader.peek("k"));
    }
}

TEST_CASE("state view refuses an object too small to hold a header", "[state]") {
    const std::string name = unique_shm_name("tiny");
    { RawShm raw(name, 64); }
    auto v = StateView::open(name);
    ::shm_unlink(name.c_str());
    REQUIRE_FALSE(v);
    CHECK_THAT(v.error().message, Catch::Contains("not ready"));
}

TEST_CASE("state segment names are validated", "[state]") {
    CHECK_FALSE(StateSegment::create(options_for("/")));
    CHECK_FALSE(StateSegment::create(options_for("/a/b")));
}
