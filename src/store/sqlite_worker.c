/* The SQLite backend of tr_worker: connection set-up, transactions, the
 * statement cache, error mapping and migrations (store/sqlite_worker.h). */
#include "store/sqlite_worker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_BUSY_MS 5000
/* The probe writes this much and deletes it again: a store with less room
 * than that is not back yet. */
#define PROBE_BYTES 65536

typedef struct {
    const char *sql;
    sqlite3_stmt *st;
} cached_stmt;

struct tr_sqlite {
    sqlite3 *db;
    cached_stmt *cache;
    size_t n_cache, cap_cache;
};

sqlite3 *
tr_sqlite_db(tr_sqlite *s)
{
    return s->db;
}

int
tr_sqlite_status(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return TR_STORE_OK;
    case SQLITE_FULL:
        return TR_STORE_EFULL;
    case SQLITE_IOERR:
        return TR_STORE_EIO;
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return TR_STORE_EREADONLY;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return TR_STORE_EBUSY;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return TR_STORE_ECORRUPT;
    case SQLITE_CONSTRAINT:
    case SQLITE_TOOBIG:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
        return TR_STORE_EJOB;
    default:
        return TR_STORE_ERROR;
    }
}

sqlite3_stmt *
tr_sqlite_stmt(tr_sqlite *s, const char *sql)
{
    sqlite3_stmt *st = NULL;

    for (size_t i = 0; i < s->n_cache; i++) {
        if (s->cache[i].sql == sql) {
            st = s->cache[i].st;
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            return st;
        }
    }
    if (s->n_cache == s->cap_cache) {
        size_t cap = s->cap_cache ? 2 * s->cap_cache : 16;
        cached_stmt *c = realloc(s->cache, cap * sizeof(*c));

        if (!c)
            return NULL;
        s->cache = c;
        s->cap_cache = cap;
    }
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
                           NULL) != SQLITE_OK)
        return NULL;
    s->cache[s->n_cache].sql = sql;
    s->cache[s->n_cache].st = st;
    s->n_cache++;
    return st;
}

static int
exec(tr_sqlite *s, const char *sql)
{
    return tr_sqlite_status(sqlite3_exec(s->db, sql, NULL, NULL, NULL));
}

static void
sqlite_close(void *db)
{
    tr_sqlite *s = db;

    if (!s)
        return;
    for (size_t i = 0; i < s->n_cache; i++)
        sqlite3_finalize(s->cache[i].st);
    free(s->cache);
    sqlite3_close_v2(s->db);
    free(s);
}

/* Creates the file 0600 ourselves: SQLite would use 0644 minus umask, and
 * a store opened outside state_dir (tests, tools) must not be readable by
 * others either.  SQLite gives -wal and -shm the database's mode. */
static int
create_private(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

static void *
sqlite_open(const tr_worker_opts *o, char *err, size_t errlen)
{
    tr_sqlite *s = calloc(1, sizeof(*s));
    char sql[128];
    sqlite3_stmt *st = NULL;
    const char *what;
    int rc;

    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (create_private(o->db_path, err, errlen) != 0) {
        free(s);
        return NULL;
    }
    /* NOMUTEX: one thread at a time uses the connection (the loop thread
     * while migrating, then the worker thread only). */
    rc = sqlite3_open_v2(o->db_path, &s->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                         NULL);
    what = "open";
    if (rc != SQLITE_OK)
        goto fail;
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, o->busy_timeout_ms ? (int)o->busy_timeout_ms
                                                   : DEFAULT_BUSY_MS);
    /* journal_mode answers with the mode in force: "memory" or "delete"
     * would mean no WAL (a file system without shared memory). */
    what = "journal_mode=WAL";
    rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st,
                            NULL);
    if (rc != SQLITE_OK)
        goto fail;
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW ||
        strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
        sqlite3_finalize(st);
        snprintf(err, errlen, "%s: %s store: cannot enable WAL (%s)",
                 o->db_path, o->name ? o->name : "",
                 rc == SQLITE_ROW ? (const char *)"other journal mode"
                                  : sqlite3_errmsg(s->db));
        sqlite_close(s);
        return NULL;
    }
    sqlite3_finalize(st);
    snprintf(sql, sizeof(sql),
             "PRAGMA synchronous=%s; PRAGMA foreign_keys=ON; "
             "PRAGMA journal_size_limit=67108864",
             o->sync == TR_SYNC_FULL ? "FULL" : "NORMAL");
    what = "pragmas";
    rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    what = "probe table";
    rc = sqlite3_exec(s->db,
                      "CREATE TABLE IF NOT EXISTS tr_store_probe(x BLOB)",
                      NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    return s;
fail:
    snprintf(err, errlen, "%s: %s: %s (%s)", o->db_path, what,
             s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc),
             tr_store_strerror(tr_sqlite_status(rc)));
    sqlite_close(s);
    return NULL;
}

static int
sqlite_begin(void *db)
{
    /* IMMEDIATE takes the write lock now, under busy_timeout, instead of
     * failing halfway through the batch. */
    return exec(db, "BEGIN IMMEDIATE");
}

static int
sqlite_commit(void *db)
{
    return exec(db, "COMMIT");
}

static void
sqlite_rollback(void *db)
{
    tr_sqlite *s = db;

    /* After SQLITE_FULL or IOERR SQLite may have rolled back already. */
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

static int
sqlite_probe(void *db)
{
    tr_sqlite *s = db;
    int rc = exec(s, "BEGIN IMMEDIATE");
    char sql[96];

    if (rc != 0)
        return rc;
    snprintf(sql, sizeof(sql),
             "INSERT INTO tr_store_probe VALUES (zeroblob(%d));"
             "DELETE FROM tr_store_probe", PROBE_BYTES);
    rc = exec(s, sql);
    if (rc == 0)
        rc = exec(s, "COMMIT");
    if (rc != 0)
        sqlite_rollback(s);
    return rc;
}

const tr_store_backend tr_store_sqlite = {
    .kind = "sqlite",
    .open = sqlite_open,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .probe = sqlite_probe,
    .close = sqlite_close,
};

static int
user_version(tr_sqlite *s, int *v)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st,
                                NULL);

    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *v = sqlite3_column_int(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

int
tr_sqlite_migrate(tr_sqlite *s, const char *const *steps, int n_steps,
                  char *err, size_t errlen)
{
    int v = 0, rc;
    char sql[64];

    rc = user_version(s, &v);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "reading schema version: %s",
                 sqlite3_errmsg(s->db));
        return tr_sqlite_status(rc);
    }
    if (v > n_steps) {
        snprintf(err, errlen,
                 "schema version %d is newer than this treaty knows (%d)",
                 v, n_steps);
        return TR_STORE_ERROR;
    }
    for (; v < n_steps; v++) {
        rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(s->db, steps[v], NULL, NULL, NULL);
        snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", v + 1);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            snprintf(err, errlen, "migrating schema %d -> %d: %s", v, v + 1,
                     sqlite3_errmsg(s->db));
            sqlite_rollback(s);
            return tr_sqlite_status(rc);
        }
    }
    return TR_STORE_OK;
}
