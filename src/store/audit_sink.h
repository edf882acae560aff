/*
 * The external sink of signed checkpoints (audit.checkpoint_file): a file
 * outside state_dir, appended and fsynced line by line, or "-" for
 * stdout lines a log shipper collects.  A copy of state_dir then never
 * carries the checkpoints that would expose it as old.
 *
 * The sink has its own small thread: the audit writer hands it the lines
 * of a committed batch and goes on, so the sink's fsync never delays a
 * decision's commit.  A line can therefore reach the file a moment after
 * its checkpoint is in the database (kill -9 in between loses the line,
 * never the database row); never before.
 *
 * Lines that cannot be written (disk full, a closed pipe) are kept, up to
 * TR_AUDIT_SINK_KEEP bytes, and retried every second; beyond that the
 * oldest are dropped and counted.  A checkpoint line is written with one
 * write() under 4 KiB, so on a pipe it is never split; another writer of
 * the same stdout (the access log) writes whole buffers, which a pipe may
 * interleave at 4 KiB boundaries: give the checkpoints a file when the
 * access log also goes to stdout.
 */
#ifndef TREATY_STORE_AUDIT_SINK_H
#define TREATY_STORE_AUDIT_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TR_AUDIT_SINK_KEEP (1u << 20)

typedef struct tr_audit_sink tr_audit_sink;

/*
 * Opens path for appending (created 0600; its directory must exist), or
 * stdout for "-", and starts the sink's thread.  Refuses a file inside
 * state_dir (the resolved directories are compared).  NULL with a message
 * in err.
 */
tr_audit_sink *tr_audit_sink_open(const char *path, const char *state_dir,
                                  char *err, size_t errlen);

/*
 * Queues data (whole lines) for the thread.  Any thread; never blocks on
 * I/O.  0, or -1 when older unwritten lines had to be dropped to make
 * room (counted).
 */
int tr_audit_sink_write(tr_audit_sink *s, const char *data, size_t len);

/* Failed write or fsync attempts so far, and bytes dropped. */
uint64_t tr_audit_sink_failures(const tr_audit_sink *s);
uint64_t tr_audit_sink_dropped(const tr_audit_sink *s);

/* Blocks until everything queued was written (or failed once more); for
 * tests and shutdown.  NULL is a no-op. */
void tr_audit_sink_flush(tr_audit_sink *s);

/* Flushes, stops the thread, closes.  NULL is a no-op. */
void tr_audit_sink_close(tr_audit_sink *s);

#endif
