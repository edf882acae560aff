/*
 * libFuzzer target for the If-Match / If-None-Match list parser
 * (src/core/etag.c).  The input is split at NUL bytes into field lines.
 *
 * Invariants checked on every input:
 *   - a refused list has no members and is not "*";
 *   - "*" has no tag members;
 *   - every tag lies inside its field line, is quoted, holds only etagc
 *     bytes, and is weak exactly when "W/" precedes it;
 *   - writing the accepted tags back as one list parses to the same tags;
 *   - each tag matches its own list weakly, and strongly iff it is strong;
 *   - each tag written alone parses with tr_etag_parse to itself.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/etag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond)
{
    if (!cond)
        abort();
}

static bool
inside(const char *p, size_t n, const uint8_t *data, size_t size)
{
    return p >= (const char *)data && p + n <= (const char *)data + size;
}

static void
check_tag(const tr_etag *t, const uint8_t *data, size_t size)
{
    check(inside(t->opaque, t->len, data, size));
    check(t->len >= 2 && t->opaque[0] == '"' && t->opaque[t->len - 1] == '"');
    for (size_t i = 1; i + 1 < t->len; i++) {
        unsigned char c = (unsigned char)t->opaque[i];
        check(c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80);
    }
    size_t off = (size_t)(t->opaque - (const char *)data);
    bool w = off >= 2 && t->opaque[-2] == 'W' && t->opaque[-1] == '/';
    check(t->weak == w);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tr_etag_list l, again;
    tr_etag_list_status st = TR_ETAG_LIST_OK;

    tr_etag_list_init(&l);
    for (size_t start = 0; start <= size;) {
        const uint8_t *nul = memchr(data + start, 0, size - start);
        size_t end = nul ? (size_t)(nul - data) : size;
        st = tr_etag_list_add(&l, (const char *)data + start, end - start);
        start = end + 1;
    }
    check(l.present);
    check(st == l.status);
    if (st != TR_ETAG_LIST_OK) {
        check(l.n == 0 && !l.any);
        return 0;
    }
    check(l.n <= TR_ETAG_MAX_TAGS);
    if (l.any)
        check(l.n == 0);

    /* Write the list back: W/"x", "y", ... */
    size_t cap = size + 4 * l.n + 8, n = 0;
    char *buf = malloc(cap);
    check(buf != NULL);
    if (l.any)
        buf[n++] = '*';
    for (size_t i = 0; i < l.n; i++) {
        const tr_etag *t = &l.tags[i];
        check_tag(t, data, size);
        if (i > 0) {
            buf[n++] = ',';
            buf[n++] = ' ';
        }
        size_t tag_start = n;
        if (t->weak) {
            buf[n++] = 'W';
            buf[n++] = '/';
        }
        memcpy(buf + n, t->opaque, t->len);
        n += t->len;

        tr_etag one;
        check(tr_etag_parse(buf + tag_start, n - tag_start, &one));
        check(one.weak == t->weak && tr_etag_weak_eq(&one, t));

        check(tr_etag_list_match_weak(&l, t));
        check(tr_etag_list_match_strong(&l, t) == !t->weak);
    }
    check(n <= cap);

    tr_etag_list_init(&again);
    check(tr_etag_list_add(&again, buf, n) == TR_ETAG_LIST_OK);
    check(again.any == l.any && again.n == l.n);
    for (size_t i = 0; i < l.n; i++) {
        check(again.tags[i].weak == l.tags[i].weak);
        check(tr_etag_weak_eq(&again.tags[i], &l.tags[i]));
    }
    free(buf);
    return 0;
}
