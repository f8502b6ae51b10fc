/* The caches end to end, through real contexts on the device (host/caches.c, and the tuner's saves):
 * the lookup fallback order, a tuned entry actually used, two processes tuning at once, broken
 * tuning files and broken binaries (ignored with a warning, then rewritten), a read-only cache
 * directory, a binary from another driver version, CLATTN_CACHE=off, a second process that compiles
 * nothing, the offline binaries of the FPGA flow, a binary whose load never finished (evicted),
 * and CLATTN_KERNEL_DIR holding things that are not regular files.
 *
 * Work that must start in a fresh process (nothing compiled yet, or another user) runs in a child
 * that re-executes this binary ("--child MODE DIR"): a process that has started OpenCL must not fork
 * and go on using it. Every test has its own temporary directory, removed afterwards; the problems
 * are small and run the unfused path (three programs), so that compiles stay few. */
#define _XOPEN_SOURCE 700     /* nftw */
#include "host/cache/binary_cache.h"
#include "host/cache/cache.h"
#include "testutil.h"

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
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define UNFUSED_PROGRAMS 3   /* qk_scores, softmax, pv */

static const char *self_path;   /* argv[0], for the children */

/* ---- helpers --------------------------------------------------------------------------------- */

static void small_case(tu_case *c, clattn_path path, int d)
{
    memset(c, 0, sizeof *c);
    c->desc.batch = 1;
    c->desc.heads_q = 2;
    c->desc.seq_q = 20;
    c->desc.seq_kv = 37;
    c->desc.head_dim = d;
    c->desc.path = path;
    c->seed = 7;
}

/* Runs the small problem; 1 when it succeeded and matched the reference. */
static int run_small(clattn_context *ctx, clattn_path path)
{
    tu_case c;
    tu_outcome res;
    small_case(&c, path, 16);
    tu_run_case(ctx, &c, &res);
    if (!res.ok)
        print_message("%s\n%s\n", res.msg, clattn_context_last_error(ctx));
    return res.ok;
}

/* Every context of a test is made from the fixture's options alone: the environment of whoever runs
   the suite steers nothing (options.c's own test covers the variables). */
typedef struct fixture {
    char root[256];     /* the temporary directory */
    char dir[300];      /* root/cache (created by the first save) */
    clattn_context_options opt;
} fixture;

static clattn_context *new_context(const fixture *f)
{
    clattn_context *ctx = NULL;
    clattn_status st = clattn_context_create_with_options(getenv("CLATTN_DEVICE"), &f->opt, &ctx);
    if (st != CLATTN_SUCCESS)
        fail_msg("clattn_context_create: %s", clattn_status_string(st));
    return ctx;
}

static clattn_cache_info info_of(clattn_context *ctx)
{
    clattn_cache_info info;
    assert_int_equal(clattn_context_cache_info(ctx, &info), CLATTN_SUCCESS);
    return info;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return buf;
}

/* The names of the cached binaries in dir, up to max; returns how many there are. */
static int binary_files(const char *dir, char names[][128], int max)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len > 8 && !strncmp(e->d_name, "bin-", 4) && !strcmp(e->d_name + len - 4, ".bin")) {
            if (n < max)
                snprintf(names[n], 128, "%s/%s", dir, e->d_name);
            n++;
        }
    }
    closedir(d);
    return n;
}

/* A tuning entry for the small problem's shape class (or another d), put into ctx's table. */
static void put_entry(clattn_context *ctx, const clattn_family *f, int lq, int lk, int d,
                      const int *values)
{
    clattn_attention_desc desc;
    clattn_problem p;
    clattn_params pr;
    tu_case c;
    small_case(&c, CLATTN_PATH_UNFUSED, d);
    desc = c.desc;
    desc.seq_q = lq;
    desc.seq_kv = lk;
    assert_int_equal(clattn_problem_init(&desc, &p, NULL, 0), CLATTN_SUCCESS);
    memset(&pr, 0, sizeof pr);
    for (int i = 0; i < f->n_params; i++)
        pr.v[i] = values[i];
    assert_int_equal(clattn_tuning_put(ctx, f, &p, &pr, 1.0, 2.0), CLATTN_SUCCESS);
}

static int save(clattn_context *ctx)
{
    char err[512];
    int saved = 0;
    clattn_status st = clattn_tuning_save(ctx, &saved, err, sizeof err);
    return st == CLATTN_SUCCESS && saved;
}

/* Runs this binary as "--child mode dir" in a fresh process and returns its exit status (as a
   user without root's rights to the files when unprivileged is set and we are root). */
static pid_t start_child(const char *mode, const char *dir, int unprivileged)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (unprivileged && geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(20);
        execl(self_path, self_path, "--child", mode, dir, (char *)NULL);
        _exit(21);
    }
    return pid;
}

static int wait_child(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int run_child(const char *mode, const char *dir, int unprivileged)
{
    return wait_child(start_child(mode, dir, unprivileged));
}

/* ---- fixture: a fresh cache directory per test -------------------------------------------------- */

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->root, sizeof f->root, "%s/clattn-test-cachectx-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(f->root)) {
        free(f);
        return -1;
    }
    snprintf(f->dir, sizeof f->dir, "%s/cache", f->root);
    f->opt.ignore_environment = 1;
    f->opt.cache_dir = f->dir;
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

/* ---- tests ----------------------------------------------------------------------------------- */

/* Exact entry -> nearest shape class of the same family, dtype, d, dv -> device-class defaults. */
static void test_lookup_fallback_order(void **state)
{
    fixture *f = *state;
    const clattn_family *sm = &clattn_family_softmax;
    tu_case c;
    clattn_problem p;
    clattn_params got, def;
    small_case(&c, CLATTN_PATH_UNFUSED, 16);
    assert_int_equal(clattn_problem_init(&c.desc, &p, NULL, 0), CLATTN_SUCCESS);

    clattn_context *ctx = new_context(f);
    clattn_params_defaults(sm, clattn_test_device(ctx)->cls, &def);
    clattn_test_lock(ctx);
    assert_int_equal(clattn_params_lookup(ctx, sm, &p, &got), CLATTN_SUCCESS);
    assert_memory_equal(&got, &def, sizeof got);          /* no file: the defaults */
    put_entry(ctx, sm, 1000, 1000, 16, (const int[]){4, 2});   /* Lq class large, Lk 1024 */
    put_entry(ctx, sm, 20, 37, 32, (const int[]){2, 1});       /* another d: never used */
    assert_true(save(ctx));
    clattn_test_unlock(ctx);
    clattn_context_release(ctx);

    ctx = new_context(f);                                   /* loaded from the file */
    assert_string_equal(clattn_context_last_error(ctx), "");
    clattn_test_lock(ctx);
    assert_int_equal(clattn_params_lookup(ctx, sm, &p, &got), CLATTN_SUCCESS);
    assert_int_equal(got.v[0], 4);                         /* the nearest class */
    assert_int_equal(got.v[1], 2);
    put_entry(ctx, sm, 20, 37, 16, (const int[]){8, 4});   /* the exact class */
    assert_true(save(ctx));
    clattn_test_unlock(ctx);
    clattn_context_release(ctx);

    ctx = new_context(f);
    clattn_test_lock(ctx);
    assert_int_equal(clattn_params_lookup(ctx, sm, &p, &got), CLATTN_SUCCESS);
    assert_int_equal(got.v[0], 8);                         /* exact beats nearest */
    assert_int_equal(got.v[1], 4);
    clattn_test_unlock(ctx);
    clattn_context_set_tuning(ctx, 0);                     /* --no-tuning: the defaults */
    clattn_test_lock(ctx);
    assert_int_equal(clattn_params_lookup(ctx, sm, &p, &got), CLATTN_SUCCESS);
    assert_memory_equal(&got, &def, sizeof got);
    clattn_test_unlock(ctx);
    clattn_context_set_tuning(ctx, 1);
    clattn_test_lock(ctx);
    /* an entry the family's constraints refuse (SM_WG not a power of two): the defaults */
    put_entry(ctx, sm, 20, 37, 16, (const int[]){3, 4});
    assert_int_equal(clattn_params_lookup(ctx, sm, &p, &got), CLATTN_SUCCESS);
    assert_memory_equal(&got, &def, sizeof got);
    clattn_test_unlock(ctx);
    clattn_context_release(ctx);

    f->opt.tuning = CLATTN_SWITCH_OFF;                     /* the same from the options */
    ctx = new_context(f);
    clattn_test_lock(ctx);
    assert_int_equal(clattn_params_lookup(ctx, sm, &p, &got), CLATTN_SUCCESS);
    assert_memory_equal(&got, &def, sizeof got);
    clattn_test_unlock(ctx);
    clattn_context_release(ctx);
    f->opt.tuning = CLATTN_SWITCH_DEFAULT;
}

/* A device whose local memory the defaults overflow (a GPU at a large head_dim; here PoCL told it
   has 48 KiB, as NVIDIA GPUs do): the lookup shrinks the blocks nearest the defaults, keeping the
   class's vector width rather than falling to scalar code, and the result is right. With far too
   little local memory the call is refused with CLATTN_UNSUPPORTED and a message saying why. */
static void test_small_local_memory(void **state)
{
    fixture *f = *state;
    const clattn_family *fl = &clattn_family_flash;
    const int vw = clattn_param_index(fl, "VW"), bm = clattn_param_index(fl, "BLOCK_M");
    const int bn = clattn_param_index(fl, "BLOCK_N");
    tu_case c;
    tu_outcome res;
    clattn_problem p;
    clattn_params got, def;
    char why[256];
    small_case(&c, CLATTN_PATH_FUSED, 256);
    c.desc.seq_q = 150;
    assert_int_equal(clattn_problem_init(&c.desc, &p, NULL, 0), CLATTN_SUCCESS);

    clattn_context *ctx = new_context(f);
    assert_ptr_equal(clattn_flash_family_for(clattn_test_device(ctx), &p), fl);
    clattn_context_set_tuning(ctx, 0);
    clattn_test_device(ctx)->local_mem_bytes = 48 * 1024;
    clattn_params_defaults(fl, clattn_test_device(ctx)->cls, &def);
    assert_false(fl->valid(&def, clattn_test_device(ctx), &p, why, sizeof why));
    clattn_test_lock(ctx);
    assert_int_equal(clattn_params_lookup(ctx, fl, &p, &got), CLATTN_SUCCESS);
    clattn_test_unlock(ctx);
    assert_true(fl->valid(&got, clattn_test_device(ctx), &p, why, sizeof why));
    assert_int_equal(got.v[vw], def.v[vw]);
    assert_true(got.v[bm] * got.v[bn] < def.v[bm] * def.v[bn]);
    tu_run_case(ctx, &c, &res);
    if (!res.ok)
        fail_msg("%s\n%s", res.msg, clattn_context_last_error(ctx));

    clattn_test_device(ctx)->local_mem_bytes = 1024;       /* not even one key row of d = 256 fits */
    tu_run_case(ctx, &c, &res);
    assert_int_equal(res.status, CLATTN_UNSUPPORTED);
    assert_non_null(strstr(clattn_context_last_error(ctx), "local memory"));
    clattn_context_release(ctx);
}

/* Entries with parameters other than the defaults reach the kernels' build options, and the
   results stay right. */
static void test_tuned_entry_used(void **state)
{
    fixture *f = *state;
    clattn_context *ctx = new_context(f);
    clattn_test_lock(ctx);
    put_entry(ctx, &clattn_family_qk, 20, 37, 16, (const int[]){32, 16, 8, 4, 4});
    put_entry(ctx, &clattn_family_softmax, 20, 37, 16, (const int[]){4, 2});
    put_entry(ctx, &clattn_family_pv, 20, 37, 16, (const int[]){16, 32, 8, 2, 8});
    assert_true(save(ctx));
    clattn_test_unlock(ctx);
    clattn_context_release(ctx);

    ctx = new_context(f);
    assert_true(run_small(ctx, CLATTN_PATH_UNFUSED));
    const char *want[] = {"-DTILE_M=32 -DTILE_N=16 -DTILE_K=8 -DWPT_M=4 -DWPT_N=4",
                          "-DSM_WG=4 -DSM_VEC=2",
                          "-DTILE_M=16 -DTILE_N=32 -DTILE_K=8 -DWPT_M=2 -DWPT_N=8"};
    for (int i = 0; i < 3; i++)
        if (!clattn_test_program_built(ctx, want[i]))
            fail_msg("no program was built with '%s'", want[i]);
    clattn_context_release(ctx);
}

/* Two processes tune different shapes and save at the same moment: the file keeps both. */
static void test_two_processes_tune_at_once(void **state)
{
    fixture *f = *state;
    pid_t a = start_child("tune16", f->dir, 0);
    pid_t b = start_child("tune24", f->dir, 0);
    assert_int_equal(wait_child(a), 0);
    assert_int_equal(wait_child(b), 0);
    clattn_context *ctx = new_context(f);
    clattn_cache_info info = info_of(ctx);
    int d16 = 0, d24 = 0;
    for (size_t i = 0; i < info.tuning_entries; i++) {
        char line[512];
        assert_int_equal(clattn_tuning_entry_string(ctx, i, line, sizeof line), CLATTN_SUCCESS);
        d16 |= !strncmp(line, "softmax dtype=f32 d=16 ", 23);
        d24 |= !strncmp(line, "softmax dtype=f32 d=24 ", 23);
    }
    assert_true(d16);
    assert_true(d24);
    clattn_context_release(ctx);
}

/* Broken tuning files: ignored with a warning (the context works on defaults), then rewritten. */
static void test_broken_tuning_files(void **state)
{
    fixture *f = *state;
    clattn_context *ctx = new_context(f);
    char path[CLATTN_CACHE_PATH_MAX];
    snprintf(path, sizeof path, "%s", info_of(ctx).tuning_file);
    clattn_test_lock(ctx);
    put_entry(ctx, &clattn_family_softmax, 20, 37, 16, (const int[]){4, 2});
    assert_true(save(ctx));
    clattn_test_unlock(ctx);
    clattn_context_release(ctx);
    size_t good_len;
    char *good = read_file(path, &good_len);
    assert_non_null(good);
    assert_non_null(strstr(good, "\nend\n"));

    char wrong_version[4096];
    snprintf(wrong_version, sizeof wrong_version, "clattn-tune-cache 2%s", strchr(good, '\n'));
    char corrupt[4096];
    snprintf(corrupt, sizeof corrupt, "%s", good);
    memcpy(strstr(corrupt, "SM_WG="), "SM_WG:", 6);
    static const unsigned char garbage[] = {0x7f, 'E', 'L', 'F', 0, 1, 2, 0xff, 0xfe, '\n', 0};
    struct {
        const char *what;
        const void *data;
        size_t len;
    } cases[] = {
        {"truncated", good, good_len - 5},       /* no "end" line */
        {"empty", "", 0},
        {"binary garbage", garbage, sizeof garbage},
        {"wrong version", wrong_version, strlen(wrong_version)},
        {"corrupt field", corrupt, strlen(corrupt)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(path, cases[i].data, cases[i].len);
        ctx = new_context(f);
        if (!strstr(clattn_context_last_warning(ctx), "ignoring the tuning cache"))
            fail_msg("%s: no warning, last_warning '%s'", cases[i].what,
                     clattn_context_last_warning(ctx));
        assert_string_equal(clattn_context_last_error(ctx), "");   /* a warning is no failure */
        assert_int_equal(info_of(ctx).tuning_entries, 0);
        assert_true(run_small(ctx, CLATTN_PATH_UNFUSED));     /* on the defaults */
        clattn_test_lock(ctx);
        put_entry(ctx, &clattn_family_softmax, 20, 37, 16, (const int[]){4, 2});
        assert_true(save(ctx));                                /* replaces the broken file */
        clattn_test_unlock(ctx);
        clattn_context_release(ctx);
        ctx = new_context(f);
        assert_string_equal(clattn_context_last_warning(ctx), "");
        assert_int_equal(info_of(ctx).tuning_entries, 1);
        clattn_context_release(ctx);
    }
    free(good);
    (void)f;
}

/* Fills the binary cache with the small problem's programs; returns how many files it holds. */
static int populate_binaries(fixture *f)
{
    clattn_context *ctx = new_context(f);
    assert_true(run_small(ctx, CLATTN_PATH_UNFUSED));
    assert_int_equal(info_of(ctx).programs_compiled, UNFUSED_PROGRAMS);
    clattn_context_release(ctx);
    return binary_files(f->dir, NULL, 0);
}

/* Broken binaries: each is ignored with a warning, the program compiled from source, the file
   replaced; the next context loads every program. */
static void test_broken_binaries(void **state)
{
    fixture *f = *state;
    int n = populate_binaries(f);
    assert_int_equal(n, UNFUSED_PROGRAMS);
    enum { TRUNCATED, FLIPPED, EMPTY, GARBAGE, OTHER_VERSION, N_CASES };
    const char *what[] = {"truncated", "a flipped byte", "empty", "garbage", "another version"};
    for (int k = 0; k < N_CASES; k++) {
        char names[8][128];
        binary_files(f->dir, names, 8);
        for (int i = 0; i < n; i++) {
            size_t len;
            char *data = read_file(names[i], &len);
            assert_non_null(data);
            switch (k) {
            case TRUNCATED: len /= 2; break;
            case FLIPPED: data[len - 1] ^= 0x40; break;
            case EMPTY: len = 0; break;
            case GARBAGE: memset(data, 0xa5, len > 300 ? 300 : len); break;
            case OTHER_VERSION: data[8] = 2; break;
            }
            write_file(names[i], data, len);
            free(data);
        }
        clattn_context *ctx = new_context(f);
        assert_true(run_small(ctx, CLATTN_PATH_UNFUSED));
        clattn_cache_info info = info_of(ctx);
        if (info.programs_compiled != UNFUSED_PROGRAMS || info.programs_loaded != 0)
            fail_msg("%s: %lu compiled, %lu loaded", what[k], info.programs_compiled,
                     info.programs_loaded);
        if (!strstr(clattn_context_last_warning(ctx), "ignor"))
            fail_msg("%s: no warning, last_warning '%s'", what[k], clattn_context_last_warning(ctx));
        assert_string_equal(clattn_context_last_error(ctx), "");
        clattn_context_release(ctx);
        ctx = new_context(f);                                /* the files were rewritten */
        assert_true(run_small(ctx, CLATTN_PATH_UNFUSED));
        info = info_of(ctx);
        assert_int_equal(info.programs_compiled, 0);
        assert_int_equal(info.programs_loaded, UNFUSED_PROGRAMS);
        clattn_context_release(ctx);
    }
}

/* A read-only cache directory: tuning entries and binaries are read, nothing is written, and no
   call fails for it. The check runs in a child without root's rights (root writes through 0555). */
static void test_read_only_dir(void **state)
{
    fixture *f = *state;
    clattn_context *ctx = new_context(f);
    clattn_test_lock(ctx);
    put_entry(ctx, &clattn_family_softmax, 20, 37, 16, (const int[]){4, 2});
    assert_true(save(ctx));
    clattn_test_unlock(ctx);
    clattn_context_release(ctx);
    int n = populate_binaries(f);

    char listing_before[4096] = "", listing_after[4096] = "", cmd[600];
    snprintf(cmd, sizeof cmd, "ls -l --time-style=full-iso %s", f->dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t got = fread(listing_before, 1, sizeof listing_before - 1, p);
    listing_before[got] = '\0';
    pclose(p);

    assert_int_equal(chmod(f->root, 0755), 0);
    assert_int_equal(chmod(f->dir, 0555), 0);
    int rc = run_child("readonly", f->dir, 1);
    if (rc == 20)
        skip();                  /* root without the right to drop it */
    if (rc)
        fail_msg("read-only child failed at step %d", rc);
    p = popen(cmd, "r");
    assert_non_null(p);
    got = fread(listing_after, 1, sizeof listing_after - 1, p);
    listing_after[got] = '\0';
    pclose(p);
    assert_string_equal(listing_before, listing_after);
    assert_int_equal(binary_files(f->dir, NULL, 0), n);
}

/* A binary stored by another driver version is never used: its key differs. */
static void test_binary_of_other_driver(void **state)
{
    fixture *f = *state;
    int n = populate_binaries(f);
    clattn_context *ctx = new_context(f);
    snprintf(clattn_test_device(ctx)->driver_version, sizeof clattn_test_device(ctx)->driver_version, "99.9-other-driver");
    assert_true(run_small(ctx, CLATTN_PATH_UNFUSED));
    clattn_cache_info info = info_of(ctx);
    assert_int_equal(info.programs_loaded, 0);
    assert_int_equal(info.programs_compiled, UNFUSED_PROGRAMS);
    clattn_context_release(ctx);
    assert_int_equal(binary_files(f->dir, NULL, 0), 2 * n);   /* both drivers' binaries kept */
}

/* CLATTN_CACHE=off: nothing is read or written, not even the directory; tuning still works in
   the process. */
static void test_cache_off(void **state)
{
    fixture *f = *state;
    struct stat sb;
    f->opt.cache = CLATTN_SWITCH_OFF;
    clattn_context *ctx = new_context(f);
    clattn_cache_info info = info_of(ctx);
    assert_int_equal(info.enabled, 0);
    assert_true(run_small(ctx, CLATTN_PATH_UNFUSED));
    assert_int_equal(info_of(ctx).programs_compiled, UNFUSED_PROGRAMS);
    tu_case c;
    small_case(&c, CLATTN_PATH_UNFUSED, 16);
    clattn_tune_options opt = {.budget_s = 60, .max_candidates = 1, .families = "softmax"};
    clattn_tune_report rep;
    assert_int_equal(clattn_tune(ctx, &c.desc, &opt, &rep), CLATTN_SUCCESS);
    assert_int_equal(rep.saved, 0);
    assert_int_equal(info_of(ctx).tuning_entries, 1);         /* kept in the context */
    clattn_context_release(ctx);
    assert_int_equal(stat(f->dir, &sb), -1);
    assert_int_equal(errno, ENOENT);
}

/* A second process compiles nothing: every program of both paths comes from the binary cache. */
static void test_second_process_compiles_nothing(void **state)
{
    fixture *f = *state;
    assert_int_equal(run_child("cold", f->dir, 0), 0);
    assert_int_equal(run_child("warm", f->dir, 0), 0);
}

/* The FPGA flow: export the programs a shape needs, then a device without a compiler finds them in
   CLATTN_BINARY_DIR; a missing one is CLATTN_UNSUPPORTED naming the file. */
static void test_offline_binaries(void **state)
{
    fixture *f = *state;
    char out_dir[400], empty_dir[400], manifest[450];
    snprintf(out_dir, sizeof out_dir, "%s/offline", f->root);
    snprintf(empty_dir, sizeof empty_dir, "%s/none", f->root);
    snprintf(manifest, sizeof manifest, "%s/clattn-binaries.txt", out_dir);
    assert_int_equal(mkdir(empty_dir, 0700), 0);

    tu_case c;
    small_case(&c, CLATTN_PATH_UNFUSED, 16);
    clattn_context *ctx = new_context(f);
    assert_int_equal(clattn_export_binaries(ctx, &c.desc, out_dir), CLATTN_SUCCESS);
    clattn_context_release(ctx);
    char *text = read_file(manifest, NULL);
    assert_non_null(text);
    int lines = 0;
    for (char *p = text; (p = strstr(p, ".bin\t")); p++)
        lines++;
    assert_int_equal(lines, UNFUSED_PROGRAMS);
    assert_non_null(strstr(text, "\tsoftmax.cl\t"));
    free(text);
    char src[450];
    snprintf(src, sizeof src, "%s/qk_scores.cl", out_dir);
    assert_int_equal(access(src, R_OK), 0);

    f->opt.cache = CLATTN_SWITCH_OFF;        /* only the offline binaries can serve */
    for (int round = 0; round < 3; round++) {
        f->opt.binary_dir = round == 0 ? NULL : round == 1 ? empty_dir : out_dir;
        ctx = new_context(f);
        clattn_test_device(ctx)->compiler_available = 0;    /* as an FPGA reports it */
        tu_outcome res;
        clattn_status st = tu_run_case(ctx, &c, &res);
        if (round < 2) {
            assert_int_equal(st, CLATTN_UNSUPPORTED);
            const char *err = clattn_context_last_error(ctx);
            if (!strstr(err, ".bin") || (round == 0 && !strstr(err, "CLATTN_BINARY_DIR")) ||
                (round == 1 && !strstr(err, empty_dir)))
                fail_msg("round %d: the error does not name the file wanted: %s", round, err);
        } else {
            if (!res.ok)
                fail_msg("%s\n%s", res.msg, clattn_context_last_error(ctx));
            clattn_cache_info info = info_of(ctx);
            assert_int_equal(info.programs_compiled, 0);
            assert_int_equal(info.programs_loaded, UNFUSED_PROGRAMS);
        }
        clattn_context_release(ctx);
    }
    f->opt.binary_dir = NULL;
    f->opt.cache = CLATTN_SWITCH_DEFAULT;
}

/* Plants the load mark a process leaves when it dies with the binary in the driver's hands: a
   child creates "<bin>.loading" with its pid, as a loader does, and exits without clearing it.
   (The child makes no OpenCL call: forking is safe.) */
static void plant_crashed_mark(const char *bin)
{
    char mark[200];
    snprintf(mark, sizeof mark, "%s.loading", bin);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(mark, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd < 0 || dprintf(fd, "%ld\n", (long)getpid()) < 0)
            _exit(1);
        _exit(0);                /* "crashes": the mark stays */
    }
    assert_int_equal(wait_child(pid), 0);
}

/* A binary whose load never finished (its loader died: a driver that crashes on it) is evicted by
   the next context, which compiles that program, stores a fresh binary and still computes the
   right result; the context after it loads everything again. */
static void test_crashed_load_evicted(void **state)
{
    fixture *f = *state;
    char names[8][128], mark[200];
    struct stat sb;
    assert_int_equal(populate_binaries(f), UNFUSED_PROGRAMS);
    binary_files(f->dir, names, 8);
    plant_crashed_mark(names[0]);
    snprintf(mark, sizeof mark, "%s.loading", names[0]);
    assert_int_equal(stat(mark, &sb), 0);

    clattn_context *ctx = new_context(f);
    assert_true(run_small(ctx, CLATTN_PATH_UNFUSED));
    clattn_cache_info info = info_of(ctx);
    if (info.programs_compiled != 1 || info.programs_loaded != UNFUSED_PROGRAMS - 1)
        fail_msg("%lu compiled, %lu loaded: the marked binary was not evicted",
                 info.programs_compiled, info.programs_loaded);
    if (!strstr(clattn_context_last_warning(ctx), "removed the cached binary"))
        fail_msg("no warning, last_warning '%s'", clattn_context_last_warning(ctx));
    assert_string_equal(clattn_context_last_error(ctx), "");
    clattn_context_release(ctx);
    assert_int_equal(stat(mark, &sb), -1);                     /* the mark went with it */
    assert_int_equal(binary_files(f->dir, NULL, 0), UNFUSED_PROGRAMS);   /* stored afresh */

    ctx = new_context(f);
    assert_true(run_small(ctx, CLATTN_PATH_UNFUSED));
    info = info_of(ctx);
    assert_int_equal(info.programs_compiled, 0);
    assert_int_equal(info.programs_loaded, UNFUSED_PROGRAMS);
    clattn_context_release(ctx);
    assert_int_equal(stat(mark, &sb), -1);                     /* loads clear their marks */
}

/* A mark held by a live process is a load in progress, not a crash: that program is compiled
   (rather than handed to the driver behind a loader that may yet crash on it), and neither the
   binary nor the mark is touched. The same mark left CLATTN_BINARY_MARK_STALE_S is a dead
   loader's, whatever pid it names, and is evicted. */
static void test_live_load_mark_kept(void **state)
{
    fixture *f = *state;
    char names[8][128], mark[200];
    struct stat sb;
    assert_int_equal(populate_binaries(f), UNFUSED_PROGRAMS);
    binary_files(f->dir, names, 8);
    snprintf(mark, sizeof mark, "%s.loading", names[0]);
    char text[32];
    int n = snprintf(text, sizeof text, "%ld\n", (long)getpid());      /* alive: this process */
    write_file(mark, text, (size_t)n);

    clattn_context *ctx = new_context(f);
    assert_true(run_small(ctx, CLATTN_PATH_UNFUSED));
    clattn_cache_info info = info_of(ctx);
    assert_int_equal(info.programs_compiled, 1);
    assert_int_equal(info.programs_loaded, UNFUSED_PROGRAMS - 1);
    assert_null(strstr(clattn_context_last_warning(ctx), "removed"));
    clattn_context_release(ctx);
    assert_int_equal(stat(mark, &sb), 0);
    assert_int_equal(stat(names[0], &sb), 0);

    struct timeval old[2];
    gettimeofday(&old[0], NULL);
    old[0].tv_sec -= CLATTN_BINARY_MARK_STALE_S + 10;
    old[1] = old[0];
    assert_int_equal(utimes(mark, old), 0);
    ctx = new_context(f);
    assert_true(run_small(ctx, CLATTN_PATH_UNFUSED));
    assert_int_equal(info_of(ctx).programs_compiled, 1);
    assert_non_null(strstr(clattn_context_last_warning(ctx), "removed the cached binary"));
    clattn_context_release(ctx);
    assert_int_equal(stat(mark, &sb), -1);
}

static void on_watchdog(int sig)
{
    static const char msg[] = "test_kernel_dir_not_regular: a call hung on a kernel source\n";
    ssize_t put = write(2, msg, sizeof msg - 1);
    (void)sig, (void)put;
    _exit(1);
}

/* CLATTN_KERNEL_DIR with something other than a regular file where a kernel source should be: a
   FIFO (it hung the call, holding the context's lock), a directory (an 8 EiB allocation), a link
   to /dev/zero, a file over the size cap. The context is still created (the sources hash falls
   back to the embedded text) and the call fails at once with CLATTN_IO_ERROR naming the file;
   a watchdog ends the process, with a message, should a call hang instead. */
static void test_kernel_dir_not_regular(void **state)
{
    fixture *f = *state;
    char kdir[400], path[500];
    snprintf(kdir, sizeof kdir, "%s/kernels", f->root);
    assert_int_equal(mkdir(kdir, 0700), 0);
    for (size_t i = 0; i < clattn_kernel_source_count; i++) {
        snprintf(path, sizeof path, "%s/%s", kdir, clattn_kernel_sources[i].name);
        write_file(path, clattn_kernel_sources[i].text, clattn_kernel_sources[i].length);
    }
    f->opt.kernel_dir = kdir;
    /* every program is its file after common.h.cl: the first read of every call */
    snprintf(path, sizeof path, "%s/common.h.cl", kdir);
    const char *what[] = {"a FIFO", "a directory", "a link to /dev/zero", "a file over the cap"};
    void (*old_handler)(int) = signal(SIGALRM, on_watchdog);
    for (int k = 0; k < 4; k++) {
        if (remove(path) != 0)
            assert_int_equal(errno, ENOENT);
        switch (k) {
        case 0: assert_int_equal(mkfifo(path, 0600), 0); break;
        case 1: assert_int_equal(mkdir(path, 0700), 0); break;
        case 2: assert_int_equal(symlink("/dev/zero", path), 0); break;
        case 3: {
            int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);    /* sparse: no disk */
            assert_true(fd >= 0);
            assert_int_equal(ftruncate(fd, (off_t)CLATTN_KERNEL_SOURCE_MAX_BYTES + 1), 0);
            assert_int_equal(close(fd), 0);
            break;
        }
        }
        alarm(60);
        clattn_context *ctx = new_context(f);
        tu_case c;
        tu_outcome res;
        small_case(&c, CLATTN_PATH_UNFUSED, 16);
        clattn_status st = tu_run_case(ctx, &c, &res);
        alarm(0);
        const char *err = clattn_context_last_error(ctx);
        if (st != CLATTN_IO_ERROR || !strstr(err, "common.h.cl"))
            fail_msg("%s: %s, '%s'", what[k], clattn_status_string(st), err);
        clattn_context_release(ctx);
    }
    signal(SIGALRM, old_handler);
    /* the file itself again: the folder serves */
    assert_int_equal(remove(path), 0);
    for (size_t i = 0; i < clattn_kernel_source_count; i++)
        if (!strcmp(clattn_kernel_sources[i].name, "common.h.cl"))
            write_file(path, clattn_kernel_sources[i].text, clattn_kernel_sources[i].length);
    clattn_context *ctx = new_context(f);
    assert_true(run_small(ctx, CLATTN_PATH_UNFUSED));
    clattn_context_release(ctx);
    f->opt.kernel_dir = NULL;
}

/* ---- children (fresh processes) -------------------------------------------------------------- */

/* Exit codes name the step that failed. */
static int child_main(const char *mode, const char *dir)
{
    clattn_context *ctx = NULL;
    char pocl_dir[] = "/tmp/clattn-test-pocl-XXXXXX";
    clattn_context_options opt = {.ignore_environment = 1, .cache_dir = dir};
    /* a user without a home of its own still needs somewhere for the driver's own kernel cache */
    if (geteuid() != 0 && getuid() == 65534 && mkdtemp(pocl_dir))
        setenv("POCL_CACHE_DIR", pocl_dir, 1);
    if (clattn_context_create_with_options(getenv("CLATTN_DEVICE"), &opt, &ctx) != CLATTN_SUCCESS)
        return 2;
    int rc = 0;
    clattn_cache_info info;
    if (!strcmp(mode, "tune16") || !strcmp(mode, "tune24")) {
        tu_case c;
        clattn_tune_report rep;
        clattn_tune_options opt = {.budget_s = 120, .max_candidates = 2, .families = "softmax"};
        small_case(&c, CLATTN_PATH_UNFUSED, mode[4] == '1' ? 16 : 24);
        if (clattn_tune(ctx, &c.desc, &opt, &rep) != CLATTN_SUCCESS)
            rc = 3;
        else if (!rep.saved || rep.n_families != 1)
            rc = 4;
    } else if (!strcmp(mode, "cold") || !strcmp(mode, "warm")) {
        int warm = mode[0] == 'w';
        if (!run_small(ctx, CLATTN_PATH_UNFUSED) || !run_small(ctx, CLATTN_PATH_FUSED))
            rc = 3;
        clattn_context_cache_info(ctx, &info);
        if (!rc && warm && (info.programs_compiled != 0 || info.programs_loaded == 0))
            rc = 4;
        if (!rc && !warm && info.programs_compiled == 0)
            rc = 5;
        if (rc)
            fprintf(stderr, "%s: %lu compiled, %lu loaded: %s\n", mode, info.programs_compiled,
                    info.programs_loaded, clattn_context_last_error(ctx));
    } else if (!strcmp(mode, "readonly")) {
        char err[512];
        int saved = 1;
        clattn_context_cache_info(ctx, &info);
        if (info.tuning_entries != 1 || clattn_context_last_error(ctx)[0] ||
            clattn_context_last_warning(ctx)[0])
            rc = 3;
        else if (!run_small(ctx, CLATTN_PATH_UNFUSED))
            rc = 4;
        else if (clattn_context_cache_info(ctx, &info), info.programs_compiled != 0 ||
                 info.programs_loaded != UNFUSED_PROGRAMS)
            rc = 5;
        else if (clattn_tuning_save(ctx, &saved, err, sizeof err) != CLATTN_IO_ERROR || saved)
            rc = 6;
        else {
            tu_case c;
            clattn_tune_report rep;
            clattn_tune_options opt = {.budget_s = 60, .max_candidates = 1, .families = "softmax"};
            small_case(&c, CLATTN_PATH_UNFUSED, 16);
            if (clattn_tune(ctx, &c.desc, &opt, &rep) != CLATTN_SUCCESS || rep.saved || !rep.note[0])
                rc = 7;
        }
        if (rc)
            fprintf(stderr, "readonly step %d: %s\n", rc, clattn_context_last_error(ctx));
    } else {
        rc = 9;
    }
    clattn_context_release(ctx);
    if (getenv("POCL_CACHE_DIR") && !strcmp(getenv("POCL_CACHE_DIR"), pocl_dir))
        nftw(pocl_dir, remove_one, 16, FTW_PHYS | FTW_DEPTH);
    return rc;
}

int main(int argc, char **argv)
{
    self_path = argv[0];
    if (argc == 4 && !strcmp(argv[1], "--child"))
        return child_main(argv[2], argv[3]);
    clattn_context_release(tu_context_or_skip(NULL));   /* 77 without a device */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lookup_fallback_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_local_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tuned_entry_used, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_processes_tune_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broken_tuning_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broken_binaries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_of_other_driver, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_process_compiles_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offline_binaries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crashed_load_evicted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_load_mark_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kernel_dir_not_regular, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
