// Codec: request and response round trips, chunked results, and malformed input
// (truncated, mutated, forged counts) that must fail cleanly, never crash.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shm/codec.hpp"
#include "shm/ring.hpp"
#include "test_helpers.hpp"

using namespace regiond::shm;
using namespace regiond::shm::test;
using namespace std::string_view_literals;

namespace {

using Row = std::vector<std::optional<std::string_view>>;

RequestView sample_request() {
    RequestView r;
    r.op = Op::write;
    r.timeout_ms = 30000;
    r.ttl_seconds = 60;
    r.key = "user:42";
    r.token = "7291392183/0/16B3748";
    r.sql = "UPDATE users SET name = $1, bio = $2, nick = $3 WHERE id = $4";
    r.params = {"Ada"sv, std::nullopt, ""sv, "42"sv};
    r.invalidate_keys = {"user:42"sv, ""sv, "users:all"sv};
    return r;
}

std::vector<std::byte> encode(const RequestView& r) {
    std::vector<std::byte> out;
    REQUIRE(encode_request_append(r, out));
    return out;
}

void check_same(const RequestView& a, const RequestView& b) {
    CHECK(a.op == b.op);
    CHECK(a.timeout_ms == b.timeout_ms);
    CHECK(a.ttl_seconds == b.ttl_seconds);
    CHECK(a.key == b.key);
    CHECK(a.token == b.token);
    CHECK(a.sql == b.sql);
    CHECK(a.params == b.params);
    CHECK(a.invalidate_keys == b.invalidate_keys);
}

Response sample_response(std::size_t rows) {
    Response r;
    r.served_by = "eu-west-1/replica";
    r.token = "";
    r.affected = -1;
    r.columns = {"id", "name", "note"};
    for (std::size_t i = 0; i < rows; ++i) {
        const std::string id = std::to_string(i);
        const std::string name = "name-" + std::to_string(i * 7);
        Row row{id, name, i % 3 == 0 ? std::nullopt : std::optional<std::string_view>(i % 3 == 1 ? "" : "x")};
        REQUIRE(r.add_row(row));
    }
    return r;
}

void check_same(const Response& a, const Response& b) {
    CHECK(a.status == b.status);
    CHECK(std::string(a.sqlstate) == std::string(b.sqlstate));
    CHECK(a.error == b.error);
    CHECK(a.served_by == b.served_by);
    CHECK(a.token == b.token);
    CHECK(a.affected == b.affected);
    CHECK(a.route_reason == b.route_reason);
    CHECK(a.columns == b.columns);
    REQUIRE(a.nrows() == b.nrows());
    std::size_t mismatches = 0;
    for (std::size_t i = 0; i < a.nrows(); ++i)
        for (std::size_t c = 0; c < a.ncols(); ++c)
            if (a.value(i, c) != b.value(i, c)) ++mismatches;
    CHECK(mismatches == 0);
}

Response decode_all(const std::vector<std::vector<std::byte>>& chunks) {
    ResponseDecoder d;
    for (const auto& c : chunks) REQUIRE(d.feed(c) == CodecError::ok);
    REQUIRE(d.complete());
    return d.take();
}

double stress_seconds() {
    const char* env = std::getenv("REGIOND_STRESS_SECONDS");
    const double s = env != nullptr ? std::atof(env) : 2.0;
    return s > 0 ? s : 2.0;
}

}  // namespace

TEST_CASE("request round trip", "[codec]") {
    const RequestView r = sample_request();
    const auto bytes = encode(r);
    CHECK(bytes.size() == encoded_request_size(r));
    RequestView back;
    REQUIRE(decode_request(bytes, back) == CodecError::ok);
    check_same(r, back);
    REQUIRE(back.params[1] == std::nullopt);         // SQL NULL
    REQUIRE(back.params[2] == std::optional(""sv));  // empty string, not NULL

    SECTION("every op, empty fields") {
        for (Op op : {Op::read_local, Op::read_primary, Op::write, Op::read_consistent, Op::cached_read}) {
            RequestView e;
            e.op = op;
            RequestView out;
            REQUIRE(decode_request(encode(e), out) == CodecError::ok);
            check_same(e, out);
        }
    }
    SECTION("span encoder: exact fit and too small") {
        std::vector<std::byte> buf(bytes.size());
        CHECK(encode_request(r, buf) == bytes.size());
        CHECK(buf == bytes);
        buf.resize(bytes.size() - 1);
        CHECK(encode_request(r, buf) == 0);
    }
    SECTION("little-endian on the wire") {
        CHECK(bytes[0] == std::byte{3});     // op write
        CHECK(bytes[4] == std::byte{0x30});  // 30000 = 0x7530
        CHECK(bytes[5] == std::byte{0x75});
    }
}

TEST_CASE("request decoding rejects malformed input", "[codec]") {
    const auto good = encode(sample_request());
    RequestView out;

    SECTION("every truncation fails") {
        for (std::size_t n = 0; n < good.size(); ++n)
            REQUIRE(decode_request(std::span(good).first(n), out) != CodecError::ok);
    }
    SECTION("trailing bytes") {
        auto b = good;
        b.push_back(std::byte{0});
        CHECK(decode_request(b, out) == CodecError::trailing_bytes);
    }
    SECTION("unknown op and reserved fields") {
        auto b = good;
        b[0] = std::byte{0};
        CHECK(decode_request(b, out) == CodecError::bad_value);
        b[0] = std::byte{6};
        CHECK(decode_request(b, out) == CodecError::bad_value);
        b = good;
        b[1] = std::byte{1};
        CHECK(decode_request(b, out) == CodecError::bad_value);
    }
    SECTION("forged counts fail before allocating") {
        RequestView small;
        small.sql = "x";
        auto b = encode(small);
        // nparams sits after 12 fixed bytes and three strings (4 + 0, 4 + 0, 4 + 1).
        const std::size_t at = 12 + 4 + 4 + 5;
        const std::uint32_t huge = 60000;  // under kMaxParams, but 240 KB of lengths are missing
        std::memcpy(b.data() + at, &huge, 4);
        CHECK(decode_request(b, out) == CodecError::truncated);
        const std::uint32_t too_many = 0xFFFFFFF0u;
        std::memcpy(b.data() + at, &too_many, 4);
        CHECK(decode_request(b, out) == CodecError::limit_exceeded);
        CHECK(out.params.capacity() < 1000);
    }
    SECTION("string length beyond the input") {
        auto b = good;
        const std::uint32_t len = 0x7FFFFFFF;
        std::memcpy(b.data() + 12, &len, 4);  // key length
        CHECK(decode_request(b, out) == CodecError::truncated);
    }
}

TEST_CASE("response round trips", "[codec]") {
    std::vector<std::vector<std::byte>> chunks;

    SECTION("rows with NULLs and empty strings, one chunk") {
        const Response r = sample_response(10);
        REQUIRE(encode_response(r, 1 << 20, chunks) == CodecError::ok);
        CHECK(chunks.size() == 1);
        const Response back = decode_all(chunks);
        check_same(r, back);
        CHECK(back.value(0, 2) == std::nullopt);
        CHECK(back.value_cstr(0, 2) == nullptr);
        CHECK(back.value(1, 2) == std::optional(""sv));
        CHECK(std::string(back.value_cstr(1, 2)) == "");
        CHECK(std::string(back.value_cstr(5, 1)) == "name-35");
    }
    SECTION("zero rows") {
        const Response r = sample_response(0);
        REQUIRE(encode_response(r, 1024, chunks) == CodecError::ok);
        const Response back = decode_all(chunks);
        check_same(r, back);
        CHECK(back.nrows() == 0);
        CHECK(back.ncols() == 3);
    }
    SECTION("an error with SQLSTATE") {
        Response r;
        r.status = Status::error;
        std::memcpy(r.sqlstate, "23505", 6);
        r.error = "duplicate key value violates unique constraint \"users_pkey\"";
        r.served_by = "us-east-1/primary";
        REQUIRE(encode_response(r, 1024, chunks) == CodecError::ok);
        const Response back = decode_all(chunks);
        check_same(r, back);
        CHECK(std::string(back.sqlstate) == "23505");
    }
    SECTION("a write: affected and token, no columns") {
        Response r;
        r.affected = 3;
        r.token = "7291392183/0/16B3748";
        r.served_by = "us-east-1/primary";
        REQUIRE(encode_response(r, 1024, chunks) == CodecError::ok);
        check_same(r, decode_all(chunks));
    }
    SECTION("zero-column rows (SELECT FROM t)") {
        Response r;
        for (int i = 0; i < 5; ++i) REQUIRE(r.add_row(Row{}));
        REQUIRE(encode_response(r, 1024, chunks) == CodecError::ok);
        CHECK(decode_all(chunks).nrows() == 5);
    }
}

TEST_CASE("route_reason travels in the head", "[codec]") {
    std::vector<std::vector<std::byte>> chunks;
    Response r = sample_response(2);
    r.route_reason = "local replica at 0/5A3F10 >= token 0/59F000";
    REQUIRE(encode_response(r, 1024, chunks) == CodecError::ok);
    check_same(r, decode_all(chunks));
}

TEST_CASE("a streamed response ends with a trailer that decides its status", "[codec]") {
    std::vector<std::vector<std::byte>> chunks;
    ResponseEncoder enc(256);
    ResponseHeadView head;
    head.served_by = "us-east-1/primary";
    const std::string_view names[] = {"id"};
    head.columns = names;
    REQUIRE(enc.begin(head) == CodecError::ok);
    // Rows as they arrive, chunks taken as they fill.
    for (int i = 0; i < 80; ++i) {
        const std::string v = "row-" + std::to_string(i);
        const Row row{v};
        CodecError e = enc.add_row(row);
        if (e == CodecError::chunk_full) {
            const auto c = enc.take_chunk(false);
            chunks.emplace_back(c.begin(), c.end());
            e = enc.add_row(row);
        }
        REQUIRE(e == CodecError::ok);
    }
    REQUIRE(chunks.size() >= 2);

    SECTION("success: rows kept, the trailer's token and affected count win") {
        ResponseTrailerView t;
        t.token = "7291392183/0/16B3748";
        t.affected = 40;
        REQUIRE(enc.finish(t, chunks) == CodecError::ok);
        const Response back = decode_all(chunks);
        CHECK(back.status == Status::ok);
        CHECK(back.nrows() == 80);
        CHECK(back.token == "7291392183/0/16B3748");
        CHECK(back.affected == 40);
        CHECK(back.served_by == "us-east-1/primary");
        CHECK(std::string(back.value_cstr(79, 0)) == "row-79");
    }
    SECTION("an error after rows: the rows and columns are discarded") {
        ResponseTrailerView t;
        t.status = Status::error;
        t.sqlstate = "22012";
        t.error = "division by zero";
        REQUIRE(enc.finish(t, chunks) == CodecError::ok);
        const Response back = decode_all(chunks);
        CHECK(back.status == Status::error);
        CHECK(std::string(back.sqlstate) == "22012");
        CHECK(back.error == "division by zero");
        CHECK(back.nrows() == 0);
        CHECK(back.ncols() == 0);
    }
    SECTION("a trailer that does not fit beside the rows gets an empty last chunk of its own") {
        const std::size_t before = chunks.size();
        ResponseTrailerView t;
        t.status = Status::error;
        const std::string long_error(200, 'e');
        t.error = long_error;
        REQUIRE(enc.finish(t, chunks) == CodecError::ok);
        CHECK(chunks.size() == before + 2);
        CHECK(decode_all(chunks).error == long_error);
    }
}

TEST_CASE("trailer flags are validated", "[codec]") {
    std::vector<std::vector<std::byte>> chunks;
    ResponseEncoder enc(256);
    REQUIRE(enc.begin(ResponseHeadView{}) == CodecError::ok);
    REQUIRE(enc.finish(ResponseTrailerView{}, chunks) == CodecError::ok);
    REQUIRE(chunks.size() == 1);
    SECTION("a trailer flag without the last flag") {
        std::uint16_t flags = kChunkFlagTrailer;
        std::memcpy(chunks[0].data(), &flags, sizeof flags);
        ResponseDecoder d;
        CHECK(d.feed(chunks[0]) == CodecError::bad_value);
    }
    SECTION("a trailer with a bad sqlstate") {
        ResponseTrailerView t;
        t.sqlstate = "2201";
        std::vector<std::vector<std::byte>> more;
        ResponseEncoder e2(256);
        REQUIRE(e2.begin(ResponseHeadView{}) == CodecError::ok);
        CHECK(e2.finish(t, more) == CodecError::arity);
    }
    SECTION("the trailer cut short") {
        chunks[0].resize(chunks[0].size() - 3);
        ResponseDecoder d;
        CHECK(d.feed(chunks[0]) == CodecError::truncated);
    }
}

TEST_CASE("chunked 200000-row result through a ring", "[codec]") {
    const Response r = sample_response(200000);
    constexpr std::uint32_t kCapacity = 1 << 17;  // max payload 64 KiB - 16
    const std::size_t size = ring_region_size(kCapacity);
    std::unique_ptr<std::byte, decltype(&std::free)> mem(
        static_cast<std::byte*>(std::aligned_alloc(64, align_up(size, 64))), &std::free);
    const std::span<std::byte> region(mem.get(), size);
    REQUIRE(ring_initialize(region, kCapacity));
    RingProducer producer(region, kCapacity);
    RingConsumer consumer(region, kCapacity);

    // The daemon's loop: stream rows into chunks, push each chunk as a record;
    // the client's loop: pop records, feed the decoder until the LAST flag.
    ResponseEncoder enc(producer.max_payload());
    ResponseDecoder dec;
    std::vector<std::byte> buf(consumer.max_payload());
    std::vector<std::string_view> names;
    REQUIRE(enc.begin(r.head_view(names)) == CodecError::ok);
    std::size_t records = 0;
    auto ship = [&](bool last) {
        const auto chunk = enc.take_chunk(last);
        REQUIRE(chunk.size() <= producer.max_payload());
        REQUIRE(producer.try_push(RecordKind::response, last ? kRecordFlagLast : 0, 77, chunk));
        const PopResult p = consumer.try_pop(buf);
        REQUIRE(p);
        REQUIRE(((p.flags & kRecordFlagLast) != 0) == last);
        REQUIRE(dec.feed({buf.data(), p.size}) == CodecError::ok);
        ++records;
    };
    Row row(3);
    for (std::size_t i = 0; i < r.nrows(); ++i) {
        for (std::size_t c = 0; c < 3; ++c) row[c] = r.value(i, c);
        CodecError e = enc.add_row(row);
        if (e == CodecError::chunk_full) {
            ship(false);
            e = enc.add_row(row);
        }
        REQUIRE(e == CodecError::ok);
    }
    ship(true);
    REQUIRE(dec.complete());
    INFO("records " << records);
    CHECK(records > 20);
    check_same(r, dec.response());
}

TEST_CASE("response encoder limits", "[codec]") {
    ResponseEncoder enc(128);
    const std::string_view cols[] = {"a", "b"};
    ResponseHeadView head;
    head.columns = cols;

    CHECK(enc.add_row(Row{"x"sv, "y"sv}) == CodecError::bad_sequence);  // before begin
    REQUIRE(enc.begin(head) == CodecError::ok);
    CHECK(enc.add_row(Row{"x"sv}) == CodecError::arity);
    const std::string big(200, 'b');
    CHECK(enc.add_row(Row{big, "y"sv}) == CodecError::row_too_large);
    const std::string fits(128 - kChunkOverhead - 8, 'f');  // exactly an empty continuation chunk
    CodecError e = enc.add_row(Row{fits, ""sv});
    CHECK(e == CodecError::chunk_full);  // chunk 0 holds the head too
    const auto first = enc.take_chunk(false);
    CHECK(first.size() <= 128);
    CHECK(enc.add_row(Row{fits, ""sv}) == CodecError::ok);
    CHECK(enc.take_chunk(false).size() == 128);
    const auto last = enc.take_chunk(true);  // an empty final chunk is fine
    CHECK(last.size() == kChunkOverhead);

    head.sqlstate = "123";
    CHECK(enc.begin(head) == CodecError::arity);
    const std::string huge_error(300, 'e');
    head.sqlstate = "";
    head.error = huge_error;
    CHECK(enc.begin(head) == CodecError::row_too_large);
}

TEST_CASE("response decoder rejects malformed sequences", "[codec]") {
    std::vector<std::vector<std::byte>> chunks;
    REQUIRE(encode_response(sample_response(2000), 4096, chunks) == CodecError::ok);
    REQUIRE(chunks.size() > 3);

    SECTION("out of order") {
        ResponseDecoder d;
        REQUIRE(d.feed(chunks[0]) == CodecError::ok);
        CHECK(d.feed(chunks[2]) == CodecError::bad_sequence);
        CHECK(d.feed(chunks[1]) == CodecError::bad_sequence);  // sticky
    }
    SECTION("continuation first") {
        ResponseDecoder d;
        CHECK(d.feed(chunks[1]) == CodecError::bad_sequence);
    }
    SECTION("data after the last chunk") {
        ResponseDecoder d;
        for (const auto& c : chunks) REQUIRE(d.feed(c) == CodecError::ok);
        CHECK(d.feed(chunks.back()) == CodecError::bad_sequence);
    }
    SECTION("total size limit") {
        ResponseDecoder d(DecoderLimits{10000, 4096});
        CodecError e = CodecError::ok;
        for (const auto& c : chunks)
            if ((e = d.feed(c)) != CodecError::ok) break;
        CHECK(e == CodecError::limit_exceeded);
    }
    SECTION("forged row count") {
        auto c = chunks[1];
        const std::uint32_t nrows = 0x40000000;
        std::memcpy(c.data() + 8, &nrows, 4);
        ResponseDecoder d;
        REQUIRE(d.feed(chunks[0]) == CodecError::ok);
        CHECK(d.feed(c) == CodecError::truncated);
    }
    SECTION("forged column count") {
        Response r;
        r.columns = {"a"};
        std::vector<std::vector<std::byte>> one;
        REQUIRE(encode_response(r, 1024, one) == CodecError::ok);
        // ncols sits after 8 (chunk) + 6 (status, sqlstate) + 3 x 4 (empty strings) + 8 (affected)
        // + 4 (empty route_reason).
        const std::size_t at = 8 + 6 + 12 + 8 + 4;
        std::uint32_t n = 0;
        std::memcpy(&n, one[0].data() + at, 4);
        REQUIRE(n == 1);
        n = 5000;
        std::memcpy(one[0].data() + at, &n, 4);
        CHECK(ResponseDecoder().feed(one[0]) == CodecError::limit_exceeded);
        n = 3000;
        std::memcpy(one[0].data() + at, &n, 4);
        CHECK(ResponseDecoder().feed(one[0]) == CodecError::truncated);
    }
    SECTION("bad flags, status and sqlstate") {
        auto c = chunks[0];
        c[0] = std::byte{0x02};
        CHECK(ResponseDecoder().feed(c) == CodecError::bad_value);
        c = chunks[0];
        c[8] = std::byte{2};  // status
        CHECK(ResponseDecoder().feed(c) == CodecError::bad_value);
        c = chunks[0];
        c[9] = std::byte{'a'};  // lower case is not a SQLSTATE character
        CHECK(ResponseDecoder().feed(c) == CodecError::bad_value);
    }
    SECTION("reset makes the decoder reusable") {
        ResponseDecoder d;
        CHECK(d.feed(chunks[1]) == CodecError::bad_sequence);
        d.reset();
        for (const auto& c : chunks) REQUIRE(d.feed(c) == CodecError::ok);
        CHECK(d.complete());
    }
}

namespace {

// One round of the fuzz loop: mutate a valid encoding and decode it. Returns the
// number of inputs decoded successfully (only to keep the work observable).
std::size_t fuzz_round(XorShift& rng, const std::vector<std::byte>& request,
                       const std::vector<std::vector<std::byte>>& chunks) {
    auto mutate = [&](std::vector<std::byte> b) {
        switch (rng.below(5)) {
            case 0:  // truncate
                b.resize(rng.below(static_cast<std::uint32_t>(b.size()) + 1));
                break;
            case 1:  // flip a few bytes
                for (int i = 0, n = 1 + static_cast<int>(rng.below(4)); i < n && !b.empty(); ++i)
                    b[rng.below(static_cast<std::uint32_t>(b.size()))] = static_cast<std::byte>(rng.next());
                break;
            case 2:  // plant a large or boundary u32 somewhere (forged length/count)
                if (b.size() >= 4) {
                    const std::uint32_t values[] = {0xFFFFFFFFu, 0xFFFFFFFEu, 0x7FFFFFFFu,
                                                    65535,       65536,       static_cast<std::uint32_t>(rng.next())};
                    const std::uint32_t v = values[rng.below(6)];
                    std::memcpy(b.data() + rng.below(static_cast<std::uint32_t>(b.size()) - 3), &v, 4);
                }
                break;
            case 3:  // append garbage
                for (int i = 0, n = static_cast<int>(rng.below(16)); i < n; ++i)
                    b.push_back(static_cast<std::byte>(rng.next()));
                break;
            default:  // pure noise
                b.assign(rng.below(256), std::byte{0});
                for (auto& x : b) x = static_cast<std::byte>(rng.next());
                break;
        }
        return b;
    };
    std::size_t ok = 0;
    RequestView out;
    if (decode_request(mutate(request), out) == CodecError::ok) ++ok;
    ResponseDecoder d(DecoderLimits{1 << 20, 4096});
    for (const auto& c : chunks) {
        const auto m = rng.below(4) == 0 ? mutate(c) : c;
        if (d.feed(m) != CodecError::ok) break;
        ++ok;
    }
    if (d.complete()) {  // whatever decoded must be readable within bounds
        const Response& r = d.response();
        for (std::size_t i = 0; i < r.nrows() && i < 100; ++i)
            for (std::size_t c = 0; c < r.ncols(); ++c) (void)r.value(i, c);
    }
    return ok;
}

}  // namespace

TEST_CASE("codec fuzz loop: mutated inputs never crash", "[codec]") {
    const auto request = encode(sample_request());
    std::vector<std::vector<std::byte>> chunks;
    REQUIRE(encode_response(sample_response(50), 256, chunks) == CodecError::ok);
    XorShift rng(2024);
    std::size_t ok = 0;
    for (int i = 0; i < 20000; ++i) ok += fuzz_round(rng, request, chunks);
    CHECK(ok > 0);
}

TEST_CASE("codec fuzz: time-bounded run", "[.][fuzz]") {
    const auto request = encode(sample_request());
    std::vector<std::vector<std::byte>> chunks;
    REQUIRE(encode_response(sample_response(200), 512, chunks) == CodecError::ok);
    XorShift rng(static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(stress_seconds());
    std::size_t rounds = 0;
    while (std::chrono::steady_clock::now() < until) {
        for (int i = 0; i < 1000; ++i) (void)fuzz_round(rng, request, chunks);
        rounds += 1000;
    }
    INFO("rounds " << rounds);
    CHECK(rounds > 0);
}
