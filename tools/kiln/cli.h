/* The kiln command line: one file per subcommand. */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "kiln.h"

int kiln_cmd_info(int argc, char **argv);
int kiln_cmd_run(int argc, char **argv);
int kiln_cmd_freeze(int argc, char **argv);
int kiln_cmd_check(int argc, char **argv);
int kiln_cmd_bench(int argc, char **argv);
int kiln_cmd_show(int argc, char **argv);
int kiln_cmd_convert(int argc, char **argv);

/* Prints "kiln <cmd>: <message>" for the last error and returns the exit code. */
int cli_error(const char *cmd, kiln_status st);
/* Splits NAME=VALUE; returns false when there is no '='. */
bool cli_split(char *arg, char **name, char **value);
/* Parses NAME=VALUE arguments into names[i] (pointing into args[i]) and
 * vals[i], each value typed by the model's declared input. Prints a message
 * naming `opt` and returns the exit code on failure, -1 on success. */
int cli_parse_values(const char *cmd, const char *opt, const kiln_model *m, size_t n, char **args,
                     const char **names, kiln_tensor **vals);
/* Creates the folder `dir` and any missing parents (like mkdir -p).
 * `parent_of` set: creates the folder that holds the file `dir` instead.
 * Prints "kiln <cmd>: ..." naming the path and returns false on failure. */
bool cli_make_dirs(const char *cmd, const char *dir, bool parent_of);
/* Whether `path` names a picture format kiln writes (.dot, .gv, .svg, .png,
 * .pdf, or '-'); prints why not. */
bool cli_picture_format_ok(const char *cmd, const char *path);
/* Writes DOT text to `path`: as it is for .dot/.gv ('-': stdout), rendered
 * by Graphviz's `dot` for .svg/.png/.pdf (an error naming the Debian package
 * when it is missing). Returns the exit code (0 on success). */
int cli_write_picture(const char *cmd, const char *dot, const char *path);
/* A growing NUL-terminated string; `failed` is set (and the text kept as
 * it was) when memory runs out. Start from {0}; free(data). */
typedef struct cli_buf {
    char *data;
    size_t len, cap;
    bool failed;
} cli_buf;
void cli_buf_append(cli_buf *b, const char *s, size_t n);
void cli_buf_printf(cli_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string literal (NULL: ""); _n: its first n bytes. */
void cli_buf_json_string(cli_buf *b, const char *s);
void cli_buf_json_string_n(cli_buf *b, const char *s, size_t n);
/* Short preview of a tensor on stdout. */
void cli_print_tensor(const char *name, const kiln_tensor *t, FILE *f);

#endif
