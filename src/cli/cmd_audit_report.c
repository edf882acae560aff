/*
 * treaty audit export (OCSF API Activity or plain JSON lines) and
 * treaty audit summary ("what did the agents do for alice yesterday").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cmd_audit.h"
#include "core/audit_ocsf.h"
#include "core/rfc3339.h"

#define DAY_MS 86400000LL

typedef unsigned long long ull;

static int
print_line(json_t *o)
{
    char *line = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                       JSON_REAL_PRECISION(10))
                   : NULL;

    json_decref(o);
    if (!line)
        return -1;
    puts(line);
    free(line);
    return ferror(stdout) ? -1 : 0;
}

static int
on_export(void *arg, const tr_audit_record *r, const tr_audit_completion *c)
{
    const tr_audit_cli_opts *o = arg;
    tr_audit_record merged = *r;

    if (o->format && !strcmp(o->format, "json"))
        return print_line(tr_audit_cli_record_json(r, c));
    /* A decision is exported once, with the outcome of its completion. */
    if (c && c->present) {
        merged.has_status = c->has_status;
        merged.status = c->status;
        merged.has_latency = c->has_latency;
        merged.latency_us = c->latency_us;
        merged.has_bytes = c->has_bytes;
        merged.bytes = c->bytes;
    }
    return print_line(tr_audit_ocsf_event(&merged, c && c->present
                                                       ? c->seq : 0));
}

static int
walk(tr_audit_cli_opts *o, const tr_audit_cli_where *w, tr_audit_row_fn fn,
     tr_audit_summary_fn sfn, void *arg)
{
    char err[512];
    tr_audit_reader *r = tr_audit_reader_open(w->db, err, sizeof(err));
    int rc;

    if (!r) {
        fprintf(stderr, "treaty audit: %s\n", err);
        return TR_AUDIT_EXIT_ERROR;
    }
    rc = fn ? tr_audit_reader_each(r, &o->f, fn, arg, err, sizeof(err))
            : tr_audit_reader_summary(r, &o->f, sfn, arg, err,
                                      sizeof(err));
    tr_audit_reader_close(r);
    if (rc < 0 && !ferror(stdout))
        fprintf(stderr, "treaty audit: %s\n", err);
    if (rc != 0 || fflush(stdout) != 0 || ferror(stdout))
        return TR_AUDIT_EXIT_ERROR;
    return TR_AUDIT_EXIT_OK;
}

int
tr_audit_cli_export(tr_audit_cli_opts *o, const tr_audit_cli_where *w)
{
    o->f.last = o->n;
    o->f.merge_completions = true;
    return walk(o, w, on_export, NULL, o);
}

/* --- summary ------------------------------------------------------------ */

/* One (actor, chain) group and its routes, in the order SQL gave them. */
typedef struct {
    char *route;
    uint64_t allow, deny, error, other;
} route_sum;

typedef struct {
    char *actor;
    char *chain;
    uint64_t total;
    int64_t first_ms, last_ms;
    route_sum *routes;
    size_t n_routes;
} actor_sum;

typedef struct {
    actor_sum *actors;
    size_t n;
    uint64_t total;
    bool oom;
} summary;

static char *
dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

static bool
same(const char *a, const char *b)
{
    return !strcmp(a, b ? b : "");
}

static int
on_summary_row(void *arg, const tr_audit_summary_row *row)
{
    summary *s = arg;
    actor_sum *a = s->n ? &s->actors[s->n - 1] : NULL;
    route_sum *rt;

    if (!a || !same(a->actor, row->actor) ||
        !same(a->chain, row->delegation_chain)) {
        actor_sum *p = realloc(s->actors, (s->n + 1) * sizeof(*p));

        if (!p)
            goto oom;
        s->actors = p;
        a = &s->actors[s->n++];
        memset(a, 0, sizeof(*a));
        a->actor = dup_or_empty(row->actor);
        a->chain = dup_or_empty(row->delegation_chain);
        a->first_ms = row->first_ms;
        if (!a->actor || !a->chain)
            goto oom;
    }
    rt = a->n_routes ? &a->routes[a->n_routes - 1] : NULL;
    if (!rt || !same(rt->route, row->route)) {
        route_sum *p = realloc(a->routes, (a->n_routes + 1) * sizeof(*p));

        if (!p)
            goto oom;
        a->routes = p;
        rt = &a->routes[a->n_routes++];
        memset(rt, 0, sizeof(*rt));
        rt->route = dup_or_empty(row->route);
        if (!rt->route)
            goto oom;
    }
    if (row->decision && !strcmp(row->decision, "allow"))
        rt->allow += row->count;
    else if (row->decision && !strcmp(row->decision, "deny"))
        rt->deny += row->count;
    else if (row->decision && !strcmp(row->decision, "error"))
        rt->error += row->count;
    else
        rt->other += row->count;
    a->total += row->count;
    s->total += row->count;
    if (row->first_ms < a->first_ms)
        a->first_ms = row->first_ms;
    if (row->last_ms > a->last_ms)
        a->last_ms = row->last_ms;
    return 0;
oom:
    s->oom = true;
    return -1;
}

static void
summary_free(summary *s)
{
    for (size_t i = 0; i < s->n; i++) {
        for (size_t j = 0; j < s->actors[i].n_routes; j++)
            free(s->actors[i].routes[j].route);
        free(s->actors[i].routes);
        free(s->actors[i].actor);
        free(s->actors[i].chain);
    }
    free(s->actors);
}

static const char *
time_text(int64_t ms, char *buf, size_t len)
{
    if (tr_rfc3339_format(ms, buf, len) != 0)
        snprintf(buf, len, "%lld", (long long)ms);
    return buf;
}

static void
print_summary_table(const tr_audit_cli_opts *o, const summary *s,
                    int64_t until)
{
    char t1[32], t2[32], chain[256];

    printf("on behalf of %s%s%s: %llu request(s) from %s to %s\n",
           o->f.principal, o->f.issuer ? "@" : "",
           o->f.issuer ? o->f.issuer : "", (ull)s->total,
           time_text(o->f.since_ms, t1, sizeof(t1)),
           time_text(until, t2, sizeof(t2)));
    for (size_t i = 0; i < s->n; i++) {
        const actor_sum *a = &s->actors[i];
        bool human = !strcmp(a->actor, o->f.principal);

        tr_audit_cli_chain_text(a->actor, a->chain, chain, sizeof(chain));
        printf("\n%s%s: %llu request(s), %s .. %s\n",
               human ? a->actor : chain,
               human ? " (the principal, directly)" : "", (ull)a->total,
               time_text(a->first_ms, t1, sizeof(t1)),
               time_text(a->last_ms, t2, sizeof(t2)));
        printf("    %-32s %7s %7s %7s\n", "route", "allow", "deny",
               "error");
        for (size_t j = 0; j < a->n_routes; j++) {
            const route_sum *r = &a->routes[j];

            printf("    %-32s %7llu %7llu %7llu\n",
                   r->route[0] ? r->route : "(no route)", (ull)r->allow,
                   (ull)r->deny, (ull)(r->error + r->other));
        }
    }
}

static json_t *
summary_json(const tr_audit_cli_opts *o, const summary *s, int64_t until)
{
    json_t *doc = json_object(), *actors = json_array();
    char t[32];

    json_object_set_new(doc, "principal", json_string(o->f.principal));
    json_object_set_new(doc, "issuer", o->f.issuer
                                           ? json_string(o->f.issuer)
                                           : json_null());
    json_object_set_new(doc, "since",
                        json_string(time_text(o->f.since_ms, t,
                                              sizeof(t))));
    json_object_set_new(doc, "until",
                        json_string(time_text(until, t, sizeof(t))));
    json_object_set_new(doc, "total", json_integer((json_int_t)s->total));
    for (size_t i = 0; i < s->n; i++) {
        const actor_sum *a = &s->actors[i];
        json_t *ao = json_object(), *routes = json_array();
        json_t *chain = json_loads(a->chain, 0, NULL);

        json_object_set_new(ao, "actor", json_string(a->actor));
        json_object_set_new(ao, "delegation_chain",
                            chain ? chain : json_array());
        json_object_set_new(ao, "caller_class",
                            json_string(!strcmp(a->actor, o->f.principal)
                                            ? "human" : "agent"));
        json_object_set_new(ao, "total", json_integer((json_int_t)a->total));
        json_object_set_new(ao, "first",
                            json_string(time_text(a->first_ms, t,
                                                  sizeof(t))));
        json_object_set_new(ao, "last",
                            json_string(time_text(a->last_ms, t,
                                                  sizeof(t))));
        for (size_t j = 0; j < a->n_routes; j++) {
            const route_sum *r = &a->routes[j];
            json_t *ro = json_object();

            json_object_set_new(ro, "route", r->route[0]
                                                 ? json_string(r->route)
                                                 : json_null());
            json_object_set_new(ro, "allow", json_integer((json_int_t)
                                                          r->allow));
            json_object_set_new(ro, "deny", json_integer((json_int_t)
                                                         r->deny));
            json_object_set_new(ro, "error",
                                json_integer((json_int_t)(r->error +
                                                          r->other)));
            json_array_append_new(routes, ro);
        }
        json_object_set_new(ao, "routes", routes);
        json_array_append_new(actors, ao);
    }
    json_object_set_new(doc, "actors", actors);
    return doc;
}

int
tr_audit_cli_summary(tr_audit_cli_opts *o, const tr_audit_cli_where *w,
                     int64_t now_ms)
{
    summary s;
    int64_t until = o->f.has_until ? o->f.until_ms : now_ms;
    int rc;

    memset(&s, 0, sizeof(s));
    if (!o->has_since) {
        o->f.has_since = true;
        o->f.since_ms = now_ms - DAY_MS;
    }
    rc = walk(o, w, NULL, on_summary_row, &s);
    if (s.oom)
        fprintf(stderr, "treaty audit: out of memory\n");
    if (rc == TR_AUDIT_EXIT_OK) {
        if (o->json)
            rc = print_line(summary_json(o, &s, until)) == 0
                     ? TR_AUDIT_EXIT_OK : TR_AUDIT_EXIT_ERROR;
        else
            print_summary_table(o, &s, until);
        if (fflush(stdout) != 0 || ferror(stdout))
            rc = TR_AUDIT_EXIT_ERROR;
    }
    summary_free(&s);
    return rc;
}
