/* Replays saved fuzz inputs through the same entry points as the libFuzzer
 * targets, in any build (gcc, sanitizers or not), so every crash found once
 * stays fixed.
 *   kiln-fuzz-replay DIR           DIR/<target>/<file> for every target
 *   kiln-fuzz-replay TARGET FILE...
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "targets.h"

static int replay_file(const kiln_fuzz_target *t, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "kiln-fuzz-replay: cannot open %s\n", path);
        return 1;
    }
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            unsigned char *b2 = realloc(buf, cap *= 2);
            if (!b2) {
                free(buf);
                buf = NULL;
            }
            buf = b2;
        }
    }
    fclose(f);
    if (!buf)
        return 1;
    fprintf(stderr, "%s: %s (%zu bytes)\n", t->name, path, n);
    t->fn(buf, n);
    free(buf);
    return 0;
}

static const kiln_fuzz_target *find(const char *name) {
    for (size_t i = 0; i < kiln_fuzz_n_targets; i++)
        if (!strcmp(kiln_fuzz_targets[i].name, name))
            return &kiln_fuzz_targets[i];
    return NULL;
}

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: kiln-fuzz-replay DIR | TARGET FILE...\n");
        return 2;
    }
    kiln_fuzz_init();
    int bad = 0, count = 0;
    if (argc > 2) {
        const kiln_fuzz_target *t = find(argv[1]);
        if (!t) {
            fprintf(stderr, "kiln-fuzz-replay: unknown target '%s'\n", argv[1]);
            return 2;
        }
        for (int i = 2; i < argc; i++, count++)
            bad |= replay_file(t, argv[i]);
    } else {
        for (size_t k = 0; k < kiln_fuzz_n_targets; k++) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s/%s", argv[1], kiln_fuzz_targets[k].name);
            DIR *d = opendir(dir);
            if (!d)
                continue;
            char **names = NULL;
            size_t n = 0;
            struct dirent *e;
            while ((e = readdir(d))) {
                if (e->d_name[0] == '.')
                    continue;
                char **nn = realloc(names, (n + 1) * sizeof *nn);
                if (!nn)
                    break;
                names = nn;
                names[n++] = strdup(e->d_name);
            }
            closedir(d);
            qsort(names, n, sizeof *names, cmp);
            for (size_t i = 0; i < n; i++, count++) {
                char path[8192];
                snprintf(path, sizeof path, "%s/%s", dir, names[i]);
                bad |= replay_file(&kiln_fuzz_targets[k], path);
                free(names[i]);
            }
            free(names);
        }
    }
    printf("replayed %d inputs%s\n", count, bad ? " (some unreadable)" : "");
    return bad;
}
