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
    CHECK(kStateLayoutVersion == 1);
    CHECK(kClientLayoutVersion == 2);
    CHECK(kProtocolVersion == 2);
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
    CHECK(g.cache_length == 64 + (1 << 20));
    CHECK(g.total_size == 25344 + (1 << 20));
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
