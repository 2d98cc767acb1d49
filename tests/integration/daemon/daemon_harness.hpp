// Shared by the integration tests of the regiond binary: one daemon on a
// test-owned copy of the cluster's eu-west-1 config, and a client that does the
// handshake and the ring protocol by hand (so tests can misbehave as a hostile
// local process would). Pieces without Catch2 (handshake, connect_unix) are
// usable in forked children.
#pragma once

#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../cluster_env.hpp"
#include "mini_json.hpp"
#include "regiond_process.hpp"
#include "shm/client_segment.hpp"
#include "shm/codec.hpp"
#include "shm/fd_passing.hpp"
#include "shm/handshake.hpp"

namespace regiond::testing {

using namespace std::chrono_literals;
namespace shm = regiond::shm;

inline constexpr auto kStartTimeout = 15s;

inline int connect_unix(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strcpy(address.sun_path, path.c_str());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        ::close(fd);
        return -1;
    }
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

inline shm::HelloMessage hello() {
    shm::HelloMessage h{};
    std::memcpy(h.magic, shm::kHelloMagic, sizeof h.magic);
    h.protocol_version = shm::kProtocolVersion;
    h.client_pid = static_cast<std::uint32_t>(::getpid());
    std::strcpy(h.client_name, "daemon-test");
    return h;
}

// The client handshake by hand: connect, hello, welcome with the memfd and
// eventfd. No Catch2 inside (forked children use it too): nullopt on failure.
struct Handshake {
    shm::UniqueFd socket;
    shm::UniqueFd memfd;
    shm::UniqueFd eventfd;
    shm::WelcomeMessage welcome{};
};

inline std::optional<Handshake> handshake(const std::string& path) {
    Handshake h;
    h.socket.reset(connect_unix(path));
    if (!h.socket) return std::nullopt;
    const shm::HelloMessage hi = hello();
    if (::send(h.socket.get(), &hi, sizeof hi, MSG_NOSIGNAL) != sizeof hi) return std::nullopt;
    auto fds = shm::recv_fds(h.socket.get(), shm::kWelcomeFds, std::as_writable_bytes(std::span(&h.welcome, 1)));
    if (!fds) return std::nullopt;
    h.memfd = std::move((*fds)[0]);
    h.eventfd = std::move((*fds)[1]);
    return h;
}

// Pushes one record and wakes the daemon when it asked for it. No Catch2.
inline shm::RingError push_record(shm::ClientSegment& segment, int eventfd, shm::RecordKind kind, std::uint64_t id,
                                  std::span<const std::byte> payload) {
    const shm::PushResult pushed = segment.requests().try_push(kind, shm::kRecordFlagLast, id, payload);
    if (pushed.error == shm::RingError::ok && pushed.needs_wakeup) {
        const std::uint64_t one = 1;
        if (::write(eventfd, &one, sizeof one) != sizeof one) return shm::RingError::corrupt;
    }
    return pushed.error;
}

// A client doing the handshake and the ring protocol by hand.
struct RawClient {
    shm::UniqueFd socket;
    shm::UniqueFd memfd;
    shm::UniqueFd eventfd;
    shm::WelcomeMessage welcome{};
    std::optional<shm::ClientSegment> segment;
    std::uint64_t next_id = 1;

    explicit RawClient(const std::string& path) {
        std::optional<Handshake> h = handshake(path);
        REQUIRE(h);
        socket = std::move(h->socket);
        memfd = std::move(h->memfd);
        eventfd = std::move(h->eventfd);
        welcome = h->welcome;
        auto attached = shm::ClientSegment::attach(memfd.get());
        REQUIRE(attached);
        segment.emplace(std::move(*attached));
    }

    std::uint64_t send(const shm::RequestView& r) {
        std::vector<std::byte> bytes;
        REQUIRE(shm::encode_request_append(r, bytes));
        const std::uint64_t id = next_id++;
        REQUIRE(push_record(*segment, eventfd.get(), shm::RecordKind::request, id, bytes) == shm::RingError::ok);
        return id;
    }

    // Waits for the whole response to `id`. The wait is one futex sleep bounded
    // only by `timeout`: a wake-up the daemon lost is not retried in slices, it
    // fails the test.
    shm::Response receive(std::uint64_t id, std::chrono::milliseconds timeout = 10s) {
        shm::ResponseDecoder decoder;
        std::vector<std::byte> buffer(segment->responses().max_payload());
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!decoder.complete()) {
            const shm::PopResult p = segment->responses().try_pop(buffer);
            if (p.error == shm::RingError::empty) {
                const auto left = deadline - std::chrono::steady_clock::now();
                if (left <= 0s || segment->responses().wait(nullptr, left) != shm::WaitResult::ready)
                    FAIL("no answer to request " << id << " within " << timeout.count()
                                                 << " ms: the daemon lost a wake-up or a request");
                continue;
            }
            REQUIRE(p.error == shm::RingError::ok);
            REQUIRE(p.request_id == id);
            REQUIRE(decoder.feed(std::span(buffer.data(), p.size)) == shm::CodecError::ok);
        }
        return decoder.take();
    }

    shm::Response query(shm::Op op, const std::string& sql, std::chrono::milliseconds timeout = 10s,
                        std::uint32_t timeout_ms = 0) {
        shm::RequestView r;
        r.op = op;
        r.sql = sql;
        r.timeout_ms = timeout_ms;
        return receive(send(r), timeout);
    }
};

struct RunningOptions {
    unsigned long watchdog_usec = 0;
    std::string extra_daemon_keys;                              ///< lines added under [daemon]
    std::vector<std::pair<std::string, std::string>> set_keys;  ///< keys the cluster's config has, rewritten
};

// One regiond on a copy of the cluster's eu-west-1 config.
struct Running {
    DaemonSetup setup;
    bool keys_set;  ///< before the process starts (members are built in this order)
    NotifySocket notify;
    RegiondProcess process;

    explicit Running(unsigned long watchdog_usec = 0) : Running(RunningOptions{watchdog_usec, "", {}}) {}
    explicit Running(const RunningOptions& options)
        : setup(DaemonSetup::from(ClusterEnv::get().regiond_config("eu-west-1"),
                                  "drain_timeout = \"3s\"\n" + options.extra_daemon_keys)),
          keys_set(set_keys(setup, options)),
          notify(setup.dir + "/notify.sock"),
          process(regiond_binary(), setup.config_path, setup.dir + "/regiond.log", notify.path(),
                  options.watchdog_usec) {}

    ~Running() {
        // A REQUIRE or FAIL is unwinding: the daemon's log is the first thing
        // anyone will want, and its directory is about to be removed.
        if (std::uncaught_exceptions() > 0) std::fprintf(stderr, "--- regiond log ---\n%s\n", process.log().c_str());
    }

    static bool set_keys(const DaemonSetup& setup, const RunningOptions& options) {
        for (const auto& [key, value] : options.set_keys) setup.set_key(key, value);
        return true;
    }

    void require_ready() {
        INFO(process.log());
        REQUIRE(notify.wait_for("READY=1", kStartTimeout));
    }

    Json status() { return Json::parse(reply_body(admin_command(setup.admin_socket, "status json"))); }

    static std::string reply_body(const std::string& reply) {
        INFO(reply);
        REQUIRE(reply.rfind("ok\n", 0) == 0);
        return reply.substr(3);
    }

    // Polls `status json` until every endpoint is healthy (and every cache).
    void require_all_healthy() {
        bool healthy = false;
        const auto deadline = std::chrono::steady_clock::now() + 20s;
        std::string last;
        while (!healthy && std::chrono::steady_clock::now() < deadline) {
            last = admin_command(setup.admin_socket, "status");
            const Json s = status();
            healthy = s["endpoints"].array().size() == 3;
            for (const Json& e : s["endpoints"].array())
                healthy = healthy && e["healthy"].boolean() && e["cache_healthy"].boolean();
            if (!healthy) std::this_thread::sleep_for(50ms);
        }
        INFO(last);
        INFO(process.log());
        REQUIRE(healthy);
    }
};

}  // namespace regiond::testing
