/* A growing string for the commands' text and JSON output. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_buf_append(cli_buf *b, const char *s, size_t n) {
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = true;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

void cli_buf_printf(cli_buf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        cli_buf_append(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    cli_buf_append(b, big, (size_t)n);
    free(big);
}

void cli_buf_json_string_n(cli_buf *b, const char *s, size_t n) {
    cli_buf_append(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    for (size_t i = 0; i < n && p[i]; i++) {
        if (p[i] == '"' || p[i] == '\\') {
            char e[2] = {'\\', (char)p[i]};
            cli_buf_append(b, e, 2);
        } else if (p[i] < 0x20) {
            cli_buf_printf(b, "\\u%04x", p[i]);
        } else {
            cli_buf_append(b, (const char *)&p[i], 1);
        }
    }
    cli_buf_append(b, "\"", 1);
}

void cli_buf_json_string(cli_buf *b, const char *s) { cli_buf_json_string_n(b, s, s ? strlen(s) : 0); }
