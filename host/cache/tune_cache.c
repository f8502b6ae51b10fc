/* The tuning cache in memory: keys and shape classes, the sorted table of entries, and the lookup
   (exact key, then the nearest shape class), all without file I/O. The file these entries are read
   from and written to is tune_file.c's. */
#include "host/cache/tune_cache.h"

#include "host/cache/sha256.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDENTITY_MAX 4096

struct clattn_tune_cache {
    char *identity;
    char *identity_line;          /* escaped as the file's device line carries it */
    char sources[CLATTN_SHA256_HEX];
    char library[32];
    clattn_tune_entry *entries;   /* sorted by key, keys distinct */
    size_t count, cap;
};

/* ---- keys ------------------------------------------------------------------------------------ */

int clattn_tune_lq_class(int lq)
{
    return lq <= 1 ? CLATTN_TUNE_LQ_1 : lq <= 16 ? CLATTN_TUNE_LQ_16
         : lq <= 128 ? CLATTN_TUNE_LQ_128 : CLATTN_TUNE_LQ_LARGE;
}

int clattn_tune_lk_bucket(int lk)
{
    int b = 1;
    while (b < lk && b < CLATTN_TUNE_MAX_LK_BUCKET)
        b *= 2;
    return b;
}

int clattn_tune_family_name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= CLATTN_TUNE_NAME_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

int clattn_tune_param_name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= CLATTN_TUNE_NAME_LEN || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

int clattn_tune_is_pow2(int v)
{
    return v > 0 && (v & (v - 1)) == 0;
}

static int valid_key(const clattn_tune_key *k)
{
    return clattn_tune_family_name_ok(k->family, strnlen(k->family, CLATTN_TUNE_NAME_LEN)) &&
           (k->dtype == CLATTN_F32 || k->dtype == CLATTN_F16 || k->dtype == CLATTN_BF16) &&
           k->d >= 1 && k->d <= CLATTN_TUNE_MAX_DIM && k->dv >= 1 && k->dv <= CLATTN_TUNE_MAX_DIM &&
           k->lq_class >= CLATTN_TUNE_LQ_1 && k->lq_class <= CLATTN_TUNE_LQ_LARGE &&
           clattn_tune_is_pow2(k->lk_bucket) && k->lk_bucket <= CLATTN_TUNE_MAX_LK_BUCKET &&
           (k->causal == 0 || k->causal == 1) && k->group >= 1 && k->group <= CLATTN_TUNE_MAX_DIM &&
           k->variants >= 0 && k->variants <= CLATTN_VARIANT_ALL;
}

static int valid_entry(const clattn_tune_entry *e)
{
    if (!valid_key(&e->key) || e->n_params < 1 || e->n_params > CLATTN_TUNE_MAX_PARAMS)
        return 0;
    for (int i = 0; i < e->n_params; i++) {
        const char *name = e->params[i].name;
        if (!clattn_tune_param_name_ok(name, strnlen(name, CLATTN_TUNE_NAME_LEN)))
            return 0;
        for (int j = 0; j < i; j++)
            if (!strcmp(name, e->params[j].name))
                return 0;
    }
    return 1;
}

clattn_status clattn_tune_key_make(clattn_tune_key *key, const char *family, clattn_dtype dtype,
                                   int d, int dv, int lq, int lk, int causal, int group,
                                   int variants)
{
    clattn_tune_key k;
    size_t n = family ? strlen(family) : 0;
    memset(&k, 0, sizeof k);
    if (!clattn_tune_family_name_ok(family, n))
        return CLATTN_INVALID_ARGUMENT;
    memcpy(k.family, family, n);
    k.dtype = dtype;
    k.d = d;
    k.dv = dv;
    k.lq_class = clattn_tune_lq_class(lq);
    k.lk_bucket = clattn_tune_lk_bucket(lk);
    k.causal = causal != 0;
    k.group = group;
    k.variants = variants;
    if (!valid_key(&k))
        return CLATTN_INVALID_ARGUMENT;
    *key = k;
    return CLATTN_SUCCESS;
}

int clattn_tune_entry_param(const clattn_tune_entry *e, const char *name, int *value)
{
    for (int i = 0; i < e->n_params; i++)
        if (!strcmp(e->params[i].name, name)) {
            *value = e->params[i].value;
            return 0;
        }
    return -1;
}

static int cmp_int(int a, int b)
{
    return a < b ? -1 : a > b;
}

/* The part of the key that must match for a nearest-class lookup. */
static int cmp_prefix(const clattn_tune_key *a, const clattn_tune_key *b)
{
    int c = strcmp(a->family, b->family);
    if (!c) c = cmp_int((int)a->dtype, (int)b->dtype);
    if (!c) c = cmp_int(a->d, b->d);
    if (!c) c = cmp_int(a->dv, b->dv);
    return c;
}

int clattn_tune_key_compare(const clattn_tune_key *a, const clattn_tune_key *b)
{
    int c = cmp_prefix(a, b);
    if (!c) c = cmp_int(a->lq_class, b->lq_class);
    if (!c) c = cmp_int(a->lk_bucket, b->lk_bucket);
    if (!c) c = cmp_int(a->causal, b->causal);
    if (!c) c = cmp_int(a->group, b->group);
    if (!c) c = cmp_int(a->variants, b->variants);
    return c;
}

/* The first index whose key is >= key (by cmp). */
static size_t lower_bound(const clattn_tune_cache *c, const clattn_tune_key *key,
                          int (*cmp)(const clattn_tune_key *, const clattn_tune_key *))
{
    size_t lo = 0, hi = c->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp(&c->entries[mid].key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int log2i(int v)
{
    int l = 0;
    while (v > 1) {
        v >>= 1;
        l++;
    }
    return l;
}

/* Lexicographic: the Lq class outweighs any Lk distance (at most 30 steps), which outweighs the
   causal flag, which outweighs the group, which outweighs the variants, counted as the number of
   variants that differ (at most 5), so that int8+softcap finds softcap before plain. The Lq class
   decides the strategy (split-KV decoding vs query blocks); Lk mostly moves the balance within it. */
static int popcount5(int v)
{
    int n = 0;
    for (; v; v &= v - 1)
        n++;
    return n;
}

static long distance(const clattn_tune_key *a, const clattn_tune_key *b)
{
    return labs((long)a->lq_class - b->lq_class) * 1000 +
           labs((long)log2i(a->lk_bucket) - log2i(b->lk_bucket)) * 25 +
           (a->causal != b->causal) * 12 + (a->group != b->group) * 6 +
           popcount5(a->variants ^ b->variants);
}

const clattn_tune_entry *clattn_tune_cache_lookup(const clattn_tune_cache *c,
                                                  const clattn_tune_key *key, int *exact)
{
    const clattn_tune_entry *best = NULL;
    long best_d = LONG_MAX;
    size_t i = lower_bound(c, key, cmp_prefix);
    if (exact)
        *exact = 0;
    for (; i < c->count && cmp_prefix(&c->entries[i].key, key) == 0; i++) {
        long d = distance(&c->entries[i].key, key);
        if (d < best_d) {
            best_d = d;
            best = &c->entries[i];
        }
        if (d == 0)
            break;
    }
    if (best && exact)
        *exact = best_d == 0 && clattn_tune_key_compare(&best->key, key) == 0;
    return best;
}

/* ---- the table ------------------------------------------------------------------------------- */

static char *escape_identity(const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(s);
    char *out = malloc(4 * n + 1), *o = out;
    if (!out)
        return NULL;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch >= 0x7f || ch == '\\') {
            *o++ = '\\';
            *o++ = 'x';
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 15];
        } else {
            *o++ = (char)ch;
        }
    }
    *o = '\0';
    return out;
}

int clattn_tune_version_ok(const char *s, size_t n)
{
    if (n == 0 || n >= 32)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || strchr(".+-_~", s[i])))
            return 0;
    return 1;
}

int clattn_tune_sha_ok(const char *s, size_t n)
{
    if (n != 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

clattn_status clattn_tune_cache_create(const char *identity, const char *sources_sha256,
                                       const char *library_version, clattn_tune_cache **out)
{
    clattn_tune_cache *c;
    *out = NULL;
    if (!identity || strlen(identity) >= IDENTITY_MAX || !sources_sha256 ||
        !clattn_tune_sha_ok(sources_sha256, strlen(sources_sha256)) || !library_version ||
        !clattn_tune_version_ok(library_version, strlen(library_version)))
        return CLATTN_INVALID_ARGUMENT;
    c = calloc(1, sizeof *c);
    if (!c)
        return CLATTN_OUT_OF_MEMORY;
    c->identity = malloc(strlen(identity) + 1);
    c->identity_line = escape_identity(identity);
    if (!c->identity || !c->identity_line) {
        clattn_tune_cache_release(c);
        return CLATTN_OUT_OF_MEMORY;
    }
    strcpy(c->identity, identity);
    strcpy(c->sources, sources_sha256);
    strcpy(c->library, library_version);
    *out = c;
    return CLATTN_SUCCESS;
}

void clattn_tune_cache_release(clattn_tune_cache *c)
{
    if (!c)
        return;
    free(c->identity);
    free(c->identity_line);
    free(c->entries);
    free(c);
}

size_t clattn_tune_cache_count(const clattn_tune_cache *c)
{
    return c->count;
}

const clattn_tune_entry *clattn_tune_cache_entry(const clattn_tune_cache *c, size_t i)
{
    return i < c->count ? &c->entries[i] : NULL;
}

static int reserve(clattn_tune_entry **arr, size_t *cap, size_t need)
{
    size_t n = *cap ? *cap : 16;
    clattn_tune_entry *grown;
    if (need <= *cap)
        return 0;
    while (n < need)
        n *= 2;
    grown = realloc(*arr, n * sizeof *grown);
    if (!grown)
        return -1;
    *arr = grown;
    *cap = n;
    return 0;
}

/* A time as the file keeps it: whole microseconds below 1e9 ms; anything else (negative, NaN,
   huge) is "unknown". */
static double to_us_precision(double ms)
{
    return ms >= 0 && ms < 1e9 ? (double)(long long)(ms * 1000 + 0.5) / 1000 : -1;
}

/* A copy with the unused bytes zeroed, so entries compare and serialise the same however made. */
static void normalise(clattn_tune_entry *dst, const clattn_tune_entry *src)
{
    memset(dst, 0, sizeof *dst);
    memcpy(dst->key.family, src->key.family, strnlen(src->key.family, CLATTN_TUNE_NAME_LEN - 1));
    dst->key.dtype = src->key.dtype;
    dst->key.d = src->key.d;
    dst->key.dv = src->key.dv;
    dst->key.lq_class = src->key.lq_class;
    dst->key.lk_bucket = src->key.lk_bucket;
    dst->key.causal = src->key.causal;
    dst->key.group = src->key.group;
    dst->key.variants = src->key.variants;
    dst->n_params = src->n_params;
    for (int i = 0; i < src->n_params; i++) {
        memcpy(dst->params[i].name, src->params[i].name,
               strnlen(src->params[i].name, CLATTN_TUNE_NAME_LEN - 1));
        dst->params[i].value = src->params[i].value;
    }
    /* the file keeps microseconds; keep the same here so a save and load round-trip exactly */
    dst->time_ms = to_us_precision(src->time_ms);
    dst->default_ms = to_us_precision(src->default_ms);
}

clattn_status clattn_tune_cache_put(clattn_tune_cache *c, const clattn_tune_entry *e)
{
    size_t i;
    if (!valid_entry(e))
        return CLATTN_INVALID_ARGUMENT;
    i = lower_bound(c, &e->key, clattn_tune_key_compare);
    if (i < c->count && clattn_tune_key_compare(&c->entries[i].key, &e->key) == 0) {
        normalise(&c->entries[i], e);
        return CLATTN_SUCCESS;
    }
    if (reserve(&c->entries, &c->cap, c->count + 1))
        return CLATTN_OUT_OF_MEMORY;
    memmove(&c->entries[i + 1], &c->entries[i], (c->count - i) * sizeof *c->entries);
    normalise(&c->entries[i], e);
    c->count++;
    return CLATTN_SUCCESS;
}

void clattn_tune_cache_file_name(const char *identity, char name[CLATTN_TUNE_FILE_NAME_LEN])
{
    char hex[CLATTN_SHA256_HEX];
    clattn_sha256_hex_of(identity, strlen(identity), hex);
    snprintf(name, CLATTN_TUNE_FILE_NAME_LEN, "tune-%.16s.txt", hex);
}

const char *clattn_tune_cache_identity(const clattn_tune_cache *c)
{
    return c->identity;
}

const char *clattn_tune_cache_device_line(const clattn_tune_cache *c)
{
    return c->identity_line;
}

const char *clattn_tune_cache_sources(const clattn_tune_cache *c)
{
    return c->sources;
}

const char *clattn_tune_cache_library(const clattn_tune_cache *c)
{
    return c->library;
}

clattn_status clattn_tune_cache_add_sorted(clattn_tune_cache *c, const clattn_tune_entry *from,
                                           size_t n)
{
    clattn_tune_entry *out = NULL;
    size_t i = 0, j = 0, k = 0, cap = 0;
    if (n == 0)
        return CLATTN_SUCCESS;
    for (j = 0; j < n; j++)
        if (!valid_entry(&from[j]) ||
            (j && clattn_tune_key_compare(&from[j - 1].key, &from[j].key) >= 0))
            return CLATTN_INVALID_ARGUMENT;
    if (reserve(&out, &cap, c->count + n))
        return CLATTN_OUT_OF_MEMORY;
    j = 0;
    while (i < c->count || j < n) {
        int d = i == c->count ? 1
              : j == n        ? -1
                              : clattn_tune_key_compare(&c->entries[i].key, &from[j].key);
        if (d <= 0) {
            out[k++] = c->entries[i++];
            if (d == 0)
                j++;             /* ours win */
        } else {
            normalise(&out[k++], &from[j++]);
        }
    }
    free(c->entries);
    c->entries = out;
    c->count = k;
    c->cap = cap;
    return CLATTN_SUCCESS;
}

void clattn_tune_cache_clear(clattn_tune_cache *c)
{
    c->count = 0;
}
