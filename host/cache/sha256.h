/* SHA-256 (FIPS 180-4): the cache keys and file names hash what they depend on with it. */
#ifndef CLATTN_SHA256_H
#define CLATTN_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define CLATTN_SHA256_BYTES 32
#define CLATTN_SHA256_HEX 65     /* 64 lowercase hex digits and a NUL */

typedef struct clattn_sha256 {
    uint32_t h[8];
    uint64_t total;              /* bytes hashed so far */
    uint8_t block[64];
    size_t fill;                 /* bytes waiting in block */
} clattn_sha256;

void clattn_sha256_init(clattn_sha256 *s);
void clattn_sha256_update(clattn_sha256 *s, const void *data, size_t len);
/* Writes the digest; s must be initialised again before reuse. */
void clattn_sha256_final(clattn_sha256 *s, uint8_t digest[CLATTN_SHA256_BYTES]);
void clattn_sha256_hex(const uint8_t digest[CLATTN_SHA256_BYTES], char hex[CLATTN_SHA256_HEX]);
/* One shot: the hex digest of len bytes. */
void clattn_sha256_hex_of(const void *data, size_t len, char hex[CLATTN_SHA256_HEX]);

#endif /* CLATTN_SHA256_H */
