/*
 * Reading typed values out of the YAML tree: scalars, lists, enums, and
 * the table-driven mapping walker every section uses.  Each reader
 * reports exactly what is wrong with the value and where.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"

void
tr_cfg_path_key(char *out, const char *parent, const char *key)
{
    snprintf(out, TR_CFG_PATH_MAX, "%s%s%s", parent, parent[0] ? "." : "",
             key);
}

void
tr_cfg_path_index(char *out, const char *parent, size_t i)
{
    snprintf(out, TR_CFG_PATH_MAX, "%s[%zu]", parent, i);
}

const char *
tr_cfg_show(const tr_yaml_node *v, char *buf, size_t cap)
{
    size_t n = 0;

    if (cap == 0)
        return "";
    if (v == NULL || v->kind != TR_YAML_SCALAR) {
        snprintf(buf, cap, "%s", v && v->kind == TR_YAML_SEQ ? "(a list)"
                                                            : "(a mapping)");
        return buf;
    }
    for (size_t i = 0; i < v->len && n + 4 < cap; i++) {
        unsigned char ch = (unsigned char)v->value[i];
        buf[n++] = ch < 0x20 || ch >= 0x7f ? '?' : (char)ch;
        if (n == 40 && i + 1 < v->len) {
            memcpy(buf + n, "...", 3);
            n += 3;
            break;
        }
    }
    buf[n] = '\0';
    return buf;
}

static const char *
kind_name(tr_yaml_kind k)
{
    return k == TR_YAML_SEQ ? "a list" : k == TR_YAML_MAP ? "a mapping"
                                                           : "a scalar";
}

bool
tr_cfg_is_null(const tr_yaml_node *v)
{
    static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };

    if (v->kind != TR_YAML_SCALAR || !v->plain)
        return false;
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
        if (strcmp(v->value, nulls[i]) == 0 && strlen(nulls[i]) == v->len)
            return true;
    return false;
}

/* The YAML 1.1 spellings of booleans: a plain one of these is what a
 * reader of the file may take for a boolean. */
static bool
looks_boolean(const tr_yaml_node *v)
{
    static const char *const words[] = {
        "y", "yes", "n", "no", "true", "false", "on", "off",
    };

    if (v->kind != TR_YAML_SCALAR || memchr(v->value, 0, v->len))
        return false;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasecmp(v->value, words[i]) == 0)
            return true;
    return false;
}

const tr_yaml_node *
tr_cfg_find(const tr_yaml_node *map, const char *key)
{
    size_t n = strlen(key);

    if (map->kind != TR_YAML_MAP)
        return map;
    for (size_t p = 0; p < map->n; p++) {
        const tr_yaml_node *k = map->items[2 * p];
        if (k->kind == TR_YAML_SCALAR && k->len == n &&
            memcmp(k->value, key, n) == 0)
            return map->items[2 * p + 1];
    }
    return map;
}

bool
tr_cfg_max_entries(tr_cfgx *c, const tr_yaml_node *v, const char *path,
                   size_t max)
{
    if (v->n <= max)
        return true;
    tr_cfg_error(c, v, path, "%zu entries; at most %zu are allowed", v->n,
                 max);
    return false;
}

bool
tr_cfg_expect(tr_cfgx *c, const tr_yaml_node *v, const char *path,
              tr_yaml_kind kind)
{
    if (v->bad)
        return false;
    if (v->kind == kind)
        return true;
    if (tr_cfg_is_null(v))
        tr_cfg_error(c, v, path, "missing value: expected %s",
                     kind_name(kind));
    else
        tr_cfg_error(c, v, path, "expected %s, got %s", kind_name(kind),
                     kind_name(v->kind));
    return false;
}

/* A scalar, not null: the common first check of the readers. */
static bool
scalar(tr_cfgx *c, const tr_yaml_node *v, const char *path,
       const char *what)
{
    if (v->bad)
        return false;
    if (v->kind != TR_YAML_SCALAR) {
        tr_cfg_error(c, v, path, "expected %s, got %s", what,
                     kind_name(v->kind));
        return false;
    }
    if (tr_cfg_is_null(v)) {
        tr_cfg_error(c, v, path, "missing value: expected %s", what);
        return false;
    }
    return true;
}

bool
tr_cfg_str(tr_cfgx *c, const tr_yaml_node *v, const char *path,
           char **out)
{
    char show[64];

    if (!scalar(c, v, path, "a string"))
        return false;
    for (size_t i = 0; i < v->len; i++) {
        unsigned char ch = (unsigned char)v->value[i];
        if (ch < 0x20 || ch == 0x7f) {
            tr_cfg_error(c, v, path, "control characters are not allowed "
                         "in strings");
            return false;
        }
    }
    if (v->plain && looks_boolean(v)) {
        tr_cfg_error(c, v, path, "'%s' reads as a boolean in YAML; quote "
                     "it if you mean the string", tr_cfg_show(v, show,
                                                              sizeof(show)));
        return false;
    }
    *out = tr_arena_strndup(c->a, v->value, v->len);
    if (*out == NULL) {
        tr_cfg_error(c, v, path, "out of memory");
        return false;
    }
    return true;
}

bool
tr_cfg_bool(tr_cfgx *c, const tr_yaml_node *v, const char *path,
            bool *out)
{
    char show[64];

    if (!scalar(c, v, path, "true or false"))
        return false;
    if (v->plain && strcmp(v->value, "true") == 0 && v->len == 4) {
        *out = true;
        return true;
    }
    if (v->plain && strcmp(v->value, "false") == 0 && v->len == 5) {
        *out = false;
        return true;
    }
    tr_cfg_show(v, show, sizeof(show));
    if (looks_boolean(v))
        tr_cfg_error(c, v, path, "'%s' is not accepted as a boolean: write "
                     "true or false, unquoted", show);
    else
        tr_cfg_error(c, v, path, "expected true or false, got '%s'", show);
    return false;
}

bool
tr_cfg_int(tr_cfgx *c, const tr_yaml_node *v, const char *path,
           int64_t lo, int64_t hi, int64_t *out)
{
    char show[64];
    const char *s = v->value;
    size_t i = 0;
    long long x;
    char *end;

    if (!scalar(c, v, path, "an integer"))
        return false;
    tr_cfg_show(v, show, sizeof(show));
    if (!v->plain) {
        tr_cfg_error(c, v, path, "expected an integer, got the quoted "
                     "string '%s'", show);
        return false;
    }
    if (s[0] == '-')
        i = 1;
    if (i == v->len || v->len - i > 19 ||
        strspn(s + i, "0123456789") != v->len - i) {
        tr_cfg_error(c, v, path, "expected a decimal integer, got '%s'",
                     show);
        return false;
    }
    if (s[i] == '0' && v->len - i > 1) {
        tr_cfg_error(c, v, path, "leading zeros are not allowed (YAML 1.1 "
                     "reads '%s' as octal)", show);
        return false;
    }
    errno = 0;
    x = strtoll(s, &end, 10);
    if (errno != 0 || x < lo || x > hi) {
        tr_cfg_error(c, v, path, "%s is out of range: must be between %lld "
                     "and %lld", show, (long long)lo, (long long)hi);
        return false;
    }
    *out = x;
    return true;
}

bool
tr_cfg_double(tr_cfgx *c, const tr_yaml_node *v, const char *path,
              double lo, double hi, double *out)
{
    char show[64];
    const char *s = v->value;
    size_t digits, frac = 0;
    double x;

    if (!scalar(c, v, path, "a number"))
        return false;
    tr_cfg_show(v, show, sizeof(show));
    digits = strspn(s, "0123456789");
    if (digits > 0 && digits < v->len && s[digits] == '.')
        frac = strspn(s + digits + 1, "0123456789");
    if (!v->plain || digits == 0 || digits > 15 ||
        (digits < v->len && (s[digits] != '.' || frac == 0 ||
                             digits + 1 + frac != v->len))) {
        tr_cfg_error(c, v, path, "expected a decimal number like 10 or "
                     "0.5, got '%s'", show);
        return false;
    }
    x = strtod(s, NULL);
    if (!(x >= lo && x <= hi)) {
        tr_cfg_error(c, v, path, "%s is out of range: must be between %g "
                     "and %g", show, lo, hi);
        return false;
    }
    *out = x;
    return true;
}

bool
tr_cfg_strlist(tr_cfgx *c, const tr_yaml_node *v, const char *path,
               tr_strlist *out)
{
    char ip[TR_CFG_PATH_MAX];
    bool ok = true;

    if (!tr_cfg_expect(c, v, path, TR_YAML_SEQ))
        return false;
    out->n = 0;
    out->items = tr_arena_calloc(c->a, v->n, sizeof(char *));
    if (out->items == NULL) {
        tr_cfg_error(c, v, path, "out of memory");
        return false;
    }
    for (size_t i = 0; i < v->n; i++) {
        tr_cfg_path_index(ip, path, i);
        if (tr_cfg_str(c, v->items[i], ip, &out->items[out->n]))
            out->n++;
        else
            ok = false;
    }
    return ok;
}

bool
tr_cfg_enum_value(tr_cfgx *c, const tr_yaml_node *v, const char *path,
                  const tr_cfg_enum *names, int *out)
{
    char show[64], list[256];
    size_t n = 0;

    if (!scalar(c, v, path, "a name"))
        return false;
    for (const tr_cfg_enum *e = names; e->name != NULL; e++)
        if (strlen(e->name) == v->len && strcmp(e->name, v->value) == 0) {
            *out = e->value;
            return true;
        }
    list[0] = '\0';
    for (const tr_cfg_enum *e = names; e->name != NULL && n < sizeof(list);
         e++)
        n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s",
                              e == names ? "" : ", ", e->name);
    tr_cfg_error(c, v, path, "must be one of: %s; got '%s'", list,
                 tr_cfg_show(v, show, sizeof(show)));
    return false;
}

bool
tr_cfg_name(tr_cfgx *c, const tr_yaml_node *v, const char *path,
            const char *s)
{
    size_t n = strlen(s);
    char show[64];

    if (n >= 1 && n <= TR_CFG_NAME_MAX &&
        strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                  "0123456789_.-") == n)
        return true;
    tr_cfg_error(c, v, path, "'%s' is not a valid name: use 1 to 64 "
                 "letters, digits, '_', '.' or '-'",
                 tr_cfg_show(v, show, sizeof(show)));
    return false;
}

/* Levenshtein distance, for "did you mean" on unknown keys; short keys
 * only. */
static size_t
distance(const char *a, size_t an, const char *b, size_t bn)
{
    size_t row[33];

    if (an > 32 || bn > 32)
        return 99;
    for (size_t j = 0; j <= bn; j++)
        row[j] = j;
    for (size_t i = 1; i <= an; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= bn; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[bn];
}

static void
unknown_key(tr_cfgx *c, const tr_yaml_node *k, const char *path,
            const tr_field *fields, size_t n)
{
    const char *best = NULL;
    size_t bd = 3;
    char show[64];

    for (size_t i = 0; i < n; i++) {
        size_t d = distance(k->value, k->len, fields[i].key,
                            strlen(fields[i].key));
        if (d < bd) {
            bd = d;
            best = fields[i].key;
        }
    }
    tr_cfg_show(k, show, sizeof(show));
    if (best != NULL)
        tr_cfg_error(c, k, path, "unknown key '%s' (did you mean '%s'?)",
                     show, best);
    else
        tr_cfg_error(c, k, path, "unknown key '%s'", show);
}

static void
read_field(tr_cfgx *c, const tr_field *f, const tr_yaml_node *v,
           const char *kp, void *obj)
{
    char *at = (char *)obj + f->off;
    int64_t i;
    double d;
    int e;

    switch (f->type) {
    case TR_F_STR:
        tr_cfg_str(c, v, kp, (char **)at);
        break;
    case TR_F_STRLIST:
        tr_cfg_strlist(c, v, kp, (tr_strlist *)at);
        break;
    case TR_F_BOOL:
        tr_cfg_bool(c, v, kp, (bool *)at);
        break;
    case TR_F_U32:
        if (tr_cfg_int(c, v, kp, f->lo, f->hi, &i))
            *(uint32_t *)at = (uint32_t)i;
        break;
    case TR_F_U64:
        if (tr_cfg_int(c, v, kp, f->lo, f->hi, &i))
            *(uint64_t *)at = (uint64_t)i;
        break;
    case TR_F_I32:
        if (tr_cfg_int(c, v, kp, f->lo, f->hi, &i))
            *(int *)at = (int)i;
        break;
    case TR_F_F64:
        if (tr_cfg_double(c, v, kp, (double)f->lo, (double)f->hi, &d))
            *(double *)at = d;
        break;
    case TR_F_ENUM:
        if (tr_cfg_enum_value(c, v, kp, f->names, &e))
            *(int *)at = e;
        break;
    case TR_F_NODE:
        *(const tr_yaml_node **)at = v;
        break;
    case TR_F_FN:
        f->fn(c, v, kp, obj);
        break;
    }
}

uint64_t
tr_cfg_walk(tr_cfgx *c, const tr_yaml_node *map, const char *path,
            const tr_field *fields, size_t n, void *obj)
{
    uint64_t seen = 0;
    char kp[TR_CFG_PATH_MAX];

    if (!tr_cfg_expect(c, map, path, TR_YAML_MAP))
        return 0;
    for (size_t p = 0; p < map->n; p++) {
        const tr_yaml_node *k = map->items[2 * p];
        const tr_yaml_node *v = map->items[2 * p + 1];
        size_t j;

        if (k->bad || k->kind != TR_YAML_SCALAR)
            continue;
        for (j = 0; j < n; j++)
            if (strlen(fields[j].key) == k->len &&
                memcmp(fields[j].key, k->value, k->len) == 0)
                break;
        tr_cfg_path_key(kp, path, k->value);
        if (j == n) {
            unknown_key(c, k, kp, fields, n);
            continue;
        }
        seen |= 1ull << j;
        if (!v->bad)
            read_field(c, &fields[j], v, kp, obj);
    }
    for (size_t j = 0; j < n; j++)
        if (fields[j].required && !(seen & (1ull << j))) {
            tr_cfg_path_key(kp, path, fields[j].key);
            tr_cfg_error(c, map, kp, "missing required key '%s'",
                         fields[j].key);
        }
    return seen;
}
