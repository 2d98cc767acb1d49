#include "shm/state_segment.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace regiond::shm {

namespace bip = boost::interprocess;

namespace {

std::string normalized(const std::string& name) {
    if (!name.empty() && name.front() == '/') return name;
    return "/" + name;
}

std::uint64_t random_nonzero_u64() noexcept {
    std::uint64_t value = 0;
    if (::getrandom(&value, sizeof value, 0) != static_cast<ssize_t>(sizeof value)) {
        // No entropy syscall: fall back to time, still different per start.
        value = monotonic_now_ns() ^
                static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
    }
    return value == 0 ? 1 : value;
}

std::uint64_t unix_now_ns() noexcept {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
}

Error from_boost(const bip::interprocess_exception& e, const std::string& what) {
    const int native = e.get_native_error();
    std::string message = what + ": " + e.what();
    return Error{native, std::move(message)};
}

}  // namespace

std::uint64_t monotonic_now_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::string state_segment_path(const std::string& name) {
    return kShmDirectory + normalized(name);
}

Expected<std::optional<SegmentNameHolder>> state_segment_holder(const std::string& name) {
    const std::string path = state_segment_path(name);
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return std::optional<SegmentNameHolder>();
        return Error::system(errno, "cannot check state segment " + normalized(name) + " (" + path + ")");
    }
    return std::optional<SegmentNameHolder>(SegmentNameHolder{st.st_uid, S_ISREG(st.st_mode)});
}

Expected<void> remove_state_segment(const std::string& name) {
    const std::string n = normalized(name);
    if (::shm_unlink(n.c_str()) != 0 && errno != ENOENT)
        return Error::system(errno, "cannot remove state segment " + n);
    return {};
}

// ---------------------------------------------------------------------------
// StateSegment (daemon)

struct StateSegment::Impl {
    std::string name;
    bip::mapped_region region;
    std::byte* base = nullptr;
    StateGeometry geometry{};
    StateHeader* header = nullptr;
    EndpointSlot* slots = nullptr;
    SharedU64* counters = nullptr;
    CacheWriter cache;
    bool remove_on_destroy = true;

    ~Impl() {
        if (remove_on_destroy && !name.empty()) ::shm_unlink(name.c_str());
    }
};

StateSegment::StateSegment(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
StateSegment::StateSegment(StateSegment&&) noexcept = default;
StateSegment& StateSegment::operator=(StateSegment&&) noexcept = default;
StateSegment::~StateSegment() = default;

Expected<StateSegment> StateSegment::create(const StateSegmentOptions& options) {
    if (options.name.size() < 2 || options.name.find('/', 1) != std::string::npos)
        return Error::invalid("invalid state segment name \"" + options.name +
                              "\": expected \"/name\" without further slashes");
    const std::string name = normalized(options.name);
    if (options.replace_existing) {
        if (auto removed = remove_state_segment(name); !removed) return removed.error();
    }
    const StateGeometry g = state_geometry(options.cache_bytes);

    auto impl = std::make_unique<Impl>();
    impl->geometry = g;
    try {
        bip::permissions perms(static_cast<unsigned>(options.mode));
        // Boost's create_only is shm_open(O_CREAT | O_EXCL) followed by fchmod(mode),
        // so the umask does not narrow the mode we ask for. O_EXCL: an existing
        // name (anyone's, a symlink included) fails here and is never opened;
        // glibc's shm_open adds O_NOFOLLOW as well.
        bip::shared_memory_object object(bip::create_only, name.c_str(), bip::read_write, perms);
        impl->name = name;  // from here on, the Impl destructor removes the name on failure
        if (options.group) {
            // Boost has no chown; its mapping handle is the shm_open descriptor, so
            // fchown it directly (no race with a path lookup).
            const int fd = object.get_mapping_handle().handle;
            if (::fchown(fd, static_cast<uid_t>(-1), *options.group) != 0)
                return Error::system(errno, "cannot give state segment " + name + " to group " +
                                                std::to_string(*options.group) +
                                                " (the daemon must be a member of it, or root)");
        }
        object.truncate(static_cast<bip::offset_t>(g.total_size));
        // Reserve the memory now (tmpfs allocates, without mapping a page: ~15 ms
        // per 64 MiB here): a /dev/shm too small for cache.memory is an error at
        // start instead of a SIGBUS in the daemon when the cache first writes a
        // page that cannot be allocated. File systems without fallocate: skipped.
        if (::fallocate(object.get_mapping_handle().handle, 0, 0, static_cast<off_t>(g.total_size)) != 0 &&
            errno != EOPNOTSUPP)
            return Error::system(errno, "cannot reserve " + std::to_string(g.total_size) +
                                            " bytes of shared memory for state segment " + name + " (cache.memory " +
                                            std::to_string(options.cache_bytes) + " bytes; is " + kShmDirectory +
                                            " large enough?)");
        impl->region = bip::mapped_region(object, bip::read_write);
    } catch (const bip::interprocess_exception& e) {
        if (e.get_error_code() == bip::already_exists_error)
            return Error{EEXIST, "state segment " + name + " already exists (" + state_segment_path(name) +
                                     "): another regiond may be running with this state_segment name, "
                                     "or another process took the name"};
        return from_boost(e, "cannot create state segment " + name);
    }

    std::byte* base = static_cast<std::byte*>(impl->region.get_address());
    impl->base = base;
    StateHeader* h = construct_shared<StateHeader>(base);
    std::memcpy(h->magic, kStateMagic, sizeof h->magic);
    h->header_size = sizeof(StateHeader);
    h->total_size = g.total_size;
    h->generation = options.generation != 0 ? options.generation : random_nonzero_u64();
    h->daemon_pid = static_cast<std::uint32_t>(::getpid());
    h->started_unix_ns = unix_now_ns();
    h->regions = SectionRef{g.regions_offset, g.regions_length};
    h->counters = SectionRef{g.counters_offset, g.counters_length};
    h->cache = SectionRef{g.cache_offset, g.cache_length};
    h->max_regions = kMaxRegions;
    h->max_endpoints_per_region = kMaxEndpointsPerRegion;
    h->endpoint_slot_size = sizeof(EndpointSlot);
    h->counter_count = kCounterSlots;
    h->heartbeat_ns.store(monotonic_now_ns(), std::memory_order_relaxed);
    impl->header = h;

    for (std::uint32_t i = 0; i < kMaxRegions * kMaxEndpointsPerRegion; ++i)
        construct_shared<EndpointSlot>(base + g.regions_offset + i * sizeof(EndpointSlot));
    impl->slots = shared_at<EndpointSlot>(base + g.regions_offset);
    for (std::uint32_t i = 0; i < kCounterSlots; ++i)
        construct_shared<SharedU64>(base + g.counters_offset + i * sizeof(SharedU64));
    impl->counters = shared_at<SharedU64>(base + g.counters_offset);
    const std::span<std::byte> cache_section(base + g.cache_offset, g.cache_length);
    cache_initialize(cache_section, options.cache_seed != 0 ? options.cache_seed : random_nonzero_u64());
    impl->cache = CacheWriter(cache_section);

    // SYNC POINT: published LAST with release; pairs with the acquire load in
    // StateView::open(). Everything above is visible to a reader that sees it.
    h->layout_version.store(kStateLayoutVersion, std::memory_order_release);
    return StateSegment(std::move(impl));
}

const std::string& StateSegment::name() const noexcept {
    return impl_->name;
}
std::uint64_t StateSegment::generation() const noexcept {
    return impl_->header->generation;
}
std::uint64_t StateSegment::size() const noexcept {
    return impl_->geometry.total_size;
}
const StateHeader& StateSegment::header() const noexcept {
    return *impl_->header;
}

void StateSegment::heartbeat(std::uint64_t monotonic_ns) noexcept {
    // Relaxed: a self-contained liveness word; nothing else is published with it.
    impl_->header->heartbeat_ns.store(monotonic_ns, std::memory_order_relaxed);
}

void StateSegment::publish_wait_facts(const WaitFacts& f) noexcept {
    // Relaxed, word by word: display and diagnosis only (see StateHeader).
    StateHeader* h = impl_->header;
    h->usable_cores.store(f.usable_cores, std::memory_order_relaxed);
    h->busy_cores.store(f.busy_cores, std::memory_order_relaxed);
    h->spare_cores.store(f.spare_cores, std::memory_order_relaxed);
    h->runnable.store(f.runnable, std::memory_order_relaxed);
    h->in_flight_milli.store(f.in_flight_milli, std::memory_order_relaxed);
    h->clients_spinning.store(f.clients_spinning, std::memory_order_relaxed);
    h->clients_sleeping.store(f.clients_sleeping, std::memory_order_relaxed);
    h->client_permits.store(f.client_permits, std::memory_order_relaxed);
    h->daemon_may_spin.store(f.daemon_may_spin ? 1u : 0u, std::memory_order_relaxed);
}

bool StateSegment::write_endpoint(std::uint32_t region, std::uint32_t endpoint, const EndpointStatus& status) noexcept {
    if (region >= kMaxRegions || endpoint >= kMaxEndpointsPerRegion) return false;
    EndpointStatus copy = status;
    copy.region[kNameCapacity - 1] = '\0';  // readers rely on the terminator
    copy.endpoint[kNameCapacity - 1] = '\0';
    impl_->slots[region * kMaxEndpointsPerRegion + endpoint].write(copy);
    return true;
}

void StateSegment::add(Counter counter, std::uint64_t n) noexcept {
    // Relaxed: an independent statistic; see the header comment.
    impl_->counters[static_cast<std::uint32_t>(counter)].fetch_add(n, std::memory_order_relaxed);
}

void StateSegment::set(Counter counter, std::uint64_t value) noexcept {
    impl_->counters[static_cast<std::uint32_t>(counter)].store(value, std::memory_order_relaxed);
}

CacheWriter& StateSegment::cache() noexcept {
    return impl_->cache;
}
const CacheWriter& StateSegment::cache() const noexcept {
    return impl_->cache;
}

void StateSegment::release_name() noexcept {
    impl_->remove_on_destroy = false;
}

// ---------------------------------------------------------------------------
// StateView (client, read-only)

struct StateView::Impl {
    bip::mapped_region region;
    const std::byte* base = nullptr;
    std::uint64_t size = 0;
    const StateHeader* header = nullptr;
    const EndpointSlot* slots = nullptr;
    const SharedU64* counters = nullptr;
    std::uint32_t max_regions = 0;
    std::uint32_t max_endpoints = 0;
    std::uint32_t counter_count = 0;
    std::span<const std::byte> cache_section;  ///< CacheHeader + data, inside the mapping
    std::span<const std::byte> cache_data;
};

StateView::StateView(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
StateView::StateView(StateView&&) noexcept = default;
StateView& StateView::operator=(StateView&&) noexcept = default;
StateView::~StateView() = default;

Expected<StateView> StateView::open(const std::string& raw_name) {
    const std::string name = normalized(raw_name);
    auto impl = std::make_unique<Impl>();
    bip::offset_t size = 0;
    try {
        bip::shared_memory_object object(bip::open_only, name.c_str(), bip::read_only);
        if (!object.get_size(size)) return Error::invalid("cannot get the size of state segment " + name);
        if (size < static_cast<bip::offset_t>(sizeof(StateHeader)))
            return Error{EAGAIN, "state segment " + name + " is not ready yet (" + std::to_string(size) +
                                     " bytes): the daemon is starting"};
        // read_only maps PROT_READ, MAP_SHARED: this process cannot write to it.
        impl->region = bip::mapped_region(object, bip::read_only);
    } catch (const bip::interprocess_exception& e) {
        if (e.get_error_code() == bip::not_found_error)
            return Error{ENOENT, "state segment " + name +
                                     " does not exist: is regiond running (with state_segment = \"" + name + "\")?"};
        if (e.get_error_code() == bip::security_error)
            return Error{EACCES, "permission denied opening state segment " + name +
                                     ": this user must be in regiond's client_group"};
        return from_boost(e, "cannot open state segment " + name);
    }
    impl->base = static_cast<const std::byte*>(impl->region.get_address());
    impl->size = impl->region.get_size();
    const std::uint64_t mapped = impl->size;
    const StateHeader* h = shared_at<StateHeader>(impl->base);
    impl->header = h;

    // SYNC POINT: acquire pairs with the daemon's release store of layout_version
    // (done last in StateSegment::create). Read it before any other field.
    const std::uint32_t version = h->layout_version.load(std::memory_order_acquire);
    if (version == 0)
        return Error{EAGAIN, "state segment " + name + " is not ready yet (layout version 0): the daemon is starting"};
    if (std::memcmp(h->magic, kStateMagic, sizeof kStateMagic) != 0)
        return Error::invalid("shared memory object " + name + " is not a regiond state segment (bad magic)");
    if (version != kStateLayoutVersion)
        return Error::invalid("state segment " + name + " has layout version " + std::to_string(version) +
                              ", this library understands " + std::to_string(kStateLayoutVersion) +
                              ": upgrade libregiond or the daemon");

    auto bad = [&](const std::string& what) {
        return Error::invalid("state segment " + name + " is malformed: " + what);
    };
    if (h->header_size != sizeof(StateHeader)) return bad("header size " + std::to_string(h->header_size));
    if (h->total_size > mapped || h->total_size < sizeof(StateHeader))
        return bad("total size " + std::to_string(h->total_size) + " but " + std::to_string(mapped) + " bytes mapped");
    const std::uint64_t total = h->total_size;
    for (const SectionRef* s : {&h->regions, &h->counters, &h->cache}) {
        if (!range_within(s->offset, s->length, total) || s->offset % kCacheLine != 0 ||
            s->offset < sizeof(StateHeader))
            return bad("a section lies outside the segment");
    }
    if (h->endpoint_slot_size != sizeof(EndpointSlot)) return bad("endpoint slot size");
    if (h->max_regions > 4096 || h->max_endpoints_per_region > 4096 ||
        std::uint64_t{h->max_regions} * h->max_endpoints_per_region * sizeof(EndpointSlot) > h->regions.length)
        return bad("region table does not fit its section");
    if (std::uint64_t{h->counter_count} * sizeof(SharedU64) > h->counters.length) return bad("counters");
    if (h->cache.length < sizeof(CacheHeader)) return bad("cache section too small");

    impl->max_regions = h->max_regions;
    impl->max_endpoints = h->max_endpoints_per_region;
    impl->counter_count = h->counter_count;
    impl->slots = shared_at<EndpointSlot>(impl->base + h->regions.offset);
    impl->counters = shared_at<SharedU64>(impl->base + h->counters.offset);
    impl->cache_section = {impl->base + h->cache.offset, h->cache.length};
    const CacheHeader* cache = shared_at<CacheHeader>(impl->base + h->cache.offset);
    if (cache->data_offset >= sizeof(CacheHeader) &&
        range_within(cache->data_offset, cache->data_length, h->cache.length))
        impl->cache_data = {impl->base + h->cache.offset + cache->data_offset, cache->data_length};
    return StateView(std::move(impl));
}

const StateHeader& StateView::header() const noexcept {
    return *impl_->header;
}
std::uint64_t StateView::generation() const noexcept {
    return impl_->header->generation;
}
std::uint32_t StateView::daemon_pid() const noexcept {
    return impl_->header->daemon_pid;
}
std::uint64_t StateView::heartbeat_ns() const noexcept {
    // Relaxed: see StateHeader::heartbeat_ns.
    return impl_->header->heartbeat_ns.load(std::memory_order_relaxed);
}
WaitFacts StateView::wait_facts() const noexcept {
    // Relaxed, word by word: see StateHeader's wait facts.
    const StateHeader* h = impl_->header;
    WaitFacts f;
    f.usable_cores = h->usable_cores.load(std::memory_order_relaxed);
    f.busy_cores = h->busy_cores.load(std::memory_order_relaxed);
    f.spare_cores = h->spare_cores.load(std::memory_order_relaxed);
    f.runnable = h->runnable.load(std::memory_order_relaxed);
    f.in_flight_milli = h->in_flight_milli.load(std::memory_order_relaxed);
    f.clients_spinning = h->clients_spinning.load(std::memory_order_relaxed);
    f.clients_sleeping = h->clients_sleeping.load(std::memory_order_relaxed);
    f.client_permits = h->client_permits.load(std::memory_order_relaxed);
    f.daemon_may_spin = h->daemon_may_spin.load(std::memory_order_relaxed) != 0;
    return f;
}

std::chrono::nanoseconds StateView::heartbeat_age() const noexcept {
    const std::uint64_t now = monotonic_now_ns();
    const std::uint64_t beat = heartbeat_ns();
    return std::chrono::nanoseconds(now > beat ? static_cast<std::int64_t>(now - beat) : 0);
}
std::uint32_t StateView::max_regions() const noexcept {
    return impl_->max_regions;
}
std::uint32_t StateView::max_endpoints_per_region() const noexcept {
    return impl_->max_endpoints;
}

bool StateView::read_endpoint(std::uint32_t region, std::uint32_t endpoint, EndpointStatus& out,
                              std::uint32_t max_retries) const noexcept {
    if (region >= impl_->max_regions || endpoint >= impl_->max_endpoints) return false;
    if (!impl_->slots[std::uint64_t{region} * impl_->max_endpoints + endpoint].read(out, max_retries)) return false;
    out.region[kNameCapacity - 1] = '\0';  // never trust the terminator
    out.endpoint[kNameCapacity - 1] = '\0';
    return true;
}

std::uint64_t StateView::counter(Counter counter) const noexcept {
    const auto index = static_cast<std::uint32_t>(counter);
    if (index >= impl_->counter_count) return 0;
    // Relaxed: an independent statistic.
    return impl_->counters[index].load(std::memory_order_relaxed);
}

std::span<const std::byte> StateView::cache_data() const noexcept {
    return impl_->cache_data;
}
CacheReader StateView::cache_reader() const noexcept {
    return CacheReader(impl_->cache_section);
}
std::span<const std::byte> StateView::bytes() const noexcept {
    return {impl_->base, impl_->size};
}

}  // namespace regiond::shm
