/*
 * The list of configuration errors (config_load.h): recording, printing,
 * clearing.  Messages and keys are stored printable (control and
 * non-ASCII bytes become '?') so one error is always one output line,
 * whatever bytes the file held.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

static char *
printable_copy(const char *s)
{
    size_t n = strlen(s);
    char *p = malloc(n + 1);

    if (p == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        p[i] = ch < 0x20 || ch >= 0x7f ? '?' : (char)ch;
    }
    p[n] = '\0';
    return p;
}

static void
push(tr_config_errors *errs, const char *file, unsigned line,
     unsigned column, const char *key, const char *message)
{
    tr_config_error *items, *e;

    items = realloc(errs->items, (errs->n + 1) * sizeof(*items));
    if (items == NULL)
        return;  /* the caller fails anyway; losing a message is all */
    errs->items = items;
    e = &items[errs->n];
    e->file = printable_copy(file ? file : "-");
    e->key = printable_copy(key ? key : "");
    e->message = printable_copy(message);
    e->line = line;
    e->column = column;
    if (e->file == NULL || e->key == NULL || e->message == NULL) {
        free(e->file);
        free(e->key);
        free(e->message);
        return;
    }
    errs->n++;
}

size_t
tr_cfg_error_count(const tr_cfgx *c)
{
    return c->errs->n - c->errs_at_start;
}

void
tr_cfg_error_at(tr_cfgx *c, unsigned line, unsigned column,
                const char *path, const char *message)
{
    size_t n = tr_cfg_error_count(c);

    if (n > TR_CONFIG_MAX_ERRORS)
        return;
    if (n == TR_CONFIG_MAX_ERRORS) {
        push(c->errs, c->file, line, column, "",
             "too many errors; the rest are not shown");
        return;
    }
    push(c->errs, c->file, line, column, path, message);
}

void
tr_cfg_error(tr_cfgx *c, const tr_yaml_node *at, const char *path,
             const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    tr_cfg_error_at(c, at ? at->line : 0, at ? at->column : 0, path, msg);
}

/* Errors in file order (stable: equal positions keep the order found),
 * which is how a person fixes them. */
void
tr_cfg_sort_errors(tr_cfgx *c)
{
    tr_config_error *e = c->errs->items + c->errs_at_start;
    size_t n = tr_cfg_error_count(c);

    for (size_t i = 1; i < n; i++) {
        tr_config_error x = e[i];
        size_t j = i;
        while (j > 0 && (e[j - 1].line > x.line ||
                         (e[j - 1].line == x.line &&
                          e[j - 1].column > x.column))) {
            e[j] = e[j - 1];
            j--;
        }
        e[j] = x;
    }
}

void
tr_config_errors_clear(tr_config_errors *errs)
{
    if (errs == NULL)
        return;
    for (size_t i = 0; i < errs->n; i++) {
        free(errs->items[i].file);
        free(errs->items[i].key);
        free(errs->items[i].message);
    }
    free(errs->items);
    errs->items = NULL;
    errs->n = 0;
}

int
tr_config_errors_print(const tr_config_errors *errs, FILE *out)
{
    int printed = 0;

    for (size_t i = 0; i < errs->n; i++) {
        const tr_config_error *e = &errs->items[i];
        const char *sep = e->key[0] ? ": " : "";
        if (e->line > 0)
            fprintf(out, "%s:%u:%u: %s%s%s\n", e->file, e->line, e->column,
                    e->key, sep, e->message);
        else
            fprintf(out, "%s: %s%s%s\n", e->file, e->key, sep, e->message);
        printed++;
    }
    return printed;
}
