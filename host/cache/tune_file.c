/* The tuning file: its text format (parse and serialise), and loading and saving it for a tuning
   cache (tune_cache.c keeps the entries in memory).

   The file, "<cache dir>/tune-<first 16 hex digits of sha256(identity)>.txt":

       clattn-tune-cache 1
       library 0.1.0
       sources 3f5a...(64 hex digits: SHA-256 of the embedded kernel sources)
       device Portable Computing Language / OpenCL 3.0 PoCL 3.1 / AuthenticAMD / cpu-... / 3.1 / 2 CU
       flash dtype=f16 d=64 dv=64 lq=1 lk=4096 causal=0 group=4 : BLOCK_N=64 SPLITS=8 # time_ms=0.123 default_ms=0.456
       flash dtype=f32 d=128 dv=128 lq=large lk=8192 causal=1 group=1 variants=window+softcap : BLOCK_M=64
       qk dtype=f32 d=128 dv=128 lq=large lk=2048 causal=1 group=1 : TM=4 TN=4 WG=16
       end

   - Line 1 names the format and its version; any other first line makes the file foreign.
   - library: the version that wrote the file, for people (not checked).
   - sources: entries hold only for these kernel sources; a file for other sources is valid but
     stale: its entries are not used and the next save replaces them.
   - device: the identity the file is for, with bytes outside printable ASCII and '\' written as
     \xHH; it must equal the caller's (a copied or colliding file is foreign).
   - One entry per line: the family, then exactly these fields in this order: dtype=f32|f16|bf16,
     d=, dv=, lq=1|16|128|large (Lq = 1, <= 16, <= 128, larger), lk= (a power of two, the bucket of
     Lk), causal=0|1, group= (Hq / Hkv), and, only for a class with variants that change the kernel,
     variants= their names joined by '+' (window, softcap, alibi, sinks, kv_int8: clattn.h's sliding
     window's lower edge, soft-capping, ALiBi, sinks, int8 K/V); then ':' and 1 to 16 NAME=integer
     parameters. Text after
     '#' is a comment, from which time_ms= and default_ms= are read when present.
   - "end" closes the file, so a truncated file is recognised. After it, and anywhere after line
     1, blank lines and lines starting with '#' are allowed (a save does not keep them).
   - Lines end in "\n" ("\r\n" is accepted); tokens are separated by spaces or tabs. Any other
     deviation (a NUL byte, an unknown field, a bad number) makes the whole file invalid: it is
     ignored with a warning, never half used. A later line with the same key as an earlier one
     replaces it. Entries are written in key order, so files diff well. */
#include "host/cache/tune_cache.h"

#include "host/cache/cache_file.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "clattn-tune-cache"

/* ---- parsing --------------------------------------------------------------------------------- */

/* A piece of the (not NUL-terminated) input. */
typedef struct span {
    const char *p;
    size_t n;
} span;

static int span_is(span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

static int is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

static span next_token(span *rest)
{
    span t;
    while (rest->n && is_blank(*rest->p)) {
        rest->p++;
        rest->n--;
    }
    t.p = rest->p;
    t.n = 0;
    while (t.n < rest->n && !is_blank(t.p[t.n]))
        t.n++;
    rest->p += t.n;
    rest->n -= t.n;
    return t;
}

/* A decimal integer in [lo, hi]; no sign but '-', no spaces, no leading '+'. */
static int parse_int(span s, long long lo, long long hi, int *out)
{
    long long v = 0;
    size_t i = 0;
    int neg = 0;
    if (s.n && s.p[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (i == s.n || s.n - i > 12)
        return -1;
    for (; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return -1;
        v = v * 10 + (s.p[i] - '0');
    }
    if (neg)
        v = -v;
    if (v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* "12.345": a time in milliseconds, read to the microsecond (rounded), as the writer keeps it.
   Locale-free on purpose: a comma-decimal locale in the host program must not change the file. */
static int parse_ms(span s, double *out)
{
    long long whole = 0, frac = 0;
    size_t i = 0, digits = 0;
    for (; i < s.n && s.p[i] >= '0' && s.p[i] <= '9'; i++, digits++)
        if (digits < 9)
            whole = whole * 10 + (s.p[i] - '0');
    if (digits == 0 || digits > 9)
        return -1;
    if (i < s.n && s.p[i] == '.') {
        size_t f = 0;
        for (i++; i < s.n && s.p[i] >= '0' && s.p[i] <= '9'; i++, f++) {
            if (f < 3)
                frac = frac * 10 + (s.p[i] - '0');
            else if (f == 3 && s.p[i] >= '5')
                frac++;              /* round half up on the fourth decimal */
        }
        if (f == 0)
            return -1;
        for (; f < 3; f++)
            frac *= 10;
    }
    if (i != s.n)
        return -1;
    *out = (double)(whole * 1000 + frac) / 1000;
    return 0;
}

/* The next token must read "<key><value>"; value gets the part after key. */
static int field(span *rest, const char *key, span *value)
{
    span t = next_token(rest);
    size_t n = strlen(key);
    if (t.n < n || memcmp(t.p, key, n) != 0)
        return -1;
    value->p = t.p + n;
    value->n = t.n - n;
    return 0;
}

static int fail_line(char *why, size_t why_len, size_t line, const char *what)
{
    clattn_fail_into(why, why_len, CLATTN_IO_ERROR, "line %zu: %s", line, what);
    return -1;
}

/* The names of the CLATTN_VARIANT_* bits, lowest first, as the file spells them. */
static const char *const variant_names[] = {"window", "softcap", "alibi", "sinks", "kv_int8",
                                            "varlen", "paged"};
#define N_VARIANT_NAMES ((int)(sizeof variant_names / sizeof variant_names[0]))

/* "softcap+alibi": names joined by '+', each at most once, none empty. */
static int parse_variants(span v, int *out)
{
    int bits = 0;
    size_t at = 0;
    if (v.n == 0)
        return -1;
    while (at <= v.n) {
        const char *plus = memchr(v.p + at, '+', v.n - at);
        span name = {v.p + at, plus ? (size_t)(plus - (v.p + at)) : v.n - at};
        int found = -1;
        for (int i = 0; i < N_VARIANT_NAMES && found < 0; i++)
            if (span_is(name, variant_names[i]))
                found = i;
        if (found < 0 || (bits & (1 << found)))
            return -1;
        bits |= 1 << found;
        if (!plus)
            break;
        at += name.n + 1;
    }
    *out = bits;
    return 0;
}

static int parse_entry(span line, size_t ln, clattn_tune_entry *e, char *why, size_t why_len)
{
    const char *hash = memchr(line.p, '#', line.n);
    span body = {line.p, hash ? (size_t)(hash - line.p) : line.n};
    span t, v;

    memset(e, 0, sizeof *e);
    e->time_ms = e->default_ms = -1;
    t = next_token(&body);
    if (!clattn_tune_family_name_ok(t.p, t.n))
        return fail_line(why, why_len, ln, "expected a kernel family name ([a-z0-9_]+)");
    memcpy(e->key.family, t.p, t.n);
    if (field(&body, "dtype=", &v) || !(span_is(v, "f32") || span_is(v, "f16") || span_is(v, "bf16")))
        return fail_line(why, why_len, ln, "expected dtype=f32, f16 or bf16");
    e->key.dtype = span_is(v, "f16") ? CLATTN_F16 : span_is(v, "bf16") ? CLATTN_BF16 : CLATTN_F32;
    if (field(&body, "d=", &v) || parse_int(v, 1, CLATTN_TUNE_MAX_DIM, &e->key.d))
        return fail_line(why, why_len, ln, "expected d=<1..65536>");
    if (field(&body, "dv=", &v) || parse_int(v, 1, CLATTN_TUNE_MAX_DIM, &e->key.dv))
        return fail_line(why, why_len, ln, "expected dv=<1..65536>");
    if (field(&body, "lq=", &v))
        return fail_line(why, why_len, ln, "expected lq=1|16|128|large");
    if (span_is(v, "1")) e->key.lq_class = CLATTN_TUNE_LQ_1;
    else if (span_is(v, "16")) e->key.lq_class = CLATTN_TUNE_LQ_16;
    else if (span_is(v, "128")) e->key.lq_class = CLATTN_TUNE_LQ_128;
    else if (span_is(v, "large")) e->key.lq_class = CLATTN_TUNE_LQ_LARGE;
    else return fail_line(why, why_len, ln, "expected lq=1|16|128|large");
    if (field(&body, "lk=", &v) || parse_int(v, 1, CLATTN_TUNE_MAX_LK_BUCKET, &e->key.lk_bucket) ||
        !clattn_tune_is_pow2(e->key.lk_bucket))
        return fail_line(why, why_len, ln, "expected lk=<a power of two>");
    if (field(&body, "causal=", &v) || parse_int(v, 0, 1, &e->key.causal))
        return fail_line(why, why_len, ln, "expected causal=0|1");
    if (field(&body, "group=", &v) || parse_int(v, 1, CLATTN_TUNE_MAX_DIM, &e->key.group))
        return fail_line(why, why_len, ln, "expected group=<1..65536>");
    span after_group = body;
    if (field(&body, "variants=", &v) == 0) {
        if (parse_variants(v, &e->key.variants))
            return fail_line(why, why_len, ln, "expected variants=<name>[+<name>...] of window, "
                             "softcap, alibi, sinks, kv_int8, each once");
    } else {
        body = after_group;   /* optional: absent means plain attention */
    }
    if (!span_is(next_token(&body), ":"))
        return fail_line(why, why_len, ln, "expected ':' before the parameters");
    for (t = next_token(&body); t.n; t = next_token(&body)) {
        const char *eq = memchr(t.p, '=', t.n);
        span name = {t.p, eq ? (size_t)(eq - t.p) : 0}, val;
        clattn_tune_param *p = &e->params[e->n_params];
        if (e->n_params == CLATTN_TUNE_MAX_PARAMS)
            return fail_line(why, why_len, ln, "more than " CLATTN_TUNE_MAX_PARAMS_TEXT " parameters");
        if (!eq || !clattn_tune_param_name_ok(name.p, name.n))
            return fail_line(why, why_len, ln, "expected NAME=<integer>");
        val.p = eq + 1;
        val.n = t.n - name.n - 1;
        if (parse_int(val, INT_MIN, INT_MAX, &p->value))
            return fail_line(why, why_len, ln, "a parameter value is not an integer");
        memcpy(p->name, name.p, name.n);
        for (int j = 0; j < e->n_params; j++)
            if (!strcmp(e->params[j].name, p->name))
                return fail_line(why, why_len, ln, "a parameter is given twice");
        e->n_params++;
    }
    if (e->n_params == 0)
        return fail_line(why, why_len, ln, "no parameters after ':'");
    if (hash) {
        /* a comment: the times are read when well formed, anything else is the reader's */
        span rest = {hash + 1, line.n - (size_t)(hash - line.p) - 1};
        for (t = next_token(&rest); t.n; t = next_token(&rest)) {
            if (t.n > 8 && !memcmp(t.p, "time_ms=", 8))
                parse_ms((span){t.p + 8, t.n - 8}, &e->time_ms);
            else if (t.n > 11 && !memcmp(t.p, "default_ms=", 11))
                parse_ms((span){t.p + 11, t.n - 11}, &e->default_ms);
        }
    }
    return 0;
}

/* Entries as read, with their line order so that a later duplicate wins after sorting. */
typedef struct parsed {
    clattn_tune_entry e;
    size_t order;
} parsed;

static int cmp_parsed(const void *a, const void *b)
{
    const parsed *x = a, *y = b;
    int c = clattn_tune_key_compare(&x->e.key, &y->e.key);
    return c ? c : (x->order < y->order ? -1 : x->order > y->order);
}

clattn_status clattn_tune_cache_parse(clattn_tune_cache *c, const char *data, size_t len,
                                      int *stale, char *why, size_t why_len)
{
    enum { LIBRARY, SOURCES, DEVICE, ENTRIES, END } state = LIBRARY;
    clattn_status st = CLATTN_IO_ERROR;
    parsed *list = NULL;
    size_t n = 0, cap = 0, ln = 0, kept;
    span sources = {NULL, 0};
    const char *p = data, *end = data + len;

    *stale = 0;
    if (len == 0) {
        clattn_fail_into(why, why_len, st, "the file is empty");
        goto out;
    }
    if (memchr(data, '\0', len)) {
        clattn_fail_into(why, why_len, st, "the file holds NUL bytes (binary data)");
        goto out;
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        span line = {p, nl ? (size_t)(nl - p) : (size_t)(end - p)}, rest, t, value;
        p = nl ? nl + 1 : end;
        ln++;
        if (line.n && line.p[line.n - 1] == '\r')
            line.n--;
        if (ln == 1) {
            rest = line;
            t = next_token(&rest);
            if (!span_is(t, MAGIC)) {
                clattn_fail_into(why, why_len, st, "not a clattn tuning file (line 1 is not '"
                                  MAGIC " %d')", CLATTN_TUNE_CACHE_FORMAT);
                goto out;
            }
            t = next_token(&rest);
            if (!span_is(t, "1")) {
                clattn_fail_into(why, why_len, st, "format version '%.*s', this library reads %d",
                                  (int)(t.n < 32 ? t.n : 32), t.p, CLATTN_TUNE_CACHE_FORMAT);
                goto out;
            }
            if (next_token(&rest).n) {
                fail_line(why, why_len, ln, "unexpected text after the format version");
                goto out;
            }
            continue;
        }
        rest = line;
        t = next_token(&rest);
        if (t.n == 0 || t.p[0] == '#')
            continue;
        switch (state) {
        case LIBRARY:
            value = next_token(&rest);
            if (!span_is(t, "library") || !clattn_tune_version_ok(value.p, value.n) ||
                next_token(&rest).n) {
                fail_line(why, why_len, ln, "expected 'library <version>'");
                goto out;
            }
            state = SOURCES;
            break;
        case SOURCES:
            sources = next_token(&rest);
            if (!span_is(t, "sources") || !clattn_tune_sha_ok(sources.p, sources.n) ||
                next_token(&rest).n) {
                fail_line(why, why_len, ln, "expected 'sources <64 hex digits>'");
                goto out;
            }
            state = DEVICE;
            break;
        case DEVICE:
            /* the identity is everything after "device ", spaces included */
            if (line.n < 7 || memcmp(line.p, "device ", 7) != 0) {
                fail_line(why, why_len, ln, "expected 'device <identity>'");
                goto out;
            }
            if (!span_is((span){line.p + 7, line.n - 7}, clattn_tune_cache_device_line(c))) {
                clattn_fail_into(why, why_len, st, "written for another device ('%.*s')",
                                  (int)(line.n - 7 < 200 ? line.n - 7 : 200), line.p + 7);
                goto out;
            }
            state = ENTRIES;
            break;
        case ENTRIES:
            if (span_is(t, "end") && !next_token(&rest).n) {
                state = END;
                break;
            }
            if (n == CLATTN_TUNE_FILE_MAX_ENTRIES) {
                fail_line(why, why_len, ln, "too many entries");
                goto out;
            }
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 64;
                parsed *grown = realloc(list, nc * sizeof *grown);
                if (!grown) {
                    st = clattn_fail_into(why, why_len, CLATTN_OUT_OF_MEMORY, "out of memory");
                    goto out;
                }
                list = grown;
                cap = nc;
            }
            if (parse_entry(line, ln, &list[n].e, why, why_len))
                goto out;
            list[n].order = n;
            n++;
            break;
        case END:
            fail_line(why, why_len, ln, "text after 'end'");
            goto out;
        }
    }
    if (state != END) {
        clattn_fail_into(why, why_len, st, "truncated: %s", state == ENTRIES
                          ? "no 'end' line" : "the header is incomplete");
        goto out;
    }
    if (!span_is(sources, clattn_tune_cache_sources(c))) {
        *stale = 1;              /* valid, but tuned for other kernels: nothing to use */
        st = CLATTN_SUCCESS;
        goto out;
    }
    if (n)
        qsort(list, n, sizeof *list, cmp_parsed);
    /* keep the last of equal keys: the later line replaces the earlier */
    kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (kept && clattn_tune_key_compare(&list[kept - 1].e.key, &list[i].e.key) == 0)
            kept--;
        list[kept++] = list[i];
    }
    /* the entries packed in place (an entry is smaller than a parsed), then merged: ours win */
    for (size_t i = 0; i < kept; i++)
        memmove((clattn_tune_entry *)(void *)list + i, &list[i].e, sizeof list[i].e);
    st = clattn_tune_cache_add_sorted(c, (const clattn_tune_entry *)(void *)list, kept);
    if (st != CLATTN_SUCCESS)
        clattn_fail_into(why, why_len, st, "out of memory");
out:
    free(list);
    return st;
}

/* ---- writing --------------------------------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t n, cap;
    int failed;
} buf;

static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf *b, const char *fmt, ...)
{
    va_list ap;
    int need;
    if (b->failed)
        return;
    va_start(ap, fmt);
    need = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
    va_end(ap);
    if (need < 0) {
        b->failed = 1;
        return;
    }
    if (!b->p || b->n + (size_t)need + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        char *grown;
        while (nc < b->n + (size_t)need + 1)
            nc *= 2;
        grown = realloc(b->p, nc);
        if (!grown) {
            b->failed = 1;
            return;
        }
        b->p = grown;
        b->cap = nc;
        va_start(ap, fmt);
        vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
    }
    b->n += (size_t)need;
}

static const char *lq_name(int cls)
{
    static const char *names[] = {"1", "16", "128", "large"};
    return names[cls];
}

/* Milliseconds to the microsecond, without the locale's decimal mark. */
static void put_ms(buf *b, const char *name, double ms)
{
    long long us = (long long)(ms * 1000 + 0.5);
    put(b, " %s=%lld.%03lld", name, us / 1000, us % 1000);
}

/* One entry line, without its line end. */
static void put_entry(buf *b, const clattn_tune_entry *e)
{
    put(b, "%s dtype=%s d=%d dv=%d lq=%s lk=%d causal=%d group=%d", e->key.family,
        e->key.dtype == CLATTN_F16 ? "f16" : e->key.dtype == CLATTN_BF16 ? "bf16" : "f32", e->key.d, e->key.dv, lq_name(e->key.lq_class),
        e->key.lk_bucket, e->key.causal, e->key.group);
    if (e->key.variants) {
        put(b, " variants=");
        for (int i = 0, first = 1; i < N_VARIANT_NAMES; i++)
            if (e->key.variants & (1 << i)) {
                put(b, "%s%s", first ? "" : "+", variant_names[i]);
                first = 0;
            }
    }
    put(b, " :");
    for (int j = 0; j < e->n_params; j++)
        put(b, " %s=%d", e->params[j].name, e->params[j].value);
    if (e->time_ms >= 0 || e->default_ms >= 0) {
        put(b, " #");
        if (e->time_ms >= 0)
            put_ms(b, "time_ms", e->time_ms);
        if (e->default_ms >= 0)
            put_ms(b, "default_ms", e->default_ms);
    }
}

int clattn_tune_entry_format(const clattn_tune_entry *e, char *out, size_t out_len)
{
    buf b = {NULL, 0, 0, 0};
    int fits;
    put_entry(&b, e);
    fits = !b.failed && b.n < out_len;
    if (out_len)
        snprintf(out, out_len, "%s", b.p ? b.p : "");
    free(b.p);
    return fits ? 0 : -1;
}

clattn_status clattn_tune_cache_serialize(const clattn_tune_cache *c, char **out, size_t *out_len)
{
    buf b = {NULL, 0, 0, 0};
    *out = NULL;
    *out_len = 0;
    put(&b, MAGIC " %d\nlibrary %s\nsources %s\ndevice %s\n", CLATTN_TUNE_CACHE_FORMAT,
        clattn_tune_cache_library(c), clattn_tune_cache_sources(c), clattn_tune_cache_device_line(c));
    for (size_t i = 0; i < clattn_tune_cache_count(c); i++) {
        put_entry(&b, clattn_tune_cache_entry(c, i));
        put(&b, "\n");
    }
    put(&b, "end\n");
    if (b.failed) {
        free(b.p);
        return CLATTN_OUT_OF_MEMORY;
    }
    *out = b.p;
    *out_len = b.n;
    return CLATTN_SUCCESS;
}

/* ---- load and save --------------------------------------------------------------------------- */

clattn_status clattn_tune_cache_load(clattn_tune_cache *c, const char *dir, char *warn,
                                     size_t warn_len)
{
    char name[CLATTN_TUNE_FILE_NAME_LEN], path[CLATTN_CACHE_PATH_MAX], why[256];
    char *data = NULL;
    size_t len = 0;
    int stale;
    clattn_status st;

    clattn_tune_cache_file_name(clattn_tune_cache_identity(c), name);
    if (clattn_cache_join(path, sizeof path, dir, name))
        return clattn_fail_into(warn, warn_len, CLATTN_IO_ERROR, "tuning cache path too long: %s",
                                 dir);
    st = clattn_cache_read(path, CLATTN_TUNE_FILE_MAX_BYTES, &data, &len, why, sizeof why);
    if (st == CLATTN_SUCCESS && data)
        st = clattn_tune_cache_parse(c, data, len, &stale, why, sizeof why);
    if (st != CLATTN_SUCCESS)
        clattn_fail_into(warn, warn_len, st, "ignoring the tuning cache %s: %s (the next save "
                          "rewrites it)", path, why);
    free(data);
    return st;
}

static clattn_status save_merge(void *user, const char *old, size_t old_len, char **out,
                                size_t *out_len, char *err, size_t err_len)
{
    clattn_tune_cache *c = user;
    int stale;
    if (old) {
        /* what the file holds for our sources joins ours; a broken file has nothing to give */
        clattn_status st = clattn_tune_cache_parse(c, old, old_len, &stale, NULL, 0);
        if (st == CLATTN_OUT_OF_MEMORY)
            return clattn_fail_into(err, err_len, st, "merging the tuning cache: out of memory");
    }
    if (clattn_tune_cache_serialize(c, out, out_len) != CLATTN_SUCCESS)
        return clattn_fail_into(err, err_len, CLATTN_OUT_OF_MEMORY,
                                 "writing the tuning cache: out of memory");
    return CLATTN_SUCCESS;
}

clattn_status clattn_tune_cache_save(clattn_tune_cache *c, const char *dir, char *err,
                                     size_t err_len)
{
    char name[CLATTN_TUNE_FILE_NAME_LEN];
    clattn_tune_cache_file_name(clattn_tune_cache_identity(c), name);
    return clattn_cache_update(dir, name, CLATTN_TUNE_FILE_MAX_BYTES, save_merge, c, err, err_len);
}
