/*
 * HTTP method names and their TR_M_* bits (core/config.h).  Methods are
 * case-sensitive (RFC 9110 §9.1): "get" is not GET but an unknown method.
 */
#include <string.h>

#include "core/config.h"

static const struct {
    const char *name;
    uint32_t bit;
} methods[] = {
    { "GET", TR_M_GET },
    { "HEAD", TR_M_HEAD },
    { "POST", TR_M_POST },
    { "PUT", TR_M_PUT },
    { "PATCH", TR_M_PATCH },
    { "DELETE", TR_M_DELETE },
    { "OPTIONS", TR_M_OPTIONS },
    { "PROPFIND", TR_M_PROPFIND },
    { "PROPPATCH", TR_M_PROPPATCH },
    { "MKCOL", TR_M_MKCOL },
    { "MKCALENDAR", TR_M_MKCALENDAR },
    { "COPY", TR_M_COPY },
    { "MOVE", TR_M_MOVE },
    { "REPORT", TR_M_REPORT },
    { "LOCK", TR_M_LOCK },
    { "UNLOCK", TR_M_UNLOCK },
    { "TRACE", TR_M_TRACE },
    { "CONNECT", TR_M_CONNECT },
};

#define N_METHODS (sizeof(methods) / sizeof(methods[0]))

uint32_t
tr_method_bit(const char *name, size_t len)
{
    if (name == NULL)
        return TR_M_OTHER;
    for (size_t i = 0; i < N_METHODS; i++)
        if (strlen(methods[i].name) == len &&
            memcmp(methods[i].name, name, len) == 0)
            return methods[i].bit;
    return TR_M_OTHER;
}

/* The name of one known method bit; NULL for TR_M_OTHER, for a set of
 * several bits and for 0. */
const char *
tr_method_name(uint32_t bit)
{
    for (size_t i = 0; i < N_METHODS; i++)
        if (methods[i].bit == bit)
            return methods[i].name;
    return NULL;
}
