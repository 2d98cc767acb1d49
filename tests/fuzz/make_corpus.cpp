// Writes the seed corpus of every fuzz target (tests/fuzz/corpus/<target>/),
// built from the real encoders so the seeds are valid inputs the fuzzer then
// mutates. Run from the repository root after changing a format:
//   build-fuzz/tests/fuzz/make_corpus tests/fuzz/corpus
// (the classifier and config seeds are plain text files kept by hand).
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "shm/codec.hpp"
#include "shm/ring.hpp"

using namespace regiond::shm;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& dir, const std::string& name, const std::vector<std::byte>& bytes) {
    fs::create_directories(dir);
    std::ofstream out(dir / name, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::byte> bytes_of(std::string_view s) {
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    return {p, p + s.size()};
}

void requests(const fs::path& dir) {
    RequestView read;
    read.op = Op::read_local;
    read.sql = "select * from users where id = $1";
    read.params = {std::string_view("42")};
    std::vector<std::byte> out;
    encode_request_append(read, out);
    write(dir, "read_local", out);

    RequestView w;
    w.op = Op::write;
    w.timeout_ms = 1500;
    w.sql = "insert into t values ($1, $2); update u set n = n + 1";
    w.params = {std::string_view("a"), std::nullopt};
    w.invalidate_keys = {"users:42", "orders"};
    out.clear();
    encode_request_append(w, out);
    write(dir, "write", out);

    RequestView c;
    c.op = Op::cached_read;
    c.ttl_seconds = 30;
    c.key = "users:42";
    c.token = "7301234567890123456/0/16B3748";
    c.sql = "select 1";
    out.clear();
    encode_request_append(c, out);
    write(dir, "cached_read", out);
}

// Response seeds: chunks framed as u16 length + bytes (the target's format).
void frame(std::vector<std::byte>& out, std::span<const std::byte> chunk) {
    out.push_back(static_cast<std::byte>(chunk.size() & 0xff));
    out.push_back(static_cast<std::byte>(chunk.size() >> 8));
    out.insert(out.end(), chunk.begin(), chunk.end());
}

void responses(const fs::path& dir) {
    const std::string_view columns[] = {"id", "name"};
    ResponseHeadView head;
    head.served_by = "eu-west-1/replica";
    head.route_reason = "read_local: nearest healthy replica";
    head.columns = columns;
    auto rows = [](ResponseEncoder& enc, std::vector<std::byte>& out, int n) {
        for (int i = 0; i < n; ++i) {
            const std::string id = std::to_string(i);
            const std::optional<std::string_view> row[] = {
                id, i % 3 ? std::optional<std::string_view>("name") : std::nullopt};
            if (enc.add_row(row) == CodecError::chunk_full) {
                frame(out, enc.take_chunk(false));
                (void)enc.add_row(row);
            }
        }
    };
    {  // whole response in several chunks
        ResponseEncoder enc(128);
        std::vector<std::byte> out;
        enc.begin(head);
        rows(enc, out, 12);
        frame(out, enc.take_chunk(true));
        write(dir, "rows_in_chunks", out);
    }
    {  // streamed, ok trailer with a token
        ResponseEncoder enc(160);
        std::vector<std::byte> out;
        enc.begin(head);
        rows(enc, out, 6);
        ResponseTrailerView t;
        t.token = "7301234567890123456/0/16B3748";
        t.affected = 6;
        std::vector<std::vector<std::byte>> last;
        enc.finish(t, last);
        for (const auto& c : last) frame(out, c);
        write(dir, "trailer_ok", out);
    }
    {  // streamed, error trailer after rows
        ResponseEncoder enc(160);
        std::vector<std::byte> out;
        enc.begin(head);
        rows(enc, out, 4);
        ResponseTrailerView t;
        t.status = Status::error;
        t.sqlstate = "57014";
        t.error = "canceling statement due to user request";
        std::vector<std::vector<std::byte>> last;
        enc.finish(t, last);
        for (const auto& c : last) frame(out, c);
        write(dir, "trailer_error", out);
    }
    {  // an error head, no rows
        ResponseHeadView e;
        e.status = Status::error;
        e.sqlstate = "25006";
        e.error = "cannot execute INSERT in a read-only transaction";
        ResponseEncoder enc(256);
        std::vector<std::byte> out;
        enc.begin(e);
        frame(out, enc.take_chunk(true));
        write(dir, "error_head", out);
    }
}

// Ring seeds: capacity selector, then the region image a producer made, then a
// script (pop; scribble; pop).
void rings(const fs::path& dir) {
    for (int selector : {0, 1}) {
        const std::uint32_t capacity = kMinRingCapacity << selector;
        std::vector<std::byte> region_bytes(ring_region_size(capacity) + 64);
        auto* base = region_bytes.data();
        while (reinterpret_cast<std::uintptr_t>(base) % 64 != 0) ++base;
        std::span<std::byte> region(base, ring_region_size(capacity));
        ring_initialize(region, capacity);
        RingProducer producer(region, capacity);
        RingConsumer consumer(region, capacity);
        std::vector<std::byte> scratch(capacity);
        // Push and pop until the records wrap (a padding record is in the image).
        for (int i = 0; i < 7; ++i) {
            const std::string payload(40 + i * 9, static_cast<char>('a' + i));
            (void)producer.try_push(RecordKind::request, kRecordFlagLast, i, bytes_of(payload));
            if (i < 5) (void)consumer.try_pop(scratch);
        }
        (void)producer.try_push(RecordKind::cancel, kRecordFlagLast, 99, {});
        std::vector<std::byte> out;
        out.push_back(static_cast<std::byte>(selector));
        out.insert(out.end(), region.begin(), region.end());
        const std::uint8_t script[] = {0, 64, 0, 0,    0, 0, 0, 0, 0, 0, 0,   // pop into 64 bytes
                                       1, 2,  0, 0x20, 0, 0, 0, 2, 0, 0, 0,   // scribble at offset 16
                                       2, 0,  0, 0,    1, 0, 0, 0, 0, 0, 0,   // head = 256
                                       0, 0,  1, 0,    0, 0, 0, 0, 0, 0, 0};  // pop into 256 bytes
        for (auto b : script) out.push_back(static_cast<std::byte>(b));
        write(dir, "ring_" + std::to_string(capacity), out);
    }
}

void tokens(const fs::path& dir) {
    for (const char* t : {"7301234567890123456/0/16B3748", "1/0/0", "18446744073709551615/FFFFFFFF/ffffffff",
                          "18446744073709551616/0/0", "1/0/", "", "12/ab/cd/ef"}) {
        write(dir, std::string("token_") + std::to_string(std::strlen(t)) + "_" + std::to_string(t[0] ? t[1] : 0),
              bytes_of(t));
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s CORPUS_DIR (tests/fuzz/corpus)\n", argv[0]);
        return 2;
    }
    const fs::path root = argv[1];
    requests(root / "request_decoder");
    responses(root / "response_decoder");
    rings(root / "ring_consumer");
    tokens(root / "token");
    return 0;
}
