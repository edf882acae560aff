#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/gateway.h"

/* Grows to at least len + extra bytes, doubling, never beyond ceiling. */
int
tr_buf_reserve(tr_buf *b, size_t extra, size_t ceiling)
{
    if (extra > SIZE_MAX - b->len || b->len + extra > ceiling)
        return -1;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > ceiling)
        cap = ceiling;
    char *p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int
tr_buf_append(tr_buf *b, const void *p, size_t n, size_t ceiling)
{
    if (n == 0)
        return 0;
    if (tr_buf_reserve(b, n, ceiling) != 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void
tr_buf_free(tr_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
