/* clattn_fail_into: one way to put a failure's words into a caller's buffer. */
#include "host/core/error_text.h"

#include <stdarg.h>
#include <stdio.h>

clattn_status clattn_fail_into(char *err, size_t err_len, clattn_status status, const char *fmt, ...)
{
    if (err && err_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return status;
}
