// NativeClient: one rgd_client per JavaScript client, driven by libregiond's
// event-loop interface. Calls are started without blocking (rgd_start_*), the
// client's one descriptor (rgd_event_fd) is watched by a uv_poll_t on the
// environment's libuv loop, and each readable event collects every finished
// call (rgd_collect until NULL) and settles its promise. No thread of the
// libuv pool is ever used: a process may have any number of calls in flight.
#pragma once

#include <napi.h>
#include <regiond/client.h>
#include <uv.h>

#include <unordered_map>

namespace regiond_node {

class NativeClient;

// What a NativeClient owns outside the JavaScript heap. It outlives the
// NativeClient when needed: the poll handle can only be freed in its close
// callback, one loop turn after uv_close, and the environment may go away
// (worker exit, process exit) before or after the JavaScript object does.
struct Connection {
    enum class Teardown { ByCaller, ByFinalizer, ByEnvironmentExit };

    napi_env env = nullptr;
    rgd_client* client = nullptr;
    uv_poll_t poll{};
    bool polling = false;       // uv_poll_start succeeded
    bool loop_ref = false;      // poll handle ref'd (calls pending)
    bool closing = false;       // shut down; freed by the poll's close callback
    NativeClient* owner = nullptr;
    napi_async_context async_context = nullptr;
    napi_async_cleanup_hook_handle cleanup_hook = nullptr;
    std::unordered_map<rgd_call_id, napi_deferred> calls;  // started, not settled

    // Collects every finished call and settles its promise.
    void drain();
    // Refs the loop (and keeps the JavaScript object alive) exactly while calls
    // are pending, so an idle process exits by itself.
    void update_ref();
    void shutdown(Teardown how);
};

class NativeClient : public Napi::ObjectWrap<NativeClient> {
public:
    static Napi::Function define(Napi::Env env);
    explicit NativeClient(const Napi::CallbackInfo& info);  // (socket: string|null, timeoutMs: number)
    ~NativeClient() override;

    Connection* connection = nullptr;  // null once closed
    bool object_ref = false;           // ObjectWrap::Ref() held while calls are pending

private:
    Napi::Value read_local(const Napi::CallbackInfo& info);       // (sql, params)
    Napi::Value read_primary(const Napi::CallbackInfo& info);     // (sql, params)
    Napi::Value write(const Napi::CallbackInfo& info);            // (sql, params, keys)
    Napi::Value read_consistent(const Napi::CallbackInfo& info);  // (token, sql, params)
    Napi::Value cached_read(const Napi::CallbackInfo& info);      // (key, ttl, sql, params)
    Napi::Value health(const Napi::CallbackInfo& info);           // () -> Result, synchronous
    Napi::Value close(const Napi::CallbackInfo& info);
    Napi::Value pending(const Napi::CallbackInfo& info);

    // The promise of a started call (or a rejected one when it could not start).
    Napi::Value track(Napi::Env env, rgd_call_id id);
    bool usable() const { return connection != nullptr && !connection->closing; }
};

}  // namespace regiond_node
