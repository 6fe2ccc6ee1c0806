/* Dimension expressions: exporters write output sizes as arithmetic over
 * the input symbols in dim_param ("floor(floor(height/2 - 1/2)/2) + 1",
 * "s0//2", "2*batch"). Fixing a symbol substitutes its value into every
 * expression that names it; an expression left with no symbol is
 * evaluated into a plain dimension. Grammar: + - * / // % on numbers,
 * symbols, parentheses, unary minus, and floor ceil min max Max Min. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

static bool ident_start(char c) { return isalpha((unsigned char)c) || c == '_'; }
static bool ident_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '.'; }

bool kiln_dim_is_expr(const char *p) {
    if (!p || !ident_start(*p))
        return p && *p;
    for (; *p; p++)
        if (!ident_char(*p))
            return true;
    return false;
}

char *kiln_dim_expr_subst(const char *expr, const char *sym, int64_t v) {
    size_t n = strlen(expr), ls = strlen(sym);
    size_t cap = n * 21 + 1; /* every character a replaced symbol, at worst */
    char *out = kiln_malloc(cap), *o = out;
    if (!out)
        return NULL;
    bool hit = false;
    for (const char *p = expr; *p;) {
        if (ident_start(*p)) {
            const char *q = p;
            while (*q && ident_char(*q))
                q++;
            if ((size_t)(q - p) == ls && !strncmp(p, sym, ls)) {
                o += snprintf(o, cap - (size_t)(o - out), "%lld", (long long)v);
                hit = true;
            } else {
                memcpy(o, p, (size_t)(q - p));
                o += q - p;
            }
            p = q;
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
    if (!hit) {
        free(out);
        return NULL;
    }
    return out;
}

typedef struct parser {
    const char *p;
    bool bad;
    int depth;
} parser;

static double expr(parser *s);

static void skip(parser *s) {
    while (isspace((unsigned char)*s->p))
        s->p++;
}

static double factor(parser *s) {
    skip(s);
    if (++s->depth > 64) {
        s->bad = true;
        return 0;
    }
    double v = 0;
    if (*s->p == '-') {
        s->p++;
        v = -factor(s);
    } else if (*s->p == '+') {
        s->p++;
        v = factor(s);
    } else if (*s->p == '(') {
        s->p++;
        v = expr(s);
        skip(s);
        if (*s->p != ')')
            s->bad = true;
        else
            s->p++;
    } else if (isdigit((unsigned char)*s->p)) {
        char *end;
        v = strtod(s->p, &end);
        s->p = end;
    } else if (ident_start(*s->p)) {
        const char *q = s->p;
        while (ident_char(*q))
            q++;
        size_t n = (size_t)(q - s->p);
        char name[16] = {0};
        if (n < sizeof name)
            memcpy(name, s->p, n);
        s->p = q;
        skip(s);
        bool two = !strcmp(name, "min") || !strcmp(name, "max") || !strcmp(name, "Min") || !strcmp(name, "Max");
        bool one = !strcmp(name, "floor") || !strcmp(name, "ceil");
        if ((!one && !two) || *s->p != '(') {
            s->bad = true; /* a symbol not yet fixed, or an unknown function */
            s->depth--;
            return 0;
        }
        s->p++;
        double a = expr(s), b = 0;
        skip(s);
        if (two) {
            if (*s->p != ',')
                s->bad = true;
            else {
                s->p++;
                b = expr(s);
                skip(s);
            }
        }
        if (*s->p != ')')
            s->bad = true;
        else
            s->p++;
        v = !strcmp(name, "floor") ? floor(a) : !strcmp(name, "ceil") ? ceil(a) : (name[1] == 'i') ? fmin(a, b) : fmax(a, b);
    } else {
        s->bad = true;
    }
    s->depth--;
    return v;
}

static double term(parser *s) {
    double v = factor(s);
    for (;;) {
        skip(s);
        if (s->p[0] == '/' && s->p[1] == '/') {
            s->p += 2;
            double d = factor(s);
            if (d == 0)
                s->bad = true;
            else
                v = floor(v / d);
        } else if (*s->p == '*' || *s->p == '/' || *s->p == '%') {
            char op = *s->p++;
            double d = factor(s);
            if (op == '*')
                v *= d;
            else if (d == 0)
                s->bad = true;
            else
                v = op == '/' ? v / d : v - d * floor(v / d);
        } else {
            return v;
        }
    }
}

static double expr(parser *s) {
    double v = term(s);
    for (;;) {
        skip(s);
        if (*s->p == '+') {
            s->p++;
            v += term(s);
        } else if (*s->p == '-') {
            s->p++;
            v -= term(s);
        } else {
            return v;
        }
    }
}

bool kiln_dim_expr_value(const char *text, int64_t *out) {
    parser s = {text, false, 0};
    double v = expr(&s);
    skip(&s);
    if (s.bad || *s.p || !isfinite(v) || v < 0 || v > 9.0e15)
        return false;
    double r = floor(v + 0.5);
    if (fabs(v - r) > 1e-9)
        return false;
    *out = (int64_t)r;
    return true;
}
