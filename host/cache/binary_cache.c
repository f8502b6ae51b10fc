/* Program binaries on disk: the cache of built programs and the offline-built FPGA binaries.

   A cache file, "<cache dir>/bin-<key>.bin", is a header then the payload, integers little-endian:
       offset  0  8 bytes  magic "CLATTNPB"
               8  u32      format version (CLATTN_BINARY_CACHE_FORMAT)
              12  u32      header size (88)
              16  u64      payload length
              24  32 bytes the key, as raw SHA-256 bytes (a file renamed to another key is refused)
              56  32 bytes SHA-256 of the payload (truncation and bit rot are caught)
              88           the payload: the bytes of CL_PROGRAM_BINARIES for the one device
   The key already covers driver version and device, so a binary from another driver is never
   even opened; the header guards against what the name cannot: damage and misplacement. */
#include "host/cache/binary_cache.h"

#include "host/cache/cache_file.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char magic[8] = {'C', 'L', 'A', 'T', 'T', 'N', 'P', 'B'};

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Length first, so that no two different field lists hash the same bytes. */
static void hash_field(clattn_sha256 *s, const char *text, size_t len)
{
    unsigned char n[8];
    put_le(n, len, 8);
    clattn_sha256_update(s, n, sizeof n);
    if (len)
        clattn_sha256_update(s, text, len);
}

void clattn_binary_cache_key(const char *source, size_t source_len, const char *options,
                             const char *identity, const char *driver_version,
                             char key[CLATTN_SHA256_HEX])
{
    static const char tag[] = "clattn-binary-cache";
    unsigned char version[4], digest[CLATTN_SHA256_BYTES];
    clattn_sha256 s;
    clattn_sha256_init(&s);
    clattn_sha256_update(&s, tag, sizeof tag);
    put_le(version, CLATTN_BINARY_CACHE_FORMAT, 4);
    clattn_sha256_update(&s, version, sizeof version);
    hash_field(&s, source, source ? source_len : 0);
    hash_field(&s, options, options ? strlen(options) : 0);
    hash_field(&s, identity, identity ? strlen(identity) : 0);
    hash_field(&s, driver_version, driver_version ? strlen(driver_version) : 0);
    clattn_sha256_final(&s, digest);
    clattn_sha256_hex(digest, key);
}

static int hex_value(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* The key's 32 bytes; -1 unless key is exactly 64 lowercase hex digits. */
static int key_bytes(const char *key, unsigned char out[CLATTN_SHA256_BYTES])
{
    if (!key || strlen(key) != 64)
        return -1;
    for (int i = 0; i < CLATTN_SHA256_BYTES; i++) {
        int hi = hex_value(key[2 * i]), lo = hex_value(key[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

void clattn_binary_cache_file_name(const char *key, char name[CLATTN_BINARY_FILE_NAME_LEN])
{
    memcpy(name, "bin-", 4);
    memcpy(name + 4, key, 64);
    memcpy(name + 68, ".bin", 5);
}

clattn_status clattn_binary_cache_load(const char *dir, const char *key, unsigned char **data,
                                       size_t *len, char *warn, size_t warn_len)
{
    char name[CLATTN_BINARY_FILE_NAME_LEN], path[CLATTN_CACHE_PATH_MAX], why[256];
    unsigned char want[CLATTN_SHA256_BYTES], sum[CLATTN_SHA256_BYTES];
    const unsigned char *h;
    char *file = NULL;
    size_t size = 0;
    uint64_t payload;
    clattn_sha256 s;
    clattn_status st;

    *data = NULL;
    *len = 0;
    if (key_bytes(key, want))
        return clattn_fail_into(warn, warn_len, CLATTN_INVALID_ARGUMENT,
                                 "binary cache key is not 64 hex digits");
    clattn_binary_cache_file_name(key, name);
    if (clattn_cache_join(path, sizeof path, dir, name))
        return clattn_fail_into(warn, warn_len, CLATTN_IO_ERROR, "binary cache path too long: %s",
                                 dir);
    st = clattn_cache_read(path, CLATTN_BINARY_MAX_BYTES + CLATTN_BINARY_HEADER_BYTES, &file, &size,
                           why, sizeof why);
    if (st != CLATTN_SUCCESS) {
        st = clattn_fail_into(warn, warn_len, st, "ignoring the cached binary: %s", why);
        goto out;
    }
    if (!file)
        goto out;                /* a miss */
    h = (const unsigned char *)file;
    st = CLATTN_IO_ERROR;
    if (size < CLATTN_BINARY_HEADER_BYTES || memcmp(h, magic, sizeof magic)) {
        clattn_fail_into(warn, warn_len, st, "ignoring %s: %s", path,
                          size < CLATTN_BINARY_HEADER_BYTES ? "truncated header"
                                                            : "not a clattn program binary");
        goto out;
    }
    if (get_le(h + 8, 4) != CLATTN_BINARY_CACHE_FORMAT || get_le(h + 12, 4) != CLATTN_BINARY_HEADER_BYTES) {
        clattn_fail_into(warn, warn_len, st, "ignoring %s: format version %u, this library "
                          "reads %d", path, (unsigned)get_le(h + 8, 4), CLATTN_BINARY_CACHE_FORMAT);
        goto out;
    }
    payload = get_le(h + 16, 8);
    if (payload == 0 || payload != size - CLATTN_BINARY_HEADER_BYTES) {
        clattn_fail_into(warn, warn_len, st, "ignoring %s: %zu payload bytes where the header "
                          "says %llu (truncated)", path, size - CLATTN_BINARY_HEADER_BYTES,
                          (unsigned long long)payload);
        goto out;
    }
    if (memcmp(h + 24, want, sizeof want)) {
        clattn_fail_into(warn, warn_len, st, "ignoring %s: it was stored for another key", path);
        goto out;
    }
    clattn_sha256_init(&s);
    clattn_sha256_update(&s, h + CLATTN_BINARY_HEADER_BYTES, (size_t)payload);
    clattn_sha256_final(&s, sum);
    if (memcmp(h + 56, sum, sizeof sum)) {
        clattn_fail_into(warn, warn_len, st, "ignoring %s: checksum mismatch (corrupt)", path);
        goto out;
    }
    /* the payload moves to the front: one allocation serves as the result */
    memmove(file, file + CLATTN_BINARY_HEADER_BYTES, (size_t)payload);
    *data = (unsigned char *)file;
    *len = (size_t)payload;
    file = NULL;
    st = CLATTN_SUCCESS;
out:
    free(file);
    return st;
}

clattn_status clattn_binary_cache_store(const char *dir, const char *key, const void *data,
                                        size_t len, char *err, size_t err_len)
{
    unsigned char want[CLATTN_SHA256_BYTES], *file;
    char name[CLATTN_BINARY_FILE_NAME_LEN];
    clattn_sha256 s;
    clattn_status st;

    if (key_bytes(key, want))
        return clattn_fail_into(err, err_len, CLATTN_INVALID_ARGUMENT,
                                 "binary cache key is not 64 hex digits");
    if (!data || len == 0 || len > CLATTN_BINARY_MAX_BYTES)
        return clattn_fail_into(err, err_len, CLATTN_INVALID_ARGUMENT,
                                 "program binary of %zu bytes cannot be cached", len);
    file = malloc(CLATTN_BINARY_HEADER_BYTES + len);
    if (!file)
        return clattn_fail_into(err, err_len, CLATTN_OUT_OF_MEMORY,
                                 "caching a program binary: out of memory");
    memcpy(file, magic, sizeof magic);
    put_le(file + 8, CLATTN_BINARY_CACHE_FORMAT, 4);
    put_le(file + 12, CLATTN_BINARY_HEADER_BYTES, 4);
    put_le(file + 16, len, 8);
    memcpy(file + 24, want, sizeof want);
    clattn_sha256_init(&s);
    clattn_sha256_update(&s, data, len);
    clattn_sha256_final(&s, file + 56);
    memcpy(file + CLATTN_BINARY_HEADER_BYTES, data, len);
    clattn_binary_cache_file_name(key, name);
    st = clattn_cache_store(dir, name, file, CLATTN_BINARY_HEADER_BYTES + len, err, err_len);
    free(file);
    return st;
}

/* ---- the load guard -------------------------------------------------------------------------- */

typedef enum { MARK_GONE, MARK_LIVE, MARK_DEAD } mark_owner;

/* Whose is the mark at path: a live loader's, a dead one's, or gone meanwhile. *pid gets the id
   it names (0 when none). Undecidable cases count as live: the cost of a wrong "live" is one
   compile, of a wrong "dead" one eviction, and only a mark left for good must lead to eviction. */
static mark_owner mark_owner_of(const char *path, long *pid)
{
    struct stat sb;
    char *text = NULL, *end;
    size_t len = 0;
    mark_owner owner;
    *pid = 0;
    if (lstat(path, &sb) != 0)
        return errno == ENOENT ? MARK_GONE : MARK_LIVE;
    if (!S_ISREG(sb.st_mode))
        return MARK_DEAD;        /* not a mark we make: something planted in its place */
    /* a loader that has held its mark this long hung or died in a way kill() cannot tell (its
       pid reused, or from another pid namespace sharing the directory) */
    if (time(NULL) - sb.st_mtime >= CLATTN_BINARY_MARK_STALE_S)
        return MARK_DEAD;
    if (clattn_cache_read(path, 64, &text, &len, NULL, 0) != CLATTN_SUCCESS)
        return MARK_DEAD;
    if (!text)
        return MARK_GONE;
    if (len == 0) {
        owner = MARK_LIVE;       /* created, its pid not written yet */
    } else {
        errno = 0;
        *pid = strtol(text, &end, 10);
        if (errno || end == text || (*end && *end != '\n') || *pid <= 0)
            owner = MARK_DEAD;
        else    /* EPERM: alive, another user's */
            owner = kill((pid_t)*pid, 0) == 0 || errno == EPERM ? MARK_LIVE : MARK_DEAD;
    }
    free(text);
    return owner;
}

clattn_binary_guard clattn_binary_cache_mark(const char *dir, const char *key,
                                             clattn_binary_mark *mark, char *warn,
                                             size_t warn_len)
{
    char name[CLATTN_BINARY_FILE_NAME_LEN], bin[CLATTN_CACHE_PATH_MAX];
    unsigned char raw[CLATTN_SHA256_BYTES];
    int n;
    mark->fd = -1;
    mark->path[0] = '\0';
    if (key_bytes(key, raw))
        return CLATTN_BINARY_GUARD_UNMARKED;
    clattn_binary_cache_file_name(key, name);
    n = snprintf(mark->path, sizeof mark->path, "%s/%s" CLATTN_BINARY_MARK_SUFFIX, dir, name);
    if (n < 0 || (size_t)n >= sizeof mark->path || clattn_cache_join(bin, sizeof bin, dir, name)) {
        mark->path[0] = '\0';
        return CLATTN_BINARY_GUARD_UNMARKED;
    }
    /* twice: a mark that vanished between our create and our look was a loader finishing */
    for (int attempt = 0; attempt < 2; attempt++) {
        long pid;
        int fd = open(mark->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0) {
            char text[32];
            int len = snprintf(text, sizeof text, "%ld\n", (long)getpid());
            ssize_t put = write(fd, text, (size_t)len);
            (void)put;           /* short: the mark reads as "being written", live until stale */
            mark->fd = fd;
            return CLATTN_BINARY_GUARD_MARKED;
        }
        if (errno != EEXIST)
            break;               /* read-only or missing directory: no guard to be had */
        switch (mark_owner_of(mark->path, &pid)) {
        case MARK_GONE:
            continue;
        case MARK_LIVE:
            mark->path[0] = '\0';
            return CLATTN_BINARY_GUARD_BUSY;
        case MARK_DEAD:
            /* the binary went to the driver and its loader never came back: never again */
            unlink(bin);
            unlink(mark->path);
            if (pid > 0)
                clattn_fail_into(warn, warn_len, CLATTN_IO_ERROR,
                                  "removed the cached binary %s: process %ld, which was loading "
                                  "it, never finished (did the driver crash on it?)", bin, pid);
            else
                clattn_fail_into(warn, warn_len, CLATTN_IO_ERROR,
                                  "removed the cached binary %s: a load of it never finished "
                                  "(did the driver crash on it?)", bin);
            mark->path[0] = '\0';
            return CLATTN_BINARY_GUARD_EVICTED;
        }
    }
    mark->path[0] = '\0';
    return CLATTN_BINARY_GUARD_UNMARKED;
}

void clattn_binary_cache_unmark(clattn_binary_mark *mark)
{
    struct stat mine, there;
    if (!mark || mark->fd < 0)
        return;
    /* an evicting process may have removed ours and another loader made a new one: leave that */
    if (fstat(mark->fd, &mine) == 0 && lstat(mark->path, &there) == 0 &&
        mine.st_dev == there.st_dev && mine.st_ino == there.st_ino)
        unlink(mark->path);
    close(mark->fd);
    mark->fd = -1;
}

/* ---- offline binaries ------------------------------------------------------------------------ */

/* The options as words joined by single spaces: "-DA=1  -DB=2 " and " -DA=1 -DB=2" name the
   same file, so the name does not hang on how a string was assembled. */
static void hash_options(const char *options, char hex[CLATTN_SHA256_HEX])
{
    clattn_sha256 s;
    unsigned char digest[CLATTN_SHA256_BYTES];
    int words = 0;
    const char *p = options ? options : "";
    clattn_sha256_init(&s);
    while (*p) {
        size_t n;
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        for (n = 0; p[n] && p[n] != ' ' && p[n] != '\t' && p[n] != '\n'; n++)
            ;
        if (!n)
            break;
        if (words++)
            clattn_sha256_update(&s, " ", 1);
        clattn_sha256_update(&s, p, n);
        p += n;
    }
    clattn_sha256_final(&s, digest);
    clattn_sha256_hex(digest, hex);
}

int clattn_binary_offline_name(const char *kernel_file, const char *options, char *out,
                               size_t out_len)
{
    char hex[CLATTN_SHA256_HEX];
    const char *base = kernel_file ? strrchr(kernel_file, '/') : NULL;
    size_t n;
    int w;
    base = base ? base + 1 : kernel_file ? kernel_file : "";
    n = strlen(base);
    if (n >= 3 && !strcmp(base + n - 3, ".cl"))
        n -= 3;
    if (n == 0 || n > 200)
        return -1;
    hash_options(options, hex);
    w = snprintf(out, out_len, "%.*s-%.16s.bin", (int)n, base, hex);
    return w < 0 || (size_t)w >= out_len ? -1 : 0;
}

clattn_status clattn_binary_offline_load(const char *dir, const char *kernel_file,
                                         const char *options, unsigned char **data, size_t *len,
                                         char *err, size_t err_len)
{
    char name[256], path[CLATTN_CACHE_PATH_MAX];
    char *file = NULL;
    clattn_status st;

    *data = NULL;
    *len = 0;
    if (clattn_binary_offline_name(kernel_file, options, name, sizeof name) ||
        clattn_cache_join(path, sizeof path, dir, name))
        return clattn_fail_into(err, err_len, CLATTN_INVALID_ARGUMENT,
                                 "no offline binary name for kernel file '%s' in '%s'",
                                 kernel_file ? kernel_file : "(null)", dir);
    st = clattn_cache_read(path, CLATTN_BINARY_MAX_BYTES, &file, len, err, err_len);
    if (st != CLATTN_SUCCESS)
        return st;
    if (!file || *len == 0) {
        free(file);
        *len = 0;
        return clattn_fail_into(err, err_len, CLATTN_UNSUPPORTED,
                                 "this device cannot compile kernels and %s is %s: build %s "
                                 "offline with the options '%s' and save it under that name",
                                 path, file ? "empty" : "missing",
                                 kernel_file ? kernel_file : "", options ? options : "");
    }
    *data = (unsigned char *)file;
    return CLATTN_SUCCESS;
}
