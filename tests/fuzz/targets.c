/* The fuzz entry points: each feeds hostile bytes to one of kiln's parsers
 * (or the whole load -> plan -> run path) and checks only that kiln returns
 * instead of crashing; the sanitizers catch everything else. */
#define _GNU_SOURCE
#include "targets.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ir/ir.h"
#include "kiln.h"
#include "onnx/onnx_io.h"

static char scratch_dir[64];

static void cleanup(void) {
    char p[128];
    snprintf(p, sizeof p, "%s/w.bin", scratch_dir);
    unlink(p);
    rmdir(scratch_dir);
}

void kiln_fuzz_init(void) {
    if (scratch_dir[0])
        return;
    /* External data may name "w.bin" here; everything else fails to resolve. */
    snprintf(scratch_dir, sizeof scratch_dir, "/tmp/kiln-fuzz-XXXXXX");
    if (!mkdtemp(scratch_dir)) {
        scratch_dir[0] = 0;
        return;
    }
    char p[128];
    snprintf(p, sizeof p, "%s/w.bin", scratch_dir);
    FILE *f = fopen(p, "wb");
    if (f) {
        for (int i = 0; i < 4096; i++)
            fputc(i & 0xff, f);
        fclose(f);
    }
    atexit(cleanup);
}

/* Small limits keep each input fast; the defaults are tested elsewhere. */
static kiln_limits fuzz_limits(void) {
    kiln_limits l = kiln_limits_default();
    l.max_tensor_bytes = 16u << 20;
    l.max_nodes = 10000;
    l.max_string_bytes = 1u << 20;
    return l;
}

static kiln_status model_from(const uint8_t *data, size_t size, kiln_model **m) {
    *m = NULL;
    if (size == 0)
        return KILN_ERR_PARSE;
    /* A malloc'd copy, exactly sized, so ASan sees any read past the end. */
    void *copy = malloc(size);
    if (!copy)
        return KILN_ERR_NOMEM;
    memcpy(copy, data, size);
    kiln_buffer *b = kiln_buffer_wrap(copy, size);
    if (!b) {
        free(copy);
        return KILN_ERR_NOMEM;
    }
    kiln_limits lim = fuzz_limits();
    kiln_status st =
        kiln_model_from_bytes_ex(b, "fuzz.onnx", scratch_dir[0] ? scratch_dir : NULL, &lim, m);
    kiln_buffer_unref(b);
    return st;
}

int kiln_fuzz_model(const uint8_t *data, size_t size) {
    kiln_model *m;
    if (model_from(data, size, &m) == KILN_OK) {
        char *text = NULL;
        if (kiln_model_describe(m, 0, &text) == KILN_OK)
            free(text);
        text = NULL;
        if (kiln_model_describe(m, 1, &text) == KILN_OK)
            free(text);
        kiln_model_destroy(m);
    }
    return 0;
}

/* Touches every byte of a value so a wrong size shows under ASan. */
static void touch(const kiln_tensor *t, int depth) {
    if (kiln_value_kind_of(t) != KILN_VALUE_TENSOR) {
        for (size_t i = 0; i < kiln_sequence_length(t) && depth < 32; i++)
            touch(kiln_sequence_at(t, i), depth + 1);
        if (kiln_optional_value(t) && depth < 32)
            touch(kiln_optional_value(t), depth + 1);
        return;
    }
    const uint8_t *p = kiln_tensor_data_const(t);
    volatile uint8_t acc = 0;
    if (kiln_tensor_dtype(t) != KILN_DTYPE_STRING)
        for (size_t i = 0; i < kiln_tensor_nbytes(t); i++)
            acc ^= p[i];
    else
        for (int64_t i = 0; i < kiln_tensor_numel(t); i++) {
            size_t len;
            const char *s = kiln_tensor_string(t, i, &len);
            for (size_t k = 0; k < len; k++)
                acc ^= (uint8_t)s[k];
        }
    (void)acc;
}

/* The readers take a path: hand them an in-memory file. */
static int with_memfd(const uint8_t *data, size_t size, const char *ext,
                      kiln_status (*reader)(const char *, kiln_tensor **)) {
    int fd = memfd_create("kiln-fuzz", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    (void)ext;
    kiln_tensor *t = NULL;
    if (reader(path, &t) == KILN_OK) {
        touch(t, 0);
        kiln_tensor_destroy(t);
    }
    close(fd);
    return 0;
}

int kiln_fuzz_npy(const uint8_t *data, size_t size) {
    return with_memfd(data, size, ".npy", kiln_npy_read);
}

static kiln_status read_sequence(const char *path, kiln_tensor **out) {
    return kiln_pb_read_value(path, KILN_VALUE_SEQUENCE, out);
}

static kiln_status read_optional(const char *path, kiln_tensor **out) {
    return kiln_pb_read_value(path, KILN_VALUE_OPTIONAL, out);
}

/* The same bytes as a TensorProto, a SequenceProto and an OptionalProto. */
int kiln_fuzz_pb(const uint8_t *data, size_t size) {
    with_memfd(data, size, ".pb", kiln_pb_read);
    with_memfd(data, size, ".pb", read_sequence);
    return with_memfd(data, size, ".pb", read_optional);
}

int kiln_fuzz_value(const uint8_t *data, size_t size) {
    if (size == 0 || size > 4096)
        return 0;
    /* First byte: the declared dtype; the rest: the text. */
    kiln_dtype dt = (kiln_dtype)(data[0] % 17);
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    if (text[0] != '@') { /* '@' reads files: covered by the npy/pb targets */
        kiln_tensor *t = NULL;
        if (kiln_value_parse(text, dt, &t) == KILN_OK)
            kiln_tensor_destroy(t);
    }
    free(text);
    return 0;
}

/* A session on m, run once on zeros of each input's declared shape. */
static void run_zeros(kiln_model *m) {
    kiln_session *s = NULL;
    kiln_session_options opts = {.threads = 1};
    const kiln_graph *g = m->graph;
    size_t n_in = 0, n_out = kiln_model_output_count(m);
    const char **names = calloc(g->n_inputs + 1, sizeof *names);
    kiln_tensor **vals = calloc(g->n_inputs + 1, sizeof *vals);
    kiln_tensor **outs = calloc(n_out + 1, sizeof *outs);
    if (!names || !vals || !outs || n_out > 64)
        goto done;
    if (kiln_session_create(m, &opts, &s) != KILN_OK)
        goto done;
    /* Zeros of each declared input shape: unknown dims are 1, and each
     * input is capped at 64 Ki elements so the run stays fast. */
    for (size_t i = 0; i < g->n_inputs; i++) {
        const kiln_value_info *v = &g->inputs[i];
        if (kiln_graph_find_init(g, v->name, NULL))
            continue;
        kiln_dtype dt = v->type.elem;
        if (v->type.kind != KILN_TYPE_TENSOR || dt == KILN_DTYPE_UNDEFINED || dt > KILN_DTYPE_FLOAT6E3M2)
            dt = KILN_DTYPE_FLOAT;
        int rank = v->type.rank < 0 ? 0 : v->type.rank;
        int64_t dims[KILN_MAX_RANK];
        int64_t numel = 1;
        for (int k = 0; k < rank; k++) {
            int64_t d = v->type.dims[k].value < 0 ? 1 : v->type.dims[k].value;
            if (d > 65536 || (d && numel > 65536 / d))
                goto done;
            dims[k] = d;
            numel *= d;
        }
        if (kiln_tensor_create(dt, rank, dims, &vals[n_in]) != KILN_OK)
            goto done;
        names[n_in++] = v->name;
    }
    if (kiln_session_run(s, n_in, names, (const kiln_tensor *const *)vals, n_out, NULL, outs) == KILN_OK)
        for (size_t i = 0; i < n_out; i++) {
            kiln_tensor_destroy(outs[i]);
            outs[i] = NULL;
        }
done:
    for (size_t i = 0; outs && i < n_out; i++)
        kiln_tensor_destroy(outs[i]);
    for (size_t i = 0; vals && i < n_in; i++)
        kiln_tensor_destroy(vals[i]);
    free(outs);
    free(vals);
    free(names);
    kiln_session_destroy(s);
}

int kiln_fuzz_run(const uint8_t *data, size_t size) {
    kiln_model *m;
    if (model_from(data, size, &m) != KILN_OK)
        return 0;
    run_zeros(m);
    kiln_model_destroy(m);
    return 0;
}

/* Where frozen models are written: a tmpfs when there is one (every save
 * syncs; there that costs nothing). */
static char freeze_dir[64];

static void freeze_cleanup(void) {
    /* the frozen model, its data files, temporaries of interrupted saves */
    DIR *d = opendir(freeze_dir);
    for (struct dirent *de; d && (de = readdir(d));) {
        char p[512];
        if (de->d_name[0] != '.' && (size_t)snprintf(p, sizeof p, "%s/%s", freeze_dir, de->d_name) < sizeof p)
            unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(freeze_dir);
}

/* Mutated model -> freeze -> save -> reload -> validate -> run. A model
 * freeze accepts must save, load back and pass the graph checks: anything
 * else is a bug, and aborts so the fuzzer keeps the input. */
int kiln_fuzz_freeze(const uint8_t *data, size_t size) {
    if (!freeze_dir[0]) {
        snprintf(freeze_dir, sizeof freeze_dir, "%s/kiln-fuzz-freeze-XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(freeze_dir)) {
            freeze_dir[0] = 0;
            return 0;
        }
        atexit(freeze_cleanup);
    }
    kiln_model *m;
    if (model_from(data, size, &m) != KILN_OK)
        return 0;
    kiln_freeze_options fo = {.unroll_limit = 8, .unroll_node_limit = 256, .fold_limit = 1 << 16};
    if (kiln_model_freeze(m, &fo, NULL) != KILN_OK) {
        kiln_model_destroy(m);
        return 0;
    }
    char path[128];
    snprintf(path, sizeof path, "%s/frozen.onnx", freeze_dir);
    /* odd sizes save with external data, even ones inline */
    kiln_save_options so = {.external = (size & 1) ? 1 : -1, .external_threshold = (size & 1) ? 64 : 0};
    kiln_status st = kiln_model_save(m, path, &so);
    kiln_model_destroy(m);
    if (st != KILN_OK) {
        /* a frozen model kiln cannot write is refused with a message, never
         * written half: only out of memory or the file system may stop it */
        if (st != KILN_ERR_NOMEM && st != KILN_ERR_IO && st != KILN_ERR_LIMIT && st != KILN_ERR_INVALID) {
            fprintf(stderr, "kiln_fuzz_freeze: save failed: %s\n", kiln_last_error());
            abort();
        }
        return 0;
    }
    kiln_limits lim = fuzz_limits();
    kiln_model *back;
    if ((st = kiln_model_load_ex(path, &lim, &back)) != KILN_OK) {
        if (st == KILN_ERR_LIMIT || st == KILN_ERR_NOMEM)
            return 0;
        fprintf(stderr, "kiln_fuzz_freeze: the frozen model does not load back: %s\n", kiln_last_error());
        abort();
    }
    if (kiln_model_validate(back, NULL) != KILN_OK) {
        fprintf(stderr, "kiln_fuzz_freeze: the frozen model fails the graph checks: %s\n", kiln_last_error());
        abort();
    }
    run_zeros(back);
    kiln_model_destroy(back);
    return 0;
}

const kiln_fuzz_target kiln_fuzz_targets[] = {
    {"model", kiln_fuzz_model}, {"npy", kiln_fuzz_npy}, {"pb", kiln_fuzz_pb},
    {"value", kiln_fuzz_value}, {"run", kiln_fuzz_run},   {"freeze", kiln_fuzz_freeze},
};
const size_t kiln_fuzz_n_targets = sizeof kiln_fuzz_targets / sizeof *kiln_fuzz_targets;
