/*
 * libyaml events to a position-keeping tree (yaml_tree.h).  Iterative,
 * with an explicit stack bounded by TR_YAML_MAX_DEPTH, so hostile nesting
 * cannot exhaust the C stack.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config/yaml_tree.h"

typedef struct {
    tr_yaml_node *node;
    tr_yaml_node **kids;       /* children so far (malloc'd) */
    size_t n, cap;
    char path[TR_YAML_PATH_MAX];
} frame;

typedef struct {
    tr_arena *a;
    tr_yaml_report *report;
    void *ud;
    frame st[TR_YAML_MAX_DEPTH];
    size_t depth;
    tr_yaml_node *root;
    bool fatal;
} builder;

static void
report(builder *b, unsigned line, unsigned col, const char *path,
       const char *fmt, const char *arg)
{
    char msg[256];

    snprintf(msg, sizeof(msg), fmt, arg);
    b->report(b->ud, line, col, path, msg);
}

/* The key path of the next child of the innermost open container. */
static void
child_path(const builder *b, char *out, size_t cap)
{
    const frame *f;

    if (b->depth == 0) {
        out[0] = '\0';
        return;
    }
    f = &b->st[b->depth - 1];
    if (f->node->kind == TR_YAML_SEQ) {
        snprintf(out, cap, "%s[%zu]", f->path, f->n);
    } else if (f->n % 2 == 0) {
        snprintf(out, cap, "%s", f->path);  /* a key */
    } else {
        const tr_yaml_node *k = f->kids[f->n - 1];
        const char *name = k->kind == TR_YAML_SCALAR ? k->value : "?";
        snprintf(out, cap, "%s%s%s", f->path, f->path[0] ? "." : "",
                 name);
    }
}

static tr_yaml_node *
new_node(builder *b, tr_yaml_kind kind, const yaml_mark_t *m)
{
    tr_yaml_node *n = tr_arena_calloc(b->a, 1, sizeof(*n));

    if (n == NULL) {
        b->fatal = true;
        report(b, 0, 0, "", "out of memory reading YAML%s", "");
        return NULL;
    }
    n->kind = kind;
    n->line = (unsigned)(m->line + 1);
    n->column = (unsigned)(m->column + 1);
    return n;
}

static void
attach(builder *b, tr_yaml_node *n)
{
    frame *f;

    if (b->depth == 0) {
        b->root = n;
        return;
    }
    f = &b->st[b->depth - 1];
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        tr_yaml_node **k = realloc(f->kids, cap * sizeof(*k));
        if (k == NULL) {
            b->fatal = true;
            report(b, 0, 0, "", "out of memory reading YAML%s", "");
            return;
        }
        f->kids = k;
        f->cap = cap;
    }
    f->kids[f->n++] = n;
}

/* Anchors and tags make a configuration harder to read and are refused;
 * `path` is where the node sits. */
static void
check_decorations(builder *b, const yaml_mark_t *m, const char *path,
                  const yaml_char_t *anchor, const yaml_char_t *tag)
{
    if (anchor != NULL)
        report(b, (unsigned)m->line + 1, (unsigned)m->column + 1, path,
               "anchors (&%s) are not allowed; write the value out",
               (const char *)anchor);
    if (tag != NULL)
        report(b, (unsigned)m->line + 1, (unsigned)m->column + 1, path,
               "explicit tags (%s) are not allowed", (const char *)tag);
}

typedef struct {
    const tr_yaml_node *key;
    size_t index;
} keyref;

static int
cmp_keyref(const void *pa, const void *pb)
{
    const keyref *a = pa, *b = pb;
    size_t m = a->key->len < b->key->len ? a->key->len : b->key->len;
    int c = memcmp(a->key->value, b->key->value, m);

    if (c != 0)
        return c;
    if (a->key->len != b->key->len)
        return a->key->len < b->key->len ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

/* Keys must be scalars and unique.  Sorting finds duplicates in
 * O(n log n), so a file with many keys cannot make this quadratic. */
static void
check_keys(builder *b, const frame *f)
{
    size_t pairs = f->n / 2, nk = 0;
    keyref *refs;

    if (pairs == 0)
        return;
    refs = malloc(pairs * sizeof(*refs));
    if (refs == NULL) {
        b->fatal = true;
        return;
    }
    for (size_t i = 0; i < pairs; i++) {
        tr_yaml_node *k = f->kids[2 * i];
        if (k->kind != TR_YAML_SCALAR) {
            report(b, k->line, k->column, f->path,
                   "mapping keys must be plain strings%s", "");
            k->bad = true;
            continue;
        }
        refs[nk].key = k;
        refs[nk].index = i;
        nk++;
    }
    qsort(refs, nk, sizeof(*refs), cmp_keyref);
    /* Equal keys are now adjacent, in file order: report each later
     * occurrence, pointing back at the first. */
    for (size_t i = 1, first = 0; i < nk; i++) {
        const tr_yaml_node *k = refs[i].key, *f0 = refs[first].key;
        char path[TR_YAML_PATH_MAX], msg[160];
        if (k->len != f0->len || memcmp(k->value, f0->value, k->len) != 0) {
            first = i;
            continue;
        }
        snprintf(path, sizeof(path), "%s%s%s", f->path,
                 f->path[0] ? "." : "", k->value);
        snprintf(msg, sizeof(msg), "duplicate key (first defined at line "
                 "%u, column %u)", f0->line, f0->column);
        b->report(b->ud, k->line, k->column, path, msg);
        f->kids[2 * refs[i].index + 1]->bad = true;
    }
    free(refs);
}

static void
open_container(builder *b, tr_yaml_kind kind, const yaml_event_t *ev)
{
    char path[TR_YAML_PATH_MAX];
    const yaml_char_t *anchor, *tag;
    tr_yaml_node *n;

    child_path(b, path, sizeof(path));
    if (kind == TR_YAML_SEQ) {
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
    } else {
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
    }
    check_decorations(b, &ev->start_mark, path, anchor, tag);
    if (b->depth == TR_YAML_MAX_DEPTH) {
        report(b, (unsigned)ev->start_mark.line + 1,
               (unsigned)ev->start_mark.column + 1, path,
               "nesting deeper than %s levels", "64");
        b->fatal = true;
        return;
    }
    n = new_node(b, kind, &ev->start_mark);
    if (n == NULL)
        return;
    frame *f = &b->st[b->depth++];
    f->node = n;
    f->kids = NULL;
    f->n = f->cap = 0;
    snprintf(f->path, sizeof(f->path), "%s", path);
}

static void
close_container(builder *b)
{
    frame *f = &b->st[b->depth - 1];
    tr_yaml_node *n = f->node;

    if (n->kind == TR_YAML_MAP)
        check_keys(b, f);
    if (f->n > 0) {
        n->items = tr_arena_calloc(b->a, f->n, sizeof(*n->items));
        if (n->items == NULL) {
            b->fatal = true;
            return;
        }
        memcpy(n->items, f->kids, f->n * sizeof(*n->items));
    }
    n->n = n->kind == TR_YAML_MAP ? f->n / 2 : f->n;
    free(f->kids);
    f->kids = NULL;
    b->depth--;
    attach(b, n);
}

static void
add_scalar(builder *b, const yaml_event_t *ev)
{
    char path[TR_YAML_PATH_MAX];
    tr_yaml_node *n;

    child_path(b, path, sizeof(path));
    check_decorations(b, &ev->start_mark, path, ev->data.scalar.anchor,
                      ev->data.scalar.tag);
    n = new_node(b, TR_YAML_SCALAR, &ev->start_mark);
    if (n == NULL)
        return;
    n->value = tr_arena_strndup(b->a, (const char *)ev->data.scalar.value,
                                ev->data.scalar.length);
    if (n->value == NULL) {
        b->fatal = true;
        return;
    }
    n->len = ev->data.scalar.length;
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    attach(b, n);
}

static void
add_alias(builder *b, const yaml_event_t *ev)
{
    char path[TR_YAML_PATH_MAX];
    tr_yaml_node *n;

    child_path(b, path, sizeof(path));
    report(b, (unsigned)ev->start_mark.line + 1,
           (unsigned)ev->start_mark.column + 1, path,
           "aliases (*%s) are not allowed; write the value out",
           (const char *)ev->data.alias.anchor);
    n = new_node(b, TR_YAML_SCALAR, &ev->start_mark);
    if (n == NULL)
        return;
    n->value = "";
    n->bad = true;
    attach(b, n);
}

/* Line and column of a byte offset, for reader (encoding) errors, which
 * libyaml reports by offset only. */
static void
offset_position(const char *buf, size_t len, size_t off, unsigned *line,
                unsigned *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (buf[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static void
syntax_error(builder *b, const yaml_parser_t *p, const char *buf,
             size_t len)
{
    char path[TR_YAML_PATH_MAX], msg[256];
    unsigned line, col;

    child_path(b, path, sizeof(path));
    if (p->error == YAML_READER_ERROR) {
        offset_position(buf, len, p->problem_offset, &line, &col);
    } else {
        line = (unsigned)p->problem_mark.line + 1;
        col = (unsigned)p->problem_mark.column + 1;
    }
    snprintf(msg, sizeof(msg), "YAML syntax error: %s%s%s",
             p->problem ? p->problem : "unknown problem",
             p->context ? " " : "", p->context ? p->context : "");
    b->report(b->ud, line, col, path, msg);
}

tr_yaml_node *
tr_yaml_parse(const char *buf, size_t len, tr_arena *a,
              tr_yaml_report *rep, void *ud)
{
    yaml_parser_t p;
    yaml_event_t ev;
    builder *b = calloc(1, sizeof(*b));
    tr_yaml_node *root = NULL;
    int docs = 0;
    bool done = false, ok = true;

    if (b == NULL)
        return NULL;
    b->a = a;
    b->report = rep;
    b->ud = ud;
    if (!yaml_parser_initialize(&p)) {
        free(b);
        return NULL;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);

    while (!done && !b->fatal) {
        if (!yaml_parser_parse(&p, &ev)) {
            syntax_error(b, &p, buf, len);
            ok = false;
            break;
        }
        switch (ev.type) {
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                report(b, (unsigned)ev.start_mark.line + 1,
                       (unsigned)ev.start_mark.column + 1, "",
                       "more than one YAML document in the file%s", "");
                b->fatal = true;
            }
            break;
        case YAML_SCALAR_EVENT:
            add_scalar(b, &ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
            open_container(b, TR_YAML_SEQ, &ev);
            break;
        case YAML_MAPPING_START_EVENT:
            open_container(b, TR_YAML_MAP, &ev);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            if (b->depth > 0)
                close_container(b);
            break;
        case YAML_ALIAS_EVENT:
            add_alias(b, &ev);
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }

    if (ok && !b->fatal)
        root = b->root;
    for (size_t i = 0; i < b->depth; i++)
        free(b->st[i].kids);
    yaml_parser_delete(&p);
    free(b);
    return root;
}
