// The C API boundary: argument checks, and no exception ever crosses it. Every
// function catches everything; std::bad_alloc becomes NULL (a query) or an
// "out of memory" message (rgd_connect), anything else an error result.
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <string_view>

#include "client.hpp"
#include "hot_cache.hpp"
#include "regiond/client.h"
#include "result.hpp"
#include "token.hpp"

namespace regiond::client {

namespace {

void write_error(char* errbuf, size_t errlen, const std::string& message) noexcept {
    if (errbuf == nullptr || errlen == 0) return;
    const size_t n = message.size() < errlen - 1 ? message.size() : errlen - 1;
    std::memcpy(errbuf, message.data(), n);
    errbuf[n] = '\0';
}

template <class Body>
rgd_result* guarded(Body&& body) noexcept {
    try {
        return body().release();
    } catch (const std::bad_alloc&) {
        return nullptr;  // the documented exception to "never NULL"
    } catch (const std::exception& e) {
        try {
            return make_error(std::string("internal error in libregiond: ") + e.what()).release();
        } catch (...) {
            return nullptr;
        }
    } catch (...) {
        try {
            return make_error("internal error in libregiond (unknown exception)").release();
        } catch (...) {
            return nullptr;
        }
    }
}

// Checks the C arguments and fills the request's sql/params/keys, or returns the
// error message for the caller.
std::optional<std::string> fill_request(shm::RequestView& request, const rgd_client* c, const char* sql, int nparams,
                                        const char* const* params, int nkeys = 0, const char* const* keys = nullptr) {
    if (c == nullptr) return "rgd_client is NULL: connect with rgd_connect() first";
    if (sql == nullptr) return "sql is NULL";
    if (nparams < 0) return "nparams is negative (" + std::to_string(nparams) + ")";
    if (nparams > 0 && params == nullptr) return "params is NULL but nparams is " + std::to_string(nparams);
    if (nkeys < 0) return "nkeys is negative (" + std::to_string(nkeys) + ")";
    if (nkeys > 0 && keys == nullptr) return "invalidate_keys is NULL but nkeys is " + std::to_string(nkeys);
    if (static_cast<unsigned>(nparams) > shm::kMaxParams)
        return "too many parameters (" + std::to_string(nparams) + ", at most " + std::to_string(shm::kMaxParams) + ")";
    if (static_cast<unsigned>(nkeys) > shm::kMaxInvalidateKeys)
        return "too many invalidate keys (" + std::to_string(nkeys) + ", at most " +
               std::to_string(shm::kMaxInvalidateKeys) + ")";
    request.sql = sql;
    request.params.reserve(static_cast<std::size_t>(nparams));
    for (int i = 0; i < nparams; ++i) {
        if (params[i] == nullptr) {
            request.params.emplace_back(std::nullopt);  // SQL NULL
        } else {
            request.params.emplace_back(std::string_view(params[i]));
        }
    }
    request.invalidate_keys.reserve(static_cast<std::size_t>(nkeys));
    for (int i = 0; i < nkeys; ++i) {
        if (keys[i] == nullptr) return "invalidate_keys[" + std::to_string(i) + "] is NULL";
        request.invalidate_keys.emplace_back(keys[i]);
    }
    return std::nullopt;
}

ResultPtr run(rgd_client* c, shm::RequestView& request, std::optional<std::string> invalid) {
    if (invalid) return make_error(std::move(*invalid));
    return execute(*c, request);
}

// The client's event-loop calls, made at their first use; nullptr if the
// descriptors cannot be made.
EventLoopCalls* event_calls_of(rgd_client& c) {
    std::lock_guard lk(c.event_calls_mu);
    if (!c.event_calls) {
        std::string error;
        c.event_calls = EventLoopCalls::create(error);
    }
    return c.event_calls.get();
}

// rgd_start_*: an invalid request (or a ready answer) finishes at once, to be
// collected like any other; 0 only without a client, descriptors or memory.
template <class Body>
rgd_call_id start_guarded(rgd_client* c, Body&& body) noexcept {
    if (c == nullptr) return 0;
    try {
        EventLoopCalls* calls = event_calls_of(*c);
        if (calls == nullptr) return 0;
        return body(*calls);
    } catch (...) {
        return 0;  // out of memory (nothing else throws here)
    }
}

rgd_call_id start_call(rgd_client* c, EventLoopCalls& calls, const shm::RequestView& request,
                       std::optional<std::string> invalid) {
    if (invalid) return calls.start_finished(*c, make_error(std::move(*invalid)));
    return calls.start(*c, request);
}

}  // namespace

}  // namespace regiond::client

using regiond::client::EventLoopCalls;
using regiond::client::fill_request;
using regiond::client::start_call;
using regiond::client::start_guarded;
using regiond::client::guarded;
using regiond::client::make_error;
using regiond::client::run;
namespace shm = regiond::shm;

extern "C" {

RGD_API rgd_client* rgd_connect(const char* socket_path, char* errbuf, size_t errlen) {
    try {
        std::string error;
        auto client = regiond::client::connect(socket_path, error);
        if (!client) {
            regiond::client::write_error(errbuf, errlen, error);
            return nullptr;
        }
        regiond::client::write_error(errbuf, errlen, "");
        return client.release();
    } catch (const std::bad_alloc&) {
        regiond::client::write_error(errbuf, errlen, "out of memory");
    } catch (const std::exception& e) {
        regiond::client::write_error(errbuf, errlen, std::string("internal error in libregiond: ") + e.what());
    } catch (...) {
        regiond::client::write_error(errbuf, errlen, "internal error in libregiond (unknown exception)");
    }
    return nullptr;
}

RGD_API void rgd_disconnect(rgd_client* c) {
    if (c == nullptr) return;
    try {
        std::lock_guard lk(c->connection_mu);
        if (c->connection) c->connection->mark_dead("the client disconnected");
    } catch (...) {
        // Out of memory for the reason text: the connection closes below anyway.
    }
    delete c;  // closes the socket: the daemon frees this client's slot
}

RGD_API void rgd_set_timeout_ms(rgd_client* c, unsigned ms) {
    if (c != nullptr) c->timeout_ms.store(ms, std::memory_order_relaxed);
}

RGD_API rgd_result* rgd_read_local(rgd_client* c, const char* sql, int nparams, const char* const* params) {
    return guarded([&] {
        shm::RequestView request;
        request.op = shm::Op::read_local;
        return run(c, request, fill_request(request, c, sql, nparams, params));
    });
}

RGD_API rgd_result* rgd_read_primary(rgd_client* c, const char* sql, int nparams, const char* const* params) {
    return guarded([&] {
        shm::RequestView request;
        request.op = shm::Op::read_primary;
        return run(c, request, fill_request(request, c, sql, nparams, params));
    });
}

RGD_API rgd_result* rgd_write(rgd_client* c, const char* sql, int nparams, const char* const* params, int nkeys,
                              const char* const* invalidate_keys) {
    return guarded([&] {
        shm::RequestView request;
        request.op = shm::Op::write;
        return run(c, request, fill_request(request, c, sql, nparams, params, nkeys, invalidate_keys));
    });
}

RGD_API rgd_result* rgd_read_consistent(rgd_client* c, const char* token, const char* sql, int nparams,
                                        const char* const* params) {
    return guarded([&] {
        shm::RequestView request;
        const std::string_view t = token != nullptr ? std::string_view(token) : std::string_view();
        if (auto bad = regiond::client::token_error(t)) return make_error(std::move(*bad));  // no round trip
        // An empty token means "no write to wait for". It still goes as
        // read_consistent: the daemon serves it as read_local and says so in
        // route_reason and its read_consistent counters.
        request.op = shm::Op::read_consistent;
        request.token = t;
        return run(c, request, fill_request(request, c, sql, nparams, params));
    });
}

RGD_API rgd_result* rgd_cached_read(rgd_client* c, const char* key, unsigned ttl_seconds, const char* sql, int nparams,
                                    const char* const* params) {
    return guarded([&] {
        shm::RequestView request;
        request.op = shm::Op::cached_read;
        request.ttl_seconds = ttl_seconds;  // 0: the daemon's default_ttl
        std::optional<std::string> invalid = fill_request(request, c, sql, nparams, params);
        if (!invalid && (key == nullptr || *key == '\0')) invalid = "cache key is empty: rgd_cached_read needs a key";
        if (!invalid) {
            request.key = key;
            if (regiond::client::ResultPtr hit = regiond::client::hot_cache_hit(*c, request)) return hit;
        }
        return run(c, request, std::move(invalid));
    });
}

RGD_API int rgd_token_cmp(const char* a, const char* b) {
    if (a == nullptr || b == nullptr) return regiond::client::kTokensNotComparable;
    return regiond::client::token_cmp(a, b);  // noexcept: nothing to catch
}

RGD_API rgd_result* rgd_health(rgd_client* c) {
    return guarded([&] {
        if (c == nullptr) return make_error("rgd_client is NULL: connect with rgd_connect() first");
        return regiond::client::health(*c);
    });
}

// ---------------------------------------------------------------------------
// The event-loop interface (client.h; event_loop_calls.hpp)

RGD_API rgd_call_id rgd_start_read_local(rgd_client* c, const char* sql, int nparams, const char* const* params) {
    return start_guarded(c, [&](EventLoopCalls& calls) -> rgd_call_id {
        shm::RequestView request;
        request.op = shm::Op::read_local;
        return start_call(c, calls, request, fill_request(request, c, sql, nparams, params));
    });
}

RGD_API rgd_call_id rgd_start_read_primary(rgd_client* c, const char* sql, int nparams, const char* const* params) {
    return start_guarded(c, [&](EventLoopCalls& calls) -> rgd_call_id {
        shm::RequestView request;
        request.op = shm::Op::read_primary;
        return start_call(c, calls, request, fill_request(request, c, sql, nparams, params));
    });
}

RGD_API rgd_call_id rgd_start_write(rgd_client* c, const char* sql, int nparams, const char* const* params, int nkeys,
                                    const char* const* invalidate_keys) {
    return start_guarded(c, [&](EventLoopCalls& calls) -> rgd_call_id {
        shm::RequestView request;
        request.op = shm::Op::write;
        return start_call(c, calls, request, fill_request(request, c, sql, nparams, params, nkeys, invalidate_keys));
    });
}

RGD_API rgd_call_id rgd_start_read_consistent(rgd_client* c, const char* token, const char* sql, int nparams,
                                              const char* const* params) {
    return start_guarded(c, [&](EventLoopCalls& calls) -> rgd_call_id {
        shm::RequestView request;
        const std::string_view t = token != nullptr ? std::string_view(token) : std::string_view();
        if (auto bad = regiond::client::token_error(t)) return calls.start_finished(*c, make_error(std::move(*bad)));
        request.op = shm::Op::read_consistent;  // "" too: see rgd_read_consistent
        request.token = t;
        return start_call(c, calls, request, fill_request(request, c, sql, nparams, params));
    });
}

RGD_API rgd_call_id rgd_start_cached_read(rgd_client* c, const char* key, unsigned ttl_seconds, const char* sql,
                                          int nparams, const char* const* params) {
    return start_guarded(c, [&](EventLoopCalls& calls) -> rgd_call_id {
        shm::RequestView request;
        request.op = shm::Op::cached_read;
        request.ttl_seconds = ttl_seconds;
        std::optional<std::string> invalid = fill_request(request, c, sql, nparams, params);
        if (!invalid && (key == nullptr || *key == '\0')) invalid = "cache key is empty: rgd_cached_read needs a key";
        if (!invalid) {
            request.key = key;
            // A hit in this host's cache needs no round trip: finished at once.
            if (regiond::client::ResultPtr hit = regiond::client::hot_cache_hit(*c, request))
                return calls.start_finished(*c, std::move(hit));
        }
        return start_call(c, calls, request, std::move(invalid));
    });
}

RGD_API int rgd_event_fd(rgd_client* c) {
    if (c == nullptr) return -1;
    try {
        EventLoopCalls* calls = regiond::client::event_calls_of(*c);
        return calls != nullptr ? calls->fd() : -1;
    } catch (...) {
        return -1;
    }
}

RGD_API rgd_result* rgd_collect(rgd_client* c, rgd_call_id* id) {
    if (id != nullptr) *id = 0;
    if (c == nullptr) return nullptr;
    try {
        EventLoopCalls* calls = regiond::client::event_calls_of(*c);
        if (calls == nullptr) return nullptr;
        std::uint64_t done = 0;
        regiond::client::ResultPtr result = calls->collect(*c, done);
        if (id != nullptr) *id = done;
        return result.release();
    } catch (...) {
        return nullptr;  // out of memory: the finished call stays queued for the next collect
    }
}

RGD_API size_t rgd_calls_pending(rgd_client* c) {
    if (c == nullptr) return 0;
    std::lock_guard lk(c->event_calls_mu);
    return c->event_calls ? c->event_calls->pending() : 0;
}

RGD_API int rgd_cancel(rgd_client* c, rgd_call_id id) {
    if (c == nullptr) return 0;
    try {
        std::lock_guard lk(c->event_calls_mu);
        return c->event_calls && c->event_calls->cancel(id) ? 1 : 0;
    } catch (...) {
        return 0;
    }
}

}  // extern "C"
