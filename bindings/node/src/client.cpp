#include "client.hpp"

#include <node_api.h>

#include <string>
#include <vector>

#include "convert.hpp"

namespace regiond_node {
namespace {

constexpr const char* kClosed = "client closed";

// Texts of the call's arguments, alive for the duration of one start call
// (libregiond copies sql and params into the request before returning).
// lib/client.js has already checked the types: strings, and null for SQL NULL.
class Texts {
public:
    explicit Texts(const Napi::Value& array) {
        if (!array.IsArray()) return;
        const Napi::Array a = array.As<Napi::Array>();
        const uint32_t n = a.Length();
        storage_.resize(n);
        pointers_.resize(n, nullptr);
        for (uint32_t i = 0; i < n; ++i) {
            const Napi::Value v = a.Get(i);
            if (v.IsString()) {
                storage_[i] = v.As<Napi::String>().Utf8Value();
                pointers_[i] = storage_[i].c_str();
            }
        }
    }
    int size() const { return static_cast<int>(pointers_.size()); }
    const char* const* data() const { return pointers_.empty() ? nullptr : pointers_.data(); }

private:
    std::vector<std::string> storage_;
    std::vector<const char*> pointers_;
};

std::string text(const Napi::Value& v) {
    return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

napi_value rejected(napi_env env, napi_value error) {
    napi_deferred deferred = nullptr;
    napi_value promise = nullptr;
    napi_create_promise(env, &deferred, &promise);
    napi_reject_deferred(env, deferred, error);
    return promise;
}

void on_readable(uv_poll_t* handle, int /*status*/, int /*events*/) {
    // status < 0 (e.g. EBADF) cannot be acted on here: rgd_collect reports
    // whatever the library knows as results of the calls concerned.
    static_cast<Connection*>(handle->data)->drain();
}

void on_closed(uv_handle_t* handle) {
    auto* connection = static_cast<Connection*>(handle->data);
    // Tells Node the environment's teardown may go on (when the hook ran) and
    // unregisters it otherwise: napi requires removing every hook exactly once.
    if (connection->cleanup_hook != nullptr) napi_remove_async_cleanup_hook(connection->cleanup_hook);
    delete connection;
}

void on_environment_exit(napi_async_cleanup_hook_handle /*handle*/, void* arg) {
    auto* connection = static_cast<Connection*>(arg);
    // Already closing: the poll's close callback removes the hook.
    if (!connection->closing) connection->shutdown(Connection::Teardown::ByEnvironmentExit);
}

}  // namespace

void Connection::drain() {
    if (closing) return;
    Napi::Env e(env);
    Napi::HandleScope handles(e);
    {
        // A callback scope, as for any callback from native code: the promise
        // reactions (microtasks) and process.nextTick callbacks run when it
        // closes, and async_hooks see the work as the client's.
        napi_value resource = nullptr;
        napi_create_object(env, &resource);
        napi_callback_scope scope = nullptr;
        napi_open_callback_scope(env, resource, async_context, &scope);
        rgd_call_id id = 0;
        rgd_result* r = nullptr;
        while (!closing && (r = rgd_collect(client, &id)) != nullptr) {
            const auto it = calls.find(id);
            if (it == calls.end()) {  // not ours (cannot happen): drop it
                rgd_free(r);
                continue;
            }
            const napi_deferred deferred = it->second;
            calls.erase(it);
            napi_handle_scope per_call = nullptr;
            napi_open_handle_scope(env, &per_call);
            if (rgd_ok(r) != 0)
                napi_resolve_deferred(env, deferred, result_to_js(env, r));
            else
                napi_reject_deferred(env, deferred, error_from_result(env, r));
            napi_close_handle_scope(env, per_call);
            rgd_free(r);
        }
        if (!closing) update_ref();
        // Runs the microtasks: user code may close the client or start calls
        // here; the Connection stays allocated until the poll's close callback.
        napi_close_callback_scope(env, scope);
    }
}

void Connection::update_ref() {
    const bool want = !calls.empty();
    if (want == loop_ref) return;
    loop_ref = want;
    if (want) {
        uv_ref(reinterpret_cast<uv_handle_t*>(&poll));
    } else {
        uv_unref(reinterpret_cast<uv_handle_t*>(&poll));
    }
    // While calls are pending the JavaScript object must not be collected
    // (its promises would never settle); idle, it may be.
    if (owner != nullptr && want != owner->object_ref) {
        owner->object_ref = want;
        if (want) {
            owner->Ref();
        } else {
            owner->Unref();
        }
    }
}

void Connection::shutdown(Teardown how) {
    if (closing) return;
    closing = true;
    std::unordered_map<rgd_call_id, napi_deferred> unsettled;
    unsettled.swap(calls);
    // Tell the daemon to stop working on what nobody waits for any more.
    for (const auto& [id, deferred] : unsettled) rgd_cancel(client, id);
    // uv_close stops watching the descriptor at once (epoll DEL); only then
    // may rgd_disconnect close it. The memory goes in the close callback.
    if (polling) {
        uv_close(reinterpret_cast<uv_handle_t*>(&poll), on_closed);
    }
    rgd_disconnect(client);
    client = nullptr;

    if (owner != nullptr) {
        if (owner->object_ref && how != Teardown::ByEnvironmentExit) owner->Unref();
        owner->object_ref = false;
        owner->connection = nullptr;
        owner = nullptr;
    }
    if (how == Teardown::ByCaller) {
        // The caller's promises learn why they will never get an answer.
        for (const auto& [id, deferred] : unsettled) napi_reject_deferred(env, deferred, make_error(env, kClosed));
    }
    // At environment exit nothing JavaScript may run; the deferreds go with the
    // environment's heap.
    if (how != Teardown::ByEnvironmentExit && async_context != nullptr) napi_async_destroy(env, async_context);
    async_context = nullptr;
    if (!polling) {
        if (cleanup_hook != nullptr) napi_remove_async_cleanup_hook(cleanup_hook);
        delete this;
    }
}

Napi::Function NativeClient::define(Napi::Env env) {
    return DefineClass(env, "NativeClient",
                       {
                           InstanceMethod<&NativeClient::read_local>("readLocal"),
                           InstanceMethod<&NativeClient::read_primary>("readPrimary"),
                           InstanceMethod<&NativeClient::write>("write"),
                           InstanceMethod<&NativeClient::read_consistent>("readConsistent"),
                           InstanceMethod<&NativeClient::cached_read>("cachedRead"),
                           InstanceMethod<&NativeClient::health>("health"),
                           InstanceMethod<&NativeClient::close>("close"),
                           InstanceAccessor<&NativeClient::pending>("pending"),
                       });
}

NativeClient::NativeClient(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeClient>(info) {
    const Napi::Env env = info.Env();
    const std::string socket = text(info[0]);
    char error[512] = {0};
    rgd_client* client = rgd_connect(info[0].IsString() ? socket.c_str() : nullptr, error, sizeof error);
    if (client == nullptr) {
        throw Napi::Error(env, make_error(env, error[0] != '\0' ? error : "cannot connect to regiond"));
    }
    if (info[1].IsNumber()) rgd_set_timeout_ms(client, info[1].As<Napi::Number>().Uint32Value());

    auto* c = new Connection();
    c->env = env;
    c->client = client;
    c->owner = this;
    connection = c;

    const int fd = rgd_event_fd(client);
    uv_loop_t* loop = nullptr;
    if (fd < 0 || napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr ||
        uv_poll_init(loop, &c->poll, fd) != 0) {
        c->shutdown(Connection::Teardown::ByFinalizer);
        throw Napi::Error(env, make_error(env, "libregiond gave no event descriptor to watch (rgd_event_fd)"));
    }
    c->poll.data = c;
    c->polling = true;
    uv_poll_start(&c->poll, UV_READABLE, on_readable);
    uv_unref(reinterpret_cast<uv_handle_t*>(&c->poll));  // idle: does not keep the process alive

    napi_value name = Napi::String::New(env, "regiond");
    napi_async_init(env, Napi::Object::New(env), name, &c->async_context);
    napi_add_async_cleanup_hook(env, on_environment_exit, c, &c->cleanup_hook);
}

NativeClient::~NativeClient() {
    if (connection != nullptr) connection->shutdown(Connection::Teardown::ByFinalizer);
}

Napi::Value NativeClient::track(Napi::Env env, rgd_call_id id) {
    if (id == 0) return Napi::Value(env, rejected(env, make_error(env, "out of memory starting a call in libregiond")));
    napi_deferred deferred = nullptr;
    napi_value promise = nullptr;
    napi_create_promise(env, &deferred, &promise);
    connection->calls.emplace(id, deferred);
    connection->update_ref();
    return Napi::Value(env, promise);
}

#define REGIOND_REQUIRE_OPEN(env) \
    if (!usable()) return Napi::Value(env, rejected(env, make_error(env, kClosed)))

Napi::Value NativeClient::read_local(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    REGIOND_REQUIRE_OPEN(env);
    const std::string sql = text(info[0]);
    const Texts params(info[1]);
    return track(env, rgd_start_read_local(connection->client, sql.c_str(), params.size(), params.data()));
}

Napi::Value NativeClient::read_primary(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    REGIOND_REQUIRE_OPEN(env);
    const std::string sql = text(info[0]);
    const Texts params(info[1]);
    return track(env, rgd_start_read_primary(connection->client, sql.c_str(), params.size(), params.data()));
}

Napi::Value NativeClient::write(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    REGIOND_REQUIRE_OPEN(env);
    const std::string sql = text(info[0]);
    const Texts params(info[1]);
    const Texts keys(info[2]);
    return track(env, rgd_start_write(connection->client, sql.c_str(), params.size(), params.data(), keys.size(),
                                      keys.data()));
}

Napi::Value NativeClient::read_consistent(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    REGIOND_REQUIRE_OPEN(env);
    const std::string token = text(info[0]);
    const std::string sql = text(info[1]);
    const Texts params(info[2]);
    return track(env, rgd_start_read_consistent(connection->client, token.c_str(), sql.c_str(), params.size(),
                                                params.data()));
}

Napi::Value NativeClient::cached_read(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    REGIOND_REQUIRE_OPEN(env);
    const std::string key = text(info[0]);
    const unsigned ttl = info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 0;
    const std::string sql = text(info[2]);
    const Texts params(info[3]);
    return track(env, rgd_start_cached_read(connection->client, key.c_str(), ttl, sql.c_str(), params.size(),
                                            params.data()));
}

Napi::Value NativeClient::health(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    if (!usable()) throw Napi::Error(env, make_error(env, kClosed));
    rgd_result* r = rgd_health(connection->client);  // the state segment: no round trip
    if (r == nullptr || rgd_ok(r) == 0) {
        const napi_value error = error_from_result(env, r);
        rgd_free(r);
        throw Napi::Error(env, error);
    }
    const napi_value result = result_to_js(env, r);
    rgd_free(r);
    return Napi::Value(env, result);
}

Napi::Value NativeClient::close(const Napi::CallbackInfo& info) {
    if (connection != nullptr) connection->shutdown(Connection::Teardown::ByCaller);
    return info.Env().Undefined();
}

Napi::Value NativeClient::pending(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), usable() ? static_cast<double>(connection->calls.size()) : 0.0);
}

}  // namespace regiond_node
