/*
 * The SQLite backend of tr_worker (store/worker.h), and the helpers job
 * authors use inside run() and migrate().
 *
 * For this backend the `void *db` handed to run(), migrate() is a
 * tr_sqlite *.  The connection is opened in WAL mode with
 * synchronous=NORMAL (a killed process loses nothing committed; a power cut
 * may lose the last commits) or FULL (each commit is fsynced), a busy
 * timeout, and foreign keys on.  The file is created 0600.
 */
#ifndef TREATY_STORE_SQLITE_WORKER_H
#define TREATY_STORE_SQLITE_WORKER_H

#include <stddef.h>

#include <sqlite3.h>

#include "store/worker.h"

typedef struct tr_sqlite tr_sqlite;

sqlite3 *tr_sqlite_db(tr_sqlite *s);

/*
 * A prepared statement from the connection's cache, reset and with its
 * bindings cleared.  `sql` must be a string with static storage: the
 * cache is keyed by its address, so each job type pays the parse once.
 * NULL on error (see tr_sqlite_status(sqlite3_errcode())).
 */
sqlite3_stmt *tr_sqlite_stmt(tr_sqlite *s, const char *sql);

/* SQLITE_* result code -> TR_STORE_* status.  SQLITE_OK/DONE/ROW -> 0;
 * SQLITE_FULL -> EFULL; IOERR -> EIO; READONLY, CANTOPEN, PERM -> EREADONLY;
 * BUSY, LOCKED -> EBUSY; CORRUPT, NOTADB -> ECORRUPT; CONSTRAINT, TOOBIG,
 * MISMATCH, RANGE -> EJOB; others -> ERROR. */
int tr_sqlite_status(int rc);

/*
 * Schema migrations by PRAGMA user_version: steps[i] is the SQL script
 * that brings version i to i + 1; each step runs in its own transaction
 * together with the version bump.  A database newer than n_steps is
 * refused (an older treaty must not write a newer schema).  Returns 0 or
 * a TR_STORE_* code with a message in err.
 */
int tr_sqlite_migrate(tr_sqlite *s, const char *const *steps, int n_steps,
                      char *err, size_t errlen);

#endif
