// A tiny fake Redis for unit tests, served from the test's own EventLoop on a
// loopback port: it parses the commands a client sends (RESP arrays of bulk
// strings) and answers according to its behaviour. Behaviour::server is a small
// Redis of its own (GET, SET, DEL, PUBLISH, SUBSCRIBE and pushed messages, PING,
// AUTH, SELECT); publish() and push_raw() let a test send what a server would
// push, well-formed or not. Test code only: the daemon itself never reads or
// writes RESP (hiredis does).
#pragma once

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "daemon/event_loop.hpp"
#include "shm/unique_fd.hpp"

namespace regiond::daemon::testing {

class FakeRedis {
public:
    enum class Behaviour {
        script,   // the next entry of `replies` (the last one repeats) per command
        echo,     // a bulk string holding the command's last word
        silent,   // reads commands, never answers
        close,    // closes the connection when a command arrives
        garbage,  // answers every command with `garbage`
        server,   // a small in-memory Redis (see the header comment)
    };

    /// Listens on `port` (0: a free one; another: a server coming back where an
    /// earlier one was).
    explicit FakeRedis(EventLoop& loop, int backlog = 8, std::uint16_t at_port = 0) : loop_(loop) {
        listener_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        const int one = 1;
        REQUIRE(::setsockopt(listener_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        address.sin_port = htons(at_port);
        REQUIRE(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        socklen_t length = sizeof address;
        REQUIRE(::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0);
        port = ntohs(address.sin_port);
        REQUIRE(::listen(listener_.get(), backlog) == 0);
        loop_.add(listener_.get(), EPOLLIN, [this](std::uint32_t) { accept(); });
    }
    ~FakeRedis() { stop(); }
    FakeRedis(const FakeRedis&) = delete;
    FakeRedis& operator=(const FakeRedis&) = delete;

    /// Closes every connection and the listener.
    void stop() {
        drop_connections();
        if (listener_) {
            loop_.remove(listener_.get());
            listener_.reset();
        }
    }
    /// Closes every connection; keeps listening.
    void drop_connections() {
        for (auto& [fd, c] : connections_) {
            loop_.remove(fd);
            ::close(fd);
        }
        connections_.clear();
    }

    std::uint16_t port = 0;
    Behaviour behaviour = Behaviour::script;
    std::vector<std::string> replies = {"+PONG\r\n"};  // raw RESP, for Behaviour::script
    std::string garbage = "!not a reply\r\n";
    /// Hold the answers until this many commands have arrived on the connection,
    /// then send them all in one write (proves the client pipelines).
    std::size_t answer_after = 1;
    /// Answers leave this long after they are due (a slow server or link).
    std::chrono::milliseconds delay{0};
    /// Close a connection after answering this many commands on it (0: never).
    std::size_t close_after = 0;

    std::vector<std::vector<std::string>> commands;  // every command seen, word by word
    std::size_t accepted = 0;
    std::size_t largest_batch = 0;  // most commands answered in one write
    std::size_t largest_read = 0;   // most commands that came in one read

    // Behaviour::server: the data, and what it refuses.
    std::map<std::string, std::string> store;
    std::map<std::string, std::string> ttls;         // key -> the PX argument of its last SET
    std::optional<std::string> password;             // AUTH must give it; until then -NOAUTH
    std::set<std::string> failing;                   // commands answered with -ERR injected failure
    std::string subscribe_reply_kind = "subscribe";  // the first word of a SUBSCRIBE's confirmation

    /// Behaviour::server: ["message", channel, payload] to every connection
    /// subscribed to `channel`; returns how many.
    std::size_t publish(const std::string& channel, const std::string& payload) {
        std::size_t receivers = 0;
        for (auto& [fd, c] : connections_)
            if (c.channels.count(channel) != 0) {
                send(fd, push_message("message", channel, bulk(payload)));
                ++receivers;
            }
        return receivers;
    }
    /// Raw bytes to every subscribed connection (malformed pushes).
    void push_raw(const std::string& bytes) {
        for (auto& [fd, c] : connections_)
            if (!c.channels.empty()) send(fd, bytes);
    }
    /// Connections subscribed to something.
    std::size_t subscribers() const {
        std::size_t n = 0;
        for (const auto& [fd, c] : connections_) n += c.channels.empty() ? 0 : 1;
        return n;
    }

    static std::string bulk(const std::string& s) { return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n"; }
    static std::string push_message(const std::string& kind, const std::string& channel, const std::string& third) {
        return "*3\r\n" + bulk(kind) + bulk(channel) + third;
    }

private:
    struct Connection {
        std::string in;
        std::string out;
        std::size_t held = 0;
        std::size_t answered = 0;
        std::set<std::string> channels;  // Behaviour::server: SUBSCRIBEd
        bool authenticated = false;
    };

    void accept() {
        const int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        ++accepted;
        connections_[fd] = {};
        loop_.add(fd, EPOLLIN, [this, fd](std::uint32_t) { read(fd); });
    }

    void close(int fd) {
        loop_.remove(fd);
        ::close(fd);
        connections_.erase(fd);
    }

    void read(int fd) {
        char buffer[4096];
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) {
            close(fd);
            return;
        }
        Connection& c = connections_[fd];
        c.in.append(buffer, static_cast<std::size_t>(n));
        std::vector<std::string> words;
        std::size_t in_this_read = 0;
        while (parse_one(c.in, words)) {
            commands.push_back(words);
            largest_read = std::max(largest_read, ++in_this_read);
            if (behaviour == Behaviour::close) {
                close(fd);
                return;
            }
            c.out += behaviour == Behaviour::server ? serve(c, words) : answer(words);
            ++c.held;
            ++c.answered;
            if (c.held >= answer_after) flush(fd, c);
            if (close_after != 0 && c.answered >= close_after) {
                close(fd);
                return;
            }
        }
    }

    void flush(int fd, Connection& c) {
        largest_batch = std::max(largest_batch, c.held);
        c.held = 0;
        if (c.out.empty()) return;
        std::string out = std::move(c.out);
        c.out.clear();
        if (delay.count() == 0) {
            send(fd, out);
            return;
        }
        const std::uint64_t serial = loop_.registration_serial(fd);
        timers_.push_back(loop_.timer(delay, [this, fd, serial, out] {
            if (loop_.registration_serial(fd) == serial) send(fd, out);
        }));
    }

    static void send(int fd, const std::string& out) {
        [[maybe_unused]] const ssize_t sent = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
    }

    std::string answer(const std::vector<std::string>& words) {
        switch (behaviour) {
            case Behaviour::script: {
                const std::string& r = replies.at(std::min(replied_, replies.size() - 1));
                ++replied_;
                return r;
            }
            case Behaviour::echo: {
                const std::string& w = words.empty() ? std::string() : words.back();
                return "$" + std::to_string(w.size()) + "\r\n" + w + "\r\n";
            }
            case Behaviour::garbage: return garbage;
            case Behaviour::silent:
            case Behaviour::close:
            case Behaviour::server: return {};
        }
        return {};
    }

    std::string serve(Connection& c, const std::vector<std::string>& words) {
        if (words.empty()) return "-ERR empty command\r\n";
        std::string name = words[0];
        for (char& ch : name) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        if (failing.count(name) != 0) return "-ERR injected failure\r\n";
        if (name == "AUTH") {
            if (password && words.size() == 2 && words[1] == *password) {
                c.authenticated = true;
                return "+OK\r\n";
            }
            return "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
        }
        if (password && !c.authenticated) return "-NOAUTH Authentication required.\r\n";
        if (name == "SUBSCRIBE") {
            std::string out;
            for (std::size_t i = 1; i < words.size(); ++i) {
                c.channels.insert(words[i]);
                out += push_message(subscribe_reply_kind, words[i], ":" + std::to_string(c.channels.size()) + "\r\n");
            }
            return out;
        }
        if (!c.channels.empty()) {
            if (name == "PING") return "*2\r\n" + bulk("pong") + bulk("");
            return "-ERR Can't execute '" + words[0] +
                   "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n";
        }
        if (name == "PING") return "+PONG\r\n";
        if (name == "SELECT") return "+OK\r\n";
        if (name == "GET" && words.size() == 2) {
            const auto it = store.find(words[1]);
            return it == store.end() ? "$-1\r\n" : bulk(it->second);
        }
        if (name == "SET" && words.size() >= 3) {
            store[words[1]] = words[2];
            if (words.size() == 5) ttls[words[1]] = words[4];
            return "+OK\r\n";
        }
        if (name == "DEL") {
            std::size_t n = 0;
            for (std::size_t i = 1; i < words.size(); ++i) n += store.erase(words[i]);
            return ":" + std::to_string(n) + "\r\n";
        }
        if (name == "PUBLISH" && words.size() == 3) return ":" + std::to_string(publish(words[1], words[2])) + "\r\n";
        return "-ERR unknown command '" + words[0] + "'\r\n";
    }

    // One command "*N\r\n" then N bulk strings "$len\r\nword\r\n"; false when
    // incomplete (nothing consumed).
    static bool parse_one(std::string& in, std::vector<std::string>& words) {
        words.clear();
        if (in.empty()) return false;
        REQUIRE(in[0] == '*');
        auto line_end = in.find("\r\n");
        if (line_end == std::string::npos) return false;
        const int count = std::stoi(in.substr(1, line_end - 1));
        std::size_t pos = line_end + 2;
        for (int w = 0; w < count; ++w) {
            line_end = in.find("\r\n", pos);
            if (line_end == std::string::npos) return false;
            REQUIRE(in[pos] == '$');
            const std::size_t len = std::stoul(in.substr(pos + 1, line_end - pos - 1));
            pos = line_end + 2;
            if (in.size() < pos + len + 2) return false;
            words.push_back(in.substr(pos, len));
            pos += len + 2;
        }
        in.erase(0, pos);
        return true;
    }

    EventLoop& loop_;
    shm::UniqueFd listener_;
    std::map<int, Connection> connections_;
    std::size_t replied_ = 0;
    std::vector<TimerHandle> timers_;  // delayed answers; cancelled with the server
};

}  // namespace regiond::daemon::testing
