// The control socket: a unix stream socket speaking a line protocol. Each
// line is one command; each reply is one or more lines ended by ".".
#pragma once

#include "commands.hpp"
#include "event_loop.hpp"
#include "fd.hpp"
#include "net.hpp"

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace wanproxy {

class ControlServer {
public:
    // Binds `path`. A stale socket file left by a dead proxy is removed; a
    // socket that still answers, or a file that is not a socket, is an error.
    static Outcome<std::unique_ptr<ControlServer>> open(EventLoop& loop, Links& links, const std::string& path);

    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;
    // Removes the socket file, if it is still the one we created.
    ~ControlServer();

private:
    struct Session {
        Fd fd;
        std::string input;
        std::string output;
        bool peer_done = false;  // EOF read: close once the output is flushed
        Watch watch;             // after fd: unregistered before it closes
    };

    ControlServer(EventLoop& loop, Links& links, std::string path, Fd listener, dev_t dev, ino_t ino);
    void on_accept();
    void on_session_event(std::uint64_t id, std::uint32_t events);
    void flush(std::uint64_t id, Session& session);
    void end_session(std::uint64_t id);

    EventLoop& loop_;
    Links& links_;
    const std::string path_;
    const dev_t dev_;
    const ino_t ino_;
    std::map<std::uint64_t, std::unique_ptr<Session>> sessions_;
    std::uint64_t next_session_id_ = 1;
    Fd listener_;
    Watch listener_watch_;
};

}  // namespace wanproxy
