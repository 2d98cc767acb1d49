// Binary-compatibility test (in the spirit of iceoryx's chunk header test): pins
// the size, alignment and field offsets of every struct that lives in shared
// memory, and the numeric values stored in it. If this test has to change, the
// layout changed: bump kStateLayoutVersion / kClientLayoutVersion as well.
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstring>

#include "shm/client_segment.hpp"
#include "shm/codec.hpp"
#include "shm/ring.hpp"
#include "shm/seqlock.hpp"
#include "shm/state_layout.hpp"

using namespace regiond::shm;

TEST_CASE("layout versions and magics", "[layout]") {
    CHECK(kStateLayoutVersion == 1);
    CHECK(kClientLayoutVersion == 1);
    CHECK(std::memcmp(kStateMagic, "RGDSTATE", 8) == 0);
    CHECK(std::memcmp(kClientMagic, "RGDCLNT\0", 8) == 0);
    CHECK(kCacheLine == 64);
}

TEST_CASE("shared atomics", "[layout]") {
    CHECK(sizeof(SharedU32) == 4);
    CHECK(alignof(SharedU32) == 4);
    CHECK(sizeof(SharedU64) == 8);
    CHECK(alignof(SharedU64) == 8);
    CHECK(SharedU32::is_always_lock_free);
    CHECK(SharedU64::is_always_lock_free);
}

TEST_CASE("ring records and control block", "[layout]") {
    CHECK(sizeof(RecordHeader) == 16);
    CHECK(alignof(RecordHeader) == 8);
    CHECK(offsetof(RecordHeader, size) == 0);
    CHECK(offsetof(RecordHeader, kind) == 4);
    CHECK(offsetof(RecordHeader, flags) == 6);
    CHECK(offsetof(RecordHeader, request_id) == 8);

    CHECK(sizeof(RingControl) == 192);
    CHECK(alignof(RingControl) == 64);
    CHECK(offsetof(RingControl, head) == 0);
    CHECK(offsetof(RingControl, tail) == 64);
    CHECK(offsetof(RingControl, consumer_sleeping) == 128);
    CHECK(offsetof(RingControl, futex_word) == 132);
    CHECK(offsetof(RingControl, capacity) == 136);

    CHECK(static_cast<std::uint16_t>(RecordKind::padding) == 0);
    CHECK(static_cast<std::uint16_t>(RecordKind::request) == 1);
    CHECK(static_cast<std::uint16_t>(RecordKind::response) == 2);
    CHECK(static_cast<std::uint16_t>(RecordKind::cancel) == 3);
    CHECK(kMaxRecordKind == 3);
    CHECK(kRecordFlagLast == 1);
    CHECK(kRecordAlign == 8);
}

TEST_CASE("state segment structs", "[layout]") {
    CHECK(sizeof(SectionRef) == 16);
    CHECK(sizeof(StateHeader) == 192);
    CHECK(alignof(StateHeader) == 64);
    CHECK(offsetof(StateHeader, magic) == 0);
    CHECK(offsetof(StateHeader, layout_version) == 8);
    CHECK(offsetof(StateHeader, header_size) == 12);
    CHECK(offsetof(StateHeader, total_size) == 16);
    CHECK(offsetof(StateHeader, generation) == 24);
    CHECK(offsetof(StateHeader, daemon_pid) == 32);
    CHECK(offsetof(StateHeader, started_unix_ns) == 40);
    CHECK(offsetof(StateHeader, regions) == 48);
    CHECK(offsetof(StateHeader, counters) == 64);
    CHECK(offsetof(StateHeader, cache) == 80);
    CHECK(offsetof(StateHeader, max_regions) == 96);
    CHECK(offsetof(StateHeader, max_endpoints_per_region) == 100);
    CHECK(offsetof(StateHeader, endpoint_slot_size) == 104);
    CHECK(offsetof(StateHeader, counter_count) == 108);
    CHECK(offsetof(StateHeader, heartbeat_ns) == 128);

    CHECK(sizeof(EndpointStatus) == 184);
    CHECK(alignof(EndpointStatus) == 8);
    CHECK(offsetof(EndpointStatus, region) == 0);
    CHECK(offsetof(EndpointStatus, endpoint) == 64);
    CHECK(offsetof(EndpointStatus, in_use) == 128);
    CHECK(offsetof(EndpointStatus, role) == 129);
    CHECK(offsetof(EndpointStatus, healthy) == 130);
    CHECK(offsetof(EndpointStatus, cache_healthy) == 131);
    CHECK(offsetof(EndpointStatus, alert) == 132);
    CHECK(offsetof(EndpointStatus, last_error) == 136);
    CHECK(offsetof(EndpointStatus, rtt_us) == 140);
    CHECK(offsetof(EndpointStatus, pool_in_use) == 144);
    CHECK(offsetof(EndpointStatus, pool_size) == 148);
    CHECK(offsetof(EndpointStatus, lag_ms) == 152);
    CHECK(offsetof(EndpointStatus, lag_bytes) == 160);
    CHECK(offsetof(EndpointStatus, replay_lsn) == 168);
    CHECK(offsetof(EndpointStatus, updated_ns) == 176);
    CHECK(static_cast<int>(EndpointRole::primary) == 1);
    CHECK(static_cast<int>(EndpointRole::replica) == 2);

    CHECK(sizeof(EndpointSlot) == 192);
    CHECK(offsetof(EndpointSlot, seq) == 0);
    CHECK(offsetof(EndpointSlot, words) == 8);

    CHECK(sizeof(CacheHeader) == 64);
    CHECK(offsetof(CacheHeader, data_offset) == 8);
    CHECK(offsetof(CacheHeader, data_length) == 16);

    CHECK(kMaxRegions == 16);
    CHECK(kMaxEndpointsPerRegion == 8);
    CHECK(kCounterSlots == 64);
    CHECK(static_cast<int>(Counter::requests_read_local) == 0);
    CHECK(static_cast<int>(Counter::cache_hits_local) == 5);
    CHECK(static_cast<int>(Counter::errors) == 8);
    CHECK(static_cast<int>(Counter::clients_dropped) == 11);
    CHECK(static_cast<int>(Counter::consistent_reads_to_primary) == 15);

    const StateGeometry g = state_geometry(1 << 20);
    CHECK(g.regions_offset == 192);
    CHECK(g.regions_length == 24576);
    CHECK(g.counters_offset == 24768);
    CHECK(g.counters_length == 512);
    CHECK(g.cache_offset == 25280);
    CHECK(g.cache_length == 64 + (1 << 20));
    CHECK(g.total_size == 25344 + (1 << 20));
}

TEST_CASE("client segment structs", "[layout]") {
    CHECK(sizeof(ClientHeader) == 128);
    CHECK(alignof(ClientHeader) == 64);
    CHECK(offsetof(ClientHeader, magic) == 0);
    CHECK(offsetof(ClientHeader, layout_version) == 8);
    CHECK(offsetof(ClientHeader, header_size) == 12);
    CHECK(offsetof(ClientHeader, total_size) == 16);
    CHECK(offsetof(ClientHeader, request_ring_offset) == 24);
    CHECK(offsetof(ClientHeader, request_ring_capacity) == 32);
    CHECK(offsetof(ClientHeader, response_ring_offset) == 40);
    CHECK(offsetof(ClientHeader, response_ring_capacity) == 48);
    CHECK(offsetof(ClientHeader, daemon_wake) == 52);
    CHECK(offsetof(ClientHeader, client_id) == 56);
    CHECK(offsetof(ClientHeader, daemon_generation) == 64);
    CHECK(static_cast<int>(DaemonWake::eventfd) == 1);
    CHECK(static_cast<int>(DaemonWake::futex) == 2);

    const ClientGeometry g = client_geometry(1 << 16, 1 << 20);
    CHECK(g.request_ring_offset == 128);
    CHECK(g.response_ring_offset == 128 + 192 + (1 << 16));
    CHECK(g.total_size == 1118208);  // 128 + 192 + 65536 + 192 + 1048576 = 1114624, rounded up to 4096
}

TEST_CASE("codec constants", "[layout]") {
    CHECK(kNullLength == 0xFFFFFFFFu);
    CHECK(kChunkFlagLast == 1);
    CHECK(kChunkOverhead == 12);
    CHECK(static_cast<int>(Op::read_local) == 1);
    CHECK(static_cast<int>(Op::read_primary) == 2);
    CHECK(static_cast<int>(Op::write) == 3);
    CHECK(static_cast<int>(Op::read_consistent) == 4);
    CHECK(static_cast<int>(Op::cached_read) == 5);
    CHECK(static_cast<int>(Status::ok) == 0);
    CHECK(static_cast<int>(Status::error) == 1);
}
