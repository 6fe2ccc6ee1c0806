/* SHA-256 (FIPS 180-4), for provenance and content-derived file names. */
#ifndef KILN_SHA256_H
#define KILN_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "kiln.h"

typedef struct kiln_sha256 {
    uint32_t h[8];
    uint64_t len; /* bytes so far */
    uint8_t block[64];
    size_t used;
} kiln_sha256;

void kiln_sha256_init(kiln_sha256 *s);
void kiln_sha256_update(kiln_sha256 *s, const void *data, size_t n);
void kiln_sha256_final(kiln_sha256 *s, uint8_t out[32]);
/* out: 64 lowercase hex digits and a NUL. */
void kiln_sha256_hex(const uint8_t digest[32], char out[65]);
void kiln_sha256_buffer(const void *data, size_t n, char out[65]);
/* The digest of a whole file, streamed (messages name the path). */
kiln_status kiln_sha256_file(const char *path, char out[65]);

#endif
