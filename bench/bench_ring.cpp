// Ring benchmarks: the cost of push+pop, and the round trip between two threads
// or two processes with the consumer spinning, adaptively spinning, or sleeping on
// a futex. The round trip is what a request pays twice (client -> daemon ->
// client), so the spinning/sleeping gap is the point of the adaptive spin.
#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "shm/ring.hpp"

using namespace regiond::shm;

namespace {

constexpr std::uint32_t kCapacity = 1 << 16;

// Two rings (ping: driver -> echo, pong: echo -> driver) in one MAP_SHARED
// mapping, so the same code serves threads and forked processes.
struct PingPong {
    PingPong() {
        const std::size_t ring = align_up(ring_region_size(kCapacity), 4096);
        size = 2 * ring;
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) std::abort();
        base = static_cast<std::byte*>(p);
        const std::span<std::byte> a(base, ring_region_size(kCapacity));
        const std::span<std::byte> b(base + ring, ring_region_size(kCapacity));
        ring_initialize(a, kCapacity);
        ring_initialize(b, kCapacity);
        ping_out = RingProducer(a, kCapacity);
        ping_in = RingConsumer(a, kCapacity);
        pong_out = RingProducer(b, kCapacity);
        pong_in = RingConsumer(b, kCapacity);
    }
    ~PingPong() { ::munmap(base, size); }

    std::byte* base;
    std::size_t size;
    RingProducer ping_out, pong_out;
    RingConsumer ping_in, pong_in;
};

enum class WaitMode { spin, adaptive, futex };

// Waits for a record: pure spin (never sleeps), adaptive spin then futex, or
// futex straight away.
PopResult receive(RingConsumer& in, std::span<std::byte> buf, WaitMode mode, AdaptiveSpinner& spinner) {
    for (std::uint32_t spins = 1;; ++spins) {
        PopResult r = in.try_pop(buf);
        if (r.error != RingError::empty) return r;
        switch (mode) {
            case WaitMode::spin:
                cpu_relax();
                // On a loaded 2-core machine a pure spinner can hold the core the
                // peer needs for a whole time slice; yield now and then so the
                // benchmark finishes (the number is only meaningful when idle).
                if (spins % 4096 == 0) std::this_thread::yield();
                break;
            case WaitMode::adaptive: (void)in.wait(&spinner, std::chrono::seconds(10)); break;
            case WaitMode::futex: (void)in.wait(nullptr, std::chrono::seconds(10)); break;
        }
    }
}

void send(RingProducer& out, RecordKind kind, std::uint64_t id, std::span<const std::byte> payload) {
    for (;;) {
        const PushResult r = out.try_push(kind, kRecordFlagLast, id, payload);
        if (r.needs_wakeup) out.wake_consumer_futex();
        if (r) return;
        cpu_relax();
    }
}

// Echoes every ping as a pong until it receives a cancel record.
void echo_loop(PingPong& pp, WaitMode mode) {
    std::vector<std::byte> buf(pp.ping_in.max_payload());
    AdaptiveSpinner spinner;
    for (;;) {
        const PopResult r = receive(pp.ping_in, buf, mode, spinner);
        if (!r || r.kind == RecordKind::cancel) return;
        send(pp.pong_out, RecordKind::response, r.request_id, {buf.data(), r.size});
    }
}

void drive(benchmark::State& state, PingPong& pp, WaitMode mode) {
    const auto payload_size = static_cast<std::size_t>(state.range(0));
    std::vector<std::byte> payload(payload_size, std::byte{0x42});
    std::vector<std::byte> buf(pp.pong_in.max_payload());
    AdaptiveSpinner spinner;
    std::uint64_t id = 0;
    for (auto _ : state) {
        send(pp.ping_out, RecordKind::request, ++id, payload);
        const PopResult r = receive(pp.pong_in, buf, mode, spinner);
        if (!r || r.request_id != id) {
            state.SkipWithError("bad pong");
            break;
        }
    }
    send(pp.ping_out, RecordKind::cancel, 0, {});
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * payload_size * 2));
}

void roundtrip_threads(benchmark::State& state, WaitMode mode) {
    PingPong pp;
    std::thread echo([&] { echo_loop(pp, mode); });
    drive(state, pp, mode);
    echo.join();
}

void roundtrip_processes(benchmark::State& state, WaitMode mode) {
    PingPong pp;
    const pid_t pid = ::fork();
    if (pid < 0) {
        state.SkipWithError("fork failed");
        return;
    }
    if (pid == 0) {
        echo_loop(pp, mode);
        ::_exit(0);
    }
    drive(state, pp, mode);
    int status = 0;
    ::waitpid(pid, &status, 0);
}

// Single thread: what one push plus one pop costs without any contention.
void push_pop_single_thread(benchmark::State& state) {
    PingPong pp;
    const auto payload_size = static_cast<std::size_t>(state.range(0));
    std::vector<std::byte> payload(payload_size, std::byte{1});
    std::vector<std::byte> buf(pp.ping_in.max_payload());
    std::uint64_t id = 0;
    for (auto _ : state) {
        (void)pp.ping_out.try_push(RecordKind::request, 0, ++id, payload);
        benchmark::DoNotOptimize(pp.ping_in.try_pop(buf));
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * payload_size));
}

}  // namespace

int main(int argc, char** argv) {
    ::signal(SIGPIPE, SIG_IGN);
    benchmark::RegisterBenchmark("ring/push_pop_same_thread/payload_bytes", push_pop_single_thread)->Arg(64)->Arg(4096);
    struct Mode {
        const char* name;
        WaitMode mode;
    };
    for (const Mode& m :
         {Mode{"spinning_consumer", WaitMode::spin}, Mode{"adaptive_spin_then_futex", WaitMode::adaptive},
          Mode{"futex_sleeping_consumer", WaitMode::futex}}) {
        const WaitMode mode = m.mode;
        benchmark::RegisterBenchmark((std::string("ring/roundtrip_two_threads/") + m.name + "/payload_bytes").c_str(),
                                     [mode](benchmark::State& s) { roundtrip_threads(s, mode); })
            ->Arg(64)
            ->UseRealTime();
        benchmark::RegisterBenchmark((std::string("ring/roundtrip_two_processes/") + m.name + "/payload_bytes").c_str(),
                                     [mode](benchmark::State& s) { roundtrip_processes(s, mode); })
            ->Arg(64)
            ->UseRealTime();
    }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
