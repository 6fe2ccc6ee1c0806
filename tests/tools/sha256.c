/* kiln-sha256 FILE...  |  kiln-sha256 --chunks N FILE
 * Prints kiln's SHA-256 of each file (streamed, or fed in N-byte pieces), for
 * the test against Python's hashlib. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/sha256.h"

int main(int argc, char **argv) {
    size_t chunk = 0;
    int i = 1;
    if (argc > 2 && !strcmp(argv[1], "--chunks")) {
        chunk = (size_t)strtoull(argv[2], NULL, 10);
        i = 3;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: kiln-sha256 [--chunks N] FILE...\n");
        return 2;
    }
    for (; i < argc; i++) {
        char hex[65];
        if (chunk) {
            FILE *f = fopen(argv[i], "rb");
            if (!f) {
                perror(argv[i]);
                return 1;
            }
            kiln_sha256 s;
            kiln_sha256_init(&s);
            unsigned char *buf = malloc(chunk);
            size_t r;
            while (buf && (r = fread(buf, 1, chunk, f)) > 0)
                kiln_sha256_update(&s, buf, r);
            free(buf);
            fclose(f);
            unsigned char d[32];
            kiln_sha256_final(&s, d);
            kiln_sha256_hex(d, hex);
        } else if (kiln_sha256_file(argv[i], hex) != KILN_OK) {
            fprintf(stderr, "kiln-sha256: %s\n", kiln_last_error());
            return 1;
        }
        printf("%s  %s\n", hex, argv[i]);
    }
    return 0;
}
