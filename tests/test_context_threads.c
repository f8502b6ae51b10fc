/* The first contexts of a process, created from several threads at once. PoCL 3.1 crashes in
 * clGetDeviceInfo when threads enumerate its devices concurrently for the first time in a process;
 * clattn serialises its device enumeration (host/context.c) so that its users never see that.
 *
 * The race only exists on a process's FIRST enumeration, so each round runs in a fresh child
 * process (fork) whose THREADS threads, released together by a barrier, are the first to touch
 * OpenCL there: each creates a context, runs one tiny call checked against the reference, and
 * releases it. The parent never calls OpenCL (no fixture context), so the children inherit none of
 * its state. A child killed by a signal fails the test with the signal's number.
 *
 * The calls themselves take turns (call_lock): creation and release stay concurrent, which is what
 * this test is about. PoCL 3.1 has a second, unrelated race: contexts building and launching the
 * same kernel at once can abort in pocl_release_dlhandle_cache (docs/portability.md). It was seen
 * once here, in a sanitizer build (round 3 of 4; 15 reruns did not show it).
 */
#include "testutil.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define THREADS 8
#define ROUNDS 4

/* Read by AddressSanitizer's runtime only (sanitizer builds). The thread that first initialises
   PoCL gets an alternate signal stack from LLVM (llvm::sys::RemoveFileOnSignal), allocated with
   malloc; ASan unmaps a thread's alternate signal stack when the thread exits and aborts when that
   fails ("unable to unmap"). In other tests that thread is the main one, which never exits; here it
   is a worker by design, so ASan leaves signal stacks alone. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "use_sigaltstack=0";
}

typedef struct worker {
    pthread_t thread;
    int id;
    pthread_barrier_t *start;
    pthread_mutex_t *call_lock;
    clattn_status create_status;
    int ok;
    char msg[1100];
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    pthread_barrier_wait(w->start);
    clattn_context *ctx = NULL;
    w->create_status = clattn_context_create(NULL, &ctx);
    if (w->create_status != CLATTN_SUCCESS) {
        snprintf(w->msg, sizeof w->msg, "clattn_context_create: %s", clattn_status_string(w->create_status));
        return NULL;
    }
    /* One tiny fused call: a single kernel to build, so the round stays short. */
    tu_case c;
    memset(&c, 0, sizeof c);
    c.desc.batch = 1, c.desc.heads_q = 2, c.desc.heads_kv = 1, c.desc.seq_q = 3, c.desc.seq_kv = 5;
    c.desc.head_dim = 8, c.desc.head_dim_v = 8, c.desc.path = CLATTN_PATH_FUSED;
    c.use_buffers = 1;
    c.want_lse = 1;
    c.seed = 0xc0de + (uint64_t)w->id;
    tu_outcome o;
    pthread_mutex_lock(w->call_lock);
    tu_run_case(ctx, &c, &o);
    pthread_mutex_unlock(w->call_lock);
    w->ok = o.ok;
    if (!o.ok)
        snprintf(w->msg, sizeof w->msg, "%s", o.msg);
    clattn_context_release(ctx);
    return NULL;
}

/* One round, in the child: 0 when every thread passed, 77 when there is no device, else 1. */
static int round_in_child(int round)
{
    pthread_barrier_t start;
    pthread_mutex_t call_lock = PTHREAD_MUTEX_INITIALIZER;
    worker w[THREADS];
    memset(w, 0, sizeof w);
    if (pthread_barrier_init(&start, NULL, THREADS) != 0)
        return 1;
    for (int i = 0; i < THREADS; i++) {
        w[i].id = i;
        w[i].start = &start;
        w[i].call_lock = &call_lock;
        if (pthread_create(&w[i].thread, NULL, work, &w[i]) != 0) {
            printf("round %d: pthread_create failed\n", round);
            return 1;   /* the threads already started wait at the barrier forever: exit anyway */
        }
    }
    int failed = 0, no_device = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(w[i].thread, NULL);
        if (w[i].create_status == CLATTN_DEVICE_NOT_FOUND)
            no_device++;
        else if (!w[i].ok)
            failed++;
        if (!w[i].ok)
            printf("round %d: thread %d: %s\n", round, i, w[i].msg);
    }
    pthread_barrier_destroy(&start);
    fflush(stdout);
    if (no_device == THREADS)
        return 77;
    /* a device some threads found and others did not is the race too */
    return failed || no_device ? 1 : 0;
}

static void test_first_contexts_concurrently(void **state)
{
    (void)state;
    for (int round = 0; round < ROUNDS; round++) {
        fflush(stdout);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            /* CMocka's handlers for SIGSEGV and friends would turn a crash into an exit code */
            static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS};
            for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
                signal(sigs[i], SIG_DFL);
            _exit(round_in_child(round));
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (WIFSIGNALED(status))
            fail_msg("round %d: the process died of signal %d (%s)", round, WTERMSIG(status),
                     strsignal(WTERMSIG(status)));
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) == 77) {
            printf("SKIP: no OpenCL device\n");
            exit(77);
        }
        if (WEXITSTATUS(status) != 0)
            fail_msg("round %d: some threads failed (above)", round);
        printf("round %d: %d threads ok\n", round, THREADS);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_contexts_concurrently),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
