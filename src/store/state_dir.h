/*
 * state_dir: where treaty keeps its databases and keys (SPEC.md "Security
 * defaults").  Opening it:
 *   - creates it 0700 (parents too, 0700) when missing;
 *   - refuses a path that is not a directory or that another user owns;
 *   - narrows a directory we own with wider permissions to 0700 and says so
 *     (a note for the log) rather than refusing: the usual cause is a
 *     mkdir under the default umask, and the fix is safe;
 *   - sets the process umask to 077 so every file created afterwards
 *     (databases, their -wal/-shm, keys) is 0600;
 *   - takes an exclusive flock on DIR/lock, which then holds our pid: a
 *     second treaty on the same directory refuses to start, naming the
 *     pid of the first.  The lock dies with the process (even kill -9),
 *     so a stale lock file never blocks a restart.
 */
#ifndef TREATY_STORE_STATE_DIR_H
#define TREATY_STORE_STATE_DIR_H

#include <stddef.h>

typedef struct tr_state_dir tr_state_dir;

#define TR_STATE_DIR_LOCK_FILE "lock"

/*
 * NULL on refusal with the reason in err.  On success note holds a line
 * for the log when something was fixed (else it is ""); note may be NULL.
 */
tr_state_dir *tr_state_dir_open(const char *path, char *note,
                                size_t notelen, char *err, size_t errlen);

const char *tr_state_dir_path(const tr_state_dir *sd);

/* Releases the lock (removing nothing) and frees. NULL is a no-op. */
void tr_state_dir_close(tr_state_dir *sd);

#endif
