// The per-client segment: a sealed memfd created by the daemon, passed to the
// client over the unix socket (fd_passing.hpp), holding the two rings.
//
//   offset 0                        ClientHeader (128 bytes)
//   request_ring_offset (=128)      ring region: RingControl + request data   (client produces)
//   response_ring_offset            ring region: RingControl + response data  (daemon produces)
//   total_size                      rounded up to the page size
//
// Wake-up words live in each ring's RingControl:
//  * requests.consumer_sleeping  = the daemon's "wake needed" flag. When a push
//    returns needs_wakeup the client wakes the daemon as ClientHeader::daemon_wake
//    says (eventfd passed along with the memfd, or the request ring's futex word).
//  * responses.futex_word        = the client-side futex word the daemon wakes;
//    responses.consumer_sleeping = the client's "wake needed" flag.
//
// Seals: F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL. A client that could shrink the
// file would make the daemon's next access to the mapping a SIGBUS; the seals make
// ftruncate fail with EPERM for everyone, and F_SEAL_SEAL stops anyone removing
// them. The client checks them on attach (F_GET_SEALS).
//
// Trust: the daemon never reads the header back. ClientSegmentOwner keeps its own
// copies of offsets and capacities from creation and builds the ring endpoints
// from those; head/tail values written by the client are validated by the rings.
#pragma once

#include <cstdint>
#include <span>

#include "shm/error.hpp"
#include "shm/layout.hpp"
#include "shm/ring.hpp"
#include "shm/unique_fd.hpp"

namespace regiond::shm {

inline constexpr char kClientMagic[8] = {'R', 'G', 'D', 'C', 'L', 'N', 'T', '\0'};
/// 2: max_request. 3: cache_hits (a client-written counter in the header).
/// 4: spin_permit_ns (daemon -> client), wait_state, waits_spun and
///    waits_slept (client -> daemon), the host-wide waiting of
///    shm/wait_policy.hpp.
/// 5: client_wake (client -> daemon): a client with an event loop asks to be
///    woken through its eventfd as well (libregiond's rgd_event_fd).
inline constexpr std::uint32_t kClientLayoutVersion = 5;

/// What a client's waiting thread is doing, as it tells the daemon
/// (ClientHeader::wait_state).
enum class ClientWaitState : std::uint32_t {
    idle = 0,      ///< no call waiting for an answer
    spinning = 1,  ///< polling its response ring on a core
    sleeping = 2,  ///< asleep on its response ring's futex word
};
inline constexpr unsigned kClientSegmentSeals = 0x0002 | 0x0004 | 0x0001;  // F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL

/// How the daemon wakes the client when responses.consumer_sleeping is set
/// (ClientHeader::client_wake).
enum class ClientWake : std::uint32_t {
    futex = 0,              ///< futex_bump_and_wake(response ring's futex_word)
    futex_and_eventfd = 1,  ///< that, and write 1 to the client's eventfd
};

/// How the client wakes the daemon when requests.consumer_sleeping is set.
enum class DaemonWake : std::uint32_t {
    eventfd = 1,  ///< write 1 to the eventfd the daemon passed with the memfd
    futex = 2,    ///< futex_bump_and_wake(request ring's futex_word)
};

struct alignas(kCacheLine) ClientHeader {
    char magic[8];  ///< kClientMagic
    /// SYNC POINT: stored last with release by the daemon (after everything else
    /// is initialised); loaded first with acquire by the client in attach().
    /// (The fd is passed only afterwards anyway; this keeps the rule uniform.)
    SharedU32 layout_version;
    std::uint32_t header_size;          ///< sizeof(ClientHeader)
    std::uint64_t total_size;           ///< == the memfd's size
    std::uint64_t request_ring_offset;  ///< ring region (RingControl + data)
    std::uint32_t request_ring_capacity;
    std::uint32_t reserved0;
    std::uint64_t response_ring_offset;
    std::uint32_t response_ring_capacity;
    std::uint32_t daemon_wake;        ///< DaemonWake
    std::uint64_t client_id;          ///< daemon-assigned, for logs
    std::uint64_t daemon_generation;  ///< the state segment's generation
    /// The daemon's daemon.max_request (bytes of one encoded request), so the
    /// client refuses a larger request itself, with the daemon's own message,
    /// instead of costing a round trip. The daemon rewrites it on SIGHUP.
    /// Relaxed on both sides: a value one reload old only moves where the same
    /// error is produced (the daemon checks again).
    SharedU32 max_request;
    std::uint32_t reserved1;
    /// Hot-cache hits this client served itself from the state segment (no
    /// message to the daemon), for the daemon's counters. Written by the client
    /// (fetch_add, relaxed: a statistic that publishes nothing; the client may
    /// count from several threads), read by the daemon (relaxed) when it sums the
    /// clients' counts. UNTRUSTED: the client can write any value here, at any
    /// time, and make it go backwards; the daemon treats it as a number to
    /// report, never as a size, index or loop bound.
    SharedU64 cache_hits;
    /// How long this client may spin for an answer, in nanoseconds, before it
    /// sleeps: the daemon's host-wide decision (shm/wait_policy.hpp), 0 = sleep
    /// at once. Written by the daemon only when it changes, read by the client
    /// at each wait. Relaxed on both sides: advice that publishes no other data;
    /// a stale value costs at most one wait's spin (or one futex sleep), never
    /// correctness, since the need-wake-up protocol does not depend on it.
    SharedU32 spin_permit_ns;
    /// ClientWaitState of the client's waiting thread. Written by the client
    /// (relaxed, at each change), read by the daemon (relaxed) when it counts the
    /// spinners. UNTRUSTED: a client can lie here; the worst it buys is one
    /// core counted wrongly in the decision (it could spin without a permit
    /// anyway: a local process can always burn a core). Any other value is
    /// read as idle.
    SharedU32 wait_state;
    /// How this client waited for answers: waits that began with a spin (the
    /// permit and its own expectation allowed one), and waits that slept (a
    /// wait can be both: a spin that found nothing, then a sleep). Written by the client
    /// (fetch_add, relaxed: statistics, like cache_hits), read for diagnosis
    /// and by tests. UNTRUSTED, as cache_hits.
    SharedU64 waits_spun;
    SharedU64 waits_slept;
    /// ClientWake: how the daemon wakes this client when its response ring's
    /// need-wake-up flag is set. futex (0, the default) bumps and wakes the
    /// ring's futex word; futex_and_eventfd (1) also writes 1 to the client's
    /// eventfd (the third fd of the welcome), which a client with an event loop
    /// watches instead of sleeping on the futex. Written by the client (relaxed)
    /// before it raises the need-wake-up flag, whose seq_cst fence orders it;
    /// read by the daemon (relaxed) after it saw that flag, so a client that
    /// asked for the eventfd is never woken through the futex alone. Once 1 it
    /// stays 1 (the client never clears it). UNTRUSTED: any other value reads
    /// as futex; the worst a lie buys is a wake-up the client did not need.
    SharedU32 client_wake;
    std::uint8_t reserved2[12];
};
static_assert(sizeof(ClientHeader) == 128 && alignof(ClientHeader) == 64);
static_assert(offsetof(ClientHeader, layout_version) == 8);
static_assert(offsetof(ClientHeader, header_size) == 12);
static_assert(offsetof(ClientHeader, total_size) == 16);
static_assert(offsetof(ClientHeader, request_ring_offset) == 24);
static_assert(offsetof(ClientHeader, request_ring_capacity) == 32);
static_assert(offsetof(ClientHeader, response_ring_offset) == 40);
static_assert(offsetof(ClientHeader, response_ring_capacity) == 48);
static_assert(offsetof(ClientHeader, daemon_wake) == 52);
static_assert(offsetof(ClientHeader, client_id) == 56);
static_assert(offsetof(ClientHeader, daemon_generation) == 64);
static_assert(offsetof(ClientHeader, max_request) == 72);
static_assert(offsetof(ClientHeader, cache_hits) == 80);
static_assert(offsetof(ClientHeader, spin_permit_ns) == 88);
static_assert(offsetof(ClientHeader, wait_state) == 92);
static_assert(offsetof(ClientHeader, waits_spun) == 96);
static_assert(offsetof(ClientHeader, waits_slept) == 104);
static_assert(offsetof(ClientHeader, client_wake) == 112);
static_assert(std::is_standard_layout_v<ClientHeader>);

/// Offsets and sizes of a client segment (the daemon's trusted copy).
struct ClientGeometry {
    std::uint64_t request_ring_offset;
    std::uint32_t request_ring_capacity;
    std::uint64_t response_ring_offset;
    std::uint32_t response_ring_capacity;
    std::uint64_t total_size;
};
ClientGeometry client_geometry(std::uint32_t request_capacity, std::uint32_t response_capacity) noexcept;

struct ClientSegmentOptions {
    std::uint32_t request_capacity = 1u << 20;   ///< power of two; max request payload = capacity/2 - 16
    std::uint32_t response_capacity = 1u << 20;  ///< power of two; max response chunk = capacity/2 - 16
    std::uint64_t client_id = 0;
    std::uint64_t daemon_generation = 0;
    DaemonWake daemon_wake = DaemonWake::eventfd;
    std::uint32_t max_request = 0;  ///< daemon.max_request; 0: only the ring's record limit
};

/// Daemon side: creates, seals and maps the memfd; consumes requests, produces
/// responses. Move-only; unmaps and closes on destruction.
class ClientSegmentOwner {
public:
    static Expected<ClientSegmentOwner> create(const ClientSegmentOptions& options);

    ClientSegmentOwner(ClientSegmentOwner&&) noexcept;
    ClientSegmentOwner& operator=(ClientSegmentOwner&&) noexcept;
    ~ClientSegmentOwner();

    /// The memfd to pass to the client (send_fd). Stays owned by this object.
    int fd() const noexcept { return fd_.get(); }
    const ClientGeometry& geometry() const noexcept { return geometry_; }
    RingConsumer& requests() noexcept { return requests_; }
    RingProducer& responses() noexcept { return responses_; }
    /// SIGHUP: publishes a new daemon.max_request to the client.
    void set_max_request(std::uint32_t bytes) noexcept;
    /// The client's own count of hot-cache hits: untrusted (any value, possibly
    /// smaller than last time); see ClientHeader::cache_hits.
    std::uint64_t cache_hits() const noexcept;
    /// Publishes this client's spin permit (see ClientHeader::spin_permit_ns).
    /// Stores only when it differs from the last value stored, so an unchanged
    /// decision costs no cache-line transfer.
    void set_spin_permit(std::uint32_t ns) noexcept;
    std::uint32_t spin_permit() const noexcept { return permit_; }
    /// The client's word on what its waiting thread does (untrusted; an
    /// unknown value reads as idle).
    ClientWaitState wait_state() const noexcept;
    /// The client's own counts of waits that spun and that slept (untrusted
    /// statistics).
    std::uint64_t waits_spun() const noexcept;
    std::uint64_t waits_slept() const noexcept;
    /// The client's choice of wake-up (untrusted; unknown values read as futex).
    ClientWake client_wake() const noexcept;

private:
    ClientSegmentOwner() = default;
    void unmap() noexcept;

    UniqueFd fd_;
    std::byte* base_ = nullptr;
    ClientGeometry geometry_{};
    RingConsumer requests_;
    RingProducer responses_;
    std::uint32_t permit_ = 0;  // our copy of spin_permit_ns (never read back)
};

/// Client side: maps a segment received from the daemon after validating it
/// (fstat size, F_GET_SEALS, magic, version, offsets and capacities). Produces
/// requests, consumes responses. Move-only; unmaps on destruction.
class ClientSegment {
public:
    /// Does not take ownership of `fd` (the mapping stays valid after it is closed).
    static Expected<ClientSegment> attach(int fd);

    ClientSegment(ClientSegment&&) noexcept;
    ClientSegment& operator=(ClientSegment&&) noexcept;
    ~ClientSegment();

    RingProducer& requests() noexcept { return requests_; }
    RingConsumer& responses() noexcept { return responses_; }
    std::uint64_t client_id() const noexcept { return client_id_; }
    std::uint64_t daemon_generation() const noexcept { return daemon_generation_; }
    DaemonWake daemon_wake() const noexcept { return daemon_wake_; }
    std::uint64_t size() const noexcept { return size_; }
    /// The daemon's daemon.max_request as it publishes it now; 0 when it gives none.
    std::uint32_t max_request() const noexcept;
    /// Counts one hit served from the hot cache (no system call: an atomic add in
    /// this client's own segment, which the daemon reads for its counters).
    void add_cache_hit() noexcept;
    /// The daemon's spin permit for this client now (ns; 0: sleep at once).
    std::uint32_t spin_permit() const noexcept;
    /// Tells the daemon what this client's waiting thread does.
    void set_wait_state(ClientWaitState state) noexcept;
    /// Counts a wait for an answer that spun (slept = false) or slept.
    void count_wait(bool slept) noexcept;
    /// Asks the daemon to write the client's eventfd too when it wakes this
    /// client (ClientHeader::client_wake). Call before raising the response
    /// ring's need-wake-up flag; it stays set.
    void request_eventfd_wake() noexcept;

private:
    ClientSegment() = default;
    void unmap() noexcept;

    std::byte* base_ = nullptr;
    std::uint64_t size_ = 0;
    std::uint64_t client_id_ = 0;
    std::uint64_t daemon_generation_ = 0;
    DaemonWake daemon_wake_ = DaemonWake::eventfd;
    RingProducer requests_;
    RingConsumer responses_;
};

}  // namespace regiond::shm
