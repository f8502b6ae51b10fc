/* Failure messages into a caller's buffer, for the parts of the library that run without a context
 * (file formats, the CPU references, the PNG writer, option resolution). Part of core/ (core.h
 * includes it); needs nothing but the C library, so the fuzz target links it alone. */
#ifndef CLATTN_ERROR_TEXT_H
#define CLATTN_ERROR_TEXT_H

#include "clattn.h"

#include <stddef.h>

/* Formats the message into err (when err is not NULL and err_len > 0) and returns status
   unchanged: `return clattn_fail_into(err, err_len, CLATTN_IO_ERROR, "cannot open %s", p);`. */
clattn_status clattn_fail_into(char *err, size_t err_len, clattn_status status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif /* CLATTN_ERROR_TEXT_H */
