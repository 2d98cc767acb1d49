#include "fake_daemon.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "shm/client_segment.hpp"
#include "shm/codec.hpp"
#include "shm/fd_passing.hpp"
#include "shm/state_segment.hpp"
#include "shm/unique_fd.hpp"

namespace regiond::test {

namespace {

using Clock = std::chrono::steady_clock;
using shm::UniqueFd;

std::string unique_segment_name() {
    static std::atomic<int> counter{0};
    return "/rgd-fake-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

const char* op_name(shm::Op op) {
    switch (op) {
        case shm::Op::read_local: return "read_local";
        case shm::Op::read_primary: return "read_primary";
        case shm::Op::write: return "write";
        case shm::Op::read_consistent: return "read_consistent";
        case shm::Op::cached_read: return "cached_read";
    }
    return "?";
}

shm::Response echo(const shm::RequestView& r) {
    shm::Response out;
    out.served_by = (r.op == shm::Op::read_primary || r.op == shm::Op::write) ? "fake/primary" : "fake/replica";
    out.route_reason = std::string("fake: ") + op_name(r.op) + " echoed";
    if (r.op == shm::Op::write) {
        out.token = "1234/0/ABC";
        out.affected = 1;
    }
    out.columns = {"op", "sql", "timeout_ms", "token", "key", "ttl"};
    for (std::size_t i = 0; i < r.params.size(); ++i) out.columns.push_back("p" + std::to_string(i + 1));
    out.columns.push_back("keys");
    std::string keys;
    for (const auto& k : r.invalidate_keys) keys += (keys.empty() ? "" : ",") + std::string(k);
    const std::string timeout = std::to_string(r.timeout_ms);
    const std::string ttl = std::to_string(r.ttl_seconds);
    std::vector<std::optional<std::string_view>> row = {op_name(r.op), r.sql, timeout, r.token, r.key, ttl};
    for (const auto& p : r.params) row.push_back(p);
    row.push_back(keys);
    out.add_row(row);
    return out;
}

shm::Response rows(std::size_t n) {
    shm::Response out;
    out.served_by = "fake/replica";
    out.columns = {"i", "s"};
    for (std::size_t i = 0; i < n; ++i) {
        const std::string a = std::to_string(i);
        const std::string b = "row-" + a;
        const std::optional<std::string_view> row[] = {a, b};
        out.add_row(row);
    }
    return out;
}

shm::Response sql_error() {
    shm::Response out;
    out.status = shm::Status::error;
    std::memcpy(out.sqlstate, "42P01", 6);
    out.error = "relation \"no_such_table\" does not exist";
    out.served_by = "fake/replica";
    out.route_reason = "fake: the nearest replica";
    return out;
}

}  // namespace

struct FakeDaemon::Impl {
    struct Outgoing {
        std::uint64_t request_id;
        std::vector<std::vector<std::byte>> chunks;
        std::size_t next = 0;
    };
    struct Client {
        UniqueFd socket;
        UniqueFd eventfd;
        shm::ClientSegmentOwner segment;
        std::deque<Outgoing> out;
        std::vector<std::byte> buffer;
        bool gone = false;
        UniqueFd client_eventfd;  ///< written as well when the client asked (client_wake), as regiond does
        void wake() {
            segment.responses().wake_consumer_futex();
            if (segment.client_wake() == shm::ClientWake::futex_and_eventfd) {
                const std::uint64_t one = 1;
                (void)::write(client_eventfd.get(), &one, sizeof one);
            }
        }
    };
    struct Scheduled {
        Clock::time_point when;
        Client* client;
        std::uint64_t request_id;
        shm::Response response;
    };

    std::string path;
    FakeDaemonOptions options;
    UniqueFd listener;
    UniqueFd wake;  // eventfd: stop() wakes the loop
    std::optional<shm::StateSegment> state;
    std::vector<std::unique_ptr<Client>> clients;
    std::vector<Scheduled> scheduled;
    std::thread thread;
    std::atomic<bool> stopping{false};
    std::atomic<bool> paused{false};
    std::atomic<std::uint64_t> waits_spun{0};
    std::atomic<std::uint64_t> waits_slept{0};
    std::atomic<std::uint64_t> turns{0};
    std::atomic<std::uint64_t> requests{0}, cancels{0}, last_timeout{0};
    std::atomic<int> connected{0};
    std::mutex stop_mu;
    ino_t socket_inode = 0;  // stop() removes the path only while it is still ours
    bool die = false;        // loop thread only

    void accept_client();
    void serve(Client& c);
    void flush(Client& c);
    void enqueue(Client& c, std::uint64_t id, const shm::Response& response);
    void run();
};

void FakeDaemon::Impl::enqueue(Client& c, std::uint64_t id, const shm::Response& response) {
    Outgoing o;
    o.request_id = id;
    if (shm::encode_response(response, c.segment.responses().max_payload(), o.chunks) != shm::CodecError::ok)
        throw std::runtime_error("fake daemon: cannot encode a response");
    c.out.push_back(std::move(o));
}

void FakeDaemon::Impl::flush(Client& c) {
    bool wake_client = false;
    while (!c.out.empty()) {
        Outgoing& o = c.out.front();
        while (o.next < o.chunks.size()) {
            const bool last = o.next + 1 == o.chunks.size();
            const shm::PushResult r = c.segment.responses().try_push(
                shm::RecordKind::response, last ? shm::kRecordFlagLast : 0, o.request_id, o.chunks[o.next]);
            if (!r) {
                if (wake_client) c.wake();
                return;  // full: later
            }
            wake_client |= r.needs_wakeup;
            ++o.next;
        }
        c.out.pop_front();
    }
    if (wake_client) c.wake();
}

void FakeDaemon::Impl::serve(Client& c) {
    if (paused.load()) return;
    for (;;) {
        const shm::PopResult r = c.segment.requests().try_pop(c.buffer);
        if (!r) return;
        if (r.kind == shm::RecordKind::cancel) {
            ++cancels;
            std::erase_if(scheduled,
                          [&](const Scheduled& s) { return s.client == &c && s.request_id == r.request_id; });
            continue;
        }
        ++requests;
        shm::RequestView request;
        if (shm::decode_request(std::span<const std::byte>(c.buffer.data(), r.size), request) != shm::CodecError::ok)
            throw std::runtime_error("fake daemon: undecodable request");
        last_timeout = request.timeout_ms;
        const std::string_view sql = request.sql;
        if (sql == "die") {
            die = true;
            return;
        }
        if (sql.starts_with("rows ")) {
            enqueue(c, r.request_id, rows(std::stoul(std::string(sql.substr(5)))));
        } else if (sql.starts_with("sleep ")) {
            const auto ms = std::chrono::milliseconds(std::stoul(std::string(sql.substr(6))));
            scheduled.push_back(Scheduled{Clock::now() + ms, &c, r.request_id, echo(request)});
        } else if (sql == "error") {
            enqueue(c, r.request_id, sql_error());
        } else {
            enqueue(c, r.request_id, echo(request));
        }
    }
}

void FakeDaemon::Impl::accept_client() {
    UniqueFd sock(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!sock) return;
    shm::HelloMessage hello{};
    if (::recv(sock.get(), &hello, sizeof hello, MSG_WAITALL) != static_cast<ssize_t>(sizeof hello)) return;

    shm::WelcomeMessage welcome{};
    std::memcpy(welcome.magic, shm::kWelcomeMagic, sizeof welcome.magic);
    welcome.protocol_version = options.protocol_version;
    welcome.daemon_generation = state->generation();
    if (options.protocol_version != shm::kProtocolVersion || options.refuse != shm::WelcomeStatus::ok) {
        welcome.status = static_cast<std::uint32_t>(
            options.protocol_version != shm::kProtocolVersion ? shm::WelcomeStatus::version_mismatch : options.refuse);
        std::strncpy(welcome.message, options.refuse_message.c_str(), sizeof welcome.message - 1);
        (void)::send(sock.get(), &welcome, sizeof welcome, MSG_NOSIGNAL);
        return;
    }

    shm::ClientSegmentOptions seg_options;
    seg_options.request_capacity = options.request_capacity;
    seg_options.response_capacity = options.response_capacity;
    seg_options.client_id = static_cast<std::uint64_t>(clients.size() + 1);
    seg_options.daemon_generation = state->generation();
    auto segment = shm::ClientSegmentOwner::create(seg_options);
    if (!segment) throw std::runtime_error(segment.error().message);
    segment->set_spin_permit(options.spin_permit_ns);
    auto c = std::make_unique<Client>(Client{
        std::move(sock), UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)), std::move(*segment), {}, {}, false,
                                             UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC))});
    c->buffer.resize(c->segment.requests().max_payload());
    welcome.client_id = seg_options.client_id;
    std::strncpy(welcome.state_segment, state->name().c_str(), sizeof welcome.state_segment - 1);
    const int fds[] = {c->segment.fd(), c->eventfd.get(), c->client_eventfd.get()};
    if (!shm::send_fds(c->socket.get(), fds, std::as_bytes(std::span(&welcome, 1)))) return;
    clients.push_back(std::move(c));
    ++connected;
}

void FakeDaemon::Impl::run() {
    while (!stopping.load() && !die) {
        state->heartbeat_now();
        std::uint64_t spun = 0, slept = 0;
        for (auto& c : clients) {
            spun += c->segment.waits_spun();
            slept += c->segment.waits_slept();
        }
        waits_spun.store(spun, std::memory_order_relaxed);
        waits_slept.store(slept, std::memory_order_relaxed);
        turns.fetch_add(1, std::memory_order_release);
        for (auto& c : clients) {
            serve(*c);
            if (die) break;
        }
        if (die) break;
        const auto now = Clock::now();
        for (auto it = scheduled.begin(); it != scheduled.end();) {
            if (it->when <= now) {
                enqueue(*it->client, it->request_id, it->response);
                it = scheduled.erase(it);
            } else {
                ++it;
            }
        }
        bool more_output = false;
        for (auto& c : clients) {
            flush(*c);
            more_output |= !c->out.empty();
        }

        // Sleep (need-wake-up protocol on every request ring) unless work is pending.
        std::vector<pollfd> fds{{listener.get(), POLLIN, 0}, {wake.get(), POLLIN, 0}};
        bool may_sleep = !more_output;
        std::vector<bool> prepared(clients.size(), false);
        for (std::size_t i = 0; i < clients.size(); ++i) {
            fds.push_back({clients[i]->socket.get(), POLLRDHUP, 0});
            fds.push_back({clients[i]->eventfd.get(), POLLIN, 0});
            if (!paused.load()) {
                const shm::SleepTicket t = clients[i]->segment.requests().prepare_sleep();
                prepared[i] = t.may_sleep;
                may_sleep &= t.may_sleep;
            }
        }
        ::poll(fds.data(), fds.size(), may_sleep ? 10 : (more_output ? 1 : 0));
        for (std::size_t i = 0; i < clients.size(); ++i)
            if (prepared[i]) clients[i]->segment.requests().end_sleep();

        if (fds[1].revents & POLLIN) break;
        for (std::size_t i = 0; i < clients.size(); ++i) {
            if (fds[2 + 2 * i].revents & (POLLHUP | POLLRDHUP | POLLERR)) clients[i]->gone = true;
            if (fds[3 + 2 * i].revents & POLLIN) {
                std::uint64_t v;
                (void)::read(clients[i]->eventfd.get(), &v, sizeof v);
            }
        }
        for (const auto& c : clients)
            if (c->gone) std::erase_if(scheduled, [&](const Scheduled& s) { return s.client == c.get(); });
        const auto before = clients.size();
        std::erase_if(clients, [](const std::unique_ptr<Client>& c) { return c->gone; });
        connected -= static_cast<int>(before - clients.size());
        if (fds[0].revents & POLLIN) accept_client();
    }
    // A crash: every socket closes, the heartbeat stops, the segment's name goes.
    clients.clear();
    connected = 0;
    listener.reset();
    state.reset();
}

FakeDaemon::FakeDaemon(std::string socket_path, FakeDaemonOptions options) : impl_(std::make_unique<Impl>()) {
    impl_->path = std::move(socket_path);
    impl_->options = std::move(options);
    shm::StateSegmentOptions state_options;
    state_options.name = unique_segment_name();
    auto state = shm::StateSegment::create(state_options);
    if (!state) throw std::runtime_error(state.error().message);
    shm::EndpointStatus primary{};
    std::strcpy(primary.region, "us-east-1");
    std::strcpy(primary.endpoint, "primary-1");
    primary.in_use = 1;
    primary.role = static_cast<std::uint8_t>(shm::EndpointRole::primary);
    primary.healthy = 1;
    primary.cache_healthy = 1;
    primary.rtt_us = 20513;
    primary.replay_lsn = (std::uint64_t{0x16} << 32) | 0xB374D848;  // the primary's WAL position
    state->write_endpoint(0, 0, primary);
    shm::EndpointStatus replica{};
    std::strcpy(replica.region, "eu-west-1");
    std::strcpy(replica.endpoint, "replica-1");
    replica.in_use = 1;
    replica.role = static_cast<std::uint8_t>(shm::EndpointRole::replica);
    replica.healthy = 1;
    replica.cache_healthy = 0;
    replica.lag_ms = 12;
    replica.lag_bytes = 345;
    replica.rtt_us = 52;
    replica.replay_lsn = 0x16B3748;
    state->write_endpoint(1, 0, replica);
    shm::EndpointStatus unprobed{};  // no probe answered yet: replay LSN unknown (0)
    std::strcpy(unprobed.region, "ap-northeast-1");
    std::strcpy(unprobed.endpoint, "replica-2");
    unprobed.in_use = 1;
    unprobed.role = static_cast<std::uint8_t>(shm::EndpointRole::replica);
    state->write_endpoint(2, 0, unprobed);
    impl_->state.emplace(std::move(*state));

    ::unlink(impl_->path.c_str());
    impl_->listener.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, impl_->path.c_str(), sizeof addr.sun_path - 1);
    if (::bind(impl_->listener.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(impl_->listener.get(), 64) != 0)
        throw std::runtime_error("fake daemon: cannot listen on " + impl_->path);
    struct stat st {};
    if (::stat(impl_->path.c_str(), &st) == 0) impl_->socket_inode = st.st_ino;
    impl_->wake.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    impl_->thread = std::thread([this] { impl_->run(); });
}

FakeDaemon::~FakeDaemon() {
    stop();
}

void FakeDaemon::stop() {
    std::lock_guard lk(impl_->stop_mu);
    impl_->stopping = true;
    const std::uint64_t one = 1;
    (void)::write(impl_->wake.get(), &one, sizeof one);
    if (impl_->thread.joinable()) impl_->thread.join();
    struct stat st {};
    if (::stat(impl_->path.c_str(), &st) == 0 && st.st_ino == impl_->socket_inode) ::unlink(impl_->path.c_str());
}

void FakeDaemon::pause_requests(bool paused) {
    impl_->paused = paused;
}
const std::string& FakeDaemon::socket_path() const {
    return impl_->path;
}
std::uint64_t FakeDaemon::requests_seen() const {
    return impl_->requests.load();
}
std::uint64_t FakeDaemon::cancels_seen() const {
    return impl_->cancels.load();
}
int FakeDaemon::clients_connected() const {
    return impl_->connected.load();
}
std::uint64_t FakeDaemon::last_timeout_ms() const {
    return impl_->last_timeout.load();
}
std::uint64_t FakeDaemon::waits_spun() const {
    return impl_->waits_spun.load(std::memory_order_relaxed);
}
std::uint64_t FakeDaemon::waits_slept() const {
    return impl_->waits_slept.load(std::memory_order_relaxed);
}
std::uint64_t FakeDaemon::loop_turns() const {
    return impl_->turns.load(std::memory_order_acquire);
}

TempDir::TempDir() {
    char tmpl[] = "/tmp/rgd-client-test.XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
}

}  // namespace regiond::test
