/* libregiond: the C client API of regiond (see API.md, the public contract).
 *
 *     #include <regiond/client.h>
 *     cc app.c $(pkg-config --cflags --libs regiond)
 *
 * Conventions:
 *  - Every query returns a result, never NULL (except when out of memory); check
 *    rgd_ok() and free it with rgd_free(). Accessors accept a NULL result and then
 *    return safe defaults (0, "", NULL, -1); out-of-range rows/columns give NULL.
 *  - Strings returned by accessors live as long as the result.
 *  - A client may be shared by any number of threads. rgd_disconnect() must not
 *    race with calls still running on the same client.
 *  - A client must not be used in a child after fork(): connect again there.
 *  - No C++ exception ever leaves this API.
 *
 * This header is C99 and C++ compatible and depends on nothing but <stddef.h>. */
#ifndef REGIOND_CLIENT_H
#define REGIOND_CLIENT_H

#include <stddef.h>

#if defined(__GNUC__) || defined(__clang__)
#define RGD_API __attribute__((visibility("default")))
#else
#define RGD_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rgd_client rgd_client;
typedef struct rgd_result rgd_result;

/* Connect to a daemon. socket_path NULL means $REGIOND_SOCKET, else the default
 * /run/regiond/regiond.sock. On failure returns NULL and writes a message into
 * errbuf (if given; truncated to errlen, always NUL-terminated), e.g. "daemon not
 * running at PATH". A client is safe to use from several threads at once. If the
 * daemon restarts, the next call reconnects by itself. */
RGD_API rgd_client* rgd_connect(const char* socket_path, char* errbuf, size_t errlen);

/* Closes the connection and frees the client (NULL is a no-op). Results already
 * returned stay valid. */
RGD_API void rgd_disconnect(rgd_client* c);

/* Deadline of each later call, in milliseconds; default 30000. 0 means no
 * client-side deadline (the daemon's own request timeout still applies). */
RGD_API void rgd_set_timeout_ms(rgd_client* c, unsigned ms);

/* Queries. params are text-format values ($1..$n); a NULL entry is SQL NULL.
 * Each returns a result, never NULL (except out of memory); check rgd_ok. */

/* Reads from the nearest healthy replica (eventually consistent). */
RGD_API rgd_result* rgd_read_local(rgd_client* c, const char* sql, int nparams, const char* const* params);
/* Reads from the primary (strongly consistent). */
RGD_API rgd_result* rgd_read_primary(rgd_client* c, const char* sql, int nparams, const char* const* params);
/* Writes on the primary, then invalidates the named cache keys in every region.
 * The result carries the write's consistency token (rgd_token) and rgd_affected. */
RGD_API rgd_result* rgd_write(rgd_client* c, const char* sql, int nparams, const char* const* params, int nkeys,
                              const char* const* invalidate_keys);
/* Reads data at least as new as the write (or read) that returned `token`
 * ("SYSTEMID/LSN", e.g. "7713697811223072330/0/41F2E80"); a malformed token is an
 * error at once (no round trip), one from another cluster an error from the
 * daemon. An empty or NULL token has nothing to wait for: the daemon serves it
 * as rgd_read_local. */
RGD_API rgd_result* rgd_read_consistent(rgd_client* c, const char* token, const char* sql, int nparams,
                                        const char* const* params);
/* Cache first (this host, then the region's Redis), then the local replica.
 * ttl_seconds 0 uses the daemon's configured default. */
RGD_API rgd_result* rgd_cached_read(rgd_client* c, const char* key, unsigned ttl_seconds, const char* sql, int nparams,
                                    const char* const* params);

/* Health, read from the state segment (no round trip): one row per endpoint,
 * columns region, endpoint, role ("primary"|"replica"), healthy ("t"|"f"),
 * lag_ms, lag_bytes, rtt_ms, cache_healthy ("t"|"f"), replay_lsn (a replica's
 * replay position, the primary's WAL position, as PostgreSQL prints an LSN,
 * e.g. "0/5A3F10"; "" while unknown). rgd_served_by is "". */
RGD_API rgd_result* rgd_health(rgd_client* c);

/* ------------------------------------------------------------------------
 * The event-loop interface (in the manner of libpq's asynchronous API).
 *
 * Start any number of calls from one thread without blocking, watch ONE file
 * descriptor with your event loop (epoll, libuv, asyncio, ...), and collect the
 * calls that finished when it is readable:
 *
 *     rgd_call_id id = rgd_start_read_local(c, "SELECT ...", 1, params);
 *     ...
 *     int fd = rgd_event_fd(c);        // the same descriptor for the client's life
 *     // when fd is readable (level-triggered):
 *     rgd_call_id done;
 *     rgd_result* r;
 *     while ((r = rgd_collect(c, &done)) != NULL) { ... rgd_free(r); }
 *
 *  - A start never waits for the daemon: the request goes into the client's
 *    ring (or, while the ring is full, into a queue the library sends from
 *    later) and the call returns its id, a number > 0 unique within the client.
 *    It returns 0 only when c is NULL, when out of memory, or when the process
 *    has no file descriptors left for rgd_event_fd. An error found at
 *    once (bad arguments, a malformed token, a request too large, no daemon)
 *    is not returned here: the call finishes at once with that error, to be
 *    collected like any other. rgd_start_cached_read answers a hit in this
 *    host's cache the same way, finished at once.
 *  - The one exception to "never waits": when the connection to the daemon is
 *    gone (the daemon restarted), a start or a collect makes a new one, a
 *    handshake over the local unix socket (well under a millisecond with a
 *    live daemon; bounded by 10 s and by the call's deadline with a stuck one).
 *  - rgd_event_fd() is readable while a finished call waits to be collected
 *    or the library has work to do (an answer arrived, a deadline passed, a
 *    queued request can be sent, the daemon hung up). It never has to be read
 *    or written by the caller: rgd_collect() does what is needed. Register it
 *    for readability only. -1 if c is NULL or the library could not create it.
 *  - rgd_collect() never blocks. It returns one finished call's result (and
 *    its id through `id` if not NULL), or NULL when nothing has finished yet
 *    (*id is then 0). Call it until it returns NULL each time the descriptor
 *    is readable; results come in the order calls finished, not started.
 *  - Every started call finishes exactly once, with the daemon's answer or an
 *    error: "timed out after N ms" at the client's deadline (rgd_set_timeout_ms,
 *    taken when the call starts; the daemon is told to cancel it), the errors
 *    of the blocking calls, or "cancelled" (rgd_cancel).
 *  - When the daemon restarts, calls in flight are sent again on the new
 *    connection when that is safe, exactly as for the blocking calls (a read
 *    always; a write only if the daemon never took it out of the ring); the
 *    others finish with "connection to regiond lost (daemon restarted?): retry".
 *    While the daemon is down, those look for it again for up to 2 s (a
 *    restart; never past their deadline), then finish with that error.
 *  - The blocking calls keep working beside these, from any thread. The
 *    event-loop functions themselves may also be called from several threads
 *    (they lock), but one thread with one event loop is what they are for.
 *  - rgd_disconnect() finishes nothing: results not collected are freed with
 *    the client, and the descriptor is closed. Remove it from your loop first.
 */
typedef unsigned long long rgd_call_id;

RGD_API rgd_call_id rgd_start_read_local(rgd_client* c, const char* sql, int nparams, const char* const* params);
RGD_API rgd_call_id rgd_start_read_primary(rgd_client* c, const char* sql, int nparams, const char* const* params);
RGD_API rgd_call_id rgd_start_write(rgd_client* c, const char* sql, int nparams, const char* const* params, int nkeys,
                                    const char* const* invalidate_keys);
RGD_API rgd_call_id rgd_start_read_consistent(rgd_client* c, const char* token, const char* sql, int nparams,
                                              const char* const* params);
RGD_API rgd_call_id rgd_start_cached_read(rgd_client* c, const char* key, unsigned ttl_seconds, const char* sql,
                                          int nparams, const char* const* params);

/* The descriptor to watch for readability (see above). */
RGD_API int rgd_event_fd(rgd_client* c);
/* One finished call, or NULL (never blocks). The result is the caller's to rgd_free. */
RGD_API rgd_result* rgd_collect(rgd_client* c, rgd_call_id* id);
/* Calls started and not yet collected (finished or not). */
RGD_API size_t rgd_calls_pending(rgd_client* c);
/* Finishes a call that has not finished yet with the error "cancelled", and
 * tells the daemon to stop working on it (a write may still commit: cancel
 * decides only what the caller is told). Returns 1 if the call was cancelled,
 * 0 if it had already finished or is unknown. */
RGD_API int rgd_cancel(rgd_client* c, rgd_call_id id);

/* Results. */
RGD_API int rgd_ok(const rgd_result* r);                              /* 1 success, 0 error */
RGD_API const char* rgd_error(const rgd_result* r);                   /* "" on success */
RGD_API const char* rgd_sqlstate(const rgd_result* r);                /* SQLSTATE of a database error, else "" */
RGD_API int rgd_nrows(const rgd_result* r);                           /* 0 for errors */
RGD_API int rgd_ncols(const rgd_result* r);                           /* 0 for errors */
RGD_API const char* rgd_colname(const rgd_result* r, int col);        /* NULL if out of range */
RGD_API const char* rgd_value(const rgd_result* r, int row, int col); /* NULL for SQL NULL or out of range */
RGD_API long long rgd_affected(const rgd_result* r);                  /* rows changed by a write, else -1 */
RGD_API const char* rgd_token(const rgd_result* r);                   /* token of a write or a read, else "" */
/* Orders two tokens by LSN: -1 if a is older than b, 0 if equal, 1 if newer; -2 if
 * they are not comparable: either is NULL or malformed, or they come from different
 * clusters (system identifiers). "" is "no token", older than every token:
 * ("", t) gives -1, (t, "") 1, ("", "") 0. Keep the newest token a session has
 * seen and pass it to rgd_read_consistent. */
RGD_API int rgd_token_cmp(const char* a, const char* b);
/* Where the answer came from: "REGION/primary", "REGION/replica",
 * "cache:local", "cache:redis"; for errors where it failed, or "". */
RGD_API const char* rgd_served_by(const rgd_result* r);
/* Why it was served there (or failed there), one short line for people and logs,
 * never to be parsed: e.g. "local replica at 0/5A3F10 >= token 0/59F000"; "" when
 * the daemon gave none (and for rgd_health and errors made by the library). */
RGD_API const char* rgd_route_reason(const rgd_result* r);
/* Frees a result (NULL is a no-op). */
RGD_API void rgd_free(rgd_result* r);

#ifdef __cplusplus
}
#endif

#endif /* REGIOND_CLIENT_H */
