/* kiln's fuzz entry points, shared by the libFuzzer targets and the replay
 * driver that runs every saved regression input in the normal build. */
#ifndef KILN_FUZZ_TARGETS_H
#define KILN_FUZZ_TARGETS_H

#include <stddef.h>
#include <stdint.h>

/* Once per process: a scratch folder for external-data lookups. */
void kiln_fuzz_init(void);

/* Each returns 0; a bug shows as a crash or a sanitizer report. */
int kiln_fuzz_model(const uint8_t *data, size_t size); /* kiln_model_from_bytes + describe */
int kiln_fuzz_npy(const uint8_t *data, size_t size);   /* kiln_npy_read */
int kiln_fuzz_pb(const uint8_t *data, size_t size);    /* kiln_pb_read */
int kiln_fuzz_value(const uint8_t *data, size_t size); /* kiln_value_parse */
int kiln_fuzz_run(const uint8_t *data, size_t size);   /* load, session, run on zeros */
int kiln_fuzz_freeze(const uint8_t *data, size_t size); /* load, freeze, save, reload, validate, run */

typedef struct kiln_fuzz_target {
    const char *name;
    int (*fn)(const uint8_t *, size_t);
} kiln_fuzz_target;
extern const kiln_fuzz_target kiln_fuzz_targets[];
extern const size_t kiln_fuzz_n_targets;

#endif
