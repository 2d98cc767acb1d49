// Client segment (sealed memfd with two rings) and descriptor passing.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "shm/client_segment.hpp"
#include "shm/fd_passing.hpp"
#include "test_helpers.hpp"

using namespace regiond::shm;
using namespace regiond::shm::test;
using namespace std::chrono_literals;

namespace {

ClientSegmentOptions small_options() {
    ClientSegmentOptions o;
    o.request_capacity = 4096;
    o.response_capacity = 8192;
    o.client_id = 17;
    o.daemon_generation = 0xABCDEF;
    o.daemon_wake = DaemonWake::futex;
    return o;
}

// A second read/write mapping of the memfd: what a hostile client can touch.
struct ClientView {
    explicit ClientView(int fd, std::size_t size) : size(size) {
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        REQUIRE(p != MAP_FAILED);
        base = static_cast<std::byte*>(p);
    }
    ~ClientView() { ::munmap(base, size); }
    ClientHeader& header() { return *shared_at<ClientHeader>(base); }
    std::byte* base;
    std::size_t size;
};

// An unsealed copy of a segment's bytes in a fresh memfd (optionally sealed).
UniqueFd copy_segment(const ClientSegmentOwner& owner, unsigned seals) {
    UniqueFd fd(::memfd_create("copy", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    REQUIRE(fd);
    const std::size_t size = owner.geometry().total_size;
    REQUIRE(::ftruncate(fd.get(), static_cast<off_t>(size)) == 0);
    ClientView src(owner.fd(), size);
    REQUIRE(::pwrite(fd.get(), src.base, size, 0) == static_cast<ssize_t>(size));
    if (seals) REQUIRE(::fcntl(fd.get(), F_ADD_SEALS, seals) == 0);
    return fd;
}

std::span<const std::byte> msg(const char* s) {
    return std::as_bytes(std::span<const char>(s, std::strlen(s)));
}

}  // namespace

TEST_CASE("client segment: create, attach, exchange records", "[client]") {
    auto owner = ClientSegmentOwner::create(small_options());
    REQUIRE(owner);
    auto client = ClientSegment::attach(owner->fd());
    REQUIRE(client);
    CHECK(client->client_id() == 17);
    CHECK(client->daemon_generation() == 0xABCDEF);
    CHECK(client->daemon_wake() == DaemonWake::futex);
    CHECK(client->requests().capacity() == 4096);
    CHECK(client->responses().capacity() == 8192);
    CHECK(client->size() == owner->geometry().total_size);

    const std::string req = "SELECT 1";
    REQUIRE(client->requests().try_push(RecordKind::request, kRecordFlagLast, 1, bytes_of(req)));
    std::vector<std::byte> buf(4096);
    PopResult r = owner->requests().try_pop(buf);
    REQUIRE(r);
    CHECK(string_of({buf.data(), r.size}) == req);

    const std::string resp = "one row";
    REQUIRE(owner->responses().try_push(RecordKind::response, kRecordFlagLast, 1, bytes_of(resp)));
    r = client->responses().try_pop(buf);
    REQUIRE(r);
    CHECK(r.request_id == 1);
    CHECK(string_of({buf.data(), r.size}) == resp);
}

TEST_CASE("the daemon's max_request reaches the client, and a reload updates it", "[client]") {
    ClientSegmentOptions options = small_options();
    options.max_request = 1000;
    auto owner = ClientSegmentOwner::create(options);
    REQUIRE(owner);
    auto client = ClientSegment::attach(owner->fd());
    REQUIRE(client);
    CHECK(client->max_request() == 1000);
    owner->set_max_request(1500);
    CHECK(client->max_request() == 1500);
}

TEST_CASE("the client's cache-hit counter reaches the daemon, as an untrusted number", "[client]") {
    auto owner = ClientSegmentOwner::create(small_options());
    REQUIRE(owner);
    auto client = ClientSegment::attach(owner->fd());
    REQUIRE(client);
    CHECK(owner->cache_hits() == 0);
    for (int i = 0; i < 3; ++i) client->add_cache_hit();
    CHECK(owner->cache_hits() == 3);

    // Several threads of one client count at once: no hit is lost.
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&client] {
            for (int i = 0; i < 10000; ++i) client->add_cache_hit();
        });
    for (auto& t : threads) t.join();
    CHECK(owner->cache_hits() == 3 + 40000);

    // The client owns the word: it may write anything, even go backwards. The
    // daemon only ever reads it as a number; the rings are unaffected.
    ClientView v(owner->fd(), owner->geometry().total_size);
    v.header().cache_hits.store(~std::uint64_t{0});
    CHECK(owner->cache_hits() == ~std::uint64_t{0});
    v.header().cache_hits.store(1);
    CHECK(owner->cache_hits() == 1);
    REQUIRE(client->requests().try_push(RecordKind::request, kRecordFlagLast, 1, msg("x")));
    std::vector<std::byte> buf(64);
    CHECK(owner->requests().try_pop(buf));
}

TEST_CASE("client segment is sealed: nobody can resize it", "[client]") {
    auto owner = ClientSegmentOwner::create(small_options());
    REQUIRE(owner);
    const int seals = ::fcntl(owner->fd(), F_GET_SEALS);
    CHECK((seals & F_SEAL_SHRINK) != 0);
    CHECK((seals & F_SEAL_GROW) != 0);
    CHECK((seals & F_SEAL_SEAL) != 0);
    CHECK((seals & F_SEAL_WRITE) == 0);

    // What a client holding the fd would try:
    errno = 0;
    CHECK(::ftruncate(owner->fd(), 4096) == -1);
    CHECK(errno == EPERM);
    errno = 0;
    CHECK(::ftruncate(owner->fd(), static_cast<off_t>(owner->geometry().total_size * 2)) == -1);
    CHECK(errno == EPERM);
    errno = 0;
    CHECK(::fcntl(owner->fd(), F_ADD_SEALS, F_SEAL_WRITE) == -1);  // F_SEAL_SEAL: no more changes
    CHECK(errno == EPERM);
}

TEST_CASE("client refuses malformed or unsealed segments", "[client]") {
    auto owner = ClientSegmentOwner::create(small_options());
    REQUIRE(owner);
    const unsigned all_seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

    SECTION("unsealed copy") {
        UniqueFd fd = copy_segment(*owner, 0);
        auto c = ClientSegment::attach(fd.get());
        REQUIRE_FALSE(c);
        CHECK_THAT(c.error().message, Catch::Contains("not sealed"));
    }
    SECTION("sealed against shrinking only") {
        UniqueFd fd = copy_segment(*owner, F_SEAL_SHRINK);
        CHECK_FALSE(ClientSegment::attach(fd.get()));
    }
    SECTION("a pipe is not a memory file") {
        int p[2];
        REQUIRE(::pipe(p) == 0);
        UniqueFd a(p[0]), b(p[1]);
        CHECK_FALSE(ClientSegment::attach(a.get()));
    }
    SECTION("header tampering") {
        for (int which = 0; which < 8; ++which) {
            UniqueFd fd = copy_segment(*owner, 0);
            ClientView v(fd.get(), owner->geometry().total_size);
            std::string expect;
            switch (which) {
                case 0:
                    v.header().magic[0] = 'X';
                    expect = "bad magic";
                    break;
                case 1:
                    v.header().layout_version.store(kClientLayoutVersion + 1);
                    expect = "client segment has layout version " + std::to_string(kClientLayoutVersion + 1) +
                             ", this library understands " + std::to_string(kClientLayoutVersion) +
                             ": upgrade libregiond or the daemon";
                    break;
                case 2:
                    v.header().request_ring_capacity = 1000;
                    expect = "ring capacity";
                    break;
                case 3:
                    v.header().response_ring_offset = v.size - 64;
                    expect = "outside";
                    break;
                case 4:
                    v.header().response_ring_offset = v.header().request_ring_offset + 64;
                    expect = "overlap";
                    break;
                case 5:
                    v.header().total_size += 4096;
                    expect = "total size";
                    break;
                case 6:
                    v.header().daemon_wake = 9;
                    expect = "wake";
                    break;
                default:
                    shared_at<RingControl>(v.base + v.header().request_ring_offset)->capacity = 8192;
                    expect = "capacity does not match";
                    break;
            }
            INFO("case " << which);
            REQUIRE(::fcntl(fd.get(), F_ADD_SEALS, all_seals) == 0);
            auto c = ClientSegment::attach(fd.get());
            REQUIRE_FALSE(c);
            CHECK_THAT(c.error().message, Catch::Contains(expect));
        }
    }
}

TEST_CASE("what a client writes into the header cannot change the rings the daemon uses", "[client][hostile]") {
    auto owner = ClientSegmentOwner::create(small_options());  // requests 4096, responses 8192
    REQUIRE(owner);
    const ClientGeometry real = owner->geometry();
    ClientView hostile(owner->fd(), real.total_size);
    auto* request_control = shared_at<RingControl>(hostile.base + real.request_ring_offset);
    auto* response_control = shared_at<RingControl>(hostile.base + real.response_ring_offset);

    // The client rewrites every geometry field it can reach: the header points the
    // request ring at the response ring and claims 1 GiB rings, and the rings'
    // own (informational) capacity words claim the same.
    ClientHeader& h = hostile.header();
    h.request_ring_offset = real.response_ring_offset;
    h.response_ring_offset = real.request_ring_offset;
    h.request_ring_capacity = kMaxRingCapacity;
    h.response_ring_capacity = kMaxRingCapacity;
    h.total_size = std::uint64_t{1} << 40;
    request_control->capacity = kMaxRingCapacity;
    response_control->capacity = kMaxRingCapacity;

    // Responses: the daemon still limits records to its own 8192-byte ring. With
    // the claimed 1 GiB it would accept the larger record and write past the ring.
    const std::uint32_t max_response = ring_max_payload(real.response_ring_capacity);
    CHECK(owner->responses().max_payload() == max_response);
    const std::vector<std::byte> big(max_response + 1, std::byte{'r'});
    CHECK(owner->responses().try_push(RecordKind::response, kRecordFlagLast, 1, big).error == RingError::too_large);
    REQUIRE(owner->responses().try_push(RecordKind::response, kRecordFlagLast, 2,
                                        std::span<const std::byte>(big).first(max_response)));

    // Requests: a well-behaved producer at the real request ring. The daemon reads
    // this record, not the response ring the header now points to.
    const std::span<std::byte> request_region(hostile.base + real.request_ring_offset,
                                              ring_region_size(real.request_ring_capacity));
    RingProducer client_requests(request_region, real.request_ring_capacity);
    REQUIRE(client_requests.try_push(RecordKind::request, kRecordFlagLast, 7, bytes_of("select 1")));
    std::vector<std::byte> buf(real.total_size);
    PopResult r = owner->requests().try_pop(buf);
    REQUIRE(r);
    CHECK(r.request_id == 7);
    CHECK(r.kind == RecordKind::request);
    CHECK(string_of({buf.data(), r.size}) == "select 1");

    // A record larger than the real ring allows (but small for the claimed 1 GiB)
    // is corruption to the daemon: it validates against its own capacity.
    const std::uint32_t too_big = ring_max_payload(real.request_ring_capacity) + 8;
    const std::uint64_t tail = request_control->tail.load();
    const RecordHeader forged{too_big, static_cast<std::uint16_t>(RecordKind::request), kRecordFlagLast, 8};
    std::memcpy(hostile.base + real.request_ring_offset + sizeof(RingControl) + (tail % real.request_ring_capacity),
                &forged, sizeof forged);
    request_control->head.store(tail + record_footprint(too_big));
    CHECK(owner->requests().try_pop(buf).error == RingError::corrupt);

    // Garbage counters are caught by the ring's validation as well.
    auto fresh = ClientSegmentOwner::create(small_options());
    REQUIRE(fresh);
    ClientView other(fresh->fd(), fresh->geometry().total_size);
    shared_at<RingControl>(other.base + fresh->geometry().request_ring_offset)->head.store(0xFFFFFFFFFFFFFF00ull);
    CHECK(fresh->requests().try_pop(buf).error == RingError::corrupt);
}

TEST_CASE("fd passing over a socketpair", "[fd]") {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    UniqueFd a(sv[0]), b(sv[1]);

    SECTION("one memfd with a message; the received fd is CLOEXEC and shares the file") {
        UniqueFd mem(::memfd_create("pass", MFD_CLOEXEC));
        REQUIRE(::write(mem.get(), "hello", 5) == 5);
        REQUIRE(send_fd(a.get(), mem.get(), msg("segment v1")));
        std::vector<std::byte> m(10);
        auto got = recv_fd(b.get(), m);
        REQUIRE(got);
        CHECK(string_of(m) == "segment v1");
        CHECK((::fcntl(got->get(), F_GETFD) & FD_CLOEXEC) != 0);
        char text[6] = {};
        REQUIRE(::pread(got->get(), text, 5, 0) == 5);
        CHECK(std::string(text) == "hello");
    }
    SECTION("two descriptors at once") {
        UniqueFd mem(::memfd_create("pass", MFD_CLOEXEC));
        UniqueFd ev(::eventfd(0, EFD_CLOEXEC));
        const int fds[2] = {mem.get(), ev.get()};
        REQUIRE(send_fds(a.get(), fds, msg("xy")));
        std::vector<std::byte> m(2);
        auto got = recv_fds(b.get(), 2, m);
        REQUIRE(got);
        CHECK(got->size() == 2);
    }
    SECTION("wrong number of descriptors is an error") {
        UniqueFd mem(::memfd_create("pass", MFD_CLOEXEC));
        const int fds[2] = {mem.get(), mem.get()};
        REQUIRE(send_fds(a.get(), fds, msg("x")));
        std::vector<std::byte> m(1);
        auto got = recv_fd(b.get(), m);
        REQUIRE_FALSE(got);
        CHECK_THAT(got.error().message, Catch::Contains("expected 1"));
    }
    SECTION("a message without a descriptor is an error") {
        REQUIRE(::send(a.get(), "abc", 3, 0) == 3);
        std::vector<std::byte> m(3);
        CHECK_FALSE(recv_fd(b.get(), m));
    }
    SECTION("the peer closes mid-message") {
        UniqueFd mem(::memfd_create("pass", MFD_CLOEXEC));
        REQUIRE(send_fd(a.get(), mem.get(), msg("abc")));
        a.reset();
        std::vector<std::byte> m(8);
        auto got = recv_fd(b.get(), m);
        REQUIRE_FALSE(got);
        CHECK(got.error().code == ECONNRESET);
    }
    SECTION("too many descriptors: control message truncated") {
        UniqueFd mem(::memfd_create("pass", MFD_CLOEXEC));
        constexpr int kMany = 8;
        int fds[kMany];
        for (int& f : fds) f = mem.get();
        alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof fds)] = {};
        char data = 'z';
        iovec iov{&data, 1};
        msghdr m{};
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = control;
        m.msg_controllen = sizeof control;
        cmsghdr* c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof fds);
        std::memcpy(CMSG_DATA(c), fds, sizeof fds);
        REQUIRE(::sendmsg(a.get(), &m, 0) == 1);
        std::vector<std::byte> buf(1);
        auto got = recv_fd(b.get(), buf);
        REQUIRE_FALSE(got);
        CHECK_THAT(got.error().message, Catch::Contains("MSG_CTRUNC"));
    }
    SECTION("argument checks") {
        CHECK_FALSE(send_fds(a.get(), {}, msg("x")));
        CHECK_FALSE(send_fd(a.get(), 0, {}));
    }
}

TEST_CASE("peer credentials of a connected unix socket", "[fd]") {
    // Abstract socket name: nothing on disk, unique per process.
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string name = "regiond-test-peercred-" + std::to_string(::getpid());
    std::memcpy(addr.sun_path + 1, name.data(), name.size());
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), len) == 0);
    REQUIRE(::listen(listener.get(), 1) == 0);

    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // The client: connect, receive the segment, talk through it, exit.
        UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) ::_exit(2);
        std::byte hello[4];
        auto fd = recv_fd(s.get(), hello);
        if (!fd) ::_exit(3);
        auto seg = ClientSegment::attach(fd->get());
        if (!seg) ::_exit(4);
        fd->reset();  // the mapping outlives the descriptor
        for (std::uint64_t i = 0; i < 50; ++i) {
            const PushResult r = seg->requests().try_push(RecordKind::request, kRecordFlagLast, i, {});
            if (!r) ::_exit(5);
            if (r.needs_wakeup) seg->requests().wake_consumer_futex();
            std::byte buf[16];
            PopResult resp;
            while ((resp = seg->responses().try_pop(buf)).error == RingError::empty)
                if (seg->responses().wait(nullptr, 10s) == WaitResult::timed_out) ::_exit(6);
            if (!resp || resp.request_id != i) ::_exit(7);
        }
        ::_exit(0);
    }

    UniqueFd conn(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    REQUIRE(conn);
    auto cred = peer_credentials(conn.get());
    REQUIRE(cred);
    CHECK(cred->pid == pid);
    CHECK(cred->uid == ::getuid());
    CHECK(cred->gid == ::getgid());

    auto owner = ClientSegmentOwner::create(small_options());
    REQUIRE(owner);
    REQUIRE(send_fd(conn.get(), owner->fd(), msg("RGD1")));
    std::uint64_t served = 0;
    for (; served < 50; ++served) {
        std::byte buf[64];
        PopResult r;
        bool timed_out = false;
        while ((r = owner->requests().try_pop(buf)).error == RingError::empty) {
            if (owner->requests().wait(nullptr, 10s) == WaitResult::timed_out) {
                timed_out = true;
                break;
            }
        }
        if (timed_out || !r) break;
        const PushResult p = owner->responses().try_push(RecordKind::response, kRecordFlagLast, r.request_id, {});
        if (p.needs_wakeup) owner->responses().wake_consumer_futex();
    }
    CHECK(served == 50);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}
