// Recycles the 64 KiB receive buffers. Bulk transfers read full buffers and
// queue them as they are (no copy); handing the same memory back and forth
// avoids the malloc/trim/page-fault churn that otherwise cost more CPU than
// the socket copies themselves.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

namespace wanproxy {

class BufferPool {
public:
    static constexpr std::size_t kBufferSize = 64 * 1024;
    using Buffer = std::unique_ptr<std::byte[]>;

    // A kBufferSize buffer, uninitialized (recv() overwrites it anyway).
    Buffer take() {
        if (free_.empty()) {
            return Buffer(new std::byte[kBufferSize]);
        }
        Buffer buffer = std::move(free_.back());
        free_.pop_back();
        return buffer;
    }

    // Only kBufferSize buffers from take() may come back here.
    void give(Buffer buffer) {
        if (buffer && free_.size() < kMaxFree) {
            free_.push_back(std::move(buffer));
        }
    }

private:
    // 4 MiB of idle buffers at most; beyond that memory goes back to malloc.
    static constexpr std::size_t kMaxFree = 64;
    std::vector<Buffer> free_;
};

}  // namespace wanproxy
