/* The cache directory and its files: resolution, mkdir -p, whole-file reads, atomic replacement
   and the flock()-guarded read-merge-write every cache save goes through. */
#include "host/cache/cache_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- where ----------------------------------------------------------------------------------- */

int clattn_cache_join(char *out, size_t out_len, const char *dir, const char *name)
{
    int n = snprintf(out, out_len, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= out_len ? -1 : 0;
}

/* Appends n bytes of s, counting what did not fit so that the caller can tell. */
static void put(char *out, size_t out_len, size_t *pos, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++, (*pos)++)
        if (*pos + 1 < out_len)
            out[*pos] = s[i];
}

/* Appends s without its surrounding blanks (drivers pad some names with spaces). */
static void put_trimmed(char *out, size_t out_len, size_t *pos, const char *s)
{
    size_t a = 0, b;
    if (!s)
        return;
    b = strlen(s);
    while (a < b && (s[a] == ' ' || s[a] == '\t'))
        a++;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\n'))
        b--;
    put(out, out_len, pos, s + a, b - a);
}

int clattn_cache_identity(char *out, size_t out_len, const char *platform_name,
                          const char *platform_version, const char *vendor, const char *device_name,
                          const char *driver_version, unsigned compute_units)
{
    const char *parts[5] = {platform_name, platform_version, vendor, device_name, driver_version};
    size_t pos = 0;
    char cu[32];
    int n;
    if (!out_len)
        return -1;
    for (int i = 0; i < 5; i++) {
        put_trimmed(out, out_len, &pos, parts[i]);
        put(out, out_len, &pos, " / ", 3);
    }
    n = snprintf(cu, sizeof cu, "%u CU", compute_units);
    put(out, out_len, &pos, cu, (size_t)n);
    out[pos < out_len ? pos : out_len - 1] = '\0';
    return pos < out_len ? 0 : -1;
}

/* ---- directories and reads ------------------------------------------------------------------- */

clattn_status clattn_cache_mkdirs(const char *dir, char *err, size_t err_len)
{
    char path[CLATTN_CACHE_PATH_MAX];
    struct stat st;
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path)
        return clattn_fail_into(err, err_len, CLATTN_IO_ERROR, "bad cache directory name '%s'", dir);
    memcpy(path, dir, n + 1);
    /* each prefix ending before a '/', then the whole path */
    for (size_t i = 1; i <= n; i++) {
        if (i < n && path[i] != '/')
            continue;
        path[i] = '\0';
        /* whatever mkdir says (EEXIST, or EACCES/EROFS on a parent we may not write), an
           existing directory is all we need */
        if (mkdir(path, 0700) != 0) {
            int e = errno;
            if (stat(path, &st) != 0)
                return clattn_fail_into(err, err_len, CLATTN_IO_ERROR, "cannot create %s: %s",
                                         path, strerror(e));
            if (!S_ISDIR(st.st_mode))
                return clattn_fail_into(err, err_len, CLATTN_IO_ERROR,
                                         "cannot create %s: a file that is not a directory is there",
                                         path);
        }
        if (i < n)
            path[i] = '/';
    }
    return CLATTN_SUCCESS;
}

clattn_status clattn_cache_read(const char *path, size_t max_bytes, char **data, size_t *len,
                                char *err, size_t err_len)
{
    clattn_status st = CLATTN_SUCCESS;
    struct stat sb;
    char *buf = NULL;
    size_t size = 0, cap;
    int fd;

    *data = NULL;
    *len = 0;
    /* O_NONBLOCK: a FIFO planted at the path must not hang the caller (no effect on files);
       O_NOFOLLOW: a planted link must not make us open a device or a file elsewhere */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return CLATTN_SUCCESS;
        if (errno == ELOOP)
            return clattn_fail_into(err, err_len, CLATTN_IO_ERROR, "%s is a symbolic link (only "
                                     "regular files are read)", path);
        return clattn_fail_into(err, err_len, CLATTN_IO_ERROR, "cannot open %s: %s", path,
                                 strerror(errno));
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = clattn_fail_into(err, err_len, CLATTN_IO_ERROR, "%s is not a regular file", path);
        goto out;
    }
    if ((unsigned long long)sb.st_size > max_bytes) {
        st = clattn_fail_into(err, err_len, CLATTN_IO_ERROR,
                               "%s is too large (%lld bytes, at most %zu)", path,
                               (long long)sb.st_size, max_bytes);
        goto out;
    }
    /* the size is a hint: the file is read to its end, whatever it has become meanwhile */
    cap = (size_t)sb.st_size + 1;
    buf = malloc(cap + 1);
    if (!buf) {
        st = clattn_fail_into(err, err_len, CLATTN_OUT_OF_MEMORY, "reading %s: out of memory", path);
        goto out;
    }
    for (;;) {
        ssize_t got;
        if (size == cap) {
            char *grown;
            if (cap > max_bytes) {
                st = clattn_fail_into(err, err_len, CLATTN_IO_ERROR,
                                       "%s is too large (at most %zu bytes)", path, max_bytes);
                goto out;
            }
            cap = cap * 2 > max_bytes + 1 ? max_bytes + 1 : cap * 2;
            grown = realloc(buf, cap + 1);
            if (!grown) {
                st = clattn_fail_into(err, err_len, CLATTN_OUT_OF_MEMORY,
                                       "reading %s: out of memory", path);
                goto out;
            }
            buf = grown;
        }
        got = read(fd, buf + size, cap - size);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            st = clattn_fail_into(err, err_len, CLATTN_IO_ERROR, "cannot read %s: %s", path,
                                   strerror(errno));
            goto out;
        }
        if (got == 0)
            break;
        size += (size_t)got;
    }
    if (size > max_bytes) {
        st = clattn_fail_into(err, err_len, CLATTN_IO_ERROR,
                               "%s is too large (at most %zu bytes)", path, max_bytes);
        goto out;
    }
    buf[size] = '\0';
    *data = buf;
    *len = size;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return st;
}

/* ---- atomic replacement ---------------------------------------------------------------------- */

/* Makes the rename durable: the directory entry is what a crash would otherwise lose. Failure is
   not reported: some file systems refuse fsync on directories, and the file itself is complete. */
static void sync_parent(const char *path)
{
    char dir[CLATTN_CACHE_PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    int fd;
    if (n >= sizeof dir)
        return;
    if (slash && n == 0)
        n = 1;                   /* "/name": the root directory */
    if (n)
        memcpy(dir, path, n);
    else
        dir[n++] = '.';
    dir[n] = '\0';
    fd = open(dir, O_RDONLY | O_CLOEXEC | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Writes data into the new file tmp (opened with O_EXCL by the caller as fd), syncs it, renames it
   over path. Consumes fd; removes tmp on failure. */
static clattn_status finish_write(int fd, const char *tmp, const char *path, const void *data,
                                  size_t len, char *err, size_t err_len)
{
    clattn_status st = CLATTN_SUCCESS;
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t put = write(fd, p, left);
        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0) {
            st = clattn_fail_into(err, err_len, CLATTN_IO_ERROR, "cannot write %s: %s", tmp,
                                   put < 0 ? strerror(errno) : "no progress");
            goto out;
        }
        p += put;
        left -= (size_t)put;
    }
    /* the data must be on disk before the name points at it, or a crash could leave an empty file */
    if (fsync(fd) != 0) {
        st = clattn_fail_into(err, err_len, CLATTN_IO_ERROR, "cannot sync %s: %s", tmp,
                               strerror(errno));
        goto out;
    }
out:
    if (close(fd) != 0 && st == CLATTN_SUCCESS)
        st = clattn_fail_into(err, err_len, CLATTN_IO_ERROR, "cannot close %s: %s", tmp,
                               strerror(errno));
    if (st == CLATTN_SUCCESS && rename(tmp, path) != 0)
        st = clattn_fail_into(err, err_len, CLATTN_IO_ERROR, "cannot rename %s to %s: %s", tmp,
                               path, strerror(errno));
    if (st != CLATTN_SUCCESS)
        unlink(tmp);
    else
        sync_parent(path);
    return st;
}

clattn_status clattn_cache_write_atomic(const char *path, const void *data, size_t len,
                                        char *err, size_t err_len)
{
    char tmp[CLATTN_CACHE_PATH_MAX];
    struct timespec ts;
    int fd = -1;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* unique per process and attempt: without the lock another writer may be at work beside us */
    for (unsigned attempt = 0; attempt < 100 && fd < 0; attempt++) {
        int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%lx", path, (long)getpid(),
                         (unsigned long)ts.tv_nsec + attempt);
        if (n < 0 || (size_t)n >= sizeof tmp)
            return clattn_fail_into(err, err_len, CLATTN_IO_ERROR, "path too long: %s", path);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST)
            return clattn_fail_into(err, err_len, CLATTN_IO_ERROR, "cannot create %s: %s", tmp,
                                     strerror(errno));
    }
    if (fd < 0)
        return clattn_fail_into(err, err_len, CLATTN_IO_ERROR, "cannot create a temporary file "
                                 "beside %s", path);
    return finish_write(fd, tmp, path, data, len, err, err_len);
}

/* The lock holder's write: the temporary name is fixed, so a file left by a writer that died is
   reused rather than piling up. */
static clattn_status write_locked(const char *path, const void *data, size_t len, char *err,
                                  size_t err_len)
{
    char tmp[CLATTN_CACHE_PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path), fd;
    if (n < 0 || (size_t)n >= sizeof tmp)
        return clattn_fail_into(err, err_len, CLATTN_IO_ERROR, "path too long: %s", path);
    /* unlink then O_EXCL: never write through whatever a stale name might point at */
    if (unlink(tmp) != 0 && errno != ENOENT)
        return clattn_fail_into(err, err_len, CLATTN_IO_ERROR, "cannot remove %s: %s", tmp,
                                 strerror(errno));
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return clattn_fail_into(err, err_len, CLATTN_IO_ERROR, "cannot create %s: %s", tmp,
                                 strerror(errno));
    return finish_write(fd, tmp, path, data, len, err, err_len);
}

/* ---- locking --------------------------------------------------------------------------------- */

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

clattn_status clattn_cache_lock_acquire(const char *path, int timeout_ms, clattn_cache_lock *lock,
                                        char *err, size_t err_len)
{
    long long deadline = now_us() + (timeout_ms > 0 ? timeout_ms : 0) * 1000LL;
    long nap_us = 1000;
    struct stat sb;
    int fd;
    lock->fd = -1;
    lock->busy = 0;
    /* O_NOFOLLOW: a link planted in the lock file's place would have us create (or lock) a file
       wherever it points; O_NONBLOCK: nor may a FIFO there hang us */
    fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0644);
    if (fd < 0)
        return clattn_fail_into(err, err_len, CLATTN_IO_ERROR, "cannot open lock file %s: %s",
                                 path, errno == ELOOP ? "it is a symbolic link" : strerror(errno));
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return clattn_fail_into(err, err_len, CLATTN_IO_ERROR, "lock file %s is not a regular "
                                 "file", path);
    }
    /* polled rather than blocking: a stopped or hung holder must cost a bounded wait, not a hang */
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno != EWOULDBLOCK) {
            int e = errno;
            close(fd);
            return clattn_fail_into(err, err_len,
                                     e == ENOLCK || e == EOPNOTSUPP || e == ENOSYS || e == EINVAL
                                         ? CLATTN_UNSUPPORTED : CLATTN_IO_ERROR,
                                     "cannot lock %s: %s", path, strerror(e));
        }
        if (now_us() >= deadline) {
            close(fd);
            lock->busy = 1;
            return clattn_fail_into(err, err_len, CLATTN_IO_ERROR,
                                     "timed out after %d ms waiting for the lock %s (another "
                                     "process holds it)", timeout_ms, path);
        }
        struct timespec ts = {0, nap_us * 1000};
        nanosleep(&ts, NULL);
        if (nap_us < 32000)
            nap_us *= 2;
    }
    lock->fd = fd;
    return CLATTN_SUCCESS;
}

void clattn_cache_lock_release(clattn_cache_lock *lock)
{
    if (lock && lock->fd >= 0) {
        /* closing the last descriptor drops the flock */
        close(lock->fd);
        lock->fd = -1;
    }
}

/* ---- read-merge-write ------------------------------------------------------------------------ */

/* With merge: read-merge-write under "<name>.lock". Without: a store of data, under the lock all
   stores share (CLATTN_CACHE_STORE_LOCK), never waited for. */
static clattn_status update(const char *dir, const char *name, size_t max_bytes,
                            clattn_cache_merge_fn merge, void *user, const void *data, size_t len,
                            char *err, size_t err_len)
{
    char path[CLATTN_CACHE_PATH_MAX], lock_path[CLATTN_CACHE_PATH_MAX];
    clattn_cache_lock lock = {-1, 0};
    char *old = NULL, *out_data = NULL;
    size_t old_len = 0, out_len = 0;
    clattn_status st;

    if (clattn_cache_join(path, sizeof path, dir, name) ||
        (merge ? snprintf(lock_path, sizeof lock_path, "%s.lock", path) >= (int)sizeof lock_path
               : clattn_cache_join(lock_path, sizeof lock_path, dir, CLATTN_CACHE_STORE_LOCK)))
        return clattn_fail_into(err, err_len, CLATTN_IO_ERROR, "path too long: %s/%s", dir, name);
    st = clattn_cache_mkdirs(dir, err, err_len);
    if (st != CLATTN_SUCCESS)
        return st;
    /* a merge must wait for the lock or lose another writer's entries; a store need not */
    st = clattn_cache_lock_acquire(lock_path, merge ? CLATTN_CACHE_LOCK_TIMEOUT_MS : 0, &lock, err,
                                   err_len);
    if (st == CLATTN_UNSUPPORTED || (!merge && lock.busy))
        st = CLATTN_SUCCESS;     /* no lock: still atomic, through a uniquely named temporary */
    if (st != CLATTN_SUCCESS)
        goto out;
    if (merge) {
        /* an unreadable or oversized file is treated as absent: the save replaces it */
        if (clattn_cache_read(path, max_bytes, &old, &old_len, NULL, 0) != CLATTN_SUCCESS) {
            free(old);
            old = NULL;
            old_len = 0;
        }
        st = merge(user, old, old_len, &out_data, &out_len, err, err_len);
        if (st != CLATTN_SUCCESS)
            goto out;
        data = out_data;
        len = out_len;
    }
    if (lock.fd >= 0)
        st = write_locked(path, data, len, err, err_len);
    else
        st = clattn_cache_write_atomic(path, data, len, err, err_len);
out:
    clattn_cache_lock_release(&lock);
    free(old);
    free(out_data);
    return st;
}

clattn_status clattn_cache_update(const char *dir, const char *name, size_t max_bytes,
                                  clattn_cache_merge_fn merge, void *user, char *err,
                                  size_t err_len)
{
    if (!merge)
        return clattn_fail_into(err, err_len, CLATTN_INVALID_ARGUMENT, "no merge function");
    return update(dir, name, max_bytes, merge, user, NULL, 0, err, err_len);
}

clattn_status clattn_cache_store(const char *dir, const char *name, const void *data, size_t len,
                                 char *err, size_t err_len)
{
    return update(dir, name, 0, NULL, NULL, data, len, err, err_len);
}
