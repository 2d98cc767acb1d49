// The two interfaces between the client side (ClientServer: rings, sessions,
// backpressure) and the dispatcher (routing, jobs on the endpoints).
//
// A request's life, and who counts it:
//
//   ClientServer                         Dispatcher                    Endpoint
//   pop + decode, count it in flight --> on_request --> handler ----> submit(job)
//   cancel record ---------------------> on_cancel  ----------------> cancel(id)
//   client gone (later, deferred) -----> on_client_gone ------------> cancel(id) each
//   stream()  <------------------------- partial chunk <------------- partial
//   on_window_open (queue drained) ----> ----------------------------> resume(id)
//   respond() <------------------------- the answer <---------------- done
//   release() <------------------------- the job has ended (or there was none)
//
// A request counts against its client from when it is taken from the ring until
// release(): the dispatcher calls it exactly once per request it received, when
// the last job for it has ended on the server (after done), or at once when it
// was answered without a job. So cancelled and orphaned jobs keep counting
// until the server has stopped them (the per-client cap holds against cancel
// and disconnect floods).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "daemon/client_session.hpp"
#include "shm/codec.hpp"

namespace regiond::daemon {

/// Receives decoded requests (the dispatcher). Never called re-entrantly from
/// inside a Responder call.
class RequestHandler {
public:
    virtual ~RequestHandler() = default;
    /// The request's strings point into a buffer valid only during the call.
    /// The request counts in flight until the handler calls Responder::release.
    virtual void on_request(ClientId client, std::uint64_t request_id, const shm::RequestView& request) = 0;
    /// The client forgot request_id: stop its job, send no answer (unknown ids
    /// are ignored: the answer may have crossed the cancel).
    virtual void on_cancel(ClientId client, std::uint64_t request_id) = 0;
    /// The client is gone: stop every job of it.
    virtual void on_client_gone(ClientId client) = 0;
    /// The client's response queue drained below half its window: resume the
    /// jobs that paused on a full window.
    virtual void on_window_open(ClientId client) = 0;
};

/// Sends answers back and keeps the in-flight count (implemented by ClientServer).
class Responder {
public:
    virtual ~Responder() = default;
    /// The final answer to a request: encoded chunks, head first (the last is
    /// the ring record flagged last). Ignored for a client that is gone.
    virtual void respond(ClientId client, std::uint64_t request_id, std::vector<std::vector<std::byte>> chunks) = 0;
    virtual void respond_error(ClientId client, std::uint64_t request_id, std::string_view message) = 0;
    /// A chunk of a response still streaming (never the last). False: the
    /// client's queued bytes passed its window; the caller pauses the job until
    /// RequestHandler::on_window_open. True for a client that is gone (the
    /// chunk is dropped).
    virtual bool stream(ClientId client, std::uint64_t request_id, std::vector<std::byte>&& chunk) = 0;
    /// One request of `client` stopped counting in flight (see above); valid
    /// after the client is gone too (its orphans).
    virtual void release(ClientId client) = 0;
    /// Drops a client that broke the protocol (deferred destruction: safe from
    /// inside any callback).
    virtual void drop_client(ClientId client, std::string_view reason) = 0;
};

}  // namespace regiond::daemon
