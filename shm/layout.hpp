// Conventions shared by every structure that lives in shared memory.
//
// Shared memory is an ABI between processes that may have been built from
// different versions of this code. The rules, applied by every header in shm/:
//
//  * Only fixed-width integers, byte arrays and std::atomic of fixed-width
//    integers. No bool, enum, pointer, reference or std:: container in a shared
//    struct; enums are stored as their fixed-width underlying value.
//  * Explicit padding fields (named pad*/reserved*), zeroed at creation, so that
//    sizeof/offsetof are the same on every compiler and nothing uninitialised
//    leaks between processes.
//  * static_assert of sizeof, alignof and offsetof for every shared struct (in its
//    header), plus a layout test (tests/unit/shm/layout_test.cpp) that pins the
//    numbers, so an accidental change fails to build or fails the test.
//  * Offsets (from the start of the segment or region), never pointers.
//  * Fields written by different sides at high rates live on different cache lines
//    (kCacheLine = 64) so that a producer and a consumer do not bounce one line.
//
// Atomics: shared structs hold std::atomic<T> members (not plain integers accessed
// through std::atomic_ref). Reason: the client maps the state segment read-only
// and reads through `const` references; std::atomic<T>::load is a const member,
// whereas std::atomic_ref<const T> is not available in C++20, so atomic_ref would
// force a const_cast on read-only memory. We require every such atomic to be
// lock-free and address-free (is_always_lock_free, same size and alignment as T)
// so that two processes mapping the same bytes agree on the representation; this
// holds for 32- and 64-bit integers on x86-64 and aarch64 with GCC/Clang.
//
// Object lifetime: the creating process constructs each shared struct with
// placement new (which also zeroes it); other processes obtain a pointer with
// std::launder(reinterpret_cast<T*>(base + offset)). The C++ standard does not
// describe memory shared between processes; this is the established practice
// (Boost.Interprocess, iceoryx, Aeron) and relies on the types being standard
// layout with trivially destructible members.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>

namespace regiond::shm {

/// Size of a cache line on the targets we build for (x86-64, aarch64). Fixed, not
/// std::hardware_destructive_interference_size: that one may differ between
/// compilers and flags, and this number is part of the shared layout.
inline constexpr std::size_t kCacheLine = 64;

/// The atomic types allowed in shared memory.
using SharedU32 = std::atomic<std::uint32_t>;
using SharedU64 = std::atomic<std::uint64_t>;

static_assert(SharedU32::is_always_lock_free, "shared atomics must be lock-free");
static_assert(SharedU64::is_always_lock_free, "shared atomics must be lock-free");
static_assert(sizeof(SharedU32) == 4 && alignof(SharedU32) == 4);
static_assert(sizeof(SharedU64) == 8 && alignof(SharedU64) == 8);
static_assert(std::is_standard_layout_v<SharedU64>);
static_assert(std::is_trivially_destructible_v<SharedU64>);

/// Rounds `value` up to a multiple of `align` (a power of two).
constexpr std::uint64_t align_up(std::uint64_t value, std::uint64_t align) noexcept {
    return (value + align - 1) & ~(align - 1);
}

constexpr bool is_power_of_two(std::uint64_t value) noexcept {
    return value != 0 && (value & (value - 1)) == 0;
}

/// True when [offset, offset + length) lies inside [0, total), without overflow.
constexpr bool range_within(std::uint64_t offset, std::uint64_t length, std::uint64_t total) noexcept {
    return offset <= total && length <= total - offset;
}

/// A shared struct that the creator constructs in place and that every process
/// may access through a laundered pointer.
template <class T>
concept SharedStruct = std::is_standard_layout_v<T> && std::is_trivially_destructible_v<T>;

/// Constructs a zero-initialised T at `where` (the creator side). Value-initialises,
/// so every padding field and atomic starts at zero.
template <SharedStruct T>
T* construct_shared(void* where) {
    std::memset(where, 0, sizeof(T));
    return ::new (where) T{};
}

/// Views the T that the creator constructed at `where` (any process).
template <SharedStruct T>
T* shared_at(void* where) noexcept {
    return std::launder(static_cast<T*>(where));
}
template <SharedStruct T>
const T* shared_at(const void* where) noexcept {
    return std::launder(static_cast<const T*>(where));
}

}  // namespace regiond::shm
