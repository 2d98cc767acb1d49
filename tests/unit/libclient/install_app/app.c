/* Built by install_test.sh against the INSTALLED <regiond/client.h> and
 * regiond.pc only. Prints what rgd_connect says for the socket in argv[1]. */
#include <regiond/client.h>

#include <stdio.h>

int main(int argc, char** argv) {
    char error[256] = "";
    rgd_client* c = rgd_connect(argc > 1 ? argv[1] : NULL, error, sizeof error);
    if (c == NULL) {
        printf("%s\n", error);
        return 2;
    }
    rgd_disconnect(c);
    printf("connected\n");
    return 0;
}
