/* String operators of opset 20: StringConcat (broadcasting), StringSplit
 * (Python str.split semantics) and RegexFullMatch.
 *
 * RegexFullMatch compiles the RE2 pattern into a Thompson NFA and simulates
 * it over the UTF-8 decoded code points (linear time, as RE2). Supported:
 * literals and escaped punctuation, . (not \n), character classes with
 * ranges and negation, \d \D \w \W \s \S (ASCII, as RE2), \b \B, ^ $ \A \z,
 * groups (...) (?:...) (?P<name>...), alternation, and the quantifiers
 * * + ? {n} {n,} {n,m} (greedy or lazy, which a full match cannot tell
 * apart). Flags, POSIX [:classes:], Unicode classes (\pL) and
 * backreferences (which RE2 lacks anyway) are refused.
 *
 * StringSplit's whitespace splitting (delimiter unset or "") knows the ASCII
 * whitespace characters Python does (\t \n \v \f \r, \x1c-\x1f and space). */
#include <stdlib.h>
#include <string.h>

#include "kernels/broadcast.h"
#include "ops/op.h"

static kiln_status need_strings(const kiln_op_ctx *c, size_t i) {
    const kiln_tensor *t = kiln_op_in(c, i);
    if (t && t->dtype != KILN_DTYPE_STRING)
        return kiln_fail(KILN_ERR_INVALID, "input %zu must be a string tensor, got %s", i, kiln_dtype_name(t->dtype));
    return KILN_OK;
}

static kiln_status set_string(kiln_string *s, const char *p, size_t n) {
    s->data = kiln_strndup(p ? p : "", n);
    s->len = n;
    return s->data ? KILN_OK : KILN_ERR_NOMEM;
}

/* ---- StringConcat ---- */

static kiln_status concat_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    KILN_TRY(need_strings(c, 0));
    KILN_TRY(need_strings(c, 1));
    const kiln_tensor *x = c->in[0], *y = c->in[1];
    kiln_bcast b;
    KILN_TRY(kiln_bcast_init(&b, 2, (const kiln_tensor *const[]){x, y}));
    kiln_tensor *z;
    KILN_TRY(kiln_op_output(c, 0, KILN_DTYPE_STRING, b.rank, b.dims, &z));
    const kiln_string *xs = x->data, *ys = y->data;
    kiln_string *zs = z->data;
    for (int64_t r = 0; r < b.n_rows; r++) {
        int64_t off[KILN_BCAST_MAX_IN];
        kiln_bcast_row(&b, r, off);
        for (int64_t i = 0; i < b.row_len; i++) {
            const kiln_string *a = &xs[off[0] + i * b.step[0]], *e = &ys[off[1] + i * b.step[1]];
            kiln_string *o = &zs[r * b.row_len + i];
            o->len = a->len + e->len;
            o->data = kiln_malloc(o->len + 1);
            if (!o->data)
                return KILN_ERR_NOMEM;
            if (a->len)
                memcpy(o->data, a->data, a->len);
            if (e->len)
                memcpy(o->data + a->len, e->data, e->len);
            o->data[o->len] = 0;
        }
    }
    return KILN_OK;
}

/* ---- StringSplit ---- */

static bool py_space(unsigned char ch) { return ch == ' ' || (ch >= '\t' && ch <= '\r') || (ch >= 0x1c && ch <= 0x1f); }

/* Pieces of s: (start, length) pairs into `out` (NULL: count only). */
static int64_t split_one(const kiln_string *s, const char *dl, size_t dn, int64_t maxsplit, int64_t *out) {
    const char *p = s->data ? s->data : "";
    size_t n = s->len, i = 0;
    int64_t cnt = 0, splits = 0;
    if (dn) {
        size_t start = 0;
        while (i + dn <= n && (maxsplit < 0 || splits < maxsplit)) {
            if (!memcmp(p + i, dl, dn)) {
                if (out) {
                    out[2 * cnt] = (int64_t)start;
                    out[2 * cnt + 1] = (int64_t)(i - start);
                }
                cnt++;
                splits++;
                i += dn;
                start = i;
            } else {
                i++;
            }
        }
        if (out) {
            out[2 * cnt] = (int64_t)start;
            out[2 * cnt + 1] = (int64_t)(n - start);
        }
        return cnt + 1;
    }
    /* runs of whitespace separate; none at either end */
    while (i < n) {
        while (i < n && py_space((unsigned char)p[i]))
            i++;
        if (i == n)
            break;
        size_t start = i;
        if (maxsplit >= 0 && splits >= maxsplit) {
            /* the rest, trailing whitespace stripped only by a full split */
            size_t e = n;
            if (out) {
                out[2 * cnt] = (int64_t)start;
                out[2 * cnt + 1] = (int64_t)(e - start);
            }
            return cnt + 1;
        }
        while (i < n && !py_space((unsigned char)p[i]))
            i++;
        if (out) {
            out[2 * cnt] = (int64_t)start;
            out[2 * cnt + 1] = (int64_t)(i - start);
        }
        cnt++;
        splits++;
    }
    return cnt;
}

static kiln_status split_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    KILN_TRY(need_strings(c, 0));
    const kiln_tensor *x = c->in[0];
    if (x->rank >= KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "input rank %d leaves no room for the substring axis", x->rank);
    const kiln_attr *da = kiln_node_attr(c->node, "delimiter");
    const char *dl = da && da->type == KILN_ATTR_STRING ? da->s.data : NULL;
    size_t dn = dl ? da->s.len : 0;
    const kiln_attr *ma = kiln_node_attr(c->node, "maxsplit");
    int64_t maxsplit = ma ? ma->i : -1;
    const kiln_string *xs = x->data;
    int64_t most = 0;
    for (int64_t i = 0; i < x->numel; i++) {
        int64_t k = split_one(&xs[i], dl, dn, maxsplit, NULL);
        if (k > most)
            most = k;
    }
    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, x->dims, sizeof(int64_t) * (size_t)x->rank);
    dims[x->rank] = most;
    kiln_tensor *y, *z = NULL;
    KILN_TRY(kiln_op_output(c, 0, KILN_DTYPE_STRING, x->rank + 1, dims, &y));
    if (kiln_op_out_wanted(c, 1))
        KILN_TRY(kiln_op_output(c, 1, KILN_DTYPE_INT64, x->rank, x->dims, &z));
    int64_t *pieces = kiln_malloc((size_t)(2 * most + 2) * sizeof *pieces);
    if (!pieces)
        return KILN_ERR_NOMEM;
    kiln_string *ys = y->data;
    kiln_status st = KILN_OK;
    for (int64_t i = 0; i < x->numel && st == KILN_OK; i++) {
        int64_t k = split_one(&xs[i], dl, dn, maxsplit, pieces);
        if (z)
            ((int64_t *)z->data)[i] = k;
        for (int64_t j = 0; j < most && st == KILN_OK; j++)
            st = j < k ? set_string(&ys[i * most + j], xs[i].data + pieces[2 * j], (size_t)pieces[2 * j + 1])
                       : set_string(&ys[i * most + j], "", 0);
    }
    free(pieces);
    return st;
}

static kiln_status split_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out >= 1) {
        x->out[0].dt = KILN_DTYPE_STRING;
        if (X->rank >= 0 && X->rank < KILN_MAX_RANK) {
            kiln_infer_copy_shape(&x->out[0], X, false);
            x->out[0].rank = X->rank + 1;
            x->out[0].dims[X->rank] = kiln_sd_unknown();
        }
    }
    if (x->n_out >= 2) {
        x->out[1].dt = KILN_DTYPE_INT64;
        if (X->rank >= 0)
            kiln_infer_copy_shape(&x->out[1], X, false);
    }
    return KILN_OK;
}

/* ---- RegexFullMatch: a small RE2 subset on a Thompson NFA ---- */

#define RX_MAX_INSTS 20000
#define RX_MAX_REPEAT 1000
#define RX_MAX_CP 0x10FFFF

typedef struct rx_class {
    int n;
    uint32_t (*r)[2]; /* sorted, disjoint [lo, hi] ranges */
} rx_class;

typedef enum { RX_CHAR, RX_SPLIT, RX_JMP, RX_BOT, RX_EOT, RX_WORDB, RX_NWORDB, RX_MATCH } rx_op;
typedef struct rx_inst {
    rx_op op;
    int x, y;  /* SPLIT / JMP targets */
    int cls;   /* RX_CHAR: class index */
} rx_inst;

/* The parsed pattern, as a tree. */
typedef enum { RN_EMPTY, RN_CLASS, RN_ASSERT, RN_CAT, RN_ALT, RN_REP } rn_kind;
typedef struct rx_node {
    rn_kind kind;
    int cls;        /* RN_CLASS */
    rx_op assert_op; /* RN_ASSERT */
    int min, max;   /* RN_REP, max -1: unbounded */
    struct rx_node *a, *b; /* CAT / ALT children, REP's child in a */
} rx_node;

typedef struct rx {
    const char *pat;
    size_t len, pos;
    const char *err;
    rx_class *cls;
    int ncls, capcls;
    rx_inst *prog;
    int n, cap;
    rx_node **nodes;
    int nnodes, capnodes;
} rx;

static rx_node *rn_new(rx *r, rn_kind k) {
    if (r->nnodes == r->capnodes) {
        int cap = r->capnodes ? 2 * r->capnodes : 64;
        rx_node **nn = realloc(r->nodes, (size_t)cap * sizeof *nn);
        if (!nn)
            return NULL;
        r->nodes = nn;
        r->capnodes = cap;
    }
    rx_node *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->kind = k;
    r->nodes[r->nnodes++] = n;
    return n;
}

/* A class from unsorted ranges, complemented when `neg`. */
static int rx_add_class(rx *r, uint32_t (*rg)[2], int n, bool neg) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && rg[j][0] < rg[j - 1][0]; j--) {
            uint32_t t0 = rg[j][0], t1 = rg[j][1];
            rg[j][0] = rg[j - 1][0];
            rg[j][1] = rg[j - 1][1];
            rg[j - 1][0] = t0;
            rg[j - 1][1] = t1;
        }
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m && rg[i][0] <= rg[m - 1][1] + 1) {
            if (rg[i][1] > rg[m - 1][1])
                rg[m - 1][1] = rg[i][1];
        } else {
            rg[m][0] = rg[i][0];
            rg[m][1] = rg[i][1];
            m++;
        }
    }
    uint32_t (*out)[2] = malloc((size_t)(m + 1) * sizeof *out);
    if (!out)
        return -1;
    int k = 0;
    if (neg) {
        uint32_t next = 0;
        for (int i = 0; i < m; i++) {
            if (rg[i][0] > next) {
                out[k][0] = next;
                out[k][1] = rg[i][0] - 1;
                k++;
            }
            next = rg[i][1] + 1;
        }
        if (next <= RX_MAX_CP) {
            out[k][0] = next;
            out[k][1] = RX_MAX_CP;
            k++;
        }
    } else {
        memcpy(out, rg, (size_t)m * sizeof *out);
        k = m;
    }
    if (r->ncls == r->capcls) {
        int cap = r->capcls ? 2 * r->capcls : 16;
        rx_class *nc = realloc(r->cls, (size_t)cap * sizeof *nc);
        if (!nc) {
            free(out);
            return -1;
        }
        r->cls = nc;
        r->capcls = cap;
    }
    r->cls[r->ncls].n = k;
    r->cls[r->ncls].r = out;
    return r->ncls++;
}

static bool rx_in_class(const rx_class *c, uint32_t cp) {
    int lo = 0, hi = c->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < c->r[mid][0])
            hi = mid - 1;
        else if (cp > c->r[mid][1])
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

/* Decodes one UTF-8 code point (an invalid byte stands for itself). */
static uint32_t utf8_next(const unsigned char *s, size_t n, size_t *i) {
    unsigned char b = s[*i];
    int len = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || *i + (size_t)len > n) {
        (*i)++;
        return b;
    }
    uint32_t cp = len == 1 ? b : len == 2 ? b & 0x1Fu : len == 3 ? b & 0x0Fu : b & 0x07u;
    for (int k = 1; k < len; k++) {
        if ((s[*i + (size_t)k] & 0xC0) != 0x80) {
            (*i)++;
            return b;
        }
        cp = cp << 6 | (s[*i + (size_t)k] & 0x3Fu);
    }
    *i += (size_t)len;
    return cp;
}

static bool rx_word(uint32_t cp) {
    return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
}

/* Adds the ranges of a Perl class letter (d w s, upper case negated) to rg. */
static int rx_perl_ranges(char ch, uint32_t (*rg)[2], int n, int cap) {
    static const uint32_t d[][2] = {{'0', '9'}};
    static const uint32_t w[][2] = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
    static const uint32_t s[][2] = {{'\t', '\n'}, {'\f', '\r'}, {' ', ' '}};
    const uint32_t (*src)[2];
    int m;
    char lc = (char)(ch | 0x20);
    if (lc == 'd') {
        src = d;
        m = 1;
    } else if (lc == 'w') {
        src = w;
        m = 4;
    } else {
        src = s;
        m = 3;
    }
    if (ch >= 'a') {
        for (int i = 0; i < m && n < cap; i++, n++) {
            rg[n][0] = src[i][0];
            rg[n][1] = src[i][1];
        }
        return n;
    }
    /* the complement, inline */
    uint32_t next = 0;
    for (int i = 0; i < m && n < cap; i++) {
        if (src[i][0] > next) {
            rg[n][0] = next;
            rg[n][1] = src[i][0] - 1;
            n++;
        }
        next = src[i][1] + 1;
    }
    if (n < cap) {
        rg[n][0] = next;
        rg[n][1] = RX_MAX_CP;
        n++;
    }
    return n;
}

static bool rx_eof(const rx *r) { return r->pos >= r->len; }
static char rx_peek(const rx *r) { return rx_eof(r) ? 0 : r->pat[r->pos]; }

/* A literal escape's code point, or -1 when not a literal escape. */
static int64_t rx_escape_literal(char e) {
    switch (e) {
    case 't': return '\t';
    case 'n': return '\n';
    case 'r': return '\r';
    case 'f': return '\f';
    case 'v': return '\v';
    case 'a': return '\a';
    default: break;
    }
    if ((e >= '!' && e <= '/') || (e >= ':' && e <= '@') || (e >= '[' && e <= '`') || (e >= '{' && e <= '~'))
        return (unsigned char)e;
    return -1;
}

static rx_node *rx_parse_alt(rx *r, int depth);

static rx_node *rx_class_node(rx *r, uint32_t (*rg)[2], int n, bool neg) {
    int k = rx_add_class(r, rg, n, neg);
    if (k < 0) {
        r->err = "out of memory";
        return NULL;
    }
    rx_node *nd = rn_new(r, RN_CLASS);
    if (!nd) {
        r->err = "out of memory";
        return NULL;
    }
    nd->cls = k;
    return nd;
}

#define RX_CLASS_CAP 512

static rx_node *rx_parse_bracket(rx *r) {
    uint32_t rg[RX_CLASS_CAP][2];
    int n = 0;
    bool neg = false;
    if (rx_peek(r) == '^') {
        neg = true;
        r->pos++;
    }
    bool first = true;
    while (!rx_eof(r) && (rx_peek(r) != ']' || first)) {
        first = false;
        if (n > RX_CLASS_CAP - 8) {
            r->err = "character class is too large";
            return NULL;
        }
        uint32_t lo;
        char ch = rx_peek(r);
        if (ch == '[' && r->pos + 1 < r->len && r->pat[r->pos + 1] == ':') {
            r->err = "POSIX character classes ([:name:]) are not supported";
            return NULL;
        }
        if (ch == '\\') {
            r->pos++;
            if (rx_eof(r)) {
                r->err = "trailing backslash";
                return NULL;
            }
            char e = r->pat[r->pos++];
            if (strchr("dDwWsS", e)) {
                n = rx_perl_ranges(e, rg, n, RX_CLASS_CAP);
                continue;
            }
            int64_t v = rx_escape_literal(e);
            if (v < 0) {
                r->err = "unsupported escape in a character class";
                return NULL;
            }
            lo = (uint32_t)v;
        } else {
            lo = utf8_next((const unsigned char *)r->pat, r->len, &r->pos);
        }
        uint32_t hi = lo;
        if (rx_peek(r) == '-' && r->pos + 1 < r->len && r->pat[r->pos + 1] != ']') {
            r->pos++;
            if (rx_peek(r) == '\\') {
                r->pos++;
                int64_t v = rx_eof(r) ? -1 : rx_escape_literal(r->pat[r->pos++]);
                if (v < 0) {
                    r->err = "bad range end in a character class";
                    return NULL;
                }
                hi = (uint32_t)v;
            } else {
                hi = utf8_next((const unsigned char *)r->pat, r->len, &r->pos);
            }
            if (hi < lo) {
                r->err = "character class range is out of order";
                return NULL;
            }
        }
        rg[n][0] = lo;
        rg[n][1] = hi;
        n++;
    }
    if (rx_eof(r)) {
        r->err = "missing ]";
        return NULL;
    }
    r->pos++; /* ] */
    return rx_class_node(r, rg, n, neg);
}

static rx_node *rx_parse_atom(rx *r, int depth) {
    char ch = rx_peek(r);
    uint32_t rg[8][2];
    if (ch == '(') {
        r->pos++;
        if (rx_peek(r) == '?') {
            r->pos++;
            if (rx_peek(r) == ':')
                r->pos++;
            else if (rx_peek(r) == 'P' && r->pos + 1 < r->len && r->pat[r->pos + 1] == '<') {
                while (!rx_eof(r) && rx_peek(r) != '>')
                    r->pos++;
                if (rx_eof(r)) {
                    r->err = "unterminated group name";
                    return NULL;
                }
                r->pos++;
            } else {
                r->err = "flags and other (?...) groups are not supported";
                return NULL;
            }
        }
        rx_node *inner = rx_parse_alt(r, depth + 1);
        if (!inner)
            return NULL;
        if (rx_peek(r) != ')') {
            r->err = "missing )";
            return NULL;
        }
        r->pos++;
        return inner;
    }
    if (ch == '[') {
        r->pos++;
        return rx_parse_bracket(r);
    }
    if (ch == '.') {
        r->pos++;
        rg[0][0] = '\n';
        rg[0][1] = '\n';
        return rx_class_node(r, rg, 1, true);
    }
    if (ch == '^' || ch == '$') {
        r->pos++;
        rx_node *nd = rn_new(r, RN_ASSERT);
        if (!nd) {
            r->err = "out of memory";
            return NULL;
        }
        nd->assert_op = ch == '^' ? RX_BOT : RX_EOT;
        return nd;
    }
    if (ch == '\\') {
        r->pos++;
        if (rx_eof(r)) {
            r->err = "trailing backslash";
            return NULL;
        }
        char e = r->pat[r->pos++];
        if (strchr("bBAz", e)) {
            rx_node *nd = rn_new(r, RN_ASSERT);
            if (!nd) {
                r->err = "out of memory";
                return NULL;
            }
            nd->assert_op = e == 'b' ? RX_WORDB : e == 'B' ? RX_NWORDB : e == 'A' ? RX_BOT : RX_EOT;
            return nd;
        }
        if (strchr("dDwWsS", e)) {
            int n = rx_perl_ranges(e, rg, 0, 8);
            return rx_class_node(r, rg, n, false);
        }
        int64_t v = rx_escape_literal(e);
        if (v < 0) {
            r->err = "unsupported escape (Unicode classes, backreferences and \\x are not supported)";
            return NULL;
        }
        rg[0][0] = rg[0][1] = (uint32_t)v;
        return rx_class_node(r, rg, 1, false);
    }
    if (ch == '*' || ch == '+' || ch == '?' || ch == ')' || ch == '|') {
        r->err = "a quantifier or ) without an operand";
        return NULL;
    }
    rg[0][0] = rg[0][1] = utf8_next((const unsigned char *)r->pat, r->len, &r->pos);
    return rx_class_node(r, rg, 1, false);
}

/* {n}, {n,}, {n,m}: false (position unchanged) when not a valid repeat, as
 * RE2 then reads the brace literally. */
static bool rx_parse_braces(rx *r, int *mn, int *mx) {
    size_t p = r->pos + 1;
    long a = 0, b;
    bool digits = false;
    while (p < r->len && r->pat[p] >= '0' && r->pat[p] <= '9') {
        a = a * 10 + (r->pat[p++] - '0');
        digits = true;
        if (a > 100000)
            return false;
    }
    if (!digits)
        return false;
    b = a;
    if (p < r->len && r->pat[p] == ',') {
        p++;
        if (p < r->len && r->pat[p] == '}')
            b = -1;
        else {
            b = 0;
            digits = false;
            while (p < r->len && r->pat[p] >= '0' && r->pat[p] <= '9') {
                b = b * 10 + (r->pat[p++] - '0');
                digits = true;
                if (b > 100000)
                    return false;
            }
            if (!digits)
                return false;
        }
    }
    if (p >= r->len || r->pat[p] != '}')
        return false;
    r->pos = p + 1;
    *mn = (int)a;
    *mx = (int)b;
    return true;
}

static rx_node *rx_parse_repeat(rx *r, int depth) {
    rx_node *a = rx_parse_atom(r, depth);
    while (a) {
        char ch = rx_peek(r);
        int mn, mx;
        if (ch == '*' || ch == '+' || ch == '?') {
            r->pos++;
            mn = ch == '+' ? 1 : 0;
            mx = ch == '?' ? 1 : -1;
        } else if (ch == '{' && rx_parse_braces(r, &mn, &mx)) {
            if (mn > RX_MAX_REPEAT || mx > RX_MAX_REPEAT || (mx >= 0 && mx < mn)) {
                r->err = "bad repetition count (at most 1000)";
                return NULL;
            }
        } else {
            break;
        }
        if (rx_peek(r) == '?')
            r->pos++; /* lazy: the same for a full match */
        rx_node *rep = rn_new(r, RN_REP);
        if (!rep) {
            r->err = "out of memory";
            return NULL;
        }
        rep->a = a;
        rep->min = mn;
        rep->max = mx;
        a = rep;
    }
    return a;
}

static rx_node *rx_parse_cat(rx *r, int depth) {
    rx_node *acc = NULL;
    while (!rx_eof(r) && rx_peek(r) != '|' && rx_peek(r) != ')') {
        rx_node *n = rx_parse_repeat(r, depth);
        if (!n)
            return NULL;
        if (!acc)
            acc = n;
        else {
            rx_node *c = rn_new(r, RN_CAT);
            if (!c) {
                r->err = "out of memory";
                return NULL;
            }
            c->a = acc;
            c->b = n;
            acc = c;
        }
    }
    if (!acc && !(acc = rn_new(r, RN_EMPTY)))
        r->err = "out of memory";
    return acc;
}

static rx_node *rx_parse_alt(rx *r, int depth) {
    if (depth > 200) {
        r->err = "pattern nests too deeply";
        return NULL;
    }
    rx_node *a = rx_parse_cat(r, depth);
    while (a && rx_peek(r) == '|') {
        r->pos++;
        rx_node *b = rx_parse_cat(r, depth);
        if (!b)
            return NULL;
        rx_node *alt = rn_new(r, RN_ALT);
        if (!alt) {
            r->err = "out of memory";
            return NULL;
        }
        alt->a = a;
        alt->b = b;
        a = alt;
    }
    return a;
}

static int rx_emit(rx *r, rx_op op) {
    if (r->n >= RX_MAX_INSTS) {
        r->err = "pattern is too large";
        return -1;
    }
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 64;
        rx_inst *np = realloc(r->prog, (size_t)cap * sizeof *np);
        if (!np) {
            r->err = "out of memory";
            return -1;
        }
        r->prog = np;
        r->cap = cap;
    }
    r->prog[r->n] = (rx_inst){.op = op, .x = -1, .y = -1, .cls = -1};
    return r->n++;
}

/* Emits nd; the code falls through to the next instruction. */
static bool rx_compile(rx *r, const rx_node *nd, int depth) {
    if (depth > 400) {
        r->err = "pattern nests too deeply";
        return false;
    }
    switch (nd->kind) {
    case RN_EMPTY: return true;
    case RN_CLASS: {
        int i = rx_emit(r, RX_CHAR);
        if (i < 0)
            return false;
        r->prog[i].cls = nd->cls;
        return true;
    }
    case RN_ASSERT: return rx_emit(r, nd->assert_op) >= 0;
    case RN_CAT: return rx_compile(r, nd->a, depth + 1) && rx_compile(r, nd->b, depth + 1);
    case RN_ALT: {
        int s = rx_emit(r, RX_SPLIT);
        if (s < 0)
            return false;
        r->prog[s].x = r->n;
        if (!rx_compile(r, nd->a, depth + 1))
            return false;
        int j = rx_emit(r, RX_JMP);
        if (j < 0)
            return false;
        r->prog[s].y = r->n;
        if (!rx_compile(r, nd->b, depth + 1))
            return false;
        r->prog[j].x = r->n;
        return true;
    }
    case RN_REP: {
        for (int k = 0; k < nd->min; k++)
            if (!rx_compile(r, nd->a, depth + 1))
                return false;
        if (nd->max < 0) {
            /* L: split body, out; body; jmp L */
            int s = rx_emit(r, RX_SPLIT);
            if (s < 0)
                return false;
            r->prog[s].x = r->n;
            if (!rx_compile(r, nd->a, depth + 1))
                return false;
            int j = rx_emit(r, RX_JMP);
            if (j < 0)
                return false;
            r->prog[j].x = s;
            r->prog[s].y = r->n;
            return true;
        }
        /* max - min optional copies, each skipping to the end */
        int opt = nd->max - nd->min;
        int *splits = malloc((size_t)(opt ? opt : 1) * sizeof *splits);
        if (!splits) {
            r->err = "out of memory";
            return false;
        }
        bool ok = true;
        for (int k = 0; k < opt && ok; k++) {
            splits[k] = rx_emit(r, RX_SPLIT);
            ok = splits[k] >= 0;
            if (ok) {
                r->prog[splits[k]].x = r->n;
                ok = rx_compile(r, nd->a, depth + 1);
            }
        }
        for (int k = 0; k < opt && ok; k++)
            r->prog[splits[k]].y = r->n;
        free(splits);
        return ok;
    }
    }
    return false;
}

static void rx_free(rx *r) {
    for (int i = 0; i < r->ncls; i++)
        free(r->cls[i].r);
    free(r->cls);
    free(r->prog);
    for (int i = 0; i < r->nnodes; i++)
        free(r->nodes[i]);
    free(r->nodes);
}

/* Thompson simulation: the state lists of two consecutive positions. */
typedef struct rx_sim {
    int *list[2], n[2];
    unsigned *mark; /* generation per instruction, for the closure */
    unsigned gen;
    int *stack;
} rx_sim;

/* Adds pc and its epsilon closure at a position whose previous and next
 * code points are prev / next (-1 at either end). */
static void rx_add(const rx *r, rx_sim *s, int l, int pc, int64_t prev, int64_t next) {
    int sp = 0;
    s->stack[sp++] = pc;
    while (sp) {
        pc = s->stack[--sp];
        if (s->mark[pc] == s->gen)
            continue;
        s->mark[pc] = s->gen;
        const rx_inst *in = &r->prog[pc];
        bool wb = (prev >= 0 && rx_word((uint32_t)prev)) != (next >= 0 && rx_word((uint32_t)next));
        switch (in->op) {
        case RX_JMP: s->stack[sp++] = in->x; break;
        case RX_SPLIT:
            s->stack[sp++] = in->y;
            s->stack[sp++] = in->x;
            break;
        case RX_BOT:
            if (prev < 0)
                s->stack[sp++] = pc + 1;
            break;
        case RX_EOT:
            if (next < 0)
                s->stack[sp++] = pc + 1;
            break;
        case RX_WORDB:
            if (wb)
                s->stack[sp++] = pc + 1;
            break;
        case RX_NWORDB:
            if (!wb)
                s->stack[sp++] = pc + 1;
            break;
        default: s->list[l][s->n[l]++] = pc; break;
        }
    }
}

static bool rx_full_match(const rx *r, rx_sim *s, const uint32_t *cps, size_t n) {
    int cur = 0;
    s->n[0] = 0;
    s->gen++;
    rx_add(r, s, 0, 0, -1, n ? (int64_t)cps[0] : -1);
    for (size_t i = 0; i < n && s->n[cur]; i++) {
        int nx = 1 - cur;
        s->n[nx] = 0;
        s->gen++;
        int64_t next = i + 1 < n ? (int64_t)cps[i + 1] : -1;
        for (int k = 0; k < s->n[cur]; k++) {
            const rx_inst *in = &r->prog[s->list[cur][k]];
            if (in->op == RX_CHAR && rx_in_class(&r->cls[in->cls], cps[i]))
                rx_add(r, s, nx, s->list[cur][k] + 1, (int64_t)cps[i], next);
        }
        cur = nx;
    }
    for (int k = 0; k < s->n[cur]; k++)
        if (r->prog[s->list[cur][k]].op == RX_MATCH)
            return true;
    return false;
}

static kiln_status regex_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    KILN_TRY(need_strings(c, 0));
    const kiln_tensor *x = c->in[0];
    const kiln_attr *pa = kiln_node_attr(c->node, "pattern");
    if (!pa || pa->type != KILN_ATTR_STRING)
        return kiln_fail(KILN_ERR_INVALID, "attribute 'pattern' is required");
    rx r;
    memset(&r, 0, sizeof r);
    r.pat = pa->s.data ? pa->s.data : "";
    r.len = pa->s.len;
    kiln_status st = KILN_OK;
    rx_node *root = rx_parse_alt(&r, 0);
    if (root && !rx_eof(&r))
        r.err = "unbalanced )";
    if (root && !r.err && rx_compile(&r, root, 0))
        rx_emit(&r, RX_MATCH);
    if (r.err || !root) {
        st = !strcmp(r.err ? r.err : "out of memory", "out of memory")
                 ? KILN_ERR_NOMEM
                 : kiln_fail(KILN_ERR_UNSUPPORTED, "pattern '%.*s': %s (at offset %zu)", (int)r.len, r.pat, r.err,
                             r.pos);
        rx_free(&r);
        return st;
    }
    kiln_tensor *y;
    KILN_CHECK(st, kiln_op_output(c, 0, KILN_DTYPE_BOOL, x->rank, x->dims, &y), done);
    rx_sim s = {{kiln_malloc((size_t)r.n * sizeof(int)), kiln_malloc((size_t)r.n * sizeof(int))},
                {0, 0},
                kiln_calloc((size_t)r.n, sizeof(unsigned)),
                0,
                kiln_malloc((size_t)(2 * r.n + 2) * sizeof(int))};
    size_t maxlen = 0;
    const kiln_string *xs = x->data;
    for (int64_t i = 0; i < x->numel; i++)
        if (xs[i].len > maxlen)
            maxlen = xs[i].len;
    uint32_t *cps = kiln_malloc((maxlen + 1) * sizeof *cps);
    if (!s.list[0] || !s.list[1] || !s.mark || !s.stack || !cps) {
        st = KILN_ERR_NOMEM;
    } else {
        for (int64_t i = 0; i < x->numel; i++) {
            size_t n = 0, p = 0;
            const unsigned char *sp = (const unsigned char *)(xs[i].data ? xs[i].data : "");
            while (p < xs[i].len)
                cps[n++] = utf8_next(sp, xs[i].len, &p);
            ((uint8_t *)y->data)[i] = rx_full_match(&r, &s, cps, n);
        }
    }
    free(cps);
    free(s.list[0]);
    free(s.list[1]);
    free(s.mark);
    free(s.stack);
done:
    rx_free(&r);
    return st;
}

static const kiln_op_desc ops[] = {
    {"", "StringConcat", 20, 0, concat_exec, kiln_infer_bcast_all},
    {"", "StringSplit", 20, 0, split_exec, split_infer},
    {"", "RegexFullMatch", 20, 0, regex_exec, kiln_infer_same_bool},
};
KILN_OP_FAMILY(strings, ops);
