// Codec benchmarks: encode and decode of a small result (1 row) and of 1000 rows,
// and of a typical request.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "shm/codec.hpp"

using namespace regiond::shm;

namespace {

Response make_rows(std::size_t n) {
    Response r;
    r.served_by = "eu-west-1/replica";
    r.columns = {"id", "email", "created_at", "note"};
    for (std::size_t i = 0; i < n; ++i) {
        const std::string id = std::to_string(100000 + i);
        const std::string email = "user" + std::to_string(i) + "@example.com";
        const std::optional<std::string_view> row[] = {id, email, std::string_view("2024-05-01 12:00:00+00"),
                                                       i % 4 == 0 ? std::nullopt : std::optional<std::string_view>("")};
        r.add_row(row);
    }
    return r;
}

void encode_rows(benchmark::State& state) {
    const Response r = make_rows(static_cast<std::size_t>(state.range(0)));
    std::vector<std::vector<std::byte>> chunks;
    std::size_t bytes = 0;
    for (auto _ : state) {
        if (encode_response(r, 64 * 1024, chunks) != CodecError::ok) state.SkipWithError("encode failed");
        bytes = 0;
        for (const auto& c : chunks) bytes += c.size();
        benchmark::DoNotOptimize(chunks.data());
    }
    state.SetItemsProcessed(state.iterations() * state.range(0));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
    state.counters["encoded_bytes"] = static_cast<double>(bytes);
    state.counters["chunks"] = static_cast<double>(chunks.size());
}

void decode_rows(benchmark::State& state) {
    const Response r = make_rows(static_cast<std::size_t>(state.range(0)));
    std::vector<std::vector<std::byte>> chunks;
    encode_response(r, 64 * 1024, chunks);
    std::size_t bytes = 0;
    for (const auto& c : chunks) bytes += c.size();
    ResponseDecoder d;
    for (auto _ : state) {
        d.reset();
        for (const auto& c : chunks)
            if (d.feed(c) != CodecError::ok) state.SkipWithError("decode failed");
        benchmark::DoNotOptimize(d.response().nrows());
    }
    state.SetItemsProcessed(state.iterations() * state.range(0));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
}

RequestView make_request() {
    RequestView r;
    r.op = Op::read_local;
    r.timeout_ms = 30000;
    r.sql = "SELECT id, email, created_at, note FROM users WHERE id = $1";
    r.params = {std::string_view("100042")};
    return r;
}

void encode_request_bench(benchmark::State& state) {
    const RequestView r = make_request();
    std::vector<std::byte> buf(encoded_request_size(r));
    for (auto _ : state) benchmark::DoNotOptimize(encode_request(r, buf));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * buf.size()));
}

void decode_request_bench(benchmark::State& state) {
    std::vector<std::byte> buf;
    encode_request_append(make_request(), buf);
    RequestView out;
    for (auto _ : state) benchmark::DoNotOptimize(decode_request(buf, out));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * buf.size()));
}

}  // namespace

BENCHMARK(encode_rows)->Name("codec/encode_response/rows_4_columns")->Arg(1)->Arg(1000);
BENCHMARK(decode_rows)->Name("codec/decode_response/rows_4_columns")->Arg(1)->Arg(1000);
BENCHMARK(encode_request_bench)->Name("codec/encode_request/select_1_param");
BENCHMARK(decode_request_bench)->Name("codec/decode_request/select_1_param");
BENCHMARK_MAIN();
