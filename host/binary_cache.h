/* The program-binary cache: what clGetProgramInfo(CL_PROGRAM_BINARIES) gave for a built program,
   kept so the next process skips the compiler; and the offline-built binaries that devices without
   a compiler (FPGAs) need, found by documented names under $CLATTN_BINARY_DIR. No OpenCL here:
   the caller builds, queries and loads the program (clCreateProgramWithBinary), and compiles the
   source when a load misses or the driver refuses the binary. */
#ifndef CLATTN_BINARY_CACHE_H
#define CLATTN_BINARY_CACHE_H

#include "clattn.h"
#include "host/sha256.h"

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
