#include "core/ratelimit_headers.h"

#include <string.h>

#define NAME_MAX_LEN 64

bool
tr_ratelimit_name_ok(const char *name)
{
    size_t i;

    if (name == NULL || name[0] == '\0')
        return false;
    for (i = 0; name[i] != '\0'; i++) {
        if (i >= NAME_MAX_LEN || name[i] < 0x20 || name[i] > 0x7e)
            return false;
    }
    return true;
}

/* A bounded writer: any overflow sticks, and the result is -1. */
typedef struct {
    char *buf;
    size_t cap;
    size_t len;
    bool bad;
} writer;

static void
put(writer *w, const char *s, size_t n)
{
    if (w->bad || n >= w->cap - w->len) {
        w->bad = true;
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

static void
put_str(writer *w, const char *s)
{
    put(w, s, strlen(s));
}

static void
put_u64(writer *w, const char *prefix, uint64_t v)
{
    char tmp[20];
    size_t n = sizeof(tmp);

    /* Digits from the right; no snprintf on the per-response path. */
    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    put_str(w, prefix);
    put(w, tmp + n, sizeof(tmp) - n);
}

/* An sf-string: DQUOTE, `"` and `\` escaped, DQUOTE. */
static void
put_sf_string(writer *w, const char *s)
{
    put(w, "\"", 1);
    /* Runs without a quote or backslash (every policy name in practice)
     * are copied in one piece: this is on every response. */
    while (*s != '\0') {
        size_t run = strcspn(s, "\"\\");
        put(w, s, run);
        s += run;
        if (*s != '\0') {
            put(w, "\\", 1);
            put(w, s, 1);
            s++;
        }
    }
    put(w, "\"", 1);
}

static int
writer_end(writer *w)
{
    if (w->bad || w->len > (size_t)INT32_MAX)
        return -1;
    return (int)w->len;
}

static bool
writer_start(writer *w, char *buf, size_t cap)
{
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->bad = cap == 0;
    if (!w->bad)
        buf[0] = '\0';
    return !w->bad;
}

int
tr_ratelimit_policy_format(char *buf, size_t cap,
                           const tr_ratelimit_item *items, size_t n)
{
    writer w;
    size_t i;

    if (!writer_start(&w, buf, cap))
        return -1;
    for (i = 0; i < n; i++) {
        if (!tr_ratelimit_name_ok(items[i].name))
            return -1;
        if (i > 0)
            put(&w, ", ", 2);
        put_sf_string(&w, items[i].name);
        put_u64(&w, ";q=", items[i].q);
        if (items[i].w > 0)
            put_u64(&w, ";w=", items[i].w);
        if (items[i].concurrent)
            put_str(&w, ";qu=\"concurrent-requests\"");
    }
    return writer_end(&w);
}

int
tr_ratelimit_format(char *buf, size_t cap, const tr_ratelimit_item *items,
                    size_t n)
{
    writer w;
    size_t i;

    if (!writer_start(&w, buf, cap))
        return -1;
    for (i = 0; i < n; i++) {
        if (!tr_ratelimit_name_ok(items[i].name))
            return -1;
        if (i > 0)
            put(&w, ", ", 2);
        put_sf_string(&w, items[i].name);
        put_u64(&w, ";r=", items[i].r);
        if (items[i].t >= 0)
            put_u64(&w, ";t=", (uint64_t)items[i].t);
    }
    return writer_end(&w);
}

int
tr_ratelimit_add_violated(json_t *problem, const char *const *names,
                          size_t n)
{
    json_t *arr = json_array();
    size_t i;

    if (arr == NULL)
        return -1;
    for (i = 0; i < n; i++) {
        if (json_array_append_new(arr, json_string(names[i])) != 0) {
            json_decref(arr);
            return -1;
        }
    }
    return json_object_set_new(problem, "violated-policies", arr) == 0
               ? 0
               : -1;
}
