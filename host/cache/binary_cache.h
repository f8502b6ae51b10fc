/* The program-binary cache: what clGetProgramInfo(CL_PROGRAM_BINARIES) gave for a built program,
   kept so the next process skips the compiler; and the offline-built binaries that devices without
   a compiler (FPGAs) need, found by documented names under $CLATTN_BINARY_DIR. No OpenCL here:
   the caller builds, queries and loads the program (clCreateProgramWithBinary), and compiles the
   source when a load misses or the driver refuses the binary. */
#ifndef CLATTN_BINARY_CACHE_H
#define CLATTN_BINARY_CACHE_H

#include "clattn.h"
#include "host/cache/cache_file.h"
#include "host/cache/sha256.h"

#include <stddef.h>

#define CLATTN_BINARY_CACHE_FORMAT 1        /* in the key and the header: bump on any change */
#define CLATTN_BINARY_MAX_BYTES (256u << 20) /* a larger file is not ours */
#define CLATTN_BINARY_HEADER_BYTES 88
#define CLATTN_BINARY_FILE_NAME_LEN 73      /* "bin-" 64 hex ".bin" and a NUL */

/* The cache key (64 hex digits): SHA-256 over the format version and, each with its length, the
   program's complete source text, its build options, the device identity (clattn_cache_identity)
   and the driver version. Change any of them and the old binary is simply never found again.
   NULL strings count as "". */
void clattn_binary_cache_key(const char *source, size_t source_len, const char *options,
                             const char *identity, const char *driver_version,
                             char key[CLATTN_SHA256_HEX]);
/* "bin-<key>.bin" */
void clattn_binary_cache_file_name(const char *key, char name[CLATTN_BINARY_FILE_NAME_LEN]);

/* The binary stored under key in dir. Success with *data NULL: a miss (no file). Success with
   *data set (malloc'ed, *len bytes; free()): a hit whose header, length and checksum all agree.
   CLATTN_IO_ERROR: a file is there but unusable (truncated, corrupt, not ours, other format
   version, stored under another key's name); warn says which and the caller treats it as a miss
   (the next store replaces it). CLATTN_INVALID_ARGUMENT for a key that is not 64 hex digits. */
clattn_status clattn_binary_cache_load(const char *dir, const char *key, unsigned char **data,
                                       size_t *len, char *warn, size_t warn_len);
/* Stores len bytes (1..CLATTN_BINARY_MAX_BYTES) under key, creating dir if needed; atomic and
   under the file's lock (cache_file.h). CLATTN_IO_ERROR for a directory that cannot be written. */
clattn_status clattn_binary_cache_store(const char *dir, const char *key, const void *data,
                                        size_t len, char *err, size_t err_len);

/* The load guard. A binary whose header and checksum agree can still be one the driver cannot take
   (a payload cut short before it was stored, a driver bug): handed to the driver, it may crash the
   process, and without a guard every later run would load it again and crash again. So an entry
   is marked before it goes to the driver and the mark cleared once the driver returned; a mark
   left by a process that died marks a binary that killed it. The mark is the file
   "bin-<key>.bin.loading" (created O_EXCL | O_NOFOLLOW) holding the loader's process id. */
#define CLATTN_BINARY_MARK_SUFFIX ".loading"
#define CLATTN_BINARY_MARK_STALE_S 60   /* a mark this old is a dead loader's, whatever its pid */

typedef enum clattn_binary_guard {
    CLATTN_BINARY_GUARD_MARKED,     /* marked: hand it to the driver, then clattn_binary_cache_unmark */
    CLATTN_BINARY_GUARD_UNMARKED,   /* no mark could be made (a read-only directory): load anyway */
    CLATTN_BINARY_GUARD_BUSY,       /* a live process is loading it right now: compile instead */
    CLATTN_BINARY_GUARD_EVICTED     /* a process died loading it: the entry and its mark were
                                       removed, warn says so; compile instead */
} clattn_binary_guard;

typedef struct clattn_binary_mark {
    int fd;                         /* -1 when no mark is held */
    char path[CLATTN_CACHE_PATH_MAX];
} clattn_binary_mark;

/* Marks the entry key in dir before its binary is handed to the driver. A mark already there is
   another loader's: BUSY while its process is alive and the mark younger than
   CLATTN_BINARY_MARK_STALE_S (an empty one is still being written); otherwise its loader died
   (or it is not a mark: a link, a directory) and the entry is EVICTED. mark is always set (fd -1
   unless MARKED); unmarking it is harmless whatever came back. */
clattn_binary_guard clattn_binary_cache_mark(const char *dir, const char *key,
                                             clattn_binary_mark *mark, char *warn,
                                             size_t warn_len);
/* Removes the mark, when it is still the one this call made (an evicting process may have
   replaced it), and releases it. */
void clattn_binary_cache_unmark(clattn_binary_mark *mark);

/* Offline binaries, for $CLATTN_BINARY_DIR: "<stem>-<h>.bin", where stem is the kernel file's
   name without directories or ".cl" ("cl/flash.cl" -> "flash") and h the first 16 hex digits of
   the SHA-256 of the build options with surrounding blanks removed and inner runs of blanks made
   one space. The file holds exactly what the vendor's offline compiler wrote (no header).
   0 if the name fit in out. */
int clattn_binary_offline_name(const char *kernel_file, const char *options, char *out,
                               size_t out_len);
/* Reads the offline binary for (kernel_file, options) from dir. CLATTN_UNSUPPORTED when it is not
   there, with err naming the file wanted and the options to build it with; CLATTN_IO_ERROR when
   it cannot be read; otherwise *data (malloc'ed) and *len. */
clattn_status clattn_binary_offline_load(const char *dir, const char *kernel_file,
                                         const char *options, unsigned char **data, size_t *len,
                                         char *err, size_t err_len);

#endif /* CLATTN_BINARY_CACHE_H */
