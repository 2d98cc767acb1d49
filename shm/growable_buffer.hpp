// A growable array of trivially copyable elements, grown with realloc, for the
// decoded rows of a response (Response's cells and value arena).
//
// Why not std::vector: a result of 100 000 rows is megabytes, which glibc
// serves with mmap. A vector grows by allocating a new region, copying and
// freeing the old one, so every growth touches (and page-faults) every page
// again; on this class of VM a page fault costs several microseconds
// (paravirtualised interrupts), and a 100 000-row result spent half of the
// client's CPU in them (bench/RESULTS.md "Issue 10"). realloc of an mmapped
// chunk is an mremap: the pages move, nothing is copied or faulted again.
// Regions of 4 MiB and more are also advised as huge pages, so first touches
// fault once per 2 MiB where the kernel allows (transparent_hugepage=madvise).
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

namespace regiond::shm {

template <class T>
class GrowableBuffer {
    static_assert(std::is_trivially_copyable_v<T>, "elements are moved with realloc and memcpy");

public:
    GrowableBuffer() noexcept = default;
    ~GrowableBuffer() { std::free(data_); }
    GrowableBuffer(const GrowableBuffer& other) : GrowableBuffer() {
        reserve(other.size_);
        if (other.size_ != 0) std::memcpy(data_, other.data_, other.size_ * sizeof(T));
        size_ = other.size_;
    }
    GrowableBuffer& operator=(const GrowableBuffer& other) {
        if (this != &other) {
            GrowableBuffer copy(other);
            swap(copy);
        }
        return *this;
    }
    GrowableBuffer(GrowableBuffer&& other) noexcept
        : data_(std::exchange(other.data_, nullptr)),
          size_(std::exchange(other.size_, 0)),
          capacity_(std::exchange(other.capacity_, 0)) {}
    GrowableBuffer& operator=(GrowableBuffer&& other) noexcept {
        if (this != &other) {
            GrowableBuffer moved(std::move(other));
            swap(moved);
        }
        return *this;
    }
    void swap(GrowableBuffer& other) noexcept {
        std::swap(data_, other.data_);
        std::swap(size_, other.size_);
        std::swap(capacity_, other.capacity_);
    }

    std::size_t size() const noexcept { return size_; }
    std::size_t capacity() const noexcept { return capacity_; }
    bool empty() const noexcept { return size_ == 0; }
    T* data() noexcept { return data_; }
    const T* data() const noexcept { return data_; }
    T& operator[](std::size_t i) noexcept { return data_[i]; }
    const T& operator[](std::size_t i) const noexcept { return data_[i]; }
    void clear() noexcept { size_ = 0; }

    /// Capacity for at least `n` elements (exactly n: callers grow geometrically).
    /// Throws std::bad_alloc, like a vector.
    void reserve(std::size_t n) {
        if (n <= capacity_) return;
        if (n > SIZE_MAX / sizeof(T)) throw std::bad_alloc();
        void* grown = std::realloc(data_, n * sizeof(T));
        if (grown == nullptr) throw std::bad_alloc();
        data_ = static_cast<T*>(grown);
        capacity_ = n;
        advise_huge_pages();
    }
    void push_back(const T& value) {
        if (size_ == capacity_) reserve(capacity_ < 8 ? 16 : 2 * capacity_);
        data_[size_++] = value;
    }
    void append(const T* values, std::size_t n) {
        if (n == 0) return;
        if (size_ + n > capacity_) reserve(size_ + n > 2 * capacity_ ? size_ + n : 2 * capacity_);
        std::memcpy(data_ + size_, values, n * sizeof(T));
        size_ += n;
    }

private:
    static constexpr std::size_t kHugePage = std::size_t{2} << 20;
    static constexpr std::size_t kAdviseFrom = std::size_t{4} << 20;

    void advise_huge_pages() noexcept {
        const std::size_t bytes = capacity_ * sizeof(T);
        if (bytes < kAdviseFrom) return;
        // Only whole huge pages inside our own allocation; advice, so a
        // failure (no THP, an old kernel) changes nothing but speed.
        const auto begin = reinterpret_cast<std::uintptr_t>(data_);
        const std::uintptr_t first = (begin + kHugePage - 1) & ~(kHugePage - 1);
        const std::uintptr_t last = (begin + bytes) & ~(kHugePage - 1);
        if (last > first) (void)::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
    }

    T* data_ = nullptr;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
};

}  // namespace regiond::shm
