// shm::RingConsumer over a hostile ring: the control block and data area come
// from the input (what a hostile client can write into its request ring), and
// the rest of the input is a script of pops and of scribbles a producer could
// make between them (new bytes in the data area, a new head). The consumer must
// never read outside the region (it is allocated exactly: ASan sees one byte
// past it), never loop, and stay corrupt once it said so.
//
// Input: u8 capacity selector | region image (RingControl + data, as much as
// the input has; the rest is zero) | script of 11-byte steps:
//   u8 op | u16 arg | u64 value     op % 3 == 0: pop into a buffer of arg bytes
//                                   op % 3 == 1: write value at data offset arg*8
//                                   op % 3 == 2: store value as head
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "fuzz_check.hpp"
#include "shm/ring.hpp"

using namespace regiond::shm;

namespace {

struct AlignedFree {
    void operator()(std::byte* p) const { ::operator delete[](p, std::align_val_t{64}); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::uint32_t capacity = kMinRingCapacity << (data[0] % 5);  // 256 .. 4096
    ++data;
    --size;
    const std::size_t region_size = ring_region_size(capacity);
    std::unique_ptr<std::byte[], AlignedFree> region(new (std::align_val_t{64}) std::byte[region_size]);
    std::memset(region.get(), 0, region_size);
    const std::size_t image = std::min(size, region_size);
    std::memcpy(region.get(), data, image);
    data += image;
    size -= image;

    RingConsumer consumer(std::span<std::byte>(region.get(), region_size), capacity);
    auto* control = reinterpret_cast<RingControl*>(region.get());
    std::byte* data_area = region.get() + sizeof(RingControl);

    bool corrupt = consumer.is_corrupt();
    std::vector<std::byte> out;
    auto pop_until_empty = [&](std::size_t out_size) {
        out.assign(out_size, std::byte{0});
        // Every successful pop consumes >= 16 bytes of at most `capacity` readable
        // bytes, so a correct consumer stops within capacity / 16 + 2 calls.
        for (std::uint32_t i = 0; i < capacity / 16 + 3; ++i) {
            const PopResult r = consumer.try_pop(out);
            if (corrupt) FUZZ_CHECK(r.error == RingError::corrupt);
            if (r.error == RingError::corrupt) corrupt = true;
            if (r.error == RingError::ok) {
                FUZZ_CHECK(r.size <= out.size());
                FUZZ_CHECK(r.kind != RecordKind::padding);
                FUZZ_CHECK(static_cast<std::uint16_t>(r.kind) <= kMaxRecordKind);
            }
            if (r.error == RingError::too_large) FUZZ_CHECK(r.size > out.size());
            if (r.error == RingError::empty || r.error == RingError::corrupt) return;
        }
        FUZZ_CHECK(!"try_pop never reported empty or corrupt");
    };

    pop_until_empty(capacity);
    while (size >= 11) {
        const std::uint8_t op = data[0];
        const std::uint16_t arg = static_cast<std::uint16_t>(data[1] | (data[2] << 8));
        std::uint64_t value = 0;
        std::memcpy(&value, data + 3, 8);
        data += 11;
        size -= 11;
        switch (op % 3) {
            case 0: pop_until_empty(arg % (capacity + 1)); break;
            case 1: std::memcpy(data_area + (arg * 8u) % capacity, &value, 8); break;
            case 2: control->head.store(value, std::memory_order_release); break;
        }
    }
    pop_until_empty(capacity);
    return 0;
}
