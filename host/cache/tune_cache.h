/* The tuning cache: the best parameters found per (kernel family, problem shape class) on one
   device, kept in memory for lookups and in one text file per device for the next process.
   No OpenCL: the caller names the device (clattn_cache_identity) and the kernel sources (their
   SHA-256), and maps parameter names to its kernel families. Not thread-safe: the context holds
   its lock around every call. The table is tune_cache.c's; the file format is described at the
   top of tune_file.c. */
#ifndef CLATTN_TUNE_CACHE_H
#define CLATTN_TUNE_CACHE_H

#include "clattn.h"

#include <stddef.h>

#define CLATTN_TUNE_CACHE_FORMAT 1          /* "clattn-tune-cache 1": bump on incompatible change */
#define CLATTN_TUNE_MAX_PARAMS 16           /* CLATTN_MAX_PARAMS: CLBlast's Xgemm has 16 */
#define CLATTN_TUNE_MAX_PARAMS_TEXT "16"    /* the same, for messages */
#define CLATTN_TUNE_NAME_LEN 24             /* family and parameter names, with the NUL */
#define CLATTN_TUNE_MAX_DIM 65536           /* d, dv, group */
#define CLATTN_TUNE_MAX_LK_BUCKET (1 << 30)
#define CLATTN_TUNE_FILE_MAX_BYTES (16u << 20)
#define CLATTN_TUNE_FILE_MAX_ENTRIES 100000
#define CLATTN_TUNE_FILE_NAME_LEN 26        /* "tune-" 16 hex ".txt" and a NUL */

/* Lq classes: decoding (one query) and short, medium and long query blocks behave differently. */
enum { CLATTN_TUNE_LQ_1 = 0, CLATTN_TUNE_LQ_16, CLATTN_TUNE_LQ_128, CLATTN_TUNE_LQ_LARGE };

/* The variants that change a kernel's code, as bits of a key (clattn_problem_variants makes them). */
enum {
    CLATTN_VARIANT_WINDOW = 1,    /* a window's lower edge (its upper edge is the causal bound) */
    CLATTN_VARIANT_SOFTCAP = 2,
    CLATTN_VARIANT_ALIBI = 4,
    CLATTN_VARIANT_SINKS = 8,
    CLATTN_VARIANT_KV_INT8 = 16,
    CLATTN_VARIANT_VARLEN = 32,   /* a ragged batch (clattn_attention_varlen): lengths per sequence */
    CLATTN_VARIANT_PAGED = 64,    /* its keys in a paged cache */
    CLATTN_VARIANT_ALL = 127
};

typedef struct clattn_tune_key {
    char family[CLATTN_TUNE_NAME_LEN];      /* [a-z0-9_]+, e.g. "flash" */
    clattn_dtype dtype;
    int d, dv;                              /* 1..CLATTN_TUNE_MAX_DIM */
    int lq_class;                           /* CLATTN_TUNE_LQ_* (clattn_tune_lq_class) */
    int lk_bucket;                          /* a power of two (clattn_tune_lk_bucket) */
    int causal;                             /* 0 or 1: either causal mode counts as causal */
    int group;                              /* GQA group size Hq / Hkv, 1..CLATTN_TUNE_MAX_DIM */
    int variants;                           /* CLATTN_VARIANT_* bits; 0: plain attention */
} clattn_tune_key;

typedef struct clattn_tune_param {
    char name[CLATTN_TUNE_NAME_LEN];        /* [A-Za-z_][A-Za-z0-9_]*, the -D name */
    int value;
} clattn_tune_param;

typedef struct clattn_tune_entry {
    clattn_tune_key key;
    int n_params;                           /* 1..CLATTN_TUNE_MAX_PARAMS, names distinct */
    clattn_tune_param params[CLATTN_TUNE_MAX_PARAMS];
    double time_ms;                         /* measured with these params; < 0 unknown */
    double default_ms;                      /* measured with the defaults; < 0 unknown */
} clattn_tune_entry;                        /* times are kept to the microsecond in the file */

int clattn_tune_lq_class(int lq);           /* 1 / <=16 / <=128 / larger */
int clattn_tune_lk_bucket(int lk);          /* the next power of two >= lk (at least 1) */
/* Fills key for a problem. causal: any nonzero mode. CLATTN_INVALID_ARGUMENT (with nothing
   written) for a bad family name or out-of-range size. */
clattn_status clattn_tune_key_make(clattn_tune_key *key, const char *family, clattn_dtype dtype,
                                   int d, int dv, int lq, int lk, int causal, int group,
                                   int variants);
/* The value of the parameter called name in e: 0 and *value set when present, else -1. */
int clattn_tune_entry_param(const clattn_tune_entry *e, const char *name, int *value);

typedef struct clattn_tune_cache clattn_tune_cache;

/* An empty cache for the device called identity (any text up to 4095 bytes), for the kernel
   sources whose SHA-256 is sources_sha256 (64 hex digits), written by library_version. */
clattn_status clattn_tune_cache_create(const char *identity, const char *sources_sha256,
                                       const char *library_version, clattn_tune_cache **out);
void clattn_tune_cache_release(clattn_tune_cache *cache);   /* NULL is a no-op */

size_t clattn_tune_cache_count(const clattn_tune_cache *cache);
/* Entry i of count, in key order (family, dtype, d, dv, lq, lk, causal, group, variants). */
const clattn_tune_entry *clattn_tune_cache_entry(const clattn_tune_cache *cache, size_t i);
/* Adds e, replacing an entry with the same key. CLATTN_INVALID_ARGUMENT for an invalid entry. */
clattn_status clattn_tune_cache_put(clattn_tune_cache *cache, const clattn_tune_entry *e);
/* The entry for key: the exact one if present (*exact 1), else the nearest shape class with the
   same family, dtype, d and dv (*exact 0): nearest Lq class first, then nearest Lk bucket (in
   powers of two), then the same causal flag, then the same group, then the fewest differing
   variants (another variant class's parameters serve: the kernels share their parameter space);
   ties go to the smaller key.
   NULL when no entry shares family, dtype, d and dv: the caller falls back to the device-class
   defaults. exact may be NULL. The pointer is valid until the cache next changes. */
const clattn_tune_entry *clattn_tune_cache_lookup(const clattn_tune_cache *cache,
                                                  const clattn_tune_key *key, int *exact);

/* The file name for a device: "tune-<first 16 hex digits of sha256(identity)>.txt". */
void clattn_tune_cache_file_name(const char *identity, char name[CLATTN_TUNE_FILE_NAME_LEN]);

/* Reads a tuning file's text (len bytes, any bytes at all) and adds its entries whose keys the
   cache does not have (the cache's own entries win). Success: the file was valid; *stale is 1
   when it was made for other kernel sources, and then nothing is added. CLATTN_IO_ERROR: not a
   valid tuning file for this device (corrupt, truncated, foreign, other format version); why says
   what and the cache is unchanged. CLATTN_OUT_OF_MEMORY likewise leaves the cache unchanged. */
clattn_status clattn_tune_cache_parse(clattn_tune_cache *cache, const char *data, size_t len,
                                      int *stale, char *why, size_t why_len);
/* The file's text for the cache (malloc'ed, NUL-terminated; free()). */
clattn_status clattn_tune_cache_serialize(const clattn_tune_cache *cache, char **out, size_t *out_len);

/* Adds the entries of the device's file under dir (no file: success, nothing added). Any other
   status means the file was ignored: warn says why (the caller keeps it as a warning in
   last_error and carries on; the next save rewrites the file). Never creates or locks anything,
   so a read-only directory works. */
clattn_status clattn_tune_cache_load(clattn_tune_cache *cache, const char *dir, char *warn,
                                     size_t warn_len);
/* Merges with the file as it is now and rewrites it, under the file's lock and atomically (see
   cache_file.h): entries the file has for the same sources are added to the cache first (ours win
   on equal keys), so afterwards both hold the union (even when the write then fails). A broken,
   foreign or stale file is replaced. Creates dir if needed. CLATTN_IO_ERROR for a directory that
   cannot be written (read-only, a file in the way, the lock not had within 10 s). */
clattn_status clattn_tune_cache_save(clattn_tune_cache *cache, const char *dir, char *err,
                                     size_t err_len);

/* One entry as a line of the file, without the line end; 0 if it fit in out (it is cut if not). */
int clattn_tune_entry_format(const clattn_tune_entry *e, char *out, size_t out_len);
/* Forgets every entry. */
void clattn_tune_cache_clear(clattn_tune_cache *cache);

/* ---- shared by tune_cache.c (the table) and tune_file.c (the file) ---------------------------- */

const char *clattn_tune_cache_identity(const clattn_tune_cache *cache);
const char *clattn_tune_cache_device_line(const clattn_tune_cache *cache);   /* escaped identity */
const char *clattn_tune_cache_sources(const clattn_tune_cache *cache);
const char *clattn_tune_cache_library(const clattn_tune_cache *cache);
/* Adds from[0..n) (valid, sorted by key, keys distinct) where the cache lacks the key: the cache's
   own entries win. CLATTN_INVALID_ARGUMENT (nothing added) when from breaks those rules. */
clattn_status clattn_tune_cache_add_sorted(clattn_tune_cache *cache, const clattn_tune_entry *from,
                                           size_t n);
int clattn_tune_key_compare(const clattn_tune_key *a, const clattn_tune_key *b);
int clattn_tune_family_name_ok(const char *s, size_t n);   /* [a-z0-9_]+, shorter than the limit */
int clattn_tune_param_name_ok(const char *s, size_t n);    /* a C identifier, likewise */
int clattn_tune_version_ok(const char *s, size_t n);       /* [A-Za-z0-9.+-_~]{1,31} */
int clattn_tune_sha_ok(const char *s, size_t n);           /* 64 lowercase hex digits */
int clattn_tune_is_pow2(int v);

#endif /* CLATTN_TUNE_CACHE_H */
