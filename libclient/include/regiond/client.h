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
