/* Writing pictures: DOT text as it is, or rendered by Graphviz's `dot`. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

extern char **environ;

static const char *ext_of(const char *path) {
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(path, '.');
    return dot && (!slash || dot > slash) ? dot + 1 : "";
}

bool cli_picture_format_ok(const char *cmd, const char *path) {
    const char *e = ext_of(path);
    static const char *ok[] = {"dot", "gv", "svg", "png", "pdf"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (!strcmp(e, ok[i]))
            return true;
    if (!strcmp(path, "-"))
        return true;
    fprintf(stderr, "kiln %s: '%s': a picture is .dot or .gv (DOT text), .svg, .png or .pdf (rendered by Graphviz)\n",
            cmd, path);
    return false;
}

static int write_all(const char *cmd, FILE *f, const char *text, const char *what) {
    size_t n = strlen(text);
    if (fwrite(text, 1, n, f) != n) {
        fprintf(stderr, "kiln %s: cannot write '%s': %s\n", cmd, what, strerror(errno));
        return 1;
    }
    return 0;
}

int cli_write_picture(const char *cmd, const char *dot, const char *path) {
    if (!strcmp(path, "-"))
        return write_all(cmd, stdout, dot, "standard output") || fflush(stdout) != 0;
    if (!cli_picture_format_ok(cmd, path) || !cli_make_dirs(cmd, path, true))
        return 2;
    const char *e = ext_of(path);
    size_t tl = strlen(path) + 32;
    char *tmp = malloc(tl);
    if (!tmp) {
        fprintf(stderr, "kiln %s: out of memory\n", cmd);
        return 1;
    }
    snprintf(tmp, tl, "%s.kiln-tmp-%ld", path, (long)getpid());
    int rc = 0;
    if (!strcmp(e, "dot") || !strcmp(e, "gv")) {
        FILE *f = fopen(tmp, "w");
        if (!f) {
            fprintf(stderr, "kiln %s: cannot write '%s': %s\n", cmd, path, strerror(errno));
            free(tmp);
            return 1;
        }
        rc = write_all(cmd, f, dot, path);
        if (fclose(f) != 0 && !rc) {
            fprintf(stderr, "kiln %s: cannot write '%s': %s\n", cmd, path, strerror(errno));
            rc = 1;
        }
    } else {
        /* dot -T<format> -o TMP, the DOT text on its standard input */
        char fmt[16], out_opt[8] = "-o";
        snprintf(fmt, sizeof fmt, "-T%s", e);
        char *argv[] = {"dot", fmt, out_opt, tmp, NULL};
        int fds[2];
        if (pipe(fds) != 0) {
            fprintf(stderr, "kiln %s: cannot start Graphviz: %s\n", cmd, strerror(errno));
            free(tmp);
            return 1;
        }
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
        posix_spawn_file_actions_addclose(&fa, fds[1]);
        posix_spawn_file_actions_addclose(&fa, fds[0]);
        pid_t pid;
        int err = posix_spawnp(&pid, "dot", &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(fds[0]);
        if (err != 0) {
            close(fds[1]);
            if (err == ENOENT)
                fprintf(stderr, "kiln %s: rendering .%s needs Graphviz's 'dot', which is not installed "
                                "(Debian package 'graphviz': apt-get install graphviz); "
                                "or write DOT text with a .dot file name\n",
                        cmd, e);
            else
                fprintf(stderr, "kiln %s: cannot run Graphviz's 'dot': %s\n", cmd, strerror(err));
            free(tmp);
            return 1;
        }
        FILE *f = fdopen(fds[1], "w");
        if (f) {
            fputs(dot, f); /* dot's own failure is reported by its status */
            fclose(f);
        } else {
            close(fds[1]);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "kiln %s: Graphviz's 'dot' failed rendering '%s'\n", cmd, path);
            rc = 1;
        }
    }
    if (!rc && rename(tmp, path) != 0) {
        fprintf(stderr, "kiln %s: cannot write '%s': %s\n", cmd, path, strerror(errno));
        rc = 1;
    }
    if (rc)
        unlink(tmp);
    free(tmp);
    return rc;
}
