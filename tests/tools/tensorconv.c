/* tensorconv IN OUT
 * Reads a tensor file (.npy or .pb, by extension) with kiln and writes it in
 * the format OUT's extension names. With --many, arguments come in pairs
 * (IN OUT IN OUT ...) and each failure is reported as "FAIL IN: message" on
 * stdout so one process can convert a whole test folder. */
#include <stdio.h>
#include <string.h>

#include "kiln.h"

static int convert(const char *in, const char *out, int many) {
    kiln_tensor *t;
    if (kiln_tensor_load(in, &t) != KILN_OK) {
        if (many)
            printf("FAIL %s: %s\n", in, kiln_last_error());
        else
            fprintf(stderr, "tensorconv: %s\n", kiln_last_error());
        return 1;
    }
    kiln_status st = kiln_tensor_save(t, out);
    kiln_tensor_destroy(t);
    if (st != KILN_OK) {
        if (many)
            printf("FAIL %s: %s\n", in, kiln_last_error());
        else
            fprintf(stderr, "tensorconv: %s\n", kiln_last_error());
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "--many")) {
        if ((argc - 2) % 2) {
            fprintf(stderr, "usage: tensorconv --many IN OUT [IN OUT ...]\n");
            return 2;
        }
        int bad = 0;
        for (int i = 2; i + 1 < argc; i += 2)
            bad += convert(argv[i], argv[i + 1], 1);
        return bad ? 1 : 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: tensorconv IN OUT\n");
        return 2;
    }
    return convert(argv[1], argv[2], 0);
}
