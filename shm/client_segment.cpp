#include "shm/client_segment.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace regiond::shm {

static_assert(kClientSegmentSeals == (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL));

namespace {

constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t kMaxClientSegment = std::uint64_t{8} << 30;

}  // namespace

ClientGeometry client_geometry(std::uint32_t request_capacity, std::uint32_t response_capacity) noexcept {
    ClientGeometry g{};
    g.request_ring_offset = align_up(sizeof(ClientHeader), kCacheLine);
    g.request_ring_capacity = request_capacity;
    g.response_ring_offset = align_up(g.request_ring_offset + ring_region_size(request_capacity), kCacheLine);
    g.response_ring_capacity = response_capacity;
    g.total_size = align_up(g.response_ring_offset + ring_region_size(response_capacity), kPage);
    return g;
}

// ---------------------------------------------------------------------------
// Daemon side

ClientSegmentOwner::ClientSegmentOwner(ClientSegmentOwner&& other) noexcept
    : fd_(std::move(other.fd_)),
      base_(std::exchange(other.base_, nullptr)),
      geometry_(other.geometry_),
      requests_(other.requests_),
      responses_(other.responses_),
      permit_(other.permit_) {}

ClientSegmentOwner& ClientSegmentOwner::operator=(ClientSegmentOwner&& other) noexcept {
    if (this != &other) {
        unmap();
        fd_ = std::move(other.fd_);
        base_ = std::exchange(other.base_, nullptr);
        geometry_ = other.geometry_;
        requests_ = other.requests_;
        responses_ = other.responses_;
        permit_ = other.permit_;
    }
    return *this;
}

ClientSegmentOwner::~ClientSegmentOwner() {
    unmap();
}

void ClientSegmentOwner::unmap() noexcept {
    if (base_ != nullptr) ::munmap(base_, geometry_.total_size);
    base_ = nullptr;
}

Expected<ClientSegmentOwner> ClientSegmentOwner::create(const ClientSegmentOptions& options) {
    if (!ring_capacity_valid(options.request_capacity) || !ring_capacity_valid(options.response_capacity))
        return Error::invalid("client ring capacities must be powers of two between 256 bytes and 1 GiB");
    if (options.daemon_wake != DaemonWake::eventfd && options.daemon_wake != DaemonWake::futex)
        return Error::invalid("unknown daemon wake method");
    const ClientGeometry g = client_geometry(options.request_capacity, options.response_capacity);

    ClientSegmentOwner seg;
    seg.fd_.reset(::memfd_create("regiond-client", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!seg.fd_) return Error::system(errno, "memfd_create for a client segment");
    if (::ftruncate(seg.fd_.get(), static_cast<off_t>(g.total_size)) != 0)
        return Error::system(errno, "ftruncate of a client segment to " + std::to_string(g.total_size) + " bytes");
    // Seal before the fd leaves this process; the size can never change again.
    if (::fcntl(seg.fd_.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
        return Error::system(errno, "sealing a client segment");
    void* addr = ::mmap(nullptr, g.total_size, PROT_READ | PROT_WRITE, MAP_SHARED, seg.fd_.get(), 0);
    if (addr == MAP_FAILED) return Error::system(errno, "mapping a client segment");
    seg.base_ = static_cast<std::byte*>(addr);
    seg.geometry_ = g;

    ClientHeader* h = construct_shared<ClientHeader>(seg.base_);
    std::memcpy(h->magic, kClientMagic, sizeof h->magic);
    h->header_size = sizeof(ClientHeader);
    h->total_size = g.total_size;
    h->request_ring_offset = g.request_ring_offset;
    h->request_ring_capacity = g.request_ring_capacity;
    h->response_ring_offset = g.response_ring_offset;
    h->response_ring_capacity = g.response_ring_capacity;
    h->daemon_wake = static_cast<std::uint32_t>(options.daemon_wake);
    h->client_id = options.client_id;
    h->daemon_generation = options.daemon_generation;
    h->max_request.store(options.max_request, std::memory_order_relaxed);

    const std::span<std::byte> req(seg.base_ + g.request_ring_offset, ring_region_size(g.request_ring_capacity));
    const std::span<std::byte> resp(seg.base_ + g.response_ring_offset, ring_region_size(g.response_ring_capacity));
    ring_initialize(req, g.request_ring_capacity);
    ring_initialize(resp, g.response_ring_capacity);
    // Endpoints built from our own geometry, before the client has the fd.
    seg.requests_ = RingConsumer(req, g.request_ring_capacity);
    seg.responses_ = RingProducer(resp, g.response_ring_capacity);

    // SYNC POINT: release, last; pairs with the acquire load in ClientSegment::attach.
    h->layout_version.store(kClientLayoutVersion, std::memory_order_release);
    return seg;
}

void ClientSegmentOwner::set_max_request(std::uint32_t bytes) noexcept {
    // Relaxed: advisory for the client (see ClientHeader::max_request).
    shared_at<ClientHeader>(base_)->max_request.store(bytes, std::memory_order_relaxed);
}

std::uint64_t ClientSegmentOwner::cache_hits() const noexcept {
    // Relaxed: a statistic; it orders nothing else (see ClientHeader::cache_hits).
    return shared_at<ClientHeader>(static_cast<const std::byte*>(base_))->cache_hits.load(std::memory_order_relaxed);
}

void ClientSegmentOwner::set_spin_permit(std::uint32_t ns) noexcept {
    if (ns == permit_) return;
    permit_ = ns;
    // Relaxed: advice (see ClientHeader::spin_permit_ns).
    shared_at<ClientHeader>(base_)->spin_permit_ns.store(ns, std::memory_order_relaxed);
}

ClientWaitState ClientSegmentOwner::wait_state() const noexcept {
    // Relaxed: see ClientHeader::wait_state. Untrusted: anything unknown is idle.
    const std::uint32_t v =
        shared_at<ClientHeader>(static_cast<const std::byte*>(base_))->wait_state.load(std::memory_order_relaxed);
    switch (v) {
        case static_cast<std::uint32_t>(ClientWaitState::spinning): return ClientWaitState::spinning;
        case static_cast<std::uint32_t>(ClientWaitState::sleeping): return ClientWaitState::sleeping;
        default: return ClientWaitState::idle;
    }
}

std::uint64_t ClientSegmentOwner::waits_spun() const noexcept {
    // Relaxed: statistics (see ClientHeader::waits_spun).
    return shared_at<ClientHeader>(static_cast<const std::byte*>(base_))->waits_spun.load(std::memory_order_relaxed);
}

std::uint64_t ClientSegmentOwner::waits_slept() const noexcept {
    // Relaxed: statistics (see ClientHeader::waits_slept).
    return shared_at<ClientHeader>(static_cast<const std::byte*>(base_))->waits_slept.load(std::memory_order_relaxed);
}

ClientWake ClientSegmentOwner::client_wake() const noexcept {
    // Relaxed: read after the need-wake-up flag (see ClientHeader::client_wake).
    const std::uint32_t v =
        shared_at<ClientHeader>(static_cast<const std::byte*>(base_))->client_wake.load(std::memory_order_relaxed);
    return v == static_cast<std::uint32_t>(ClientWake::futex_and_eventfd) ? ClientWake::futex_and_eventfd
                                                                          : ClientWake::futex;
}

// ---------------------------------------------------------------------------
// Client side

void ClientSegment::request_eventfd_wake() noexcept {
    // Relaxed: ordered before the need-wake-up flag by prepare_sleep()'s seq_cst
    // fence (see ClientHeader::client_wake).
    shared_at<ClientHeader>(base_)->client_wake.store(static_cast<std::uint32_t>(ClientWake::futex_and_eventfd),
                                                      std::memory_order_relaxed);
}

void ClientSegment::count_wait(bool slept) noexcept {
    // Relaxed: statistics; fetch_add since several threads of one client may lead in turn.
    ClientHeader* h = shared_at<ClientHeader>(base_);
    (slept ? h->waits_slept : h->waits_spun).fetch_add(1, std::memory_order_relaxed);
}

std::uint32_t ClientSegment::spin_permit() const noexcept {
    // Relaxed: see ClientHeader::spin_permit_ns.
    return shared_at<ClientHeader>(base_)->spin_permit_ns.load(std::memory_order_relaxed);
}

void ClientSegment::set_wait_state(ClientWaitState state) noexcept {
    // Relaxed: a report for the daemon's next decision; it orders nothing.
    shared_at<ClientHeader>(base_)->wait_state.store(static_cast<std::uint32_t>(state), std::memory_order_relaxed);
}

void ClientSegment::add_cache_hit() noexcept {
    // Relaxed: a statistic; fetch_add because several threads of one client may
    // count at once (the daemon never writes this word).
    shared_at<ClientHeader>(base_)->cache_hits.fetch_add(1, std::memory_order_relaxed);
}

std::uint32_t ClientSegment::max_request() const noexcept {
    // Relaxed: see ClientHeader::max_request.
    return shared_at<ClientHeader>(base_)->max_request.load(std::memory_order_relaxed);
}

ClientSegment::ClientSegment(ClientSegment&& other) noexcept
    : base_(std::exchange(other.base_, nullptr)),
      size_(other.size_),
      client_id_(other.client_id_),
      daemon_generation_(other.daemon_generation_),
      daemon_wake_(other.daemon_wake_),
      requests_(other.requests_),
      responses_(other.responses_) {}

ClientSegment& ClientSegment::operator=(ClientSegment&& other) noexcept {
    if (this != &other) {
        unmap();
        base_ = std::exchange(other.base_, nullptr);
        size_ = other.size_;
        client_id_ = other.client_id_;
        daemon_generation_ = other.daemon_generation_;
        daemon_wake_ = other.daemon_wake_;
        requests_ = other.requests_;
        responses_ = other.responses_;
    }
    return *this;
}

ClientSegment::~ClientSegment() {
    unmap();
}

void ClientSegment::unmap() noexcept {
    if (base_ != nullptr) ::munmap(base_, size_);
    base_ = nullptr;
}

Expected<ClientSegment> ClientSegment::attach(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return Error::system(errno, "fstat of the client segment");
    if (!S_ISREG(st.st_mode)) return Error::invalid("client segment descriptor is not a memory file");
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size < sizeof(ClientHeader) || size > kMaxClientSegment || size % kPage != 0)
        return Error::invalid("client segment has an implausible size of " + std::to_string(size) + " bytes");
    const int seals = ::fcntl(fd, F_GET_SEALS);
    if (seals < 0) return Error::system(errno, "F_GET_SEALS on the client segment (not a memfd?)");
    const int required = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
    if ((seals & required) != required)
        return Error::invalid("client segment is not sealed against resizing (seals " + std::to_string(seals) +
                              "): refusing to map it");

    void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (addr == MAP_FAILED) return Error::system(errno, "mapping the client segment");
    ClientSegment seg;
    seg.base_ = static_cast<std::byte*>(addr);
    seg.size_ = size;

    const ClientHeader* h = shared_at<ClientHeader>(seg.base_);
    // SYNC POINT: acquire pairs with the daemon's release store (last in create()).
    const std::uint32_t version = h->layout_version.load(std::memory_order_acquire);
    if (std::memcmp(h->magic, kClientMagic, sizeof kClientMagic) != 0)
        return Error::invalid("the descriptor the daemon sent is not a regiond client segment (bad magic)");
    if (version != kClientLayoutVersion)
        return Error::invalid("client segment has layout version " + std::to_string(version) +
                              ", this library understands " + std::to_string(kClientLayoutVersion) +
                              ": upgrade libregiond or the daemon");
    auto bad = [](const std::string& what) { return Error::invalid("client segment is malformed: " + what); };
    if (h->header_size != sizeof(ClientHeader)) return bad("header size");
    if (h->total_size != size) return bad("total size does not match the file size");
    const std::uint32_t req_cap = h->request_ring_capacity;
    const std::uint32_t resp_cap = h->response_ring_capacity;
    const std::uint64_t req_off = h->request_ring_offset;
    const std::uint64_t resp_off = h->response_ring_offset;
    if (!ring_capacity_valid(req_cap) || !ring_capacity_valid(resp_cap)) return bad("ring capacity");
    if (req_off % kCacheLine != 0 || resp_off % kCacheLine != 0) return bad("ring offsets not 64-byte aligned");
    if (req_off < sizeof(ClientHeader) || !range_within(req_off, ring_region_size(req_cap), size) ||
        !range_within(resp_off, ring_region_size(resp_cap), size))
        return bad("ring outside the segment");
    if (req_off < resp_off ? req_off + ring_region_size(req_cap) > resp_off
                           : resp_off + ring_region_size(resp_cap) > req_off)
        return bad("rings overlap");
    if (resp_off < sizeof(ClientHeader)) return bad("ring overlaps the header");
    const std::uint32_t wake = h->daemon_wake;
    if (wake != static_cast<std::uint32_t>(DaemonWake::eventfd) &&
        wake != static_cast<std::uint32_t>(DaemonWake::futex))
        return bad("daemon wake method");

    const std::span<std::byte> req(seg.base_ + req_off, ring_region_size(req_cap));
    const std::span<std::byte> resp(seg.base_ + resp_off, ring_region_size(resp_cap));
    if (shared_at<RingControl>(req.data())->capacity != req_cap ||
        shared_at<RingControl>(resp.data())->capacity != resp_cap)
        return bad("ring control capacity does not match the header");
    seg.requests_ = RingProducer(req, req_cap);
    seg.responses_ = RingConsumer(resp, resp_cap);
    if (seg.requests_.is_corrupt() || seg.responses_.is_corrupt()) return bad("ring counters");
    seg.client_id_ = h->client_id;
    seg.daemon_generation_ = h->daemon_generation;
    seg.daemon_wake_ = static_cast<DaemonWake>(wake);
    return seg;
}

}  // namespace regiond::shm
