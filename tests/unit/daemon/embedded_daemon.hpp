// The daemon core embedded in a test process on fake PostgreSQL endpoints, and
// a client made of shm/ parts: shared by the embedded daemon tests. The test
// turns the daemon's loop itself (Daemon::run_once) and plays the client.
#pragma once

#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/daemon.hpp"
#include "daemon/log.hpp"
#include "fake_backend.hpp"
#include "shm/client_segment.hpp"
#include "shm/codec.hpp"
#include "shm/fd_passing.hpp"
#include "shm/handshake.hpp"

namespace regiond::daemon::test {

using namespace std::chrono_literals;

inline constexpr std::uint32_t kRing = 64 * 1024;
inline constexpr std::size_t kMaxChunk = shm::ring_max_payload(kRing);
using Clock = std::chrono::steady_clock;

// A fresh directory per test, removed afterwards; log lines are captured.
struct Fixture {
    std::filesystem::path dir;
    std::vector<std::string> logs;
    FakeBackend backend;

    Fixture() {
        char pattern[] = "/tmp/rgd-unit-XXXXXX";
        REQUIRE(::mkdtemp(pattern) != nullptr);
        dir = pattern;
        log::set_sink([this](log::Level, std::string_view line) { logs.emplace_back(line); });
    }
    ~Fixture() {
        log::set_sink({});
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
    }

    config::Config make_config() const {
        static int counter = 0;
        config::Config c;
        c.source_path = (dir / "regiond.toml").string();
        c.daemon.region = "eu-west-1";
        c.daemon.socket = (dir / "client.sock").string();
        c.daemon.admin_socket = (dir / "admin.sock").string();
        c.daemon.state_segment = "/rgd-unit-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
        c.daemon.ring_size = kRing;
        c.daemon.max_request = 4096;
        c.daemon.drain_timeout = 2s;
        c.cache.memory = 64 * 1024;
        config::Region us;
        us.name = "us-east-1";
        us.primary = "host=10.0.0.1 port=5432 dbname=app password=hunter2";
        us.redis = "redis://127.0.0.1:1";
        config::Region eu;
        eu.name = "eu-west-1";
        eu.replicas = {"host=10.1.0.1 port=5432 dbname=app"};
        eu.redis = "redis://127.0.0.1:1";
        config::Region ap;
        ap.name = "ap-northeast-1";
        ap.replicas = {"host=10.2.0.1 port=5432 dbname=app"};
        ap.redis = "redis://127.0.0.1:1";
        c.regions = {us, eu, ap};
        return c;
    }

    std::chrono::nanoseconds handshake_timeout = 2s;
    std::string loadavg_path = "/proc/loadavg";  ///< host-wide waiting's running-task sample
    std::uint32_t usable_cores = 0;              ///< 0: detected

    std::unique_ptr<Daemon> start(config::Config c, StartError* error_out = nullptr) {
        backend.endpoints.clear();
        DaemonOptions options;
        options.handshake_timeout = handshake_timeout;
        options.config = std::move(c);
        options.endpoint_factory = backend.factory();
        options.handle_signals = false;
        options.redis_checks = false;
        options.loadavg_path = loadavg_path;
        options.usable_cores = usable_cores;
        StartError error;
        auto d = Daemon::create(std::move(options), error);
        if (error_out != nullptr)
            *error_out = error;
        else
            REQUIRE(d != nullptr);
        return d;
    }
    std::unique_ptr<Daemon> start() { return start(make_config()); }

    FakeEndpoint& primary() { return *backend.endpoints.at(0); }
    FakeEndpoint& local_replica() { return *backend.endpoints.at(1); }
    FakeEndpoint& tokyo_replica() { return *backend.endpoints.at(2); }

    bool logged(const std::string& part) const {
        return std::any_of(logs.begin(), logs.end(),
                           [&](const std::string& l) { return l.find(part) != std::string::npos; });
    }
};

// Turns the daemon's loop until `done()` or the deadline.
inline bool run_until(Daemon& d, const std::function<bool()>& done, std::chrono::milliseconds timeout = 3000ms) {
    const auto deadline = Clock::now() + timeout;
    while (!done()) {
        if (Clock::now() > deadline) return false;
        d.run_once(1ms);
    }
    return true;
}

inline bool readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
}

inline shm::HelloMessage hello(std::uint32_t version = shm::kProtocolVersion) {
    shm::HelloMessage h{};
    std::memcpy(h.magic, shm::kHelloMagic, sizeof h.magic);
    h.protocol_version = version;
    h.client_pid = static_cast<std::uint32_t>(::getpid());
    std::strcpy(h.client_name, "unit-test");
    return h;
}

inline shm::UniqueFd connect_unix(const std::string& path) {
    shm::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strcpy(address.sun_path, path.c_str());
    REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    return fd;
}

// The client side of the protocol, from shm/ parts.
struct TestClient {
    shm::UniqueFd socket;
    shm::UniqueFd memfd;
    shm::UniqueFd eventfd;
    shm::WelcomeMessage welcome{};
    std::optional<shm::ClientSegment> segment;
    std::vector<std::byte> buffer = std::vector<std::byte>(kRing);

    static std::unique_ptr<TestClient> connect(Daemon& d, const std::string& path,
                                               std::uint32_t version = shm::kProtocolVersion) {
        auto c = std::make_unique<TestClient>();
        c->socket = connect_unix(path);
        const shm::HelloMessage h = hello(version);
        REQUIRE(::send(c->socket.get(), &h, sizeof h, MSG_NOSIGNAL) == sizeof h);
        REQUIRE(run_until(d, [&] { return readable(c->socket.get()); }));
        REQUIRE(::recv(c->socket.get(), &c->welcome, sizeof c->welcome, MSG_PEEK | MSG_WAITALL) == sizeof c->welcome);
        if (c->welcome.status != static_cast<std::uint32_t>(shm::WelcomeStatus::ok)) {
            REQUIRE(::recv(c->socket.get(), &c->welcome, sizeof c->welcome, 0) == sizeof c->welcome);
            return c;
        }
        auto fds = shm::recv_fds(c->socket.get(), shm::kWelcomeFds, std::as_writable_bytes(std::span(&c->welcome, 1)));
        REQUIRE(fds);
        c->memfd = std::move((*fds)[0]);
        c->eventfd = std::move((*fds)[1]);
        auto segment = shm::ClientSegment::attach(c->memfd.get());
        REQUIRE(segment);
        c->segment.emplace(std::move(*segment));
        return c;
    }

    bool ok() const { return welcome.status == static_cast<std::uint32_t>(shm::WelcomeStatus::ok); }

    void push(shm::RecordKind kind, std::uint64_t id, std::span<const std::byte> payload) {
        const shm::PushResult r = segment->requests().try_push(kind, shm::kRecordFlagLast, id, payload);
        REQUIRE(r.error == shm::RingError::ok);
        if (r.needs_wakeup) {
            const std::uint64_t one = 1;
            REQUIRE(::write(eventfd.get(), &one, sizeof one) == sizeof one);
        }
    }

    void send(std::uint64_t id, shm::Op op, std::string sql, std::vector<std::optional<std::string_view>> params = {}) {
        shm::RequestView r;
        r.op = op;
        r.sql = sql;
        r.params = std::move(params);
        send(id, r);
    }

    void send(std::uint64_t id, const shm::RequestView& request) {
        std::vector<std::byte> bytes;
        REQUIRE(shm::encode_request_append(request, bytes));
        push(shm::RecordKind::request, id, bytes);
    }

    void cancel(std::uint64_t id) { push(shm::RecordKind::cancel, id, {}); }

    struct Record {
        std::uint64_t request_id = 0;
        std::uint16_t flags = 0;
        std::vector<std::byte> payload;
    };
    /// Every record in the response ring now (no loop turns).
    std::vector<Record> pop_all() {
        std::vector<Record> records;
        for (;;) {
            const shm::PopResult p = segment->responses().try_pop(buffer);
            if (p.error == shm::RingError::empty) return records;
            REQUIRE(p.error == shm::RingError::ok);
            records.push_back({p.request_id, p.flags, std::vector<std::byte>(buffer.begin(), buffer.begin() + p.size)});
        }
    }

    // Reads response records until a whole response for `id` has arrived.
    std::optional<shm::Response> wait_response(Daemon& d, std::uint64_t id,
                                               std::chrono::milliseconds timeout = 3000ms) {
        shm::ResponseDecoder decoder;
        std::optional<shm::Response> result;
        const bool done = run_until(
            d,
            [&] {
                for (;;) {
                    const shm::PopResult p = segment->responses().try_pop(buffer);
                    if (p.error == shm::RingError::empty) return false;
                    REQUIRE(p.error == shm::RingError::ok);
                    REQUIRE(p.request_id == id);
                    REQUIRE(decoder.feed(std::span(buffer.data(), p.size)) == shm::CodecError::ok);
                    if (decoder.complete()) {
                        CHECK((p.flags & shm::kRecordFlagLast) != 0);
                        result = decoder.take();
                        return true;
                    }
                }
            },
            timeout);
        return done ? result : std::nullopt;
    }
};

/// Reads whole responses (single-chunk ones) in whatever order they come until
/// `n` have arrived; by request id.
inline std::map<std::uint64_t, std::optional<shm::Response>> wait_responses(
    Daemon& d, TestClient& c, std::size_t n, std::chrono::milliseconds timeout = 3000ms) {
    std::map<std::uint64_t, std::optional<shm::Response>> got;
    run_until(
        d,
        [&] {
            for (;;) {
                const shm::PopResult p = c.segment->responses().try_pop(c.buffer);
                if (p.error == shm::RingError::empty) return got.size() >= n;
                REQUIRE(p.error == shm::RingError::ok);
                REQUIRE((p.flags & shm::kRecordFlagLast) != 0);
                shm::ResponseDecoder decoder;
                REQUIRE(decoder.feed(std::span(c.buffer.data(), p.size)) == shm::CodecError::ok);
                REQUIRE(decoder.complete());
                got[p.request_id] = decoder.take();
            }
        },
        timeout);
    return got;
}

inline std::string error_of(const std::optional<shm::Response>& r) {
    REQUIRE(r.has_value());
    CHECK(r->status == shm::Status::error);
    return r->error;
}

/// A request the daemon answers without any database: read_consistent with a
/// token that does not parse ("malformed token ...").
inline shm::RequestView malformed_token_request() {
    shm::RequestView r;
    r.op = shm::Op::read_consistent;
    r.token = "not-a-token";
    r.sql = "select 1";
    return r;
}

}  // namespace regiond::daemon::test
