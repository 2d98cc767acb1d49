#include "daemon/redis/redis_connection.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/un.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "daemon/text.hpp"

namespace regiond::daemon {
namespace {

// The connection whose input hiredis is parsing right now (set around
// redisAsyncHandleRead, on the loop's one thread): the reply-object guards run
// inside hiredis' reader and have no other way to find it.
thread_local RedisConnection* t_parsing = nullptr;

// hiredis' own reply-object functions (one static table, the same for every
// context), captured from the first context; the guards delegate to them.
redisReplyObjectFunctions* g_hiredis_functions = nullptr;


}  // namespace

ResolvedRedis resolve_redis(const config::RedisEndpoint& endpoint) {
    ResolvedRedis out;
    if (endpoint.transport == config::RedisEndpoint::Transport::unix_socket) {
        if (endpoint.socket_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
            out.error = "socket path too long";
            return out;
        }
        out.target.unix_socket = true;
        out.target.path = endpoint.socket_path;
        return out;
    }
    out.target.port = endpoint.port;
    in_addr v4{};
    in6_addr v6{};
    if (inet_pton(AF_INET, endpoint.host.c_str(), &v4) == 1 || inet_pton(AF_INET6, endpoint.host.c_str(), &v6) == 1) {
        out.target.address = endpoint.host;
        return out;
    }
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const int rc = getaddrinfo(endpoint.host.c_str(), std::to_string(endpoint.port).c_str(), &hints, &found);
    if (rc != 0 || found == nullptr) {
        out.error = "cannot resolve " + endpoint.host + ": " + gai_strerror(rc);
        return out;
    }
    char text[INET6_ADDRSTRLEN] = {};
    const void* address =
        found->ai_family == AF_INET6
            ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in6*>(found->ai_addr)->sin6_addr)
            : static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(found->ai_addr)->sin_addr);
    if (inet_ntop(found->ai_family, address, text, sizeof text) == nullptr)
        out.error = "cannot resolve " + endpoint.host + ": " + std::strerror(errno);
    else
        out.target.address = text;
    freeaddrinfo(found);
    return out;
}

bool RedisReply::is_error() const noexcept {
    return reply_ != nullptr && reply_->type == REDIS_REPLY_ERROR;
}

bool RedisReply::is_status(std::string_view status) const noexcept {
    return reply_ != nullptr && reply_->type == REDIS_REPLY_STATUS && text() == status;
}

std::string_view RedisReply::text() const noexcept {
    if (reply_ == nullptr || reply_->str == nullptr) return {};
    switch (reply_->type) {
        case REDIS_REPLY_STRING:
        case REDIS_REPLY_STATUS:
        case REDIS_REPLY_ERROR: return {reply_->str, reply_->len};
        default: return {};
    }
}

RedisConnection::RedisConnection(EventLoop& loop, const RedisTarget& target, RedisConnectionSettings settings,
                                 Hooks hooks)
    : loop_(loop), settings_(settings), hooks_(std::move(hooks)), scope_(loop) {
    redisAsyncContext* ac = target.unix_socket ? redisAsyncConnectUnix(target.path.c_str())
                                               : redisAsyncConnect(target.address.c_str(), target.port);
    if (ac == nullptr) {
        fail_later("connect: out of memory");
        return;
    }
    if (ac->err != 0) {
        std::string reason = std::string("connect: ") + ac->errstr;
        redisAsyncFree(ac);  // nothing attached yet
        fail_later(std::move(reason));
        return;
    }
    ::fcntl(ac->c.fd, F_SETFD, FD_CLOEXEC);  // hiredis 0.14 does not set it

    // The adapter: hiredis' interest in the socket becomes the Watch's events.
    ac->data = this;
    ac->ev.data = this;
    ac->ev.addRead = &add_read;
    ac->ev.delRead = &del_read;
    ac->ev.addWrite = &add_write;
    ac->ev.delWrite = &del_write;
    ac->ev.cleanup = &cleanup;
    redisAsyncSetConnectCallback(ac, &on_connect);

    if (g_hiredis_functions == nullptr) g_hiredis_functions = ac->c.reader->fn;
    default_functions_ = ac->c.reader->fn;
    guard_functions_ = std::make_unique<redisReplyObjectFunctions>(*default_functions_);
    guard_functions_->createString = &guard_string;
    guard_functions_->createArray = &guard_array;
    guard_functions_->createInteger = &guard_integer;
    guard_functions_->createNil = &guard_nil;
    ac->c.reader->fn = guard_functions_.get();

    context_ = ac;
    // Write interest from the start: writability is how a non-blocking connect
    // completes (hiredis checks SO_ERROR then).
    want_read_ = true;
    want_write_ = true;
    watch_ = loop_.watch(ac->c.fd, EPOLLIN | EPOLLOUT, [this](std::uint32_t events) { on_events(events); });
    connect_timer_ = loop_.timer(loop_duration(settings_.connect_timeout), [this] {
        fail("connect timed out after " + format_duration(settings_.connect_timeout));
    });
}

RedisConnection::~RedisConnection() {
    release_context();
}

void RedisConnection::release_context() {
    redisAsyncContext* ac = context_;
    if (ac == nullptr) return;
    context_ = nullptr;
    connected_ = false;
    // hiredis may still run parts of its free later (when this is called from a
    // reply callback, redisAsyncFree only marks the context and hiredis frees it
    // once the callback returns): nothing it calls then may reach this object.
    ac->data = nullptr;
    ac->ev.addRead = nullptr;
    ac->ev.delRead = nullptr;
    ac->ev.addWrite = nullptr;
    ac->ev.delWrite = nullptr;
    ac->ev.cleanup = nullptr;
    ac->ev.data = nullptr;
    if (ac->c.reader != nullptr && default_functions_ != nullptr) ac->c.reader->fn = default_functions_;
    if (t_parsing == this) t_parsing = nullptr;
    watch_.reset();  // before hiredis closes the descriptor
    redisAsyncFree(ac);
}

// ---- the adapter -------------------------------------------------------------

void RedisConnection::update_interest() {
    if (!watch_.active()) return;
    watch_.set_events((want_read_ ? EPOLLIN : 0u) | (want_write_ ? EPOLLOUT : 0u));
}

void RedisConnection::add_read(void* privdata) {
    auto* self = static_cast<RedisConnection*>(privdata);
    self->want_read_ = true;
    self->update_interest();
}
void RedisConnection::del_read(void* privdata) {
    auto* self = static_cast<RedisConnection*>(privdata);
    self->want_read_ = false;
    self->update_interest();
}
void RedisConnection::add_write(void* privdata) {
    auto* self = static_cast<RedisConnection*>(privdata);
    self->want_write_ = true;
    self->update_interest();
}
void RedisConnection::del_write(void* privdata) {
    auto* self = static_cast<RedisConnection*>(privdata);
    self->want_write_ = false;
    self->update_interest();
}

// hiredis is freeing the context on its own (connect failed, EOF, I/O or protocol
// error); the descriptor is closed right after this returns.
void RedisConnection::cleanup(void* privdata) {
    auto* self = static_cast<RedisConnection*>(privdata);
    redisAsyncContext* ac = self->context_;
    if (ac != nullptr) {
        const char* what = ac->c.err != 0 ? ac->c.errstr : "connection closed";
        self->hiredis_error_ = self->connected_ ? std::string(what) : std::string("connect: ") + what;
    }
    self->watch_.reset();
    self->context_ = nullptr;
    self->connected_ = false;
    self->context_gone_ = true;
    if (t_parsing == self) t_parsing = nullptr;
}

void RedisConnection::on_connect(const redisAsyncContext* ac, int status) {
    auto* self = static_cast<RedisConnection*>(ac->data);
    if (self == nullptr || status != REDIS_OK) return;  // a failure: cleanup() follows
    self->connected_ = true;
    self->just_connected_ = true;
}

void RedisConnection::on_reply(redisAsyncContext* ac, void* reply, void*) {
    auto* self = static_cast<RedisConnection*>(ac->data);
    // A null reply: hiredis is freeing the context; fail() reports the outstanding
    // commands once hiredis has returned. (A confirmation in front cannot happen:
    // no command is queued behind a SUBSCRIBE, and replies come in order.)
    if (self == nullptr || reply == nullptr || self->pending_.empty() || self->pending_.front().confirmation) return;
    Pending pending = std::move(self->pending_.front());
    self->pending_.pop_front();
    self->arm_reply_timer();
    if (pending.callback) pending.callback(RedisReply(static_cast<const redisReply*>(reply)));
    // `self` may be gone here.
}

// A subscription's reply, routed here by hiredis from its channel table (never
// with a failure: a null reply means hiredis is freeing the context).
void RedisConnection::on_push(redisAsyncContext* ac, void* reply, void*) {
    auto* self = static_cast<RedisConnection*>(ac->data);
    if (self == nullptr || reply == nullptr) return;
    const auto* r = static_cast<const redisReply*>(reply);
    // The guards let nothing else through; checked again because the code below
    // dereferences it.
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_STRING)
        return;
    const std::string_view kind(r->element[0]->str, r->element[0]->len);
    const std::string_view channel(r->element[1]->str, r->element[1]->len);
    // A SUBSCRIBE is confirmed by ["subscribe", channel, count] only: anything
    // else leaves it outstanding (and the reply timeout ends the connection).
    const bool confirms = kind.size() == 9 && ::strncasecmp(kind.data(), "subscribe", 9) == 0 && r->elements == 3 &&
                          r->element[2]->type == REDIS_REPLY_INTEGER;
    if (confirms && !self->pending_.empty() && self->pending_.front().confirmation) {
        self->pending_.pop_front();
        self->arm_reply_timer();
    }
    const auto it = self->subscriptions_.find(channel);
    if (it == self->subscriptions_.end() || !it->second) return;
    // A copy: the callback may replace itself (subscribe()) or destroy this.
    const PushCallback callback = it->second;
    callback(RedisReply(r));
    // `self` may be gone here.
}

void RedisConnection::on_events(std::uint32_t events) {
    const auto alive = scope_.token();
    if (context_ != nullptr && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) {
        RedisConnection* const outer = t_parsing;
        t_parsing = this;
        redisAsyncHandleRead(context_);  // may run reply callbacks, which may destroy this
        t_parsing = outer;
        if (alive.expired()) return;
    }
    if (context_ != nullptr && want_write_ && (events & EPOLLOUT) != 0) {
        redisAsyncHandleWrite(context_);
        if (alive.expired()) return;
    }
    after_hiredis();
}

// What hiredis noticed, reported now that it has returned.
void RedisConnection::after_hiredis() {
    if (context_gone_) {
        context_gone_ = false;
        fail(!guard_error_.empty() ? guard_error_ : hiredis_error_);
        return;
    }
    if (just_connected_) {
        just_connected_ = false;
        connect_timer_.cancel();
        connected_at_ = EventLoop::Clock::now();
        arm_reply_timer();
        if (hooks_.on_connected) {
            const auto alive = scope_.token();
            hooks_.on_connected();
            if (alive.expired() || context_ == nullptr) return;
        }
    }
    if (context_ != nullptr && context_->c.reader != nullptr) {
        const redisReader* reader = context_->c.reader;
        if (reader->len - reader->pos > settings_.max_buffered_bytes)
            fail("a reply larger than " + format_size(settings_.max_buffered_bytes));
    }
}

// ---- reply guards ----------------------------------------------------------
// hiredis 0.14 asserts (aborts the process) on a reply that arrives when no
// command waits for one on a connection that is not subscribed, and on a
// subscribed connection on a push reply that is an array of fewer than 2, whose
// first two elements are not bulk strings, or an "unsubscribe" without an
// integer third; a push for a channel it has no callback for, a "pong" or any
// non-array is either dropped or handed to whatever callback it ran last
// (its callback variable outlives the loop over replies: seen with PING in
// subscribe mode). Refusing to build the object turns it into a reader error,
// which hiredis handles as a disconnect; guard_error_ says why.

RedisConnection::Placement RedisConnection::placement(const redisReadTask* task) {
    using Kind = Placement::Kind;
    RedisConnection* self = t_parsing;
    if (self == nullptr || self->context_ == nullptr) return {};
    const redisAsyncContext* ac = self->context_;
    // A command waits for this reply (replies come in order): hiredis hands it
    // to that command's callback, whatever it is.
    if (ac->replies.head != nullptr || (ac->c.flags & REDIS_MONITORING) != 0) return {};
    const bool subscribed = (ac->c.flags & REDIS_SUBSCRIBED) != 0;
    if (task->parent == nullptr) return {subscribed ? Kind::push : Kind::unsolicited, 0};
    if (subscribed && task->parent->parent == nullptr) return {Kind::push_element, task->idx};
    return {};
}

bool RedisConnection::refuse(std::string why) {
    if (t_parsing != nullptr && t_parsing->guard_error_.empty()) t_parsing->guard_error_ = std::move(why);
    return true;
}

bool RedisConnection::refuse_string(const redisReadTask* task, std::string_view text) {
    using Kind = Placement::Kind;
    const Placement where = placement(task);
    switch (where.kind) {
        case Kind::checked_by_hiredis: return false;
        case Kind::unsolicited: return refuse("protocol error: a reply nobody asked for");
        case Kind::push:
            if (task->type == REDIS_REPLY_ERROR) return refuse("server answered: " + std::string(text.substr(0, 200)));
            return refuse("protocol error: a reply nobody asked for");
        case Kind::push_element:
            if (where.index == 0) {
                const bool known = (text.size() == 9 && ::strncasecmp(text.data(), "subscribe", 9) == 0) ||
                                   (text.size() == 7 && ::strncasecmp(text.data(), "message", 7) == 0);
                if (task->type != REDIS_REPLY_STRING || !known)
                    return refuse("protocol error: a push reply of an unexpected kind");
            } else if (where.index == 1) {
                if (task->type != REDIS_REPLY_STRING || !t_parsing->subscriptions_.contains(text))
                    return refuse("protocol error: a push reply for a channel not subscribed");
            }
            return false;
    }
    return false;
}

bool RedisConnection::refuse_other(const redisReadTask* task, int object_type, int elements) {
    using Kind = Placement::Kind;
    const Placement where = placement(task);
    switch (where.kind) {
        case Kind::checked_by_hiredis: return false;
        case Kind::unsolicited: return refuse("protocol error: a reply nobody asked for");
        case Kind::push:
            // (A nil array "*-1" has task->type ARRAY but is built by createNil.)
            if (object_type != REDIS_REPLY_ARRAY) return refuse("protocol error: a reply nobody asked for");
            if (elements < 2)
                return refuse("protocol error: a push reply of " + std::to_string(elements) + " elements");
            return false;
        case Kind::push_element:
            if (where.index < 2) return refuse("protocol error: a push reply of an unexpected kind");
            return false;
    }
    return false;
}

void* RedisConnection::guard_string(const redisReadTask* task, char* str, std::size_t len) {
    if (refuse_string(task, std::string_view(str, len))) return nullptr;
    return g_hiredis_functions->createString(task, str, len);
}

void* RedisConnection::guard_array(const redisReadTask* task, int elements) {
    RedisConnection* self = t_parsing;
    if (self != nullptr && elements > self->settings_.max_array_elements) {
        refuse("protocol error: an array of " + std::to_string(elements) + " elements");
        return nullptr;
    }
    if (refuse_other(task, REDIS_REPLY_ARRAY, elements)) return nullptr;
    return g_hiredis_functions->createArray(task, elements);
}

void* RedisConnection::guard_integer(const redisReadTask* task, long long value) {
    if (refuse_other(task, REDIS_REPLY_INTEGER, 0)) return nullptr;
    return g_hiredis_functions->createInteger(task, value);
}

void* RedisConnection::guard_nil(const redisReadTask* task) {
    if (refuse_other(task, REDIS_REPLY_NIL, 0)) return nullptr;
    return g_hiredis_functions->createNil(task);
}

// ---- commands and failures -------------------------------------------------

void RedisConnection::command(std::span<const std::string_view> args, ReplyCallback callback) {
    if (!subscriptions_.empty()) {
        // hiredis would queue it where no reply ever finds it (see the guards).
        scope_.defer([callback = std::move(callback)] {
            if (callback) callback(RedisReply(std::string_view("a subscribed connection takes no other commands")));
        });
        return;
    }
    if (closed_) {
        scope_.defer([this, callback = std::move(callback)] {
            const std::string reason = close_reason_;
            if (callback) callback(RedisReply(std::string_view(reason)));
        });
        return;
    }
    if (context_ == nullptr) {  // failed at creation; fail_later() reports it
        pending_.push_back({std::move(callback), EventLoop::Clock::now()});
        return;
    }
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    argv.reserve(args.size());
    lengths.reserve(args.size());
    for (std::string_view a : args) {
        argv.push_back(a.data());
        lengths.push_back(a.size());
    }
    if (redisAsyncCommandArgv(context_, &on_reply, nullptr, static_cast<int>(argv.size()), argv.data(),
                              lengths.data()) != REDIS_OK) {
        scope_.defer([callback = std::move(callback)] {
            if (callback) callback(RedisReply(std::string_view("the connection is closing")));
        });
        return;
    }
    pending_.push_back({std::move(callback), EventLoop::Clock::now()});
    if (pending_.size() == 1) arm_reply_timer();
}

void RedisConnection::subscribe(std::string_view channel, PushCallback callback) {
    auto it = subscriptions_.find(channel);
    if (it == subscriptions_.end())
        subscriptions_.emplace(std::string(channel), std::move(callback));
    else
        it->second = std::move(callback);
    if (closed_) return;        // on_closed has reported it, or will
    if (context_ == nullptr) {  // failed at creation; fail_later() reports it
        pending_.push_back({{}, EventLoop::Clock::now(), true});
        return;
    }
    const char* argv[] = {"SUBSCRIBE", channel.data()};
    const std::size_t lengths[] = {9, channel.size()};
    // hiredis keeps one callback per channel (replacing it when subscribed again)
    // and calls it for every reply about that channel.
    if (redisAsyncCommandArgv(context_, &on_push, nullptr, 2, argv, lengths) != REDIS_OK) {
        fail_later("the connection is closing");
        return;
    }
    pending_.push_back({{}, EventLoop::Clock::now(), true});
    if (pending_.size() == 1) arm_reply_timer();
}

void RedisConnection::close(std::string reason) {
    fail_later(std::move(reason));
}

void RedisConnection::arm_reply_timer() {
    if (!connected_ || pending_.empty()) {
        reply_timer_.cancel();
        return;
    }
    const auto start = std::max(pending_.front().issued_at, connected_at_);
    reply_timer_ = loop_.timer(start + loop_duration(settings_.reply_timeout),
                               [this] { fail("no reply within " + format_duration(settings_.reply_timeout)); });
}

void RedisConnection::fail_later(std::string reason) {
    scope_.defer([this, reason = std::move(reason)] { fail(reason); });
}

void RedisConnection::fail(std::string reason) {
    if (closed_) return;
    release_context();
    closed_ = true;
    close_reason_ = reason;
    connect_timer_.cancel();
    reply_timer_.cancel();
    std::deque<Pending> pending = std::move(pending_);
    pending_.clear();
    const auto alive = scope_.token();
    for (Pending& p : pending) {
        if (p.callback) p.callback(RedisReply(std::string_view(reason)));
        if (alive.expired()) return;
    }
    if (hooks_.on_closed) hooks_.on_closed(reason);
}

}  // namespace regiond::daemon
