#include "daemon/redis_probe.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "daemon/log.hpp"
#include "daemon/text.hpp"
#include "shm/base/redact.hpp"

namespace regiond::daemon {
namespace {

// A Redis that sends more than this in answer to PING is not one we trust.
constexpr std::size_t kMaxReplyBytes = 64 * 1024;

std::string resp_command(std::initializer_list<std::string_view> words) {
    std::string out = "*" + std::to_string(words.size()) + "\r\n";
    for (std::string_view w : words) {
        out += "$" + std::to_string(w.size()) + "\r\n";
        out += w;
        out += "\r\n";
    }
    return out;
}

std::string shorten(std::string text, std::size_t max = 120) {
    if (text.size() > max) {
        text.resize(max);
        text += "...";
    }
    for (char& c : text)
        if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    return text;
}

}  // namespace

// A Redis error may quote the AUTH argument: "ERR unknown command 'AUTH', with args
// beginning with: 'PASSWORD'" when AUTH is renamed or disabled. The quoted args are
// dropped, the configured password removed wherever else it appears whole, and
// anything shaped like a secret redacted (base::redact_secrets).
std::string RedisProbe::without_secrets(std::string text) const {
    if (const auto args = text.find("args beginning with"); args != std::string::npos) {
        text.resize(args);
        text += "args beginning with: [redacted]";
    }
    if (const auto& password = settings_.address.password; password && !password->empty())
        for (auto at = text.find(*password); at != std::string::npos; at = text.find(*password, at))
            text.replace(at, password->size(), "[redacted]");
    return base::redact_secrets(text);
}

RedisProbe::RedisProbe(EventLoop& loop, RedisProbeSettings settings, std::function<void()> on_change)
    : loop_(loop),
      settings_(std::move(settings)),
      on_change_(std::move(on_change)),
      hysteresis_(settings_.down_after, settings_.up_after) {
    const auto& a = settings_.address;
    if (a.transport == config::RedisEndpoint::Transport::unix_socket)
        display_name_ = a.socket_path;
    else if (a.host.find(':') != std::string::npos)
        display_name_ = "[" + a.host + "]:" + std::to_string(a.port);
    else
        display_name_ = a.host + ":" + std::to_string(a.port);
    resolve();
}

RedisProbe::~RedisProbe() {
    if (tick_timer_ != 0) loop_.cancel_timer(tick_timer_);
    if (deadline_timer_ != 0) loop_.cancel_timer(deadline_timer_);
    close_connection();
}

void RedisProbe::resolve() {
    const auto& a = settings_.address;
    address_ = {};
    if (a.transport == config::RedisEndpoint::Transport::unix_socket) {
        sockaddr_un un{};
        un.sun_family = AF_UNIX;
        if (a.socket_path.size() >= sizeof un.sun_path) {
            resolve_error_ = "socket path too long";
            return;
        }
        std::memcpy(un.sun_path, a.socket_path.c_str(), a.socket_path.size() + 1);
        std::memcpy(&address_, &un, sizeof un);
        address_length_ = sizeof un;
        return;
    }
    sockaddr_in v4{};
    if (inet_pton(AF_INET, a.host.c_str(), &v4.sin_addr) == 1) {
        v4.sin_family = AF_INET;
        v4.sin_port = htons(a.port);
        std::memcpy(&address_, &v4, sizeof v4);
        address_length_ = sizeof v4;
        return;
    }
    sockaddr_in6 v6{};
    if (inet_pton(AF_INET6, a.host.c_str(), &v6.sin6_addr) == 1) {
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons(a.port);
        std::memcpy(&address_, &v6, sizeof v6);
        address_length_ = sizeof v6;
        return;
    }
    // A name: resolved once, here (see the header for why this is not on the loop).
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const int rc = getaddrinfo(a.host.c_str(), std::to_string(a.port).c_str(), &hints, &found);
    if (rc != 0 || found == nullptr) {
        resolve_error_ = "cannot resolve " + a.host + ": " + gai_strerror(rc);
        return;
    }
    std::memcpy(&address_, found->ai_addr, found->ai_addrlen);
    address_length_ = found->ai_addrlen;
    freeaddrinfo(found);
}

void RedisProbe::start() {
    if (started_) return;
    started_ = true;
    loop_.defer([this] { check(); });
}

void RedisProbe::update(std::chrono::nanoseconds connect_timeout, std::chrono::nanoseconds check_interval,
                        unsigned down_after, unsigned up_after) {
    settings_.connect_timeout = connect_timeout;
    settings_.check_interval = check_interval;
    settings_.down_after = down_after;
    settings_.up_after = up_after;
    hysteresis_.set_thresholds(down_after, up_after);
}

void RedisProbe::schedule_next() {
    if (tick_timer_ != 0) loop_.cancel_timer(tick_timer_);
    tick_timer_ =
        loop_.add_timer(std::chrono::duration_cast<EventLoop::Clock::duration>(settings_.check_interval), [this] {
            tick_timer_ = 0;
            check();
        });
}

void RedisProbe::check() {
    schedule_next();
    if (phase_ != Phase::idle) return;  // the previous check is still running; its deadline will end it
    if (!resolve_error_.empty()) {
        finish(false, resolve_error_);
        return;
    }
    deadline_timer_ =
        loop_.add_timer(std::chrono::duration_cast<EventLoop::Clock::duration>(settings_.connect_timeout), [this] {
            deadline_timer_ = 0;
            finish(false, phase_ == Phase::connecting
                              ? "connect timed out after " + format_duration(settings_.connect_timeout)
                              : "no answer to PING within " + format_duration(settings_.connect_timeout));
        });
    if (fd_ >= 0) {
        send_commands(false);
        return;
    }
    if (!open_connection()) return;
}

bool RedisProbe::open_connection() {
    const int fd = ::socket(address_.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        finish(false, std::string("socket: ") + std::strerror(errno));
        return false;
    }
    if (address_.ss_family != AF_UNIX) {
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    fd_ = fd;
    reader_ = redisReaderCreate();
    fresh_ = true;
    loop_.add(fd_, EPOLLOUT | EPOLLIN | EPOLLRDHUP, [this](std::uint32_t events) { on_events(events); });
    const int rc = ::connect(fd_, reinterpret_cast<const sockaddr*>(&address_), address_length_);
    if (rc == 0) {
        send_commands(true);
        return true;
    }
    if (errno == EINPROGRESS || errno == EAGAIN) {
        phase_ = Phase::connecting;
        return true;
    }
    finish(false, std::string("connect: ") + std::strerror(errno));
    return false;
}

void RedisProbe::send_commands(bool fresh_connection) {
    output_.clear();
    output_sent_ = 0;
    replies_expected_ = 0;
    bytes_read_ = 0;
    if (fresh_connection && fresh_) {
        const auto& a = settings_.address;
        if (a.password) {
            output_ += resp_command({"AUTH", *a.password});
            ++replies_expected_;
        }
        if (a.db != 0) {
            output_ += resp_command({"SELECT", std::to_string(a.db)});
            ++replies_expected_;
        }
        fresh_ = false;
    }
    output_ += resp_command({"PING"});
    ++replies_expected_;
    phase_ = Phase::waiting;
    sent_at_ = EventLoop::Clock::now();
    if (flush_output()) loop_.modify(fd_, EPOLLIN | EPOLLRDHUP | (output_sent_ < output_.size() ? EPOLLOUT : 0u));
}

bool RedisProbe::flush_output() {
    while (output_sent_ < output_.size()) {
        const ssize_t n = ::send(fd_, output_.data() + output_sent_, output_.size() - output_sent_, MSG_NOSIGNAL);
        if (n > 0) {
            output_sent_ += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
        finish(false, std::string("send: ") + std::strerror(errno));
        return false;
    }
    return true;
}

void RedisProbe::on_events(std::uint32_t events) {
    if (phase_ == Phase::connecting) {
        int error = 0;
        socklen_t length = sizeof error;
        if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
        if (error != 0) {
            finish(false, std::string("connect: ") + std::strerror(error));
            return;
        }
        if ((events & (EPOLLOUT | EPOLLIN | EPOLLHUP | EPOLLERR)) == 0) return;
        send_commands(true);
        return;
    }
    if (phase_ == Phase::waiting && (events & EPOLLOUT) != 0) {
        if (!flush_output()) return;
        if (output_sent_ == output_.size()) loop_.modify(fd_, EPOLLIN | EPOLLRDHUP);
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) != 0) read_replies();
}

void RedisProbe::read_replies() {
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
        if (n > 0) {
            bytes_read_ += static_cast<std::size_t>(n);
            if (phase_ != Phase::waiting || bytes_read_ > kMaxReplyBytes) {
                // Data nobody asked for: drop the connection (the next check reconnects).
                if (phase_ == Phase::waiting)
                    finish(false, "oversized reply");
                else
                    close_connection();
                return;
            }
            if (redisReaderFeed(reader_, buffer, static_cast<std::size_t>(n)) != REDIS_OK) {
                finish(false, "protocol error");
                return;
            }
            continue;
        }
        if (n == 0) {
            if (phase_ == Phase::waiting)
                finish(false, "connection closed by the server");
            else
                close_connection();  // an idle connection closed (timeout on the server): reopen next time
            return;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        if (phase_ == Phase::waiting)
            finish(false, std::string("recv: ") + std::strerror(errno));
        else
            close_connection();
        return;
    }
    while (phase_ == Phase::waiting && replies_expected_ > 0) {
        void* raw = nullptr;
        if (redisReaderGetReply(reader_, &raw) != REDIS_OK) {
            finish(false, "protocol error");
            return;
        }
        if (raw == nullptr) return;  // incomplete
        auto* reply = static_cast<redisReply*>(raw);
        std::string problem;
        if (reply->type == REDIS_REPLY_ERROR)
            problem = "server answered: " + shorten(without_secrets(std::string(reply->str, reply->len)));
        else if (replies_expected_ == 1 &&
                 !(reply->type == REDIS_REPLY_STATUS && std::string_view(reply->str, reply->len) == "PONG"))
            problem = "unexpected answer to PING";
        freeReplyObject(reply);
        if (!problem.empty()) {
            finish(false, problem);
            return;
        }
        if (--replies_expected_ == 0) {
            const auto rtt = EventLoop::Clock::now() - sent_at_;
            rtt_us_ = static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::microseconds>(rtt).count());
            finish(true, {});
            return;
        }
    }
}

void RedisProbe::finish(bool success, std::string error) {
    if (deadline_timer_ != 0) {
        loop_.cancel_timer(deadline_timer_);
        deadline_timer_ = 0;
    }
    if (success) {
        phase_ = Phase::idle;
    } else {
        close_connection();
        last_error_ = std::move(error);
    }
    const bool changed = hysteresis_.record(success);
    if (success) last_error_.clear();
    if (changed) {
        if (hysteresis_.up())
            log::info("redis " + settings_.region + " " + display_name_ + " is up");
        else
            log::warning("redis " + settings_.region + " " + display_name_ + " is down: " + last_error_);
        if (on_change_) on_change_();
    }
}

void RedisProbe::close_connection() {
    if (fd_ >= 0) {
        loop_.remove(fd_);
        ::close(fd_);
        fd_ = -1;
    }
    if (reader_ != nullptr) {
        redisReaderFree(reader_);
        reader_ = nullptr;
    }
    phase_ = Phase::idle;
    output_.clear();
    output_sent_ = 0;
    replies_expected_ = 0;
}

}  // namespace regiond::daemon
