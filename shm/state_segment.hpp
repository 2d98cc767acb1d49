// The state segment: created and written by the daemon (StateSegment), mapped
// read-only by clients and regionctl (StateView). Layout in state_layout.hpp.
//
// Daemon:
//     auto seg = StateSegment::create({.name = "/regiond", .cache_bytes = 64 << 20,
//                                      .group = gid, .replace_existing = stale});
//     seg->write_endpoint(r, e, status);   seg->add(Counter::errors);
//     seg->heartbeat_now();                 // every loop iteration
//     seg->cache().insert(key, value, expires_mono_ns);   // the hot cache's only writer
// Client:
//     auto view = StateView::open("/regiond");   // error names both versions on mismatch
//     EndpointStatus s; if (view->read_endpoint(r, e, s) && s.in_use) ...
//     CacheReader cache = view->cache_reader();  // lock-free lookups, no system call
//
// Creation is exclusive (shm_open with O_CREAT | O_EXCL, and glibc adds
// O_NOFOLLOW): the daemon never opens, truncates or writes a file someone else
// put under its name. Who holds a name is asked without opening it
// (state_segment_holder). The daemon decides what to do about an existing name
// (daemon/instance_guard.hpp: a stale segment of its own user is replaced, one
// held by another user is left alone), then passes replace_existing = true to
// remove its own stale one before creating.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "shm/cache_reader.hpp"
#include "shm/cache_writer.hpp"
#include "shm/error.hpp"
#include "shm/state_layout.hpp"

namespace regiond::shm {

/// CLOCK_MONOTONIC in nanoseconds (the heartbeat's clock).
std::uint64_t monotonic_now_ns() noexcept;

struct StateSegmentOptions {
    std::string name;               ///< POSIX shm name, e.g. "/regiond" (a leading '/' is added if missing)
    std::uint64_t cache_bytes = 0;  ///< [cache] memory: the hot cache (index + arena); 0: no cache
    std::optional<gid_t> group;     ///< chown the segment to this group (the client group)
    mode_t mode = 0640;             ///< owner rw, group r: clients can only map it read-only
    bool replace_existing = false;  ///< remove an existing segment of that name first
    std::uint64_t generation = 0;   ///< 0: a random non-zero value
    std::uint64_t cache_seed = 0;   ///< the cache's hash seed; 0: random (tests may fix it)
};

/// Daemon side. Owns the mapping (read/write) and the name: the destructor unmaps
/// and removes the name (shm_unlink) unless release_name() was called. Move-only.
class StateSegment {
public:
    static Expected<StateSegment> create(const StateSegmentOptions& options);

    StateSegment(StateSegment&&) noexcept;
    StateSegment& operator=(StateSegment&&) noexcept;
    ~StateSegment();

    const std::string& name() const noexcept;
    std::uint64_t generation() const noexcept;
    std::uint64_t size() const noexcept;
    const StateHeader& header() const noexcept;

    /// Stores the loop's liveness timestamp (relaxed; see StateHeader::heartbeat_ns).
    void heartbeat(std::uint64_t monotonic_ns) noexcept;
    void heartbeat_now() noexcept { heartbeat(monotonic_now_ns()); }
    /// Stores the wait facts (relaxed, word by word; see StateHeader).
    void publish_wait_facts(const WaitFacts& facts) noexcept;

    /// Seqlocked write of one endpoint entry (single writer: the daemon loop).
    /// Returns false if region/endpoint are out of range.
    bool write_endpoint(std::uint32_t region, std::uint32_t endpoint, const EndpointStatus& status) noexcept;

    /// Counters: relaxed, since each is an independent statistic; readers see each
    /// value eventually and never a torn one, but no snapshot across counters.
    void add(Counter counter, std::uint64_t n = 1) noexcept;
    void set(Counter counter, std::uint64_t value) noexcept;

    /// The hot cache's writer (single writer: the daemon loop). With cache_bytes
    /// too small for a cache (0), a writer that refuses every insert. The
    /// reference stays valid as long as this segment, moves included.
    CacheWriter& cache() noexcept;
    const CacheWriter& cache() const noexcept;

    /// Keep the name after destruction (e.g. a test that hands it to a child).
    void release_name() noexcept;

private:
    struct Impl;
    explicit StateSegment(std::unique_ptr<Impl> impl) noexcept;
    std::unique_ptr<Impl> impl_;
};

/// Client side: a read-only mapping (PROT_READ) of a validated state segment.
/// Only const access is exposed; a write would fault (SIGSEGV). Move-only.
class StateView {
public:
    /// Maps `name` read-only and validates magic, layout version (a mismatch names
    /// both versions), sizes and every section's bounds.
    static Expected<StateView> open(const std::string& name);

    StateView(StateView&&) noexcept;
    StateView& operator=(StateView&&) noexcept;
    ~StateView();

    const StateHeader& header() const noexcept;
    std::uint64_t generation() const noexcept;
    std::uint32_t daemon_pid() const noexcept;
    std::uint64_t heartbeat_ns() const noexcept;
    /// Now minus the last heartbeat (zero if the heartbeat is in the future).
    std::chrono::nanoseconds heartbeat_age() const noexcept;
    std::uint32_t max_regions() const noexcept;
    std::uint32_t max_endpoints_per_region() const noexcept;
    /// The wait facts as last published (word by word, relaxed).
    WaitFacts wait_facts() const noexcept;

    /// Seqlocked read of one entry; false if out of range or no consistent
    /// snapshot within `max_retries` (see Seqlock::read).
    bool read_endpoint(std::uint32_t region, std::uint32_t endpoint, EndpointStatus& out,
                       std::uint32_t max_retries = kSeqlockDefaultRetries) const noexcept;
    /// 0 for a counter this segment does not have.
    std::uint64_t counter(Counter counter) const noexcept;
    /// The cache data area, validated against the cache section (empty if none).
    std::span<const std::byte> cache_data() const noexcept;
    /// Lock-free lookups in the hot cache; a reader that always misses when the
    /// segment has no cache or its cache header is malformed. Must not outlive
    /// this view.
    CacheReader cache_reader() const noexcept;
    /// The whole mapping.
    std::span<const std::byte> bytes() const noexcept;

private:
    struct Impl;
    explicit StateView(std::unique_ptr<Impl> impl) noexcept;
    std::unique_ptr<Impl> impl_;
};

/// Removes a state segment name (shm_unlink). Not an error if it does not exist.
Expected<void> remove_state_segment(const std::string& name);

/// Where the C library keeps POSIX shared-memory names: glibc's shm_open("/x")
/// opens "/dev/shm/x".
inline constexpr const char* kShmDirectory = "/dev/shm";

/// The file behind a state segment name ("/regiond" -> "/dev/shm/regiond").
std::string state_segment_path(const std::string& name);

/// Who holds a name, from lstat() of its file: the name is never opened (a
/// stranger's file could be a FIFO, a symlink, or truncated under a mapping).
struct SegmentNameHolder {
    uid_t uid = 0;
    bool regular_file = false;  ///< false: a symlink, directory, FIFO... (never ours)
};
/// nullopt: nobody holds the name.
Expected<std::optional<SegmentNameHolder>> state_segment_holder(const std::string& name);

}  // namespace regiond::shm
