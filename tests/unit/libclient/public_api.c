/* Compiles and links against ONLY the public header <regiond/client.h> (its
 * include directory is the sole one this target has), as C99 with -Wpedantic:
 * the header is valid C. Then exercises the calls that need no daemon. */
#include <regiond/client.h>

#include <stdio.h>
#include <string.h>

static int failures = 0;

#define EXPECT(cond)                                                           \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
            ++failures;                                                        \
        }                                                                      \
    } while (0)

int main(void) {
    char error[256];
    const char* params[2];
    rgd_result* r;
    rgd_client* c = rgd_connect("/nonexistent/regiond.sock", error, sizeof error);
    EXPECT(c == NULL);
    EXPECT(strcmp(error, "daemon not running at /nonexistent/regiond.sock") == 0);

    params[0] = "x";
    params[1] = NULL; /* SQL NULL */
    r = rgd_read_local(c, "select $1, $2", 2, params);
    EXPECT(r != NULL);
    EXPECT(rgd_ok(r) == 0);
    EXPECT(strlen(rgd_error(r)) > 0);
    EXPECT(rgd_nrows(r) == 0 && rgd_ncols(r) == 0);
    EXPECT(rgd_value(r, 0, 0) == NULL && rgd_colname(r, 0) == NULL);
    EXPECT(rgd_affected(r) == -1);
    EXPECT(strcmp(rgd_token(r), "") == 0 && strcmp(rgd_sqlstate(r), "") == 0);
    EXPECT(strcmp(rgd_served_by(r), "") == 0 && strcmp(rgd_route_reason(r), "") == 0);
    rgd_free(r);

    r = rgd_read_consistent(c, "garbage", "select 1", 0, NULL);
    EXPECT(rgd_ok(r) == 0 && strstr(rgd_error(r), "malformed consistency token") != NULL);
    rgd_free(r);

    /* Tokens are ordered by LSN within one cluster, without a daemon. */
    EXPECT(rgd_token_cmp("1/0/FFFFFFFF", "1/1/0") == -1);
    EXPECT(rgd_token_cmp("1/1/0", "1/0/FFFFFFFF") == 1);
    EXPECT(rgd_token_cmp("", "1/0/1") == -1);
    EXPECT(rgd_token_cmp("1/0/1", "2/0/1") == -2);
    EXPECT(rgd_token_cmp(NULL, "1/0/1") == -2);

    /* Every entry point links. */
    rgd_free(rgd_read_primary(c, "select 1", 0, NULL));
    rgd_free(rgd_write(c, "select 1", 0, NULL, 0, NULL));
    rgd_free(rgd_cached_read(c, "k", 0, "select 1", 0, NULL));
    rgd_free(rgd_health(c));
    rgd_set_timeout_ms(c, 1000);
    rgd_disconnect(c);
    EXPECT(rgd_ok(NULL) == 0);
    EXPECT(strcmp(rgd_route_reason(NULL), "") == 0);

    if (failures == 0) printf("public C API ok\n");
    return failures == 0 ? 0 : 1;
}
