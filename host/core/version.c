/* The version of the library actually linked. */
#include "host/core/core.h"

const char *clattn_version(void)
{
    return CLATTN_VERSION_STRING;
}
