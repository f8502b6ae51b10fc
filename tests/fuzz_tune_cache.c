/* libFuzzer target: any bytes through the tuning-cache parser (host/tune_cache.c).

   Beyond "no crash, no sanitizer report", it checks what a valid file promises: one that parses
   serialises to text that parses back to the same entries and serialises to the same bytes, and
   a file that is refused leaves the cache as it was. The seeds in tests/fuzz_corpus/ are written
   for the identity and sources below.

     clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Iinclude -I<build dir> \
         tests/fuzz_tune_cache.c host/tune_cache.c host/cache_file.c host/sha256.c -o fuzz_tune_cache
     ./fuzz_tune_cache -max_total_time=60 -max_len=8192 <scratch corpus dir> tests/fuzz_corpus */
#include "host/cache/tune_cache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A backslash, a newline and a byte above 0x7f: the escaped device line is exercised too. */
#define FUZZ_IDENTITY "Fuzz\\Platform / OpenCL 1.2\n / Vend\xc3\xb6r / Device / 1.0 / 4 CU"
#define FUZZ_SOURCES "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static clattn_tune_cache *fresh(void)
{
    clattn_tune_cache *c = NULL;
    clattn_tune_entry e;
    if (clattn_tune_cache_create(FUZZ_IDENTITY, FUZZ_SOURCES, "0.1.0", &c) != CLATTN_SUCCESS)
        abort();
    /* one entry of our own, which a parsed file must never displace */
    memset(&e, 0, sizeof e);
    if (clattn_tune_key_make(&e.key, "flash", CLATTN_F16, 64, 64, 1, 4096, 0, 1, 0) != CLATTN_SUCCESS)
        abort();
    e.n_params = 1;
    strcpy(e.params[0].name, "OWN");
    e.params[0].value = 7;
    e.time_ms = e.default_ms = -1;
    if (clattn_tune_cache_put(c, &e) != CLATTN_SUCCESS)
        abort();
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    clattn_tune_cache *c = fresh(), *again = NULL;
    char why[256], *text = NULL, *text2 = NULL;
    size_t len = 0, len2 = 0;
    int stale = 0, value = 0;
    clattn_tune_key key;
    const clattn_tune_entry *own;
    clattn_status st = clattn_tune_cache_parse(c, (const char *)data, size, &stale, why, sizeof why);

    if (st != CLATTN_SUCCESS && clattn_tune_cache_count(c) != 1)
        abort();                 /* a refused file changed the cache */
    if (clattn_tune_key_make(&key, "flash", CLATTN_F16, 64, 64, 1, 4096, 0, 1, 0) != CLATTN_SUCCESS)
        abort();
    own = clattn_tune_cache_lookup(c, &key, NULL);
    if (!own || clattn_tune_entry_param(own, "OWN", &value) || value != 7)
        abort();                 /* the file displaced our own entry */
    /* lookups of keys drawn from the input must be safe whatever the table holds */
    for (size_t i = 0; i + 4 <= size && i < 64; i += 4) {
        static const char *families[] = {"flash", "qk", "pv", "softmax"};
        if (clattn_tune_key_make(&key, families[data[i] & 3], (clattn_dtype)(data[i] >> 7),
                                 1 + (data[i + 1] & 127), 1 + (data[i + 1] & 127),
                                 data[i + 2], data[i + 3] << 4, data[i] & 4, 1 + (data[i] >> 5 & 3),
                                 data[i + 2] & 127)
            == CLATTN_SUCCESS)
            clattn_tune_cache_lookup(c, &key, NULL);
    }
    if (st == CLATTN_SUCCESS) {
        /* round trip: serialise, parse into a fresh cache, serialise again: the same bytes */
        if (clattn_tune_cache_serialize(c, &text, &len) != CLATTN_SUCCESS)
            abort();
        again = fresh();
        if (clattn_tune_cache_parse(again, text, len, &stale, why, sizeof why) != CLATTN_SUCCESS ||
            stale || clattn_tune_cache_count(again) != clattn_tune_cache_count(c))
            abort();
        if (clattn_tune_cache_serialize(again, &text2, &len2) != CLATTN_SUCCESS || len2 != len ||
            memcmp(text, text2, len) != 0)
            abort();
    }
    free(text);
    free(text2);
    clattn_tune_cache_release(again);
    clattn_tune_cache_release(c);
    return 0;
}
