/* Built by install_test.sh against the INSTALLED <regiond/client.h> and
 * regiond.pc only. Checks rgd_token_cmp, then prints what rgd_connect says for
 * the socket in argv[1]. */
#include <regiond/client.h>

#include <stdio.h>

int main(int argc, char** argv) {
    char error[256] = "";
    /* Links only if the installed library exports it; needs no daemon. */
    if (rgd_token_cmp("1/0/FFFFFFFF", "1/1/0") != -1) {
        printf("rgd_token_cmp(\"1/0/FFFFFFFF\", \"1/1/0\") != -1\n");
        return 3;
    }
    rgd_client* c = rgd_connect(argc > 1 ? argv[1] : NULL, error, sizeof error);
    if (c == NULL) {
        printf("%s\n", error);
        return 2;
    }
    rgd_disconnect(c);
    printf("connected\n");
    return 0;
}
