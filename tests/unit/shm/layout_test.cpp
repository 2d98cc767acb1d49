// Binary-compatibility test (in the spirit of iceoryx's chunk header test): every
// struct that crosses a process boundary (shared memory, the handshake socket,
// the codec) is filled field by field with distinct values and its bytes are
// compared with an image written out by hand from the documented layout. The
// headers' static_asserts pin sizes and offsets at compile time; this pins what
// they cannot: field widths, byte order, which field lands where, and that the
// padding is zero. If this test has to change, the layout changed: bump
// kStateLayoutVersion / kClientLayoutVersion / kProtocolVersion as well.
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstring>
#include <map>
#include <new>
#include <string>
#include <vector>

#include "shm/cache_layout.hpp"
#include "shm/cache_value.hpp"
#include "shm/client_segment.hpp"
#include "shm/codec.hpp"
#include "shm/handshake.hpp"
#include "shm/ring.hpp"
#include "shm/state_layout.hpp"

using namespace regiond::shm;

namespace {

using Bytes = std::vector<std::uint8_t>;

// An all-zero image of `size` bytes with the given pieces written at their offsets.
Bytes image(std::size_t size, const std::map<std::size_t, Bytes>& pieces) {
    Bytes out(size, 0);
    for (const auto& [offset, bytes] : pieces) {
        REQUIRE(offset + bytes.size() <= size);
        std::memcpy(out.data() + offset, bytes.data(), bytes.size());
    }
    return out;
}

Bytes text(const char* s, std::size_t n) {
    return Bytes(s, s + n);
}

// The bytes of a struct built as `fill` says, starting from all-zero memory (the
// way the daemon and client build them), so padding shows as zero.
template <typename T, typename Fill>
Bytes bytes_of(Fill fill) {
    alignas(T) unsigned char storage[sizeof(T)];
    std::memset(storage, 0, sizeof storage);
    T* t = new (storage) T;
    fill(*t);
    Bytes out(storage, storage + sizeof storage);
    t->~T();
    return out;
}

}  // namespace

TEST_CASE("layout versions, magics and numeric values", "[layout]") {
    CHECK(kStateLayoutVersion == 3);
    CHECK(kClientLayoutVersion == 5);
    CHECK(kProtocolVersion == 3);
    CHECK(std::memcmp(kStateMagic, "RGDSTATE", 8) == 0);
    CHECK(std::memcmp(kClientMagic, "RGDCLNT\0", 8) == 0);
    CHECK(std::memcmp(kHelloMagic, "RGDHELO\0", 8) == 0);
    CHECK(std::memcmp(kWelcomeMagic, "RGDWELC\0", 8) == 0);

    CHECK(static_cast<int>(RecordKind::padding) == 0);
    CHECK(static_cast<int>(RecordKind::request) == 1);
    CHECK(static_cast<int>(RecordKind::response) == 2);
    CHECK(static_cast<int>(RecordKind::cancel) == 3);
    CHECK(kMaxRecordKind == 3);
    CHECK(kRecordFlagLast == 1);
    CHECK(static_cast<int>(DaemonWake::eventfd) == 1);
    CHECK(static_cast<int>(DaemonWake::futex) == 2);
    CHECK(static_cast<int>(ClientWake::futex) == 0);
    CHECK(static_cast<int>(ClientWake::futex_and_eventfd) == 1);
    CHECK(static_cast<int>(WelcomeStatus::ok) == 0);
    CHECK(static_cast<int>(WelcomeStatus::permission_denied) == 1);
    CHECK(static_cast<int>(WelcomeStatus::version_mismatch) == 2);
    CHECK(static_cast<int>(WelcomeStatus::too_many_clients) == 3);
    CHECK(static_cast<int>(WelcomeStatus::shutting_down) == 4);
    CHECK(static_cast<int>(WelcomeStatus::internal_error) == 5);
    CHECK(static_cast<int>(EndpointRole::primary) == 1);
    CHECK(static_cast<int>(EndpointRole::replica) == 2);
    CHECK(static_cast<int>(Counter::requests_read_local) == 0);
    CHECK(static_cast<int>(Counter::cache_hits_local) == 5);
    CHECK(static_cast<int>(Counter::errors) == 8);
    CHECK(static_cast<int>(Counter::clients_dropped) == 11);
    CHECK(static_cast<int>(Counter::consistent_reads_to_primary) == 15);
    CHECK(static_cast<int>(Counter::cache_redis_errors) == 27);
    CHECK(static_cast<int>(Counter::client_wakeups) == 28);
    CHECK(static_cast<int>(Counter::daemon_wakeups) == 29);
    CHECK(static_cast<int>(Counter::wait_decisions) == 30);
    CHECK(static_cast<int>(ClientWaitState::idle) == 0);
    CHECK(static_cast<int>(ClientWaitState::spinning) == 1);
    CHECK(static_cast<int>(ClientWaitState::sleeping) == 2);
    CHECK(static_cast<int>(Op::read_local) == 1);
    CHECK(static_cast<int>(Op::read_primary) == 2);
    CHECK(static_cast<int>(Op::write) == 3);
    CHECK(static_cast<int>(Op::read_consistent) == 4);
    CHECK(static_cast<int>(Op::cached_read) == 5);
    CHECK(static_cast<int>(Status::ok) == 0);
    CHECK(static_cast<int>(Status::error) == 1);
    CHECK(kNullLength == 0xFFFFFFFFu);
    CHECK(kChunkFlagLast == 1);
    CHECK(kChunkFlagTrailer == 2);
}

TEST_CASE("handshake messages: byte images", "[layout][handshake]") {
    const Bytes hello = bytes_of<HelloMessage>([](HelloMessage& m) {
        std::memcpy(m.magic, kHelloMagic, 8);
        m.protocol_version = 0x04030201;
        m.client_pid = 0x0a090807;
        std::memcpy(m.client_name, "psql", 5);
    });
    CHECK(hello == image(64, {
                                 {0, text("RGDHELO\0", 8)},
                                 {8, {0x01, 0x02, 0x03, 0x04}},
                                 {12, {0x07, 0x08, 0x09, 0x0a}},
                                 {16, text("psql\0", 5)},
                             }));

    const Bytes welcome = bytes_of<WelcomeMessage>([](WelcomeMessage& m) {
        std::memcpy(m.magic, kWelcomeMagic, 8);
        m.protocol_version = 2;
        m.status = static_cast<std::uint32_t>(WelcomeStatus::version_mismatch);
        m.client_id = 0x1122334455667788;
        m.daemon_generation = 0x0102030405060708;
        std::memcpy(m.state_segment, "/regiond-state", 15);
        std::memcpy(m.message, "client 1, daemon 2", 19);
    });
    CHECK(welcome == image(512, {
                                    {0, text("RGDWELC\0", 8)},
                                    {8, {2, 0, 0, 0}},
                                    {12, {2, 0, 0, 0}},
                                    {16, {0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11}},
                                    {24, {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01}},
                                    {32, text("/regiond-state\0", 15)},
                                    {232, text("client 1, daemon 2\0", 19)},
                                }));
}

TEST_CASE("ring record header and control block: byte images", "[layout][ring]") {
    const Bytes record = bytes_of<RecordHeader>([](RecordHeader& h) {
        h.size = 0x00000120;
        h.kind = static_cast<std::uint16_t>(RecordKind::response);
        h.flags = kRecordFlagLast;
        h.request_id = 0x0807060504030201;
    });
    CHECK(record == Bytes{0x20, 0x01, 0, 0, 2, 0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8});

    const Bytes control = bytes_of<RingControl>([](RingControl& c) {
        c.head.store(0x1111111111111110);
        c.tail.store(0x2222222222222220);
        c.consumer_sleeping.store(1);
        c.futex_word.store(0x33333333);
        c.capacity = 4096;
    });
    CHECK(control == image(192, {
                                    {0, {0x10, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11}},
                                    {64, {0x20, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22}},
                                    {128, {1, 0, 0, 0}},
                                    {132, {0x33, 0x33, 0x33, 0x33}},
                                    {136, {0x00, 0x10, 0, 0}},
                                }));
}

TEST_CASE("client segment header: byte image and geometry", "[layout][client]") {
    const Bytes header = bytes_of<ClientHeader>([](ClientHeader& h) {
        std::memcpy(h.magic, kClientMagic, 8);
        h.layout_version.store(1);
        h.header_size = 128;
        h.total_size = 0x0000000000111000;
        h.request_ring_offset = 128;
        h.request_ring_capacity = 0x10000;
        h.response_ring_offset = 0x10140;
        h.response_ring_capacity = 0x100000;
        h.daemon_wake = static_cast<std::uint32_t>(DaemonWake::futex);
        h.client_id = 0xa1a2a3a4a5a6a7a8;
        h.daemon_generation = 0xb1b2b3b4b5b6b7b8;
        h.max_request.store(0x00040000);
        h.cache_hits.store(0xc1c2c3c4c5c6c7c8);
        h.spin_permit_ns.store(0x0003d090);  // 250 000
        h.wait_state.store(2);
        h.waits_spun.store(0xd1d2d3d4d5d6d7d8);
        h.waits_slept.store(0x0102030405060708);
        h.client_wake.store(static_cast<std::uint32_t>(ClientWake::futex_and_eventfd));
    });
    CHECK(header == image(128, {
                                   {0, text("RGDCLNT\0", 8)},
                                   {8, {1, 0, 0, 0}},
                                   {12, {128, 0, 0, 0}},
                                   {16, {0x00, 0x10, 0x11, 0, 0, 0, 0, 0}},
                                   {24, {128, 0, 0, 0, 0, 0, 0, 0}},
                                   {32, {0, 0, 1, 0}},
                                   {40, {0x40, 0x01, 0x01, 0, 0, 0, 0, 0}},
                                   {48, {0, 0, 0x10, 0}},
                                   {52, {2, 0, 0, 0}},
                                   {56, {0xa8, 0xa7, 0xa6, 0xa5, 0xa4, 0xa3, 0xa2, 0xa1}},
                                   {64, {0xb8, 0xb7, 0xb6, 0xb5, 0xb4, 0xb3, 0xb2, 0xb1}},
                                   {72, {0x00, 0x00, 0x04, 0x00}},
                                   {80, {0xc8, 0xc7, 0xc6, 0xc5, 0xc4, 0xc3, 0xc2, 0xc1}},
                                   {88, {0x90, 0xd0, 0x03, 0x00}},
                                   {92, {2, 0, 0, 0}},
                                   {96, {0xd8, 0xd7, 0xd6, 0xd5, 0xd4, 0xd3, 0xd2, 0xd1}},
                                   {104, {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01}},
                                   {112, {1, 0, 0, 0}},
                               }));

    const ClientGeometry g = client_geometry(1 << 16, 1 << 20);
    CHECK(g.request_ring_offset == 128);
    CHECK(g.response_ring_offset == 128 + 192 + (1 << 16));
    CHECK(g.total_size == 1118208);  // 128 + 192 + 65536 + 192 + 1048576 = 1114624, rounded up to 4096
}

TEST_CASE("state segment header and endpoint status: byte images and geometry", "[layout][state]") {
    const Bytes header = bytes_of<StateHeader>([](StateHeader& h) {
        std::memcpy(h.magic, kStateMagic, 8);
        h.layout_version.store(1);
        h.header_size = 192;
        h.total_size = 0x0102030405060708;
        h.generation = 0x1112131415161718;
        h.daemon_pid = 0x21222324;
        h.started_unix_ns = 0x3132333435363738;
        h.regions = {0xc0, 0x6000};
        h.counters = {0x60c0, 0x200};
        h.cache = {0x62c0, 0x40};
        h.max_regions = 16;
        h.max_endpoints_per_region = 8;
        h.endpoint_slot_size = 192;
        h.counter_count = 64;
        h.heartbeat_ns.store(0x4142434445464748);
        h.usable_cores.store(2);
        h.busy_cores.store(3);
        h.spare_cores.store(4);
        h.runnable.store(5);
        h.in_flight_milli.store(0x00010203);
        h.clients_spinning.store(6);
        h.clients_sleeping.store(7);
        h.client_permits.store(8);
        h.daemon_may_spin.store(1);
    });
    CHECK(header == image(192, {
                                   {0, text("RGDSTATE", 8)},
                                   {8, {1, 0, 0, 0}},
                                   {12, {192, 0, 0, 0}},
                                   {16, {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01}},
                                   {24, {0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11}},
                                   {32, {0x24, 0x23, 0x22, 0x21}},
                                   {40, {0x38, 0x37, 0x36, 0x35, 0x34, 0x33, 0x32, 0x31}},
                                   {48, {0xc0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x60, 0, 0, 0, 0, 0, 0}},
                                   {64, {0xc0, 0x60, 0, 0, 0, 0, 0, 0, 0x00, 0x02, 0, 0, 0, 0, 0, 0}},
                                   {80, {0xc0, 0x62, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0}},
                                   {96, {16, 0, 0, 0, 8, 0, 0, 0, 192, 0, 0, 0, 64, 0, 0, 0}},
                                   {128, {0x48, 0x47, 0x46, 0x45, 0x44, 0x43, 0x42, 0x41}},
                                   {136, {2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0}},
                                   {152, {0x03, 0x02, 0x01, 0, 6, 0, 0, 0, 7, 0, 0, 0, 8, 0, 0, 0}},
                                   {168, {1, 0, 0, 0}},
                               }));

    const Bytes status = bytes_of<EndpointStatus>([](EndpointStatus& s) {
        std::memcpy(s.region, "eu-west-1", 10);
        std::memcpy(s.endpoint, "10.1.0.1:5432", 14);
        s.in_use = 1;
        s.role = static_cast<std::uint8_t>(EndpointRole::replica);
        s.healthy = 1;
        s.cache_healthy = 0;
        s.alert = 1;
        s.last_error = 0x01020304;
        s.rtt_us = 0x11121314;
        s.pool_in_use = 3;
        s.pool_size = 8;
        s.lag_ms = 0x2122232425262728;
        s.lag_bytes = 0x3132333435363738;
        s.replay_lsn = 0x000000010000abcd;
        s.updated_ns = 0x5152535455565758;
    });
    CHECK(status == image(184, {
                                   {0, text("eu-west-1\0", 10)},
                                   {64, text("10.1.0.1:5432\0", 14)},
                                   {128, {1, 2, 1, 0, 1}},
                                   {136, {0x04, 0x03, 0x02, 0x01}},
                                   {140, {0x14, 0x13, 0x12, 0x11}},
                                   {144, {3, 0, 0, 0, 8, 0, 0, 0}},
                                   {152, {0x28, 0x27, 0x26, 0x25, 0x24, 0x23, 0x22, 0x21}},
                                   {160, {0x38, 0x37, 0x36, 0x35, 0x34, 0x33, 0x32, 0x31}},
                                   {168, {0xcd, 0xab, 0, 0, 1, 0, 0, 0}},
                                   {176, {0x58, 0x57, 0x56, 0x55, 0x54, 0x53, 0x52, 0x51}},
                               }));

    const StateGeometry g = state_geometry(1 << 20);
    CHECK(g.regions_offset == 192);
    CHECK(g.regions_length == 24576);
    CHECK(g.counters_offset == 24768);
    CHECK(g.counters_length == 512);
    CHECK(g.cache_offset == 25280);
    CHECK(g.cache_length == 192 + (1 << 20));
    CHECK(g.total_size == 25472 + (1 << 20));
    CHECK(state_geometry(0).total_size == 25472);
}

TEST_CASE("an encoded request: byte image", "[layout][codec]") {
    RequestView r;
    r.op = Op::write;
    r.timeout_ms = 0x01020304;
    r.ttl_seconds = 0x0a0b0c0d;
    r.key = "k";
    r.token = "";
    r.sql = "x";
    r.params = {std::string_view("ab"), std::nullopt};
    r.invalidate_keys = {"z"};
    std::vector<std::byte> out;
    REQUIRE(encode_request_append(r, out));
    Bytes got(out.size());
    std::memcpy(got.data(), out.data(), out.size());
    CHECK(got == Bytes{
                     3,    0,    0,    0,               // op, 0, u16 0
                     0x04, 0x03, 0x02, 0x01,            // timeout_ms
                     0x0d, 0x0c, 0x0b, 0x0a,            // ttl_seconds
                     1,    0,    0,    0,    'k',       // key
                     0,    0,    0,    0,               // token
                     1,    0,    0,    0,    'x',       // sql
                     2,    0,    0,    0,               // nparams
                     2,    0,    0,    0,    'a', 'b',  // "ab"
                     0xff, 0xff, 0xff, 0xff,            // NULL
                     1,    0,    0,    0,               // nkeys
                     1,    0,    0,    0,    'z',
                 });
}

TEST_CASE("hot cache header, slot and entry header: byte images", "[layout][cache]") {
    CHECK(kCacheFormat == 1);
    CHECK(kCacheProbeLimit == 8);
    CHECK(kCacheGapMarker == 0xFFFFFFFFu);
    CHECK(sizeof(CacheHeader) == 192);
    CHECK(sizeof(CacheSlot) == 32);
    CHECK(sizeof(CacheEntryHeader) == 24);

    const Bytes header = bytes_of<CacheHeader>([](CacheHeader& h) {
        h.cache_format = kCacheFormat;
        h.slot_size = 32;
        h.data_offset = 192;
        h.data_length = 0x0000000000100000;
        h.seed = 0x0102030405060708;
        h.index_offset = 192;
        h.index_slots = 2048;
        h.probe_limit = 8;
        h.arena_offset = 0x100c0;
        h.arena_capacity = 0xf0000;
        h.reclaimed.store(0x1112131415161718);
        h.head.store(0x2122232425262728);
        h.entries.store(0x31);
        h.bytes_used.store(0x32);
        h.inserts.store(0x33);
        h.evictions.store(0x34);
        h.displaced.store(0x35);
        h.erased.store(0x36);
        h.expired.store(0x37);
    });
    CHECK(header == image(192, {
                                   {0, {1, 0, 0, 0, 32, 0, 0, 0}},
                                   {8, {0xc0, 0, 0, 0, 0, 0, 0, 0}},
                                   {16, {0, 0, 0x10, 0, 0, 0, 0, 0}},
                                   {24, {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01}},
                                   {32, {0xc0, 0, 0, 0, 0, 0, 0, 0}},
                                   {40, {0, 0x08, 0, 0, 8, 0, 0, 0}},
                                   {48, {0xc0, 0x00, 0x01, 0, 0, 0, 0, 0}},
                                   {56, {0, 0, 0x0f, 0, 0, 0, 0, 0}},
                                   {64, {0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11}},
                                   {72, {0x28, 0x27, 0x26, 0x25, 0x24, 0x23, 0x22, 0x21}},
                                   {128, {0x31, 0, 0, 0, 0, 0, 0, 0, 0x32}},
                                   {144, {0x33, 0, 0, 0, 0, 0, 0, 0, 0x34}},
                                   {160, {0x35, 0, 0, 0, 0, 0, 0, 0, 0x36}},
                                   {176, {0x37}},
                               }));

    CacheSlotData d{};
    d.hash = 0x0102030405060708;
    d.pos = 0x1112131415161718;
    d.key_len = 0x21222324;
    d.value_len = 0x31323334;
    const Bytes slot = bytes_of<CacheSlot>([&](CacheSlot& s) { s.write(d); });
    CHECK(slot == image(32, {
                                {0, {2, 0, 0, 0, 0, 0, 0, 0}},  // seq after one write
                                {8, {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01}},
                                {16, {0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11}},
                                {24, {0x24, 0x23, 0x22, 0x21, 0x34, 0x33, 0x32, 0x31}},
                            }));

    const Bytes entry = bytes_of<CacheEntryHeader>([](CacheEntryHeader& e) {
        e.expires_mono_ns = 0x0102030405060708;
        e.key_len = 0x11121314;
        e.value_len = 0x21222324;
        e.slot = 0x31323334;
    });
    CHECK(entry == image(24, {
                                 {0, {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01}},
                                 {8, {0x14, 0x13, 0x12, 0x11, 0x24, 0x23, 0x22, 0x21}},
                                 {16, {0x34, 0x33, 0x32, 0x31}},
                             }));
    CHECK(cache_entry_bytes(0, 1) == 32);
    CHECK(cache_entry_bytes(5, 48) == 24 + 8 + 48);
    CHECK(cache_entry_bytes(9, 49) == 24 + 16 + 56);
}

TEST_CASE("hot cache geometry and hash are pinned", "[layout][cache]") {
    const CacheGeometry none = cache_geometry(0);
    CHECK_FALSE(none.enabled);
    CHECK_FALSE(cache_geometry(1023).enabled);

    const CacheGeometry small = cache_geometry(1024);
    CHECK(small.enabled);
    CHECK(small.index_offset == 192);
    CHECK(small.index_slots == 8);
    CHECK(small.arena_offset == 192 + 256);
    CHECK(small.arena_capacity == 768);

    CHECK(cache_geometry(2047).index_slots == 8);
    CHECK(cache_geometry(4096).index_slots == 16);

    const CacheGeometry mib = cache_geometry(1 << 20);
    CHECK(mib.index_slots == 4096);
    CHECK(mib.arena_offset == 192 + 4096 * 32);
    CHECK(mib.arena_capacity == (1 << 20) - 4096 * 32);

    const CacheGeometry big = cache_geometry(std::uint64_t{64} << 20);
    CHECK(big.index_slots == 262144);
    CHECK(big.arena_capacity == (std::uint64_t{64} << 20) - 262144 * 32);

    CHECK(cache_max_value_bytes(768) == 96);
    CHECK(cache_max_value_bytes(std::uint64_t{64} << 20) == (1 << 20));
    CHECK(cache_max_key_bytes(768) == 96);
    CHECK(cache_max_key_bytes(std::uint64_t{64} << 20) == 4096);

    // The writer and every reader must hash alike, whatever they were built
    // with: these values are part of the format.
    CHECK(cache_key_hash(0, "") == 0);  // (seeds are never 0 in a segment)
    CHECK(cache_key_hash(1, "") != cache_key_hash(2, ""));
    CHECK(cache_key_hash(0x0123456789abcdefull, "user:42") == 0x669dd3c083a3eb6aull);
    CHECK(cache_key_hash(0x0123456789abcdefull, "dashboard:apac:top-customers") == 0x5b362cb9d227a190ull);
}

TEST_CASE("a cache value and its query: byte image", "[layout][cache]") {
    const std::optional<std::string_view> params[] = {std::string_view("ab"), std::nullopt};
    const std::vector<std::byte> query = encode_cache_query("x", params);
    Bytes q(query.size());
    std::memcpy(q.data(), query.data(), query.size());
    CHECK(q == Bytes{
                   1,    0,    0,    0,    'x',       // sql
                   2,    0,    0,    0,               // nparams
                   2,    0,    0,    0,    'a', 'b',  // "ab"
                   0xff, 0xff, 0xff, 0xff,            // NULL
               });

    const std::byte response[] = {std::byte{0xAA}, std::byte{0xBB}};
    CacheValueView v;
    v.floor_lsn = 0x0102030405060708;
    v.token_lsn = 0x1112131415161718;
    v.system_id = 0x2122232425262728;
    v.expires_unix_ms = 0x3132333435363738;
    v.query = query;
    v.response = response;
    const std::vector<std::byte> blob = encode_cache_value(v);
    Bytes got(blob.size());
    std::memcpy(got.data(), blob.data(), blob.size());
    const Bytes fixed = {'R',  'G',  'D',  'V',  1,    0,    0,    0,      // magic, version, flags
                         0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,   // floor_lsn
                         0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11,   // token_lsn
                         0x28, 0x27, 0x26, 0x25, 0x24, 0x23, 0x22, 0x21,   // system_id
                         0x38, 0x37, 0x36, 0x35, 0x34, 0x33, 0x32, 0x31};  // expires_unix_ms
    const Bytes tail = {2, 0, 0, 0, 0xAA, 0xBB};                           // response_len, response
    Bytes expected = fixed;
    for (std::uint8_t b : {static_cast<std::uint8_t>(q.size()), std::uint8_t{0}, std::uint8_t{0}, std::uint8_t{0}})
        expected.push_back(b);  // query_len
    for (std::uint8_t b : q) expected.push_back(b);
    for (std::uint8_t b : tail) expected.push_back(b);
    CHECK(got == expected);
}
