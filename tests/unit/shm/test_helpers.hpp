// Small helpers shared by the shm unit tests.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace regiond::shm::test {

/// A page-aligned MAP_SHARED anonymous mapping: survives fork() as shared memory,
/// so parent and child see the same bytes (like two processes on a memfd).
class SharedMapping {
public:
    explicit SharedMapping(std::size_t size) : size_(size) {
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        base_ = p == MAP_FAILED ? nullptr : static_cast<std::byte*>(p);
    }
    ~SharedMapping() {
        if (base_ != nullptr) ::munmap(base_, size_);
    }
    SharedMapping(const SharedMapping&) = delete;
    SharedMapping& operator=(const SharedMapping&) = delete;

    std::byte* data() const { return base_; }
    std::size_t size() const { return size_; }
    std::span<std::byte> span() const { return {base_, size_}; }

private:
    std::byte* base_;
    std::size_t size_;
};

inline std::span<const std::byte> bytes_of(const std::string& s) {
    return std::as_bytes(std::span<const char>(s.data(), s.size()));
}
inline std::string string_of(std::span<const std::byte> b) {
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

/// A name unique to this process and call, for POSIX shm objects.
inline std::string unique_shm_name(const std::string& what) {
    static int counter = 0;
    return "/regiond-test-" + what + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

/// FNV-1a, for checksumming records in the stress tests.
inline std::uint64_t fnv1a(std::span<const std::byte> data, std::uint64_t h = 1469598103934665603ull) {
    for (std::byte b : data) {
        h ^= static_cast<std::uint8_t>(b);
        h *= 1099511628211ull;
    }
    return h;
}

/// Deterministic xorshift generator (tests must be reproducible from the seed).
struct XorShift {
    std::uint64_t state;
    explicit XorShift(std::uint64_t seed) : state(seed ? seed : 0x9E3779B97F4A7C15ull) {}
    std::uint64_t next() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        return state;
    }
    std::uint32_t below(std::uint32_t n) { return n == 0 ? 0 : static_cast<std::uint32_t>(next() % n); }
};

}  // namespace regiond::shm::test
