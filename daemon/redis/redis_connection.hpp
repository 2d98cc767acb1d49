// One connection to a Redis server, through hiredis' async API, run by the
// daemon's own EventLoop.
//
// hiredis formats every command (redisAsyncCommandArgv) and parses every reply;
// nothing here writes or reads RESP. The glue is a hiredis "adapter" of our own:
// hiredis asks for read/write interest through ev.addRead/delRead/addWrite/
// delWrite, which become the events of one Watch on the socket, and the loop calls
// redisAsyncHandleRead/Write back. hiredis 0.14 (Debian 12) has no timers, so the
// connect timeout and the reply timeout are TimerHandles here.
//
// Pipelining: command() only queues; any number of commands can be outstanding,
// and their replies arrive, in order, as callbacks on the loop.
//
// Every outcome reaches a command's callback exactly once: the reply, or a
// connection failure (refused, timed out, closed, protocol error) with the reason.
// Failures are never reported from inside the call that issued the command (they
// are deferred), and never from inside hiredis (hiredis is unwound first), so a
// callback may destroy the connection or issue commands. Destroying the connection
// drops the callbacks of the commands still outstanding without calling them.
//
// A connection is used once: after a failure it stays closed; make a new one to
// reconnect (RedisProbe does, with backoff).
//
// Subscribe mode (subscribe()): hiredis 0.14 routes a subscribed connection's
// replies by their content, not by order: ["subscribe"|"message", CHANNEL, ...]
// goes to the callback registered for CHANNEL, as often as such replies come.
// Those replies reach a PushCallback here, never the pending-command queue. The
// confirmation of each SUBSCRIBE still counts as one outstanding reply, so the
// reply timeout bounds it (a re-SUBSCRIBE of the same channel is how a
// subscriber proves the connection alive: see redis_subscriber.hpp for why not
// PING). Once subscribed, the connection takes no other commands.
//
// What Redis sends is not trusted: hiredis parses it, a protocol error closes the
// connection, and so does a reply nobody asked for (hiredis 0.14 would abort the
// process on one), an array longer than max_array_elements, or more than
// max_buffered_bytes of an unfinished reply. On a subscribed connection a push
// reply must also be one hiredis 0.14 can route without an assert or a stale
// callback: an array of at least 2 whose first element is the bulk string
// "subscribe" or "message" and whose second names a subscribed channel; anything
// else (an error, a non-array, "unsubscribe", "pong", another channel, ...)
// closes the connection. What the elements after the second hold is for the
// PushCallback to check.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "config/redis_url.hpp"
#include "daemon/event_loop.hpp"

struct redisAsyncContext;
struct redisReply;
struct redisReadTask;
struct redisReplyObjectFunctions;

namespace regiond::daemon {

/// Where to connect, in a form hiredis uses without a DNS lookup (a numeric
/// address or a socket path).
struct RedisTarget {
    bool unix_socket = false;
    std::string address;  // numeric IPv4 or IPv6 (tcp)
    int port = 0;         // tcp
    std::string path;     // unix socket
};

struct ResolvedRedis {
    RedisTarget target;
    std::string error;  // empty when resolved
};

/// A name is resolved here with getaddrinfo, which may block: call it before the
/// loop serves (the daemon does, when it builds its backends).
ResolvedRedis resolve_redis(const config::RedisEndpoint& endpoint);

struct RedisConnectionSettings {
    std::chrono::nanoseconds connect_timeout{std::chrono::seconds(2)};
    /// How long the oldest outstanding command may wait for its reply.
    std::chrono::nanoseconds reply_timeout{std::chrono::seconds(2)};
    /// An unfinished reply buffered beyond this closes the connection.
    std::size_t max_buffered_bytes = 64 * 1024 * 1024;
    int max_array_elements = 1 << 20;
};

/// A command's outcome, valid only during its callback.
class RedisReply {
public:
    explicit RedisReply(const redisReply* reply) noexcept : reply_(reply) {}
    explicit RedisReply(std::string_view failure) noexcept : failure_(failure) {}

    /// False when the connection failed before the reply came (failure() says why).
    [[nodiscard]] bool arrived() const noexcept { return reply_ != nullptr; }
    [[nodiscard]] std::string_view failure() const noexcept { return failure_; }
    /// The parsed reply (hiredis' object); null when !arrived().
    [[nodiscard]] const redisReply* raw() const noexcept { return reply_; }
    /// An error reply from the server ("-ERR ...").
    [[nodiscard]] bool is_error() const noexcept;
    /// A status reply equal to `status` ("+PONG", "+OK").
    [[nodiscard]] bool is_status(std::string_view status) const noexcept;
    /// The text of a string, status or error reply; empty otherwise.
    [[nodiscard]] std::string_view text() const noexcept;

private:
    const redisReply* reply_ = nullptr;
    std::string_view failure_;
};

class RedisConnection {
public:
    using ReplyCallback = std::function<void(const RedisReply&)>;
    /// A subscription's replies; the reply has passed the push checks (header).
    using PushCallback = std::function<void(const RedisReply&)>;

    struct Hooks {
        /// The connection is established (commands may have been queued before).
        std::function<void()> on_connected;
        /// The connection failed or was closed by the server; after the callbacks
        /// of the outstanding commands.
        std::function<void(const std::string& reason)> on_closed;
    };

    /// Starts connecting at once (non-blocking).
    RedisConnection(EventLoop& loop, const RedisTarget& target, RedisConnectionSettings settings, Hooks hooks);
    ~RedisConnection();
    RedisConnection(const RedisConnection&) = delete;
    RedisConnection& operator=(const RedisConnection&) = delete;

    /// Queues one command (hiredis formats it: binary-safe arguments). The callback
    /// runs exactly once on the loop, unless the connection is destroyed first.
    void command(std::span<const std::string_view> args, ReplyCallback callback);
    void command(std::initializer_list<std::string_view> args, ReplyCallback callback) {
        command(std::span<const std::string_view>(args.begin(), args.size()), std::move(callback));
    }

    /// SUBSCRIBE `channel` (formatted by hiredis). From then on the connection is
    /// in subscribe mode: every reply for the channel (the confirmation
    /// ["subscribe", channel, count], then each ["message", channel, payload])
    /// reaches `callback` on the loop, any number of times, until the connection
    /// closes (on_closed reports that; `callback` never gets a failure). Calling it
    /// again for the same channel sends SUBSCRIBE again (Redis confirms again) and
    /// replaces the callback. Commands queued before the first subscribe() get
    /// their replies as usual; command() after it fails (deferred).
    void subscribe(std::string_view channel, PushCallback callback);

    /// Closes the connection as a failure would: soon (on the loop, never inside
    /// this call), the outstanding commands' callbacks get `reason`, then
    /// on_closed. Nothing if already closed.
    void close(std::string reason);

    [[nodiscard]] bool connected() const noexcept { return connected_; }
    /// subscribe() was called.
    [[nodiscard]] bool subscribed() const noexcept { return !subscriptions_.empty(); }
    /// Connecting or connected (not failed).
    [[nodiscard]] bool open() const noexcept { return !closed_; }
    /// Commands sent or queued whose replies have not come yet.
    [[nodiscard]] std::size_t outstanding() const noexcept { return pending_.size(); }
    /// Why the connection closed; empty while open.
    [[nodiscard]] const std::string& close_reason() const noexcept { return close_reason_; }

private:
    struct Pending {
        ReplyCallback callback;
        EventLoop::Clock::time_point issued_at;
        bool confirmation = false;  // a SUBSCRIBE's: answered through on_push
    };
    // Where an object hiredis' reader is about to build sits (see the guards).
    struct Placement {
        enum class Kind : std::uint8_t { checked_by_hiredis, unsolicited, push, push_element };
        Kind kind = Kind::checked_by_hiredis;
        int index = 0;  // push_element: its index in the push reply
    };

    // hiredis hooks (C callbacks; `privdata` / ac->data is this).
    static void add_read(void* privdata);
    static void del_read(void* privdata);
    static void add_write(void* privdata);
    static void del_write(void* privdata);
    static void cleanup(void* privdata);
    static void on_connect(const redisAsyncContext* ac, int status);
    static void on_reply(redisAsyncContext* ac, void* reply, void* privdata);
    static void on_push(redisAsyncContext* ac, void* reply, void* privdata);
    // Reply-object functions wrapped around hiredis' own (see the header comment).
    static void* guard_string(const redisReadTask* task, char* str, std::size_t len);
    static void* guard_array(const redisReadTask* task, int elements);
    static void* guard_integer(const redisReadTask* task, long long value);
    static void* guard_nil(const redisReadTask* task);
    static Placement placement(const redisReadTask* task);
    /// Refuses the object (returns true) with `why` as the reason to close.
    static bool refuse(std::string why);
    /// Checks a string-like object (bulk, status or error) at its placement.
    static bool refuse_string(const redisReadTask* task, std::string_view text);
    /// Checks an array (of `elements`), integer or nil (REDIS_REPLY_*) at its placement.
    static bool refuse_other(const redisReadTask* task, int object_type, int elements);

    void update_interest();
    void on_events(std::uint32_t events);
    void after_hiredis();
    void arm_reply_timer();
    /// Detaches from the hiredis context and frees it (never from inside hiredis).
    void release_context();
    /// Closes (if open) and reports the failure to every outstanding callback and
    /// on_closed. Only from outside hiredis.
    void fail(std::string reason);
    void fail_later(std::string reason);

    EventLoop& loop_;
    RedisConnectionSettings settings_;
    Hooks hooks_;
    redisAsyncContext* context_ = nullptr;
    redisReplyObjectFunctions* default_functions_ = nullptr;      // hiredis' own
    std::unique_ptr<redisReplyObjectFunctions> guard_functions_;  // ours, around them
    Watch watch_;
    bool want_read_ = false;
    bool want_write_ = false;
    bool connected_ = false;
    bool closed_ = false;
    bool just_connected_ = false;  // set inside hiredis, reported after it returns
    bool context_gone_ = false;    // hiredis freed the context (cleanup hook ran)
    std::string hiredis_error_;    // why hiredis closed it
    std::string guard_error_;      // why a guard refused a reply
    std::deque<Pending> pending_;
    std::map<std::string, PushCallback, std::less<>> subscriptions_;
    EventLoop::Clock::time_point connected_at_{};
    TimerHandle connect_timer_;
    TimerHandle reply_timer_;
    std::string close_reason_;
    LoopScope scope_;  // last: deferred calls and tokens die first
};

}  // namespace regiond::daemon
