/*
 * The `upstreams:` section: named backends, each an http:// URL with
 * pool settings and what to do with the client's Authorization field.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config_internal.h"
#include "core/target.h"

#define AUTH_VALUE_MAX 8192

static const tr_cfg_enum auth_names[] = {
    { "forward", TR_UPSTREAM_AUTH_FORWARD },
    { "strip", TR_UPSTREAM_AUTH_STRIP },
    { "replace", TR_UPSTREAM_AUTH_REPLACE },
    { NULL, 0 },
};

static void
f_url(tr_cfgx *c, const tr_yaml_node *v, const char *path, void *obj)
{
    tr_upstream_cfg *u = obj;
    char *s, host[256];
    const char *why, *auth, *slash;
    char authority[300];
    size_t an, bn;

    if (!tr_cfg_str(c, v, path, &s))
        return;
    if (strncasecmp(s, "https://", 8) == 0) {
        tr_cfg_error(c, v, path, "https:// upstreams are not supported "
                     "yet (TLS is not in the first release); use "
                     "http://host:port");
        return;
    }
    if (strncasecmp(s, "http://", 7) != 0) {
        tr_cfg_error(c, v, path, "'%s' is not an http://host:port[/base] "
                     "URL", s);
        return;
    }
    if (strpbrk(s, "?#") != NULL) {
        tr_cfg_error(c, v, path, "an upstream URL has no query or "
                     "fragment");
        return;
    }
    auth = s + 7;
    slash = strchr(auth, '/');
    an = slash ? (size_t)(slash - auth) : strlen(auth);
    if (memchr(auth, '@', an) != NULL) {
        tr_cfg_error(c, v, path, "user information in an upstream URL is "
                     "not supported; use authorization: replace");
        return;
    }
    if (an == 0 || an >= sizeof(authority)) {
        tr_cfg_error(c, v, path, "missing host in '%s'", s);
        return;
    }
    memcpy(authority, auth, an);
    authority[an] = '\0';
    why = tr_cfg_parse_hostport(authority, 80, false, host, sizeof(host),
                                &u->port);
    if (why != NULL) {
        tr_cfg_error(c, v, path, "'%s': %s", authority, why);
        return;
    }

    /* The base path, without a trailing slash, must be a normalised
     * path: it is prefixed to every forwarded path as is. */
    bn = slash ? strlen(slash) : 0;
    if (bn > 0 && slash[bn - 1] == '/')
        bn--;
    if (bn > 0 && !tr_target_path_is_normal(slash, bn)) {
        tr_cfg_error(c, v, path, "base path '%s' is not a normalised path "
                     "(no dot segments, '//', %%2F or lower-case hex)",
                     slash);
        return;
    }
    u->url = s;
    u->host = tr_arena_strndup(c->a, host, strlen(host));
    u->base_path = tr_arena_strndup(c->a, bn ? slash : "", bn);
}

#define U(k, t, m, lo, hi) TR_FIELD(k, t, tr_upstream_cfg, m, lo, hi)

static const tr_field fields[] = {
    TR_FIELD_FN("url", f_url, true),
    U("connect_timeout_ms", TR_F_U32, connect_timeout_ms, 1, 600000),
    U("response_timeout_ms", TR_F_U32, response_timeout_ms, 1, 3600000),
    U("max_connections", TR_F_U32, max_connections, 1, 100000),
    U("idle_timeout_ms", TR_F_U32, idle_timeout_ms, 1, 3600000),
    TR_FIELD_ENUM("authorization", tr_upstream_cfg, authorization,
                  auth_names),
    U("authorization_file", TR_F_STR, authorization_file, 0, 0),
};

/*
 * Reads the Authorization value for `authorization: replace`.  It becomes
 * a header value, so it must be visible ASCII, spaces and tabs, on one
 * line.  The content is a secret: no message ever quotes it.
 */
static void
read_auth_file(tr_cfgx *c, const tr_yaml_node *at, const char *path,
               tr_upstream_cfg *u)
{
    char buf[AUTH_VALUE_MAX + 2];
    struct stat st;
    size_t n = 0;
    int fd;

    /* Non-blocking, and regular files only: a FIFO named here must not
     * hang the loader. */
    fd = open(u->authorization_file, O_RDONLY | O_CLOEXEC | O_NONBLOCK |
                                         O_NOCTTY);
    if (fd < 0) {
        tr_cfg_error(c, at, path, "cannot open '%s': %s",
                     u->authorization_file, strerror(errno));
        return;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        tr_cfg_error(c, at, path, "'%s' is not a regular file",
                     u->authorization_file);
        close(fd);
        return;
    }
    while (n < sizeof(buf)) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (n == 0 || n > AUTH_VALUE_MAX) {
        tr_cfg_error(c, at, path, "'%s' must hold one header value of 1 "
                     "to %d bytes", u->authorization_file, AUTH_VALUE_MAX);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)buf[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            tr_cfg_error(c, at, path, "'%s' holds a line break or control "
                         "character; it must be one header value",
                         u->authorization_file);
            return;
        }
    }
    u->authorization_value = tr_arena_strndup(c->a, buf, n);
    memset(buf, 0, sizeof(buf));
}

void
tr_cfg_load_upstreams(tr_cfgx *c, const tr_yaml_node *v)
{
    tr_config *cfg = c->cfg;
    char kp[TR_CFG_PATH_MAX], fp[TR_CFG_PATH_MAX];

    if (!tr_cfg_expect(c, v, "upstreams", TR_YAML_MAP))
        return;
    if (!tr_cfg_max_entries(c, v, "upstreams", TR_CFG_MAX_NAMED))
        return;
    if (v->n == 0) {
        tr_cfg_error(c, v, "upstreams", "at least one upstream is needed");
        return;
    }
    cfg->upstreams = tr_arena_calloc(c->a, v->n, sizeof(tr_upstream_cfg));
    if (cfg->upstreams == NULL)
        return;
    for (size_t i = 0; i < v->n; i++) {
        const tr_yaml_node *k = v->items[2 * i], *body = v->items[2 * i + 1];
        tr_upstream_cfg *u = &cfg->upstreams[cfg->n_upstreams];

        if (k->bad || k->kind != TR_YAML_SCALAR)
            continue;
        tr_cfg_path_key(kp, "upstreams", k->value);
        if (!tr_cfg_name(c, k, kp, k->value))
            continue;
        u->name = tr_arena_strndup(c->a, k->value, k->len);
        u->connect_timeout_ms = 2000;
        u->response_timeout_ms = 30000;
        u->max_connections = 64;
        u->idle_timeout_ms = 4000;
        u->authorization = TR_UPSTREAM_AUTH_FORWARD;
        u->base_path = "";
        cfg->n_upstreams++;
        if (body->bad)
            continue;
        tr_cfg_walk(c, body, kp, fields, sizeof(fields) / sizeof(fields[0]),
                    u);

        tr_cfg_path_key(fp, kp, "authorization_file");
        if (u->authorization == TR_UPSTREAM_AUTH_REPLACE) {
            if (u->authorization_file == NULL)
                tr_cfg_error(c, tr_cfg_find(body, "authorization"), fp,
                             "authorization: replace needs "
                             "authorization_file (the value to send)");
            else
                read_auth_file(c, tr_cfg_find(body, "authorization_file"),
                               fp, u);
        } else if (u->authorization_file != NULL) {
            tr_cfg_error(c, tr_cfg_find(body, "authorization_file"), fp,
                         "authorization_file is used only with "
                         "authorization: replace");
        }
    }
}
