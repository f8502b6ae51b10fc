/* The on-disk caches without a device: SHA-256, the cache directory and its atomic, locked files,
   the tuning cache (keys, lookup fallback, file format, merging saves) and the program-binary
   cache. Processes are forked to save at once and to die mid-save; every test works in its own
   temporary directory (the fixture), removed afterwards.

   Killing a save between its write and its rename: this file defines rename(), which the linker
   binds the library's calls to ahead of libc's; it behaves as libc's unless the (forked) child
   that runs the save has set die_in_rename. */
#define _XOPEN_SOURCE 700     /* nftw */
#include "host/cache/binary_cache.h"
#include "host/cache/cache_file.h"
#include "host/core/options.h"
#include "host/cache/sha256.h"
#include "host/cache/tune_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define SOURCES "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define OTHER_SOURCES "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define IDENTITY "Test Platform / OpenCL 1.2 / Vendor / Device 9000 / 1.0 / 4 CU"

/* ---- the rename hook --------------------------------------------------------------------------- */

static volatile sig_atomic_t die_in_rename;   /* only ever set in a forked child */

int rename(const char *from, const char *to)
{
    if (die_in_rename)
        raise(SIGKILL);
    return renameat(AT_FDCWD, from, AT_FDCWD, to);
}

/* ---- fixture: a fresh directory per test -------------------------------------------------------- */

typedef struct fixture {
    char root[256];     /* the temporary directory */
    char dir[300];      /* root/cache: where the caches go (not created in advance) */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->root, sizeof f->root, "%s/clattn-test-cache-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(f->root)) {
        free(f);
        return -1;
    }
    snprintf(f->dir, sizeof f->dir, "%s/cache", f->root);
    *state = f;
    return 0;
}

static int make_writable(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)ftw;
    if (type == FTW_D || (sb && S_ISDIR(sb->st_mode)))
        chmod(path, 0700);
    return 0;
}

static int remove_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    remove(path);
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    nftw(f->root, make_writable, 16, FTW_PHYS);
    nftw(f->root, remove_one, 16, FTW_PHYS | FTW_DEPTH);
    free(f);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------------------------ */

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    if (len)
        assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static char *read_file(const char *path, size_t *len)
{
    char *data = NULL;
    char err[512];
    assert_int_equal(clattn_cache_read(path, 1u << 30, &data, len, err, sizeof err), CLATTN_SUCCESS);
    return data;
}

/* Entries in dir whose names contain part. */
static int count_names(const char *dir, const char *part)
{
    DIR *d = opendir(dir);
    struct dirent *ent;
    int n = 0;
    if (!d)
        return 0;
    while ((ent = readdir(d)))
        n += strstr(ent->d_name, part) != NULL;
    closedir(d);
    return n;
}

static void tune_path(const fixture *f, const char *identity, char *path, size_t len)
{
    char name[CLATTN_TUNE_FILE_NAME_LEN];
    clattn_tune_cache_file_name(identity, name);
    snprintf(path, len, "%s/%s", f->dir, name);
}

static clattn_tune_cache *new_cache(const char *identity, const char *sources)
{
    clattn_tune_cache *c = NULL;
    assert_int_equal(clattn_tune_cache_create(identity, sources, "0.1.0", &c), CLATTN_SUCCESS);
    return c;
}

static clattn_tune_entry make_entry(const char *family, clattn_dtype dtype, int d, int lq, int lk,
                                    int causal, int group, int value)
{
    clattn_tune_entry e;
    memset(&e, 0, sizeof e);
    assert_int_equal(clattn_tune_key_make(&e.key, family, dtype, d, d, lq, lk, causal, group, 0),
                     CLATTN_SUCCESS);
    e.n_params = 2;
    strcpy(e.params[0].name, "BLOCK_N");
    e.params[0].value = value;
    strcpy(e.params[1].name, "WPT");
    e.params[1].value = -value;
    e.time_ms = value / 8.0;
    e.default_ms = -1;
    return e;
}

static void put_entry(clattn_tune_cache *c, clattn_tune_entry e)
{
    assert_int_equal(clattn_tune_cache_put(c, &e), CLATTN_SUCCESS);
}

static int value_of(const clattn_tune_entry *e)
{
    int v = 0;
    assert_non_null(e);
    assert_int_equal(clattn_tune_entry_param(e, "BLOCK_N", &v), 0);
    return v;
}

static void save_ok(clattn_tune_cache *c, const char *dir)
{
    char err[512] = "";
    clattn_status st = clattn_tune_cache_save(c, dir, err, sizeof err);
    if (st != CLATTN_SUCCESS)
        fail_msg("save: %s", err);
}

/* Loads the file in dir into a new cache; returns the status, count in *n. */
static clattn_status load_count(const char *dir, size_t *n, char *warn, size_t warn_len)
{
    clattn_tune_cache *c = new_cache(IDENTITY, SOURCES);
    clattn_status st = clattn_tune_cache_load(c, dir, warn, warn_len);
    *n = clattn_tune_cache_count(c);
    clattn_tune_cache_release(c);
    return st;
}

static int wait_child(pid_t pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

/* ---- SHA-256 ------------------------------------------------------------------------------------ */

static void test_sha256_vectors(void **state)
{
    char hex[CLATTN_SHA256_HEX];
    char *million = malloc(1000000);
    (void)state;
    clattn_sha256_hex_of("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    clattn_sha256_hex_of("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    clattn_sha256_hex_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    clattn_sha256_hex_of("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
                         "klmnopqrlmnopqrsmnopqrstnopqrstu", 112, hex);
    assert_string_equal(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    assert_non_null(million);
    memset(million, 'a', 1000000);
    clattn_sha256_hex_of(million, 1000000, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(million);
}

static void test_sha256_incremental(void **state)
{
    unsigned char data[1000], digest[CLATTN_SHA256_BYTES];
    char whole[CLATTN_SHA256_HEX], parts[CLATTN_SHA256_HEX];
    (void)state;
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 7 + 3);
    /* every length around the block and padding boundaries, fed in uneven pieces */
    for (size_t len = 0; len < 300; len++) {
        clattn_sha256 s;
        size_t at = 0, step = 1;
        clattn_sha256_hex_of(data, len, whole);
        clattn_sha256_init(&s);
        while (at < len) {
            size_t n = step < len - at ? step : len - at;
            clattn_sha256_update(&s, data + at, n);
            at += n;
            step = step * 3 % 71 + 1;
        }
        clattn_sha256_final(&s, digest);
        clattn_sha256_hex(digest, parts);
        assert_string_equal(whole, parts);
    }
}

/* ---- the cache directory and its files ---------------------------------------------------------- */

static void test_dir_resolution(void **state)
{
    char dir[CLATTN_CACHE_PATH_MAX], err[256], small[8];
    int on = -1;
    (void)state;
    const char *offs[] = {"off", "OFF", "0", "no", "False"};
    for (size_t i = 0; i < sizeof offs / sizeof *offs; i++) {
        assert_int_equal(clattn_cache_dir_from(offs[i], "/x", "/xdg", "/home/u", &on, dir, sizeof dir,
                                               err, sizeof err), CLATTN_SUCCESS);
        assert_int_equal(on, 0);
        assert_string_equal(dir, "");
    }
    assert_int_equal(clattn_cache_dir_from("on", "/x/y", "/xdg", "/home/u", &on, dir, sizeof dir,
                                           err, sizeof err), CLATTN_SUCCESS);
    assert_int_equal(on, 1);
    assert_string_equal(dir, "/x/y");
    clattn_cache_dir_from(NULL, "", "/xdg", "/home/u", &on, dir, sizeof dir, err, sizeof err);
    assert_string_equal(dir, "/xdg/clattn");
    /* a relative XDG_CACHE_HOME is invalid by the XDG spec and ignored */
    clattn_cache_dir_from(NULL, NULL, "rel/xdg", "/home/u", &on, dir, sizeof dir, err, sizeof err);
    assert_string_equal(dir, "/home/u/.cache/clattn");
    clattn_cache_dir_from(NULL, NULL, "", "/home/u", &on, dir, sizeof dir, err, sizeof err);
    assert_string_equal(dir, "/home/u/.cache/clattn");
    assert_int_equal(clattn_cache_dir_from(NULL, NULL, NULL, NULL, &on, dir, sizeof dir, err,
                                           sizeof err), CLATTN_IO_ERROR);
    assert_int_equal(on, 0);
    assert_non_null(strstr(err, "CLATTN_CACHE_DIR"));
    assert_int_equal(clattn_cache_dir_from(NULL, "/a/long/directory", NULL, NULL, &on, small,
                                           sizeof small, err, sizeof err), CLATTN_IO_ERROR);
    assert_int_equal(on, 0);
}

static void test_identity(void **state)
{
    char id[256], tiny[10];
    (void)state;
    assert_int_equal(clattn_cache_identity(id, sizeof id, "  Portable Computing Language ",
                                           "OpenCL 3.0 PoCL", "GenuineIntel", " Intel(R) Xeon ",
                                           "3.1\n", 2), 0);
    assert_string_equal(id, "Portable Computing Language / OpenCL 3.0 PoCL / GenuineIntel / "
                            "Intel(R) Xeon / 3.1 / 2 CU");
    assert_int_equal(clattn_cache_identity(id, sizeof id, NULL, NULL, NULL, NULL, NULL, 0), 0);
    assert_string_equal(id, " /  /  /  /  / 0 CU");
    assert_int_equal(clattn_cache_identity(tiny, sizeof tiny, "platform", "v", "x", "y", "z", 1), -1);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
}

static void test_mkdirs_and_read(void **state)
{
    fixture *f = *state;
    char path[512], err[512], *data = (char *)1;
    size_t len = 99;
    snprintf(path, sizeof path, "%s/a/b//c/", f->dir);
    assert_int_equal(clattn_cache_mkdirs(path, err, sizeof err), CLATTN_SUCCESS);
    assert_int_equal(clattn_cache_mkdirs(path, err, sizeof err), CLATTN_SUCCESS);
    /* a file where a directory should be */
    snprintf(path, sizeof path, "%s/a/file", f->dir);
    write_file(path, "x", 1);
    snprintf(path, sizeof path, "%s/a/file/sub", f->dir);
    assert_int_equal(clattn_cache_mkdirs(path, err, sizeof err), CLATTN_IO_ERROR);
    assert_non_null(strstr(err, "not a directory"));
    /* missing file, missing directory: a miss */
    snprintf(path, sizeof path, "%s/a/none", f->dir);
    assert_int_equal(clattn_cache_read(path, 100, &data, &len, err, sizeof err), CLATTN_SUCCESS);
    assert_null(data);
    assert_int_equal(len, 0);
    snprintf(path, sizeof path, "%s/a/file/sub", f->dir);
    assert_int_equal(clattn_cache_read(path, 100, &data, &len, err, sizeof err), CLATTN_SUCCESS);
    assert_null(data);
    /* a directory, a FIFO (must not block), a file over the limit */
    snprintf(path, sizeof path, "%s/a", f->dir);
    assert_int_equal(clattn_cache_read(path, 100, &data, &len, err, sizeof err), CLATTN_IO_ERROR);
    snprintf(path, sizeof path, "%s/a/fifo", f->dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(clattn_cache_read(path, 100, &data, &len, err, sizeof err), CLATTN_IO_ERROR);
    assert_non_null(strstr(err, "not a regular file"));
    snprintf(path, sizeof path, "%s/a/file", f->dir);
    write_file(path, "0123456789", 10);
    assert_int_equal(clattn_cache_read(path, 9, &data, &len, err, sizeof err), CLATTN_IO_ERROR);
    assert_null(data);
    assert_int_equal(clattn_cache_read(path, 10, &data, &len, err, sizeof err), CLATTN_SUCCESS);
    assert_int_equal(len, 10);
    assert_int_equal(data[10], '\0');
    free(data);
}

static void test_write_atomic(void **state)
{
    fixture *f = *state;
    char path[512], err[512], *data;
    size_t len;
    assert_int_equal(clattn_cache_mkdirs(f->dir, err, sizeof err), CLATTN_SUCCESS);
    snprintf(path, sizeof path, "%s/file", f->dir);
    assert_int_equal(clattn_cache_write_atomic(path, "first", 5, err, sizeof err), CLATTN_SUCCESS);
    assert_int_equal(clattn_cache_write_atomic(path, "second", 6, err, sizeof err), CLATTN_SUCCESS);
    data = read_file(path, &len);
    assert_int_equal(len, 6);
    assert_memory_equal(data, "second", 6);
    free(data);
    assert_int_equal(count_names(f->dir, ".tmp"), 0);
    /* a missing directory fails cleanly */
    snprintf(path, sizeof path, "%s/none/file", f->dir);
    assert_int_equal(clattn_cache_write_atomic(path, "x", 1, err, sizeof err), CLATTN_IO_ERROR);
}

static void test_lock_timeout(void **state)
{
    fixture *f = *state;
    char path[512], err[512];
    clattn_cache_lock a, b;
    struct timespec t0, t1;
    assert_int_equal(clattn_cache_mkdirs(f->dir, err, sizeof err), CLATTN_SUCCESS);
    snprintf(path, sizeof path, "%s/x.lock", f->dir);
    assert_int_equal(clattn_cache_lock_acquire(path, 0, &a, err, sizeof err), CLATTN_SUCCESS);
    /* flock belongs to the open file: a second open conflicts even within one process */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(clattn_cache_lock_acquire(path, 100, &b, err, sizeof err), CLATTN_IO_ERROR);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true((t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) * 1e-6 >= 100);
    assert_non_null(strstr(err, "timed out"));
    assert_int_equal(b.fd, -1);
    clattn_cache_lock_release(&a);
    assert_int_equal(clattn_cache_lock_acquire(path, 100, &b, err, sizeof err), CLATTN_SUCCESS);
    clattn_cache_lock_release(&b);
    clattn_cache_lock_release(&b);   /* twice is harmless */
}

static clattn_status append_merge(void *user, const char *old, size_t old_len, char **out,
                                  size_t *out_len, char *err, size_t err_len)
{
    const char *add = user;
    (void)err, (void)err_len;
    *out_len = old_len + strlen(add);
    *out = malloc(*out_len + 1);
    if (old)
        memcpy(*out, old, old_len);
    memcpy(*out + old_len, add, strlen(add) + 1);
    return CLATTN_SUCCESS;
}

static clattn_status refuse_merge(void *user, const char *old, size_t old_len, char **out,
                                  size_t *out_len, char *err, size_t err_len)
{
    (void)user, (void)old, (void)old_len, (void)out, (void)out_len;
    return clattn_fail_into(err, err_len, CLATTN_INVALID_ARGUMENT, "refused");
}

static void test_update(void **state)
{
    fixture *f = *state;
    char path[512], err[512], *data;
    size_t len;
    assert_int_equal(clattn_cache_update(f->dir, "f", 100, append_merge, "ab", err, sizeof err),
                     CLATTN_SUCCESS);
    assert_int_equal(clattn_cache_update(f->dir, "f", 100, append_merge, "cd", err, sizeof err),
                     CLATTN_SUCCESS);
    assert_int_equal(clattn_cache_update(f->dir, "f", 100, refuse_merge, NULL, err, sizeof err),
                     CLATTN_INVALID_ARGUMENT);
    snprintf(path, sizeof path, "%s/f", f->dir);
    data = read_file(path, &len);
    assert_string_equal(data, "abcd");
    free(data);
    /* a file over the limit counts as absent, and is replaced */
    assert_int_equal(clattn_cache_update(f->dir, "f", 3, append_merge, "ef", err, sizeof err),
                     CLATTN_SUCCESS);
    data = read_file(path, &len);
    assert_string_equal(data, "ef");
    free(data);
    assert_int_equal(count_names(f->dir, ".tmp"), 0);
    assert_int_equal(count_names(f->dir, "f.lock"), 1);
}

/* Links planted in the cache directory never redirect a write or a read: a lock file that is a
   link is refused and nothing is created where it points; a link at the lock holder's fixed
   temporary name is removed, not written through; a link at the file itself is replaced; a read
   does not follow a link, to a file or to a device. Every link's target is left as it was. */
static void test_planted_links(void **state)
{
    fixture *f = *state;
    char path[512], victim[512], precious[512], err[512], *data = NULL;
    size_t len = 0;
    struct stat sb;
    assert_int_equal(clattn_cache_mkdirs(f->dir, err, sizeof err), CLATTN_SUCCESS);
    snprintf(victim, sizeof victim, "%s/victim", f->root);          /* must never be created */
    snprintf(precious, sizeof precious, "%s/precious", f->root);    /* must never change */
    write_file(precious, "keep", 4);

    /* a merge's lock file, the stores' shared one, and a lock taken directly */
    snprintf(path, sizeof path, "%s/f.lock", f->dir);
    assert_int_equal(symlink(victim, path), 0);
    assert_int_equal(clattn_cache_update(f->dir, "f", 100, append_merge, "ab", err, sizeof err),
                     CLATTN_IO_ERROR);
    assert_non_null(strstr(err, "symbolic link"));
    assert_int_equal(lstat(victim, &sb), -1);
    snprintf(path, sizeof path, "%s/%s", f->dir, CLATTN_CACHE_STORE_LOCK);
    assert_int_equal(symlink(victim, path), 0);
    assert_int_equal(clattn_cache_store(f->dir, "g", "x", 1, err, sizeof err), CLATTN_IO_ERROR);
    assert_int_equal(lstat(victim, &sb), -1);
    clattn_cache_lock lock;
    snprintf(path, sizeof path, "%s/p.lock", f->dir);
    assert_int_equal(symlink(precious, path), 0);
    assert_int_equal(clattn_cache_lock_acquire(path, 0, &lock, err, sizeof err), CLATTN_IO_ERROR);
    assert_int_equal(lock.fd, -1);
    snprintf(path, sizeof path, "%s/fifo.lock", f->dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(clattn_cache_lock_acquire(path, 0, &lock, err, sizeof err), CLATTN_IO_ERROR);
    assert_non_null(strstr(err, "not a regular file"));

    /* the lock holder's temporary "<name>.tmp", once the lock file is sound */
    snprintf(path, sizeof path, "%s/f.lock", f->dir);
    assert_int_equal(unlink(path), 0);
    snprintf(path, sizeof path, "%s/f.tmp", f->dir);
    assert_int_equal(symlink(precious, path), 0);
    assert_int_equal(clattn_cache_update(f->dir, "f", 100, append_merge, "ab", err, sizeof err),
                     CLATTN_SUCCESS);
    assert_int_equal(lstat(path, &sb), -1);
    snprintf(path, sizeof path, "%s/f", f->dir);
    data = read_file(path, &len);
    assert_string_equal(data, "ab");
    free(data);

    /* the file itself: the link is replaced by the new file */
    snprintf(path, sizeof path, "%s/h", f->dir);
    assert_int_equal(symlink(precious, path), 0);
    assert_int_equal(clattn_cache_write_atomic(path, "new", 3, err, sizeof err), CLATTN_SUCCESS);
    assert_int_equal(lstat(path, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));

    /* reads: a link to a regular file and one to a device are both refused */
    snprintf(path, sizeof path, "%s/to-file", f->dir);
    assert_int_equal(symlink(precious, path), 0);
    data = (char *)1;
    assert_int_equal(clattn_cache_read(path, 100, &data, &len, err, sizeof err), CLATTN_IO_ERROR);
    assert_null(data);
    assert_non_null(strstr(err, "symbolic link"));
    snprintf(path, sizeof path, "%s/to-zero", f->dir);
    assert_int_equal(symlink("/dev/zero", path), 0);
    assert_int_equal(clattn_cache_read(path, 100, &data, &len, err, sizeof err), CLATTN_IO_ERROR);

    data = read_file(precious, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(data, "keep", 4);
    free(data);
    assert_int_equal(lstat(victim, &sb), -1);
}

/* ---- tuning cache: keys and lookup -------------------------------------------------------------- */

static void test_shape_classes(void **state)
{
    clattn_tune_key k;
    (void)state;
    assert_int_equal(clattn_tune_lq_class(0), CLATTN_TUNE_LQ_1);
    assert_int_equal(clattn_tune_lq_class(1), CLATTN_TUNE_LQ_1);
    assert_int_equal(clattn_tune_lq_class(2), CLATTN_TUNE_LQ_16);
    assert_int_equal(clattn_tune_lq_class(16), CLATTN_TUNE_LQ_16);
    assert_int_equal(clattn_tune_lq_class(17), CLATTN_TUNE_LQ_128);
    assert_int_equal(clattn_tune_lq_class(128), CLATTN_TUNE_LQ_128);
    assert_int_equal(clattn_tune_lq_class(129), CLATTN_TUNE_LQ_LARGE);
    assert_int_equal(clattn_tune_lk_bucket(0), 1);
    assert_int_equal(clattn_tune_lk_bucket(1), 1);
    assert_int_equal(clattn_tune_lk_bucket(3), 4);
    assert_int_equal(clattn_tune_lk_bucket(4096), 4096);
    assert_int_equal(clattn_tune_lk_bucket(4097), 8192);
    assert_int_equal(clattn_tune_lk_bucket(0x7fffffff), 1 << 30);
    assert_int_equal(clattn_tune_key_make(&k, "flash", CLATTN_F16, 64, 128, 1000, 3000, 2, 4, 0),
                     CLATTN_SUCCESS);
    assert_string_equal(k.family, "flash");
    assert_int_equal(k.lq_class, CLATTN_TUNE_LQ_LARGE);
    assert_int_equal(k.lk_bucket, 4096);
    assert_int_equal(k.causal, 1);
    assert_int_equal(k.dv, 128);
    assert_int_equal(clattn_tune_key_make(&k, "Flash", CLATTN_F16, 64, 64, 1, 1, 0, 1, 0),
                     CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_tune_key_make(&k, "a_family_name_far_too_long", CLATTN_F16, 64, 64, 1,
                                          1, 0, 1, 0), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_tune_key_make(&k, "flash", CLATTN_F16, 0, 64, 1, 1, 0, 1, 0),
                     CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_tune_key_make(&k, "flash", CLATTN_F16, 64, 64, 1, 1, 0, 0, 0),
                     CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_tune_key_make(&k, "flash", (clattn_dtype)7, 64, 64, 1, 1, 0, 1, 0),
                     CLATTN_INVALID_ARGUMENT);
}

static void test_lookup_fallback(void **state)
{
    clattn_tune_cache *c = new_cache(IDENTITY, SOURCES);
    clattn_tune_key k;
    int exact = -1;
    (void)state;
    assert_null(clattn_tune_cache_lookup(c, &(clattn_tune_key){"flash", CLATTN_F16, 64, 64, 0, 1, 0, 1, 0}, &exact));
    assert_int_equal(exact, 0);
    put_entry(c, make_entry("flash", CLATTN_F16, 64, 1, 4096, 0, 1, 1));
    put_entry(c, make_entry("flash", CLATTN_F16, 64, 1000, 4096, 0, 1, 2));
    put_entry(c, make_entry("flash", CLATTN_F16, 64, 1, 256, 1, 4, 3));
    put_entry(c, make_entry("flash", CLATTN_F16, 64, 100, 1024, 0, 1, 4));
    put_entry(c, make_entry("flash", CLATTN_F16, 64, 100, 4096, 0, 1, 5));
    put_entry(c, make_entry("qk", CLATTN_F16, 64, 1, 4096, 0, 1, 6));
    put_entry(c, make_entry("flash", CLATTN_F32, 64, 1, 4096, 0, 1, 7));
    put_entry(c, make_entry("flash", CLATTN_F16, 128, 1, 4096, 0, 1, 8));
    assert_int_equal(clattn_tune_cache_count(c), 8);

    /* exact key first */
    clattn_tune_key_make(&k, "flash", CLATTN_F16, 64, 64, 1, 3000, 0, 1, 0);
    assert_int_equal(value_of(clattn_tune_cache_lookup(c, &k, &exact)), 1);
    assert_int_equal(exact, 1);
    clattn_tune_key_make(&k, "flash", CLATTN_F32, 64, 64, 1, 4096, 0, 1, 0);
    assert_int_equal(value_of(clattn_tune_cache_lookup(c, &k, &exact)), 7);
    /* nearest Lq class wins over any Lk distance */
    clattn_tune_key_make(&k, "flash", CLATTN_F16, 64, 64, 2, 4096, 0, 1, 0);
    assert_int_equal(value_of(clattn_tune_cache_lookup(c, &k, &exact)), 1);
    assert_int_equal(exact, 0);
    clattn_tune_key_make(&k, "flash", CLATTN_F16, 64, 64, 5000, 2, 0, 1, 0);
    assert_int_equal(value_of(clattn_tune_cache_lookup(c, &k, &exact)), 2);
    /* same class: nearest Lk bucket, ahead of causal and group */
    clattn_tune_key_make(&k, "flash", CLATTN_F16, 64, 64, 1, 512, 0, 1, 0);
    assert_int_equal(value_of(clattn_tune_cache_lookup(c, &k, &exact)), 3);
    clattn_tune_key_make(&k, "flash", CLATTN_F16, 64, 64, 1, 8192, 1, 4, 0);
    assert_int_equal(value_of(clattn_tune_cache_lookup(c, &k, &exact)), 1);
    /* causal and group decide between equal Lk distances */
    put_entry(c, make_entry("flash", CLATTN_F16, 64, 1, 64, 0, 1, 9));
    clattn_tune_key_make(&k, "flash", CLATTN_F16, 64, 64, 1, 128, 1, 1, 0);
    assert_int_equal(value_of(clattn_tune_cache_lookup(c, &k, &exact)), 3);
    clattn_tune_key_make(&k, "flash", CLATTN_F16, 64, 64, 1, 128, 0, 1, 0);
    assert_int_equal(value_of(clattn_tune_cache_lookup(c, &k, &exact)), 9);
    /* a tie goes to the smaller key: Lk 1024 and 4096 are as far from 2048 */
    clattn_tune_key_make(&k, "flash", CLATTN_F16, 64, 64, 100, 2048, 0, 1, 0);
    assert_int_equal(value_of(clattn_tune_cache_lookup(c, &k, &exact)), 4);
    /* nothing shares family, dtype, d and dv: the caller's defaults apply */
    clattn_tune_key_make(&k, "flash", CLATTN_F16, 96, 96, 1, 4096, 0, 1, 0);
    assert_null(clattn_tune_cache_lookup(c, &k, &exact));
    clattn_tune_key_make(&k, "flash", CLATTN_F16, 64, 128, 1, 4096, 0, 1, 0);
    assert_null(clattn_tune_cache_lookup(c, &k, NULL));
    clattn_tune_key_make(&k, "pv", CLATTN_F16, 64, 64, 1, 4096, 0, 1, 0);
    assert_null(clattn_tune_cache_lookup(c, &k, &exact));
    clattn_tune_key_make(&k, "softmax", CLATTN_F32, 128, 128, 1, 4096, 0, 1, 0);
    assert_null(clattn_tune_cache_lookup(c, &k, &exact));

    /* put replaces an equal key */
    put_entry(c, make_entry("flash", CLATTN_F16, 64, 1, 4096, 0, 1, 42));
    clattn_tune_key_make(&k, "flash", CLATTN_F16, 64, 64, 1, 4096, 0, 1, 0);
    assert_int_equal(value_of(clattn_tune_cache_lookup(c, &k, &exact)), 42);
    assert_int_equal(clattn_tune_cache_count(c), 9);
    /* entries come out in key order */
    for (size_t i = 1; i < clattn_tune_cache_count(c); i++) {
        const clattn_tune_entry *a = clattn_tune_cache_entry(c, i - 1), *b = clattn_tune_cache_entry(c, i);
        int ord = strcmp(a->key.family, b->key.family);
        if (!ord) ord = (int)a->key.dtype - (int)b->key.dtype;
        if (!ord) ord = a->key.d - b->key.d;
        assert_true(ord <= 0);
    }
    assert_null(clattn_tune_cache_entry(c, 9));
    clattn_tune_cache_release(c);
}

static void test_put_validation(void **state)
{
    clattn_tune_cache *c = new_cache(IDENTITY, SOURCES), *bad = NULL;
    clattn_tune_entry e = make_entry("flash", CLATTN_F32, 64, 1, 1, 0, 1, 1);
    (void)state;
    e.n_params = 0;
    assert_int_equal(clattn_tune_cache_put(c, &e), CLATTN_INVALID_ARGUMENT);
    e.n_params = CLATTN_TUNE_MAX_PARAMS + 1;
    assert_int_equal(clattn_tune_cache_put(c, &e), CLATTN_INVALID_ARGUMENT);
    e.n_params = 2;
    strcpy(e.params[1].name, "BLOCK_N");   /* twice */
    assert_int_equal(clattn_tune_cache_put(c, &e), CLATTN_INVALID_ARGUMENT);
    strcpy(e.params[1].name, "1X");
    assert_int_equal(clattn_tune_cache_put(c, &e), CLATTN_INVALID_ARGUMENT);
    strcpy(e.params[1].name, "WPT");
    e.key.lk_bucket = 3;
    assert_int_equal(clattn_tune_cache_put(c, &e), CLATTN_INVALID_ARGUMENT);
    e.key.lk_bucket = 4;
    assert_int_equal(clattn_tune_cache_put(c, &e), CLATTN_SUCCESS);
    assert_int_equal(clattn_tune_cache_count(c), 1);
    clattn_tune_cache_release(c);
    clattn_tune_cache_release(NULL);
    assert_int_equal(clattn_tune_cache_create(IDENTITY, "abc", "0.1.0", &bad), CLATTN_INVALID_ARGUMENT);
    assert_null(bad);
    assert_int_equal(clattn_tune_cache_create(IDENTITY, SOURCES, "0.1 beta", &bad),
                     CLATTN_INVALID_ARGUMENT);
}

/* ---- tuning cache: the file --------------------------------------------------------------------- */

static clattn_tune_cache *sample_cache(const char *identity)
{
    clattn_tune_cache *c = new_cache(identity, SOURCES);
    clattn_tune_entry e = make_entry("merge", CLATTN_F32, 512, 1, 1, 0, 1, 0);
    put_entry(c, make_entry("flash", CLATTN_F16, 64, 1, 4096, 0, 4, 64));
    put_entry(c, make_entry("flash", CLATTN_F16, 64, 1000, 4096, 1, 1, 32));
    put_entry(c, make_entry("qk", CLATTN_F32, 128, 16, 100, 0, 1, 16));
    e.n_params = CLATTN_TUNE_MAX_PARAMS;
    for (int i = 0; i < e.n_params; i++) {
        snprintf(e.params[i].name, sizeof e.params[i].name, "P_%d", i);
        e.params[i].value = i == 0 ? -2147483647 - 1 : i == 1 ? 2147483647 : i;
    }
    e.time_ms = 1234.56789;
    e.default_ms = 0.0004;
    put_entry(c, e);
    return c;
}

static void test_round_trip(void **state)
{
    fixture *f = *state;
    /* an identity with a newline, a backslash, a tab and UTF-8: all escaped in the file */
    const char *identity = "Pl\\at\nform / \tv1 / Vendor\xc3\xa9 / Device / 1.0 / 8 CU";
    clattn_tune_cache *c = sample_cache(identity), *d = new_cache(identity, SOURCES);
    char *text = NULL, *again = NULL, err[512];
    size_t len, len2;
    int stale = -1;
    assert_int_equal(clattn_tune_cache_serialize(c, &text, &len), CLATTN_SUCCESS);
    assert_int_equal(strlen(text), len);
    assert_non_null(strstr(text, "clattn-tune-cache 1\nlibrary 0.1.0\nsources " SOURCES "\n"));
    assert_non_null(strstr(text, "device Pl\\x5cat\\x0aform / \\x09v1 / Vendor\\xc3\\xa9 / Device"));
    assert_non_null(strstr(text, "flash dtype=f16 d=64 dv=64 lq=1 lk=4096 causal=0 group=4 : "
                                 "BLOCK_N=64 WPT=-64 # time_ms=8.000\n"));
    assert_non_null(strstr(text, "lq=large"));
    assert_non_null(strstr(text, "P_0=-2147483648 P_1=2147483647"));
    assert_non_null(strstr(text, "# time_ms=1234.568 default_ms=0.000\n"));
    assert_int_equal(memcmp(text + len - 4, "end\n", 4), 0);
    assert_int_equal(clattn_tune_cache_parse(d, text, len, &stale, err, sizeof err), CLATTN_SUCCESS);
    assert_int_equal(stale, 0);
    assert_int_equal(clattn_tune_cache_count(d), clattn_tune_cache_count(c));
    for (size_t i = 0; i < clattn_tune_cache_count(c); i++)
        assert_memory_equal(clattn_tune_cache_entry(c, i), clattn_tune_cache_entry(d, i),
                            sizeof(clattn_tune_entry));
    assert_int_equal(clattn_tune_cache_serialize(d, &again, &len2), CLATTN_SUCCESS);
    assert_int_equal(len, len2);
    assert_memory_equal(text, again, len);
    free(again);
    clattn_tune_cache_release(d);

    /* through the directory: save creates it, load reads it back */
    save_ok(c, f->dir);
    d = new_cache(identity, SOURCES);
    assert_int_equal(clattn_tune_cache_load(d, f->dir, err, sizeof err), CLATTN_SUCCESS);
    assert_int_equal(clattn_tune_cache_count(d), 4);
    clattn_tune_cache_release(d);

    /* what people may do to it by hand: comments, blank lines, CRLF, tabs, a repeated key (the
       later wins), odd comment text */
    {
        const char *hand =
            "clattn-tune-cache 1\r\n# a comment\n\nlibrary 9.9.9\nsources " SOURCES "\n"
            "device Test Platform / OpenCL 1.2 / Vendor / Device 9000 / 1.0 / 4 CU\n"
            "  qk\tdtype=f32 d=64 dv=64 lq=16 lk=8 causal=0 group=1 : A=1 # time_ms=x nonsense\n"
            "qk dtype=f32 d=64 dv=64 lq=16 lk=8 causal=0 group=1 : A=2 B=3 #time_ms=0.5\n"
            "   # indented comment\n"
            "end\n\n# trailing comment";
        clattn_tune_key k;
        const clattn_tune_entry *e;
        int v;
        d = new_cache(IDENTITY, SOURCES);
        assert_int_equal(clattn_tune_cache_parse(d, hand, strlen(hand), &stale, err, sizeof err),
                         CLATTN_SUCCESS);
        assert_int_equal(clattn_tune_cache_count(d), 1);
        clattn_tune_key_make(&k, "qk", CLATTN_F32, 64, 64, 10, 8, 0, 1, 0);
        e = clattn_tune_cache_lookup(d, &k, NULL);
        assert_non_null(e);
        assert_int_equal(e->n_params, 2);
        assert_int_equal(clattn_tune_entry_param(e, "A", &v), 0);
        assert_int_equal(v, 2);
        assert_true(e->time_ms == 0.5);
        assert_true(e->default_ms < 0);
        assert_int_equal(clattn_tune_entry_param(e, "C", &v), -1);
        clattn_tune_cache_release(d);
    }
    free(text);
    clattn_tune_cache_release(c);
}

/* Variants are part of a key: they round-trip through the file by name, an exact lookup needs
   them equal, a nearest lookup prefers the same variants and otherwise serves a plain class's
   parameters; bad names, repeats and empty lists make the file invalid. */
static void test_tune_variants(void **state)
{
    (void)state;
    clattn_tune_cache *c = new_cache(IDENTITY, SOURCES), *d = new_cache(IDENTITY, SOURCES);
    clattn_tune_entry plain = make_entry("flash", CLATTN_F32, 64, 1000, 4096, 1, 1, 5);
    clattn_tune_entry windowed = plain, int8 = plain;
    windowed.key.variants = CLATTN_VARIANT_WINDOW | CLATTN_VARIANT_SOFTCAP;
    windowed.params[0].value = 6;
    int8.key.variants = CLATTN_VARIANT_KV_INT8;
    int8.params[0].value = 7;
    put_entry(c, plain);
    put_entry(c, windowed);
    put_entry(c, int8);
    assert_int_equal(clattn_tune_cache_count(c), 3);
    char *text = NULL, err[512];
    size_t len;
    int stale = -1, exact = -1, v = 0;
    assert_int_equal(clattn_tune_cache_serialize(c, &text, &len), CLATTN_SUCCESS);
    assert_non_null(strstr(text, "group=1 variants=window+softcap : BLOCK_N=6"));
    assert_non_null(strstr(text, "group=1 variants=kv_int8 : BLOCK_N=7"));
    assert_non_null(strstr(text, "group=1 : BLOCK_N=5"));
    assert_int_equal(clattn_tune_cache_parse(d, text, len, &stale, err, sizeof err), CLATTN_SUCCESS);
    for (size_t i = 0; i < 3; i++)
        assert_memory_equal(clattn_tune_cache_entry(c, i), clattn_tune_cache_entry(d, i),
                            sizeof(clattn_tune_entry));
    clattn_tune_key k;
    clattn_tune_key_make(&k, "flash", CLATTN_F32, 64, 64, 1000, 4096, 1, 1,
                         CLATTN_VARIANT_WINDOW | CLATTN_VARIANT_SOFTCAP);
    assert_int_equal(clattn_tune_entry_param(clattn_tune_cache_lookup(d, &k, &exact), "BLOCK_N", &v), 0);
    assert_int_equal(exact, 1);
    assert_int_equal(v, 6);
    /* ALiBi was never tuned: the plain class is one variant away, int8 two, window+softcap three */
    const clattn_tune_entry *got;
    clattn_tune_key_make(&k, "flash", CLATTN_F32, 64, 64, 1000, 4096, 1, 1, CLATTN_VARIANT_ALIBI);
    assert_non_null(got = clattn_tune_cache_lookup(d, &k, &exact));
    assert_int_equal(clattn_tune_entry_param(got, "BLOCK_N", &v), 0);
    assert_int_equal(exact, 0);
    assert_int_equal(v, 5);
    /* int8 with window and soft-capping: window+softcap is one variant away (the class the tuner
       files such a desc under), plain three */
    clattn_tune_key_make(&k, "flash", CLATTN_F32, 64, 64, 1000, 4096, 1, 1,
                         CLATTN_VARIANT_KV_INT8 | CLATTN_VARIANT_WINDOW | CLATTN_VARIANT_SOFTCAP);
    assert_non_null(got = clattn_tune_cache_lookup(d, &k, &exact));
    assert_int_equal(clattn_tune_entry_param(got, "BLOCK_N", &v), 0);
    assert_int_equal(v, 6);
    /* the causal flag outweighs group and variants together: a causal entry of another group and
       variants beats a non-causal one that matches both */
    clattn_tune_cache *two = new_cache(IDENTITY, SOURCES);
    clattn_tune_entry other_causal = make_entry("flash", CLATTN_F32, 64, 1000, 4096, 0, 4, 8);
    clattn_tune_entry same_causal = make_entry("flash", CLATTN_F32, 64, 1000, 4096, 1, 1, 9);
    same_causal.key.variants = CLATTN_VARIANT_SINKS;
    put_entry(two, other_causal);
    put_entry(two, same_causal);
    clattn_tune_key_make(&k, "flash", CLATTN_F32, 64, 64, 1000, 4096, 1, 4, 0);
    assert_non_null(got = clattn_tune_cache_lookup(two, &k, &exact));
    assert_int_equal(clattn_tune_entry_param(got, "BLOCK_N", &v), 0);
    assert_int_equal(v, 9);
    clattn_tune_cache_release(two);
    /* bits past the known variants are not a key */
    assert_int_equal(clattn_tune_key_make(&k, "flash", CLATTN_F32, 64, 64, 1, 1, 0, 1,
                                          CLATTN_VARIANT_ALL + 1),
                     CLATTN_INVALID_ARGUMENT);
    free(text);
    static const char *const bad[] = {"variants=", "variants=window+window", "variants=tanh",
                                      "variants=window+", "variants=+window", "variants=0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char file[1024];
        snprintf(file, sizeof file,
                 "clattn-tune-cache 1\nlibrary 0.1.0\nsources " SOURCES "\ndevice " IDENTITY "\n"
                 "flash dtype=f32 d=64 dv=64 lq=1 lk=8 causal=0 group=1 %s : A=1\nend\n", bad[i]);
        clattn_tune_cache *e = new_cache(IDENTITY, SOURCES);
        if (clattn_tune_cache_parse(e, file, strlen(file), &stale, err, sizeof err) == CLATTN_SUCCESS)
            fail_msg("'%s' was accepted", bad[i]);
        assert_non_null(strstr(err, "variants="));
        clattn_tune_cache_release(e);
    }
    clattn_tune_cache_release(c);
    clattn_tune_cache_release(d);
}

/* Writes bytes (unless NULL: the file is already in place) as the device's tuning file, checks
   load ignores it with a warning and leaves the cache alone, then that a save replaces it with a
   file that loads. */
static void check_ignored_then_rewritten(const fixture *f, const char *what, const void *bytes,
                                         size_t len)
{
    char path[512], warn[1024] = "";
    clattn_tune_cache *c = new_cache(IDENTITY, SOURCES);
    size_t n;
    put_entry(c, make_entry("flash", CLATTN_F32, 64, 1, 64, 0, 1, 77));
    tune_path(f, IDENTITY, path, sizeof path);
    if (bytes)
        write_file(path, bytes, len);
    if (clattn_tune_cache_load(c, f->dir, warn, sizeof warn) == CLATTN_SUCCESS)
        fail_msg("%s: loaded without complaint", what);
    if (!strstr(warn, "ignoring the tuning cache"))
        fail_msg("%s: warning '%s'", what, warn);
    assert_int_equal(clattn_tune_cache_count(c), 1);
    save_ok(c, f->dir);
    assert_int_equal(load_count(f->dir, &n, warn, sizeof warn), CLATTN_SUCCESS);
    assert_int_equal(n, 1);
    clattn_tune_cache_release(c);
}

static void test_tune_bad_files(void **state)
{
    fixture *f = *state;
    clattn_tune_cache *c = sample_cache(IDENTITY), *other = sample_cache("Another Device");
    char *good, *foreign, *buf, err[512];
    size_t len, flen;
    unsigned char garbage[4096];
    unsigned seed = 12345;
    assert_int_equal(clattn_cache_mkdirs(f->dir, err, sizeof err), CLATTN_SUCCESS);
    assert_int_equal(clattn_tune_cache_serialize(c, &good, &len), CLATTN_SUCCESS);
    assert_int_equal(clattn_tune_cache_serialize(other, &foreign, &flen), CLATTN_SUCCESS);
    buf = malloc(len + 64);
    assert_non_null(buf);

    check_ignored_then_rewritten(f, "empty", "", 0);
    check_ignored_then_rewritten(f, "foreign", foreign, flen);
    check_ignored_then_rewritten(f, "not ours", "[tuning]\nflash=1\n", 17);
    for (size_t i = 0; i < sizeof garbage; i++) {
        seed = seed * 1103515245u + 12345u;
        garbage[i] = (unsigned char)(seed >> 16);
    }
    check_ignored_then_rewritten(f, "binary garbage", garbage, sizeof garbage);
    /* valid text with a NUL byte inside */
    memcpy(buf, good, len);
    buf[len / 2] = '\0';
    check_ignored_then_rewritten(f, "NUL byte", buf, len);
    /* another format version */
    memcpy(buf, good, len);
    buf[18] = '2';
    check_ignored_then_rewritten(f, "format 2", buf, len);
    /* a damaged entry */
    memcpy(buf, good, len);
    memcpy(strstr(buf, "d=64"), "d=6x", 4);
    check_ignored_then_rewritten(f, "bad number", buf, len);
    /* text after end */
    memcpy(buf, good, len);
    memcpy(buf + len, "qk\n", 4);
    check_ignored_then_rewritten(f, "after end", buf, len + 3);
    /* every truncation: only the whole file, or the whole file less its last newline, is valid */
    for (size_t cut = 0; cut < len - 1; cut++) {
        clattn_tune_cache *d = new_cache(IDENTITY, SOURCES);
        int stale;
        if (clattn_tune_cache_parse(d, good, cut, &stale, err, sizeof err) == CLATTN_SUCCESS)
            fail_msg("a file truncated to %zu of %zu bytes was accepted", cut, len);
        assert_int_equal(clattn_tune_cache_count(d), 0);
        clattn_tune_cache_release(d);
    }
    check_ignored_then_rewritten(f, "truncated", good, len * 2 / 3);
    /* a FIFO where the file should be: ignored at once, replaced by the save */
    {
        char path[512];
        tune_path(f, IDENTITY, path, sizeof path);
        unlink(path);
        assert_int_equal(mkfifo(path, 0600), 0);
        check_ignored_then_rewritten(f, "fifo", NULL, 0);
    }
    free(buf);
    free(good);
    free(foreign);
    clattn_tune_cache_release(c);
    clattn_tune_cache_release(other);
}

static void test_tune_stale_sources(void **state)
{
    fixture *f = *state;
    clattn_tune_cache *old = new_cache(IDENTITY, OTHER_SOURCES), *c = new_cache(IDENTITY, SOURCES);
    char warn[512] = "", path[512], *text;
    size_t n, len;
    put_entry(old, make_entry("flash", CLATTN_F32, 64, 1, 64, 0, 1, 1));
    put_entry(old, make_entry("flash", CLATTN_F32, 64, 1, 128, 0, 1, 2));
    save_ok(old, f->dir);
    /* valid, but made for other kernels: used for nothing, and no warning */
    assert_int_equal(clattn_tune_cache_load(c, f->dir, warn, sizeof warn), CLATTN_SUCCESS);
    assert_string_equal(warn, "");
    assert_int_equal(clattn_tune_cache_count(c), 0);
    put_entry(c, make_entry("qk", CLATTN_F32, 64, 1, 64, 0, 1, 3));
    save_ok(c, f->dir);
    assert_int_equal(clattn_tune_cache_count(c), 1);
    tune_path(f, IDENTITY, path, sizeof path);
    text = read_file(path, &len);
    assert_non_null(strstr(text, "sources " SOURCES));
    assert_null(strstr(text, "flash"));
    free(text);
    assert_int_equal(load_count(f->dir, &n, warn, sizeof warn), CLATTN_SUCCESS);
    assert_int_equal(n, 1);
    clattn_tune_cache_release(old);
    clattn_tune_cache_release(c);
}

static void test_tune_save_merges(void **state)
{
    fixture *f = *state;
    clattn_tune_cache *a = new_cache(IDENTITY, SOURCES), *b = new_cache(IDENTITY, SOURCES);
    clattn_tune_key k;
    char warn[512];
    size_t n;
    put_entry(a, make_entry("flash", CLATTN_F32, 64, 1, 64, 0, 1, 1));
    put_entry(a, make_entry("flash", CLATTN_F32, 64, 1, 128, 0, 1, 2));
    save_ok(a, f->dir);
    put_entry(b, make_entry("flash", CLATTN_F32, 64, 1, 128, 0, 1, 20));   /* same key as a's */
    put_entry(b, make_entry("qk", CLATTN_F32, 64, 1, 128, 0, 1, 30));
    save_ok(b, f->dir);
    /* b now holds the union, its own entry winning the shared key */
    assert_int_equal(clattn_tune_cache_count(b), 3);
    clattn_tune_key_make(&k, "flash", CLATTN_F32, 64, 64, 1, 128, 0, 1, 0);
    assert_int_equal(value_of(clattn_tune_cache_lookup(b, &k, NULL)), 20);
    clattn_tune_key_make(&k, "flash", CLATTN_F32, 64, 64, 1, 64, 0, 1, 0);
    assert_int_equal(value_of(clattn_tune_cache_lookup(b, &k, NULL)), 1);
    /* a saves again: its stale value for the shared key wins now (last saver's own entries) */
    save_ok(a, f->dir);
    assert_int_equal(load_count(f->dir, &n, warn, sizeof warn), CLATTN_SUCCESS);
    assert_int_equal(n, 3);
    assert_int_equal(count_names(f->dir, ".tmp"), 0);
    clattn_tune_cache_release(a);
    clattn_tune_cache_release(b);
}

/* Child of the concurrency test: waits at the gate, then saves one new entry at a time. */
static int child_saves(const char *dir, int gate, const char *family, int saves)
{
    clattn_tune_cache *c = NULL;
    char err[512], ch;
    if (read(gate, &ch, 1) < 0 || clattn_tune_cache_create(IDENTITY, SOURCES, "0.1.0", &c))
        return 2;
    for (int i = 0; i < saves; i++) {
        clattn_tune_entry e;
        memset(&e, 0, sizeof e);
        clattn_tune_key_make(&e.key, family, CLATTN_F32, 64, 64, 1, 1 << (i % 30), 0, 1 + i / 30, 0);
        e.n_params = 1;
        strcpy(e.params[0].name, "X");
        e.params[0].value = i;
        e.time_ms = e.default_ms = -1;
        if (clattn_tune_cache_put(c, &e) || clattn_tune_cache_save(c, dir, err, sizeof err)) {
            fprintf(stderr, "child %s: %s\n", family, err);
            return 1;
        }
    }
    clattn_tune_cache_release(c);
    return 0;
}

static void test_tune_processes_save_at_once(void **state)
{
    enum { PROCS = 4, SAVES = 40 };
    fixture *f = *state;
    pid_t pid[PROCS];
    int gate[2];
    char warn[512];
    size_t n;
    assert_int_equal(pipe(gate), 0);
    for (int p = 0; p < PROCS; p++) {
        char family[16];
        snprintf(family, sizeof family, "proc%d", p);
        pid[p] = fork();
        assert_true(pid[p] >= 0);
        if (pid[p] == 0) {
            close(gate[1]);
            _exit(child_saves(f->dir, gate[0], family, SAVES));
        }
    }
    close(gate[0]);
    close(gate[1]);              /* EOF opens the gate for all at once */
    for (int p = 0; p < PROCS; p++) {
        int status = wait_child(pid[p]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    /* every entry of every process survived */
    assert_int_equal(load_count(f->dir, &n, warn, sizeof warn), CLATTN_SUCCESS);
    assert_int_equal(n, PROCS * SAVES);
    assert_int_equal(count_names(f->dir, ".tmp"), 0);
}

static void test_tune_killed_before_rename(void **state)
{
    fixture *f = *state;
    clattn_tune_cache *c = sample_cache(IDENTITY);
    char path[512], tmp[600], warn[512], *before, *after;
    size_t len_before, len_after, n;
    pid_t pid;
    int status;
    save_ok(c, f->dir);
    tune_path(f, IDENTITY, path, sizeof path);
    before = read_file(path, &len_before);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        put_entry(c, make_entry("pv", CLATTN_F32, 64, 1, 64, 0, 1, 5));
        die_in_rename = 1;
        clattn_tune_cache_save(c, f->dir, warn, sizeof warn);
        _exit(3);                /* not reached: the save dies in rename */
    }
    status = wait_child(pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    /* the old file, byte for byte; the complete new one lies in the temporary file */
    after = read_file(path, &len_after);
    assert_int_equal(len_after, len_before);
    assert_memory_equal(after, before, len_before);
    free(after);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    after = read_file(tmp, &len_after);
    assert_non_null(after);
    assert_non_null(strstr(after, "pv dtype=f32"));
    free(after);
    /* the next save is not disturbed by the leftovers, and clears them */
    put_entry(c, make_entry("softmax", CLATTN_F32, 64, 1, 64, 0, 1, 6));
    save_ok(c, f->dir);
    assert_int_equal(count_names(f->dir, ".tmp"), 0);
    assert_int_equal(load_count(f->dir, &n, warn, sizeof warn), CLATTN_SUCCESS);
    assert_int_equal(n, 5);
    free(before);
    clattn_tune_cache_release(c);
}

static void test_tune_killed_anywhere(void **state)
{
    enum { BASE = 3, BIG = 1500, ROUNDS = 30 };
    fixture *f = *state;
    clattn_tune_cache *c = new_cache(IDENTITY, SOURCES);
    char warn[512];
    size_t n;
    char tmp[600];
    unsigned seed = 777;
    int saw_new = 0, mid_write = 0;
    tune_path(f, IDENTITY, tmp, sizeof tmp - 4);
    strcat(tmp, ".tmp");
    for (int i = 0; i < BASE; i++)
        put_entry(c, make_entry("flash", CLATTN_F32, 64, 1, 1 << i, 0, 1, i + 1));
    save_ok(c, f->dir);
    for (int round = 0; round < ROUNDS; round++) {
        struct timespec nap;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            /* a large file, saved over and over with new times, so kills land everywhere */
            clattn_tune_cache *big = new_cache(IDENTITY, SOURCES);
            char err[512];
            for (int i = 0; i < BIG; i++)
                put_entry(big, make_entry("big", CLATTN_F16, 1 + i, 1, 64, 0, 1, i));
            for (int k = 0;; k++) {
                clattn_tune_entry e = make_entry("big", CLATTN_F16, 1, 1, 64, 0, 1, k);
                clattn_tune_cache_put(big, &e);
                if (clattn_tune_cache_save(big, f->dir, err, sizeof err) != CLATTN_SUCCESS)
                    _exit(1);
            }
        }
        seed = seed * 1103515245u + 12345u;
        /* up to 120 ms (a save takes 5 to 40 ms here); the last round surely sees saves end */
        nap.tv_sec = round == ROUNDS - 1;
        nap.tv_nsec = (long)((seed >> 12) % 120000) * 1000;
        nanosleep(&nap, NULL);
        kill(pid, SIGKILL);
        assert_true(WIFSIGNALED(wait_child(pid)));
        mid_write += access(tmp, F_OK) == 0;
        /* the old file or a new one, whole: never a broken one */
        assert_int_equal(load_count(f->dir, &n, warn, sizeof warn), CLATTN_SUCCESS);
        if (n != BASE && n != BASE + BIG)
            fail_msg("round %d: %zu entries", round, n);
        saw_new |= n == BASE + BIG;
    }
    assert_true(saw_new);
    print_message("%d of %d kills landed mid-save (a temporary file was left)\n", mid_write, ROUNDS);
    save_ok(c, f->dir);
    assert_int_equal(count_names(f->dir, ".tmp"), 0);
    clattn_tune_cache_release(c);
}

/* ---- read-only and unusable directories --------------------------------------------------------- */

/* Runs in a process that cannot write dir: reads work, writes fail cleanly and change nothing. */
static int check_read_only(const char *dir, const char *bin_key)
{
    clattn_tune_cache *c = NULL;
    char warn[512] = "", err[512] = "";
    unsigned char *bin = NULL;
    size_t len = 0;
    clattn_tune_entry e;
    if (access(dir, W_OK) == 0)
        return 10;               /* still writable: the test proves nothing */
    if (clattn_tune_cache_create(IDENTITY, SOURCES, "0.1.0", &c) ||
        clattn_tune_cache_load(c, dir, warn, sizeof warn) != CLATTN_SUCCESS)
        return 11;
    if (clattn_tune_cache_count(c) != 4)
        return 12;
    memset(&e, 0, sizeof e);
    clattn_tune_key_make(&e.key, "pv", CLATTN_F32, 64, 64, 1, 64, 0, 1, 0);
    e.n_params = 1;
    strcpy(e.params[0].name, "X");
    clattn_tune_cache_put(c, &e);
    if (clattn_tune_cache_save(c, dir, err, sizeof err) != CLATTN_IO_ERROR || !err[0])
        return 13;
    if (clattn_binary_cache_load(dir, bin_key, &bin, &len, warn, sizeof warn) != CLATTN_SUCCESS ||
        !bin || len != 5 || memcmp(bin, "bytes", 5))
        return 14;
    free(bin);
    if (clattn_binary_cache_store(dir, bin_key, "other", 5, err, sizeof err) != CLATTN_IO_ERROR)
        return 15;
    clattn_tune_cache_release(c);
    return 0;
}

static void test_read_only_dir(void **state)
{
    fixture *f = *state;
    clattn_tune_cache *c = sample_cache(IDENTITY);
    char key[CLATTN_SHA256_HEX], err[512], path[512], *before, *after;
    size_t len_before, len_after;
    int rc;
    save_ok(c, f->dir);
    clattn_binary_cache_key("src", 3, "", IDENTITY, "1.0", key);
    assert_int_equal(clattn_binary_cache_store(f->dir, key, "bytes", 5, err, sizeof err),
                     CLATTN_SUCCESS);
    tune_path(f, IDENTITY, path, sizeof path);
    before = read_file(path, &len_before);
    assert_int_equal(chmod(f->root, 0755), 0);
    assert_int_equal(chmod(f->dir, 0555), 0);
    if (geteuid() != 0) {
        rc = check_read_only(f->dir, key);
    } else {
        /* root writes through 0555: the check runs in a child that has given up root */
        pid_t pid = fork();
        int status;
        assert_true(pid >= 0);
        if (pid == 0) {
            if (setgid(65534) != 0 || setuid(65534) != 0)
                _exit(20);
            _exit(check_read_only(f->dir, key));
        }
        status = wait_child(pid);
        assert_true(WIFEXITED(status));
        rc = WEXITSTATUS(status);
        if (rc == 20)
            skip();              /* running as root without the right to drop it */
    }
    if (rc)
        fail_msg("read-only check failed at step %d", rc);
    after = read_file(path, &len_after);
    assert_int_equal(len_after, len_before);
    assert_memory_equal(after, before, len_before);
    free(before);
    free(after);
    clattn_tune_cache_release(c);
}

static void test_dir_is_a_file(void **state)
{
    fixture *f = *state;
    clattn_tune_cache *c = sample_cache(IDENTITY);
    char dir[512], err[512] = "", key[CLATTN_SHA256_HEX];
    unsigned char *bin = NULL;
    size_t len;
    /* an unusable cache directory (a file stands in its way) reads as empty, writes fail cleanly */
    snprintf(dir, sizeof dir, "%s/plainfile", f->root);
    write_file(dir, "x", 1);
    snprintf(dir, sizeof dir, "%s/plainfile/cache", f->root);
    assert_int_equal(clattn_tune_cache_load(c, dir, err, sizeof err), CLATTN_SUCCESS);
    assert_int_equal(clattn_tune_cache_save(c, dir, err, sizeof err), CLATTN_IO_ERROR);
    assert_non_null(strstr(err, "plainfile"));
    clattn_binary_cache_key("src", 3, "", IDENTITY, "1.0", key);
    assert_int_equal(clattn_binary_cache_load(dir, key, &bin, &len, err, sizeof err), CLATTN_SUCCESS);
    assert_null(bin);
    assert_int_equal(clattn_binary_cache_store(dir, key, "b", 1, err, sizeof err), CLATTN_IO_ERROR);
    clattn_tune_cache_release(c);
}

/* What the library does with the environment (options.c, the one function that reads it):
   resolve, and touch nothing when disabled. */
static clattn_status save_if_enabled(clattn_tune_cache *c, const clattn_context_options *o, char *err,
                                     size_t err_len)
{
    clattn_settings s;
    clattn_status st = clattn_settings_resolve(NULL, o, &s);
    if (st == CLATTN_SUCCESS && s.cache)
        st = clattn_tune_cache_save(c, s.cache_dir, err, err_len);
    clattn_settings_free(&s);
    return st;
}

static void test_cache_off(void **state)
{
    fixture *f = *state;
    clattn_tune_cache *c = sample_cache(IDENTITY);
    char err[512], *saved_cache = getenv("CLATTN_CACHE"), *saved_dir = getenv("CLATTN_CACHE_DIR");
    saved_cache = saved_cache ? strdup(saved_cache) : NULL;
    saved_dir = saved_dir ? strdup(saved_dir) : NULL;
    setenv("CLATTN_CACHE_DIR", f->dir, 1);
    setenv("CLATTN_CACHE", "off", 1);
    assert_int_equal(save_if_enabled(c, NULL, err, sizeof err), CLATTN_SUCCESS);
    assert_int_equal(access(f->dir, F_OK), -1);    /* nothing was written, not even the folder */
    /* an option beats the variable, and ignore_environment reads none */
    clattn_context_options o = {.cache = CLATTN_SWITCH_ON};
    clattn_settings s;
    assert_int_equal(clattn_settings_resolve(NULL, &o, &s), CLATTN_SUCCESS);
    assert_true(s.cache);
    assert_string_equal(s.cache_dir, f->dir);
    clattn_settings_free(&s);
    memset(&o, 0, sizeof o);
    o.ignore_environment = 1;
    setenv("CLATTN_CACHE", "on", 1);
    setenv("CLATTN_TUNING", "off", 1);
    setenv("CLATTN_AUTOTUNE", "1", 1);
    setenv("CLATTN_KERNEL_DIR", "/nonexistent", 1);
    assert_int_equal(clattn_settings_resolve(NULL, &o, &s), CLATTN_SUCCESS);
    assert_false(s.cache);                         /* no folder named, none read */
    assert_true(s.tuning);
    assert_false(s.autotune);
    assert_null(s.kernel_dir);
    assert_null(s.cache_problem);
    clattn_settings_free(&s);
    assert_int_equal(clattn_settings_resolve(NULL, NULL, &s), CLATTN_SUCCESS);
    assert_false(s.tuning);
    assert_true(s.autotune);
    assert_string_equal(s.kernel_dir, "/nonexistent");
    clattn_settings_free(&s);
    unsetenv("CLATTN_TUNING");
    unsetenv("CLATTN_AUTOTUNE");
    unsetenv("CLATTN_KERNEL_DIR");
    assert_int_equal(save_if_enabled(c, NULL, err, sizeof err), CLATTN_SUCCESS);
    assert_int_equal(access(f->dir, F_OK), 0);
    if (saved_cache) setenv("CLATTN_CACHE", saved_cache, 1); else unsetenv("CLATTN_CACHE");
    if (saved_dir) setenv("CLATTN_CACHE_DIR", saved_dir, 1); else unsetenv("CLATTN_CACHE_DIR");
    free(saved_cache);
    free(saved_dir);
    clattn_tune_cache_release(c);
}

/* ---- binary cache ------------------------------------------------------------------------------- */

static void test_binary_key(void **state)
{
    char base[CLATTN_SHA256_HEX], k[CLATTN_SHA256_HEX], name[CLATTN_BINARY_FILE_NAME_LEN];
    (void)state;
    clattn_binary_cache_key("src", 3, "-DA=1", "dev", "1.0", base);
    assert_int_equal(strlen(base), 64);
    clattn_binary_cache_key("src", 3, "-DA=1", "dev", "1.0", k);
    assert_string_equal(k, base);
    clattn_binary_cache_key("src!", 4, "-DA=1", "dev", "1.0", k);
    assert_string_not_equal(k, base);
    clattn_binary_cache_key("src", 3, "-DA=2", "dev", "1.0", k);
    assert_string_not_equal(k, base);
    clattn_binary_cache_key("src", 3, "-DA=1", "dev2", "1.0", k);
    assert_string_not_equal(k, base);
    clattn_binary_cache_key("src", 3, "-DA=1", "dev", "1.1", k);
    assert_string_not_equal(k, base);
    /* fields are length-prefixed: moving a byte from one field to the next changes the key */
    clattn_binary_cache_key("src-", 4, "DA=1", "dev", "1.0", k);
    assert_string_not_equal(k, base);
    clattn_binary_cache_key(NULL, 0, NULL, NULL, NULL, k);
    assert_int_equal(strlen(k), 64);
    clattn_binary_cache_file_name(base, name);
    assert_int_equal(strlen(name), CLATTN_BINARY_FILE_NAME_LEN - 1);
    assert_int_equal(strncmp(name, "bin-", 4), 0);
    assert_string_equal(name + 68, ".bin");
}

static void test_binary_round_trip(void **state)
{
    fixture *f = *state;
    char k1[CLATTN_SHA256_HEX], k2[CLATTN_SHA256_HEX], err[512] = "";
    unsigned char payload[5000], *data = NULL;
    size_t len = 0;
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (unsigned char)(i * 31);
    clattn_binary_cache_key("kernel source", 13, "-DX=1", IDENTITY, "driver 1.0", k1);
    clattn_binary_cache_key("kernel source", 13, "-DX=1", IDENTITY, "driver 2.0", k2);
    /* nothing yet: a miss, not an error */
    assert_int_equal(clattn_binary_cache_load(f->dir, k1, &data, &len, err, sizeof err), CLATTN_SUCCESS);
    assert_null(data);
    assert_int_equal(clattn_binary_cache_store(f->dir, k1, payload, sizeof payload, err, sizeof err),
                     CLATTN_SUCCESS);
    assert_int_equal(clattn_binary_cache_load(f->dir, k1, &data, &len, err, sizeof err), CLATTN_SUCCESS);
    assert_non_null(data);
    assert_int_equal(len, sizeof payload);
    assert_memory_equal(data, payload, len);
    free(data);
    /* the same program under another driver version is never used */
    assert_int_equal(clattn_binary_cache_load(f->dir, k2, &data, &len, err, sizeof err), CLATTN_SUCCESS);
    assert_null(data);
    /* bad arguments */
    assert_int_equal(clattn_binary_cache_load(f->dir, "xyz", &data, &len, err, sizeof err),
                     CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_binary_cache_store(f->dir, k1, payload, 0, err, sizeof err),
                     CLATTN_INVALID_ARGUMENT);
    assert_int_equal(count_names(f->dir, ".tmp"), 0);
    /* two binaries, one shared lock file: no lock file per binary */
    assert_int_equal(clattn_binary_cache_store(f->dir, k2, payload, 10, err, sizeof err),
                     CLATTN_SUCCESS);
    assert_int_equal(count_names(f->dir, ".bin"), 2);
    assert_int_equal(count_names(f->dir, ".lock"), 1);
    assert_int_equal(count_names(f->dir, CLATTN_CACHE_STORE_LOCK), 1);

    /* another process holding the stores' lock (stopped, say) costs a store no wait */
    char lock_path[512];
    clattn_cache_lock held;
    struct timespec t0, t1;
    snprintf(lock_path, sizeof lock_path, "%s/%s", f->dir, CLATTN_CACHE_STORE_LOCK);
    assert_int_equal(clattn_cache_lock_acquire(lock_path, 0, &held, err, sizeof err), CLATTN_SUCCESS);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    payload[0] ^= 0xff;
    assert_int_equal(clattn_binary_cache_store(f->dir, k1, payload, sizeof payload, err, sizeof err),
                     CLATTN_SUCCESS);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    clattn_cache_lock_release(&held);
    assert_true((t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) * 1e-6 < 1000);
    assert_int_equal(clattn_binary_cache_load(f->dir, k1, &data, &len, err, sizeof err), CLATTN_SUCCESS);
    assert_non_null(data);
    assert_int_equal(len, sizeof payload);
    assert_memory_equal(data, payload, len);
    free(data);
    assert_int_equal(count_names(f->dir, ".tmp"), 0);
}

/* Writes bytes under k's name, checks the load warns and misses, then that a store repairs it. */
static void check_binary_ignored(const fixture *f, const char *what, const char *k,
                                 const void *bytes, size_t len, const void *payload,
                                 size_t payload_len)
{
    char name[CLATTN_BINARY_FILE_NAME_LEN], path[512], warn[1024] = "";
    unsigned char *data = (unsigned char *)1;
    size_t got = 7;
    clattn_binary_cache_file_name(k, name);
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    write_file(path, bytes, len);
    if (clattn_binary_cache_load(f->dir, k, &data, &got, warn, sizeof warn) != CLATTN_IO_ERROR)
        fail_msg("%s: not refused", what);
    if (!strstr(warn, "ignoring"))
        fail_msg("%s: warning '%s'", what, warn);
    assert_null(data);
    assert_int_equal(got, 0);
    assert_int_equal(clattn_binary_cache_store(f->dir, k, payload, payload_len, warn, sizeof warn),
                     CLATTN_SUCCESS);
    assert_int_equal(clattn_binary_cache_load(f->dir, k, &data, &got, warn, sizeof warn),
                     CLATTN_SUCCESS);
    assert_non_null(data);
    assert_int_equal(got, payload_len);
    free(data);
}

static void test_binary_bad_files(void **state)
{
    fixture *f = *state;
    char k1[CLATTN_SHA256_HEX], k2[CLATTN_SHA256_HEX], name[CLATTN_BINARY_FILE_NAME_LEN];
    char path[512], err[512];
    const char payload[] = "a program binary";
    char *good, *bad;
    size_t len;
    clattn_binary_cache_key("s", 1, "", IDENTITY, "1", k1);
    clattn_binary_cache_key("s", 1, "", IDENTITY, "2", k2);
    assert_int_equal(clattn_binary_cache_store(f->dir, k1, payload, sizeof payload, err, sizeof err),
                     CLATTN_SUCCESS);
    clattn_binary_cache_file_name(k1, name);
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    good = read_file(path, &len);
    assert_int_equal(len, CLATTN_BINARY_HEADER_BYTES + sizeof payload);
    bad = malloc(len + 1);
    assert_non_null(bad);

    check_binary_ignored(f, "empty", k1, "", 0, payload, sizeof payload);
    check_binary_ignored(f, "header only", k1, good, CLATTN_BINARY_HEADER_BYTES, payload, sizeof payload);
    check_binary_ignored(f, "short header", k1, good, 40, payload, sizeof payload);
    check_binary_ignored(f, "truncated payload", k1, good, len - 1, payload, sizeof payload);
    memcpy(bad, good, len);
    bad[len] = 'x';
    check_binary_ignored(f, "trailing byte", k1, bad, len + 1, payload, sizeof payload);
    memcpy(bad, good, len);
    bad[len - 3] ^= 1;
    check_binary_ignored(f, "flipped payload bit", k1, bad, len, payload, sizeof payload);
    memcpy(bad, good, len);
    bad[8] = 2;
    check_binary_ignored(f, "format 2", k1, bad, len, payload, sizeof payload);
    memcpy(bad, good, len);
    bad[0] = 'X';
    check_binary_ignored(f, "magic", k1, bad, len, payload, sizeof payload);
    {
        static const char garbage[] = "\x7f" "ELF and then nothing like a header at all, long enough "
                                      "to pass for one by its size alone: 0123456789";
        assert_true(sizeof garbage > CLATTN_BINARY_HEADER_BYTES);
        check_binary_ignored(f, "garbage", k1, garbage, sizeof garbage, payload, sizeof payload);
    }
    /* k1's good file copied to k2's name (e.g. by hand, after a driver update) */
    check_binary_ignored(f, "under another key", k2, good, len, payload, sizeof payload);
    free(good);
    free(bad);
}

/* The load guard (binary_cache.h): a mark holds the loader's pid; a live loader's mark is "busy";
   a dead loader's, or anything else planted at the mark's name, evicts the entry (a link's target
   untouched); unmarking leaves a mark that is no longer the caller's. */
static void test_binary_load_mark(void **state)
{
    fixture *f = *state;
    char key[CLATTN_SHA256_HEX], name[CLATTN_BINARY_FILE_NAME_LEN], bin[512], path[600];
    char precious[512], err[512], *data;
    size_t len;
    struct stat sb;
    clattn_binary_mark mark, other;
    clattn_binary_cache_key("src", 3, "-DX=1", IDENTITY, "1.0", key);
    clattn_binary_cache_file_name(key, name);
    snprintf(bin, sizeof bin, "%s/%s", f->dir, name);
    snprintf(path, sizeof path, "%s" CLATTN_BINARY_MARK_SUFFIX, bin);

    /* no directory yet (loads never create it): nothing to mark with */
    assert_int_equal(clattn_binary_cache_mark(f->dir, key, &mark, err, sizeof err),
                     CLATTN_BINARY_GUARD_UNMARKED);
    assert_int_equal(mark.fd, -1);
    clattn_binary_cache_unmark(&mark);

    assert_int_equal(clattn_binary_cache_store(f->dir, key, "payload", 7, err, sizeof err),
                     CLATTN_SUCCESS);
    assert_int_equal(clattn_binary_cache_mark(f->dir, key, &mark, err, sizeof err),
                     CLATTN_BINARY_GUARD_MARKED);
    data = read_file(path, &len);
    assert_int_equal(strtol(data, NULL, 10), (long)getpid());
    free(data);
    /* a second loader meanwhile (here: this live process) is told to keep off */
    assert_int_equal(clattn_binary_cache_mark(f->dir, key, &other, err, sizeof err),
                     CLATTN_BINARY_GUARD_BUSY);
    clattn_binary_cache_unmark(&other);
    assert_int_equal(stat(path, &sb), 0);
    clattn_binary_cache_unmark(&mark);
    assert_int_equal(stat(path, &sb), -1);
    assert_int_equal(stat(bin, &sb), 0);

    /* a mark whose loader died: the entry goes */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    wait_child(pid);
    char text[32];
    int n = snprintf(text, sizeof text, "%ld\n", (long)pid);
    write_file(path, text, (size_t)n);
    assert_int_equal(clattn_binary_cache_mark(f->dir, key, &mark, err, sizeof err),
                     CLATTN_BINARY_GUARD_EVICTED);
    assert_non_null(strstr(err, "removed the cached binary"));
    assert_int_equal(stat(bin, &sb), -1);
    assert_int_equal(stat(path, &sb), -1);

    /* a link planted at the mark's name: removed with the entry, its target untouched */
    snprintf(precious, sizeof precious, "%s/precious", f->root);
    write_file(precious, "keep", 4);
    assert_int_equal(clattn_binary_cache_store(f->dir, key, "payload", 7, err, sizeof err),
                     CLATTN_SUCCESS);
    assert_int_equal(symlink(precious, path), 0);
    assert_int_equal(clattn_binary_cache_mark(f->dir, key, &mark, err, sizeof err),
                     CLATTN_BINARY_GUARD_EVICTED);
    assert_int_equal(lstat(path, &sb), -1);
    data = read_file(precious, &len);
    assert_int_equal(len, 4);
    free(data);

    /* an evicting process replaced our mark with its own: unmarking leaves that one */
    assert_int_equal(clattn_binary_cache_mark(f->dir, key, &mark, err, sizeof err),
                     CLATTN_BINARY_GUARD_MARKED);
    assert_int_equal(unlink(path), 0);
    write_file(path, text, (size_t)n);
    clattn_binary_cache_unmark(&mark);
    assert_int_equal(stat(path, &sb), 0);
}

static void test_binary_offline(void **state)
{
    fixture *f = *state;
    char a[256], b[256], path[512], err[1024];
    unsigned char *data = (unsigned char *)1;
    size_t len = 9;
    assert_int_equal(clattn_binary_offline_name("cl/flash.cl", " -DBLOCK_N=64  -DUSE_F16 ", a,
                                                sizeof a), 0);
    assert_int_equal(clattn_binary_offline_name("flash.cl", "-DBLOCK_N=64 -DUSE_F16", b, sizeof b), 0);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), strlen("flash-") + 16 + strlen(".bin"));
    assert_int_equal(strncmp(a, "flash-", 6), 0);
    assert_string_equal(a + 22, ".bin");
    assert_int_equal(strspn(a + 6, "0123456789abcdef"), 16);
    assert_int_equal(clattn_binary_offline_name("flash.cl", "-DBLOCK_N=32 -DUSE_F16", b, sizeof b), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(clattn_binary_offline_name("flash.cl", "", a, 10), -1);
    assert_int_equal(clattn_binary_offline_name(".cl", "", a, sizeof a), -1);
    /* missing: unsupported, and the message names the file wanted */
    assert_int_equal(clattn_binary_offline_load(f->root, "cl/flash.cl", "-DUSE_F16", &data, &len,
                                                err, sizeof err), CLATTN_UNSUPPORTED);
    assert_null(data);
    assert_int_equal(clattn_binary_offline_name("flash.cl", "-DUSE_F16", b, sizeof b), 0);
    assert_non_null(strstr(err, b));
    assert_non_null(strstr(err, "-DUSE_F16"));
    snprintf(path, sizeof path, "%s/%s", f->root, b);
    write_file(path, "aocx", 4);
    assert_int_equal(clattn_binary_offline_load(f->root, "flash.cl", " -DUSE_F16", &data, &len, err,
                                                sizeof err), CLATTN_SUCCESS);
    assert_int_equal(len, 4);
    assert_memory_equal(data, "aocx", 4);
    free(data);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_sha256_vectors),
        T(test_sha256_incremental),
        T(test_dir_resolution),
        T(test_identity),
        T(test_mkdirs_and_read),
        T(test_write_atomic),
        T(test_lock_timeout),
        T(test_update),
        T(test_planted_links),
        T(test_shape_classes),
        T(test_lookup_fallback),
        T(test_put_validation),
        T(test_round_trip),
        T(test_tune_variants),
        T(test_tune_bad_files),
        T(test_tune_stale_sources),
        T(test_tune_save_merges),
        T(test_tune_processes_save_at_once),
        T(test_tune_killed_before_rename),
        T(test_tune_killed_anywhere),
        T(test_read_only_dir),
        T(test_dir_is_a_file),
        T(test_cache_off),
        T(test_binary_key),
        T(test_binary_round_trip),
        T(test_binary_bad_files),
        T(test_binary_offline),
        T(test_binary_load_mark),
    };
#undef T
    return cmocka_run_group_tests_name("cache", tests, NULL, NULL);
}
