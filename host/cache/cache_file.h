/* The files under the cache directory: where it is, reading them whole, replacing them atomically
   and serialising writers with an advisory lock. No OpenCL and no context: each call reports its
   detail into a caller's buffer (err, err_len), which the caller copies to clattn_fail().

   Rules every cache file follows (docs/caches.md):
   - readers never lock: a file is only ever replaced whole by rename(), so a reader sees the old
     or the new file, never a mixture;
   - writers hold an flock() on the side file "<name>.lock" while they read, merge and replace
     "<name>", so two processes saving at once both keep their entries (plain stores share one
     lock file, CLATTN_CACHE_STORE_LOCK);
   - the new content goes to "<name>.tmp", is fsync'ed, renamed over "<name>", and the directory
     is fsync'ed, so a crash at any point leaves the old or the new file;
   - no file is opened through a symbolic link: reads and lock files use O_NOFOLLOW, temporaries
     O_EXCL | O_NOFOLLOW, so a link planted in the directory cannot redirect a write. */
#ifndef CLATTN_CACHE_FILE_H
#define CLATTN_CACHE_FILE_H

#include "clattn.h"
#include "host/core/error_text.h"
#include "host/core/options.h"   /* CLATTN_CACHE_PATH_MAX */

#include <stddef.h>

#define CLATTN_CACHE_LOCK_TIMEOUT_MS 10000   /* a writer waits this long for another's lock */
#define CLATTN_CACHE_STORE_LOCK "binaries.lock"  /* the lock every clattn_cache_store() shares */


/* "<dir>/<name>" into out; 0 if it fit. */
int clattn_cache_join(char *out, size_t out_len, const char *dir, const char *name);

/* The device's identity as both caches key it: each field trimmed of surrounding blanks,
   "platform / platform version / vendor / device / driver / N CU". Any string may be NULL.
   0 if it fit in out. */
int clattn_cache_identity(char *out, size_t out_len, const char *platform_name,
                          const char *platform_version, const char *vendor, const char *device_name,
                          const char *driver_version, unsigned compute_units);

/* Creates dir and its missing parents (mode 0700: caches are private unless the user made the
   directory otherwise). An existing directory is success. */
clattn_status clattn_cache_mkdirs(const char *dir, char *err, size_t err_len);

/* Reads a regular file whole into *data (malloc'ed, NUL-terminated after *len bytes; free()).
   A missing file (or a missing directory on the way) is success with *data NULL and *len 0.
   Anything that is not a regular file (a FIFO, a directory, a device), a symbolic link (never
   followed, whatever it points at), or a file over max_bytes is CLATTN_IO_ERROR, as is a failed
   read; CLATTN_OUT_OF_MEMORY when the buffer cannot be had. Never blocks. Every file the library
   reads comes through here: the tuning file, cached and offline binaries, the export listing and
   the CLATTN_KERNEL_DIR sources. */
clattn_status clattn_cache_read(const char *path, size_t max_bytes, char **data, size_t *len,
                                char *err, size_t err_len);

/* Replaces path with len bytes atomically, through a uniquely named temporary file in the same
   directory (safe without the lock; use clattn_cache_update/store to also serialise writers).
   The temporary is created O_EXCL | O_NOFOLLOW (never opened through a planted name) and renamed
   over path, so a symbolic link at path is replaced, not written through. On failure only the
   temporary is removed: whatever was at path is left as it was. */
clattn_status clattn_cache_write_atomic(const char *path, const void *data, size_t len,
                                        char *err, size_t err_len);

/* An exclusive flock() on path (created if needed), waited for up to timeout_ms. Released by
   clattn_cache_lock_release or by the process ending, however it ends. CLATTN_UNSUPPORTED when the
   file system has no locks (the lock file could be opened but not locked); CLATTN_IO_ERROR when
   the lock file cannot be opened, is a symbolic link (never followed: nothing is created where it
   points) or not a regular file, or the wait timed out (then busy is 1). */
typedef struct clattn_cache_lock {
    int fd;                      /* -1 when not held */
    int busy;                    /* 1: not held because another holder kept it past the timeout */
} clattn_cache_lock;
clattn_status clattn_cache_lock_acquire(const char *path, int timeout_ms, clattn_cache_lock *lock,
                                        char *err, size_t err_len);
void clattn_cache_lock_release(clattn_cache_lock *lock);

/* Computes a file's new content from its current one. old is NULL when there is no usable file
   (missing, unreadable, too large: a broken file is simply replaced); otherwise old_len bytes,
   NUL-terminated. Sets *out (malloc'ed; the caller of clattn_cache_update frees it) and *out_len.
   A status other than success abandons the update and leaves the file as it was. */
typedef clattn_status (*clattn_cache_merge_fn)(void *user, const char *old, size_t old_len,
                                               char **out, size_t *out_len, char *err,
                                               size_t err_len);

/* Read-merge-write of "<dir>/<name>" under the lock "<dir>/<name>.lock": creates dir, takes the
   lock, reads the file (up to max_bytes), calls merge, replaces the file atomically, unlocks.
   Where the file system has no locks the update still happens atomically, but a writer running
   at the same moment may lose its entries. A read-only directory gives CLATTN_IO_ERROR and
   changes nothing. */
clattn_status clattn_cache_update(const char *dir, const char *name, size_t max_bytes,
                                  clattn_cache_merge_fn merge, void *user, char *err,
                                  size_t err_len);
/* The same without reading or merging: "<dir>/<name>" becomes len bytes of data. Stores share
   one lock file, "<dir>/" CLATTN_CACHE_STORE_LOCK: they are content-addressed, written once each
   and rarely, and a lock file per stored file would double the directory's entries. A store never
   waits for that lock: when another process holds it, the file is written through a uniquely
   named temporary file instead (as atomic; only a crash's leftover is not reused). */
clattn_status clattn_cache_store(const char *dir, const char *name, const void *data, size_t len,
                                 char *err, size_t err_len);

#endif /* CLATTN_CACHE_FILE_H */
