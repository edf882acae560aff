/*
 * The external sink of signed checkpoints (audit.checkpoint_file): a file
 * outside state_dir, appended and fsynced line by line, or "-" for
 * stdout lines a log shipper collects.  A copy of state_dir then never
 * carries the checkpoints that would expose it as old.
 *
 * Used by the audit writer thread only (open and close on the loop,
 * before the thread starts and after it stopped).
 *
 * Lines that cannot be written (disk full, a closed pipe) are kept, up to
 * TR_AUDIT_SINK_KEEP bytes, and written before the next ones; beyond that
 * the oldest are dropped and counted.  A checkpoint line is one write()
 * under 4 KiB, so on a pipe it is never split; another writer of the same
 * stdout (the access log) writes whole buffers, which a pipe may
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
 * stdout for "-".  Refuses a file inside state_dir (the resolved
 * directories are compared).  NULL with a message in err.
 */
tr_audit_sink *tr_audit_sink_open(const char *path, const char *state_dir,
                                  char *err, size_t errlen);

/*
 * Appends data (whole lines) after anything kept from earlier failures,
 * then fsyncs a file.  0, or -1 when something is still unwritten.
 */
int tr_audit_sink_write(tr_audit_sink *s, const char *data, size_t len);

/* Bytes dropped because the kept backlog was full. */
uint64_t tr_audit_sink_dropped(const tr_audit_sink *s);

/* Tries once more to write what is kept, then closes.  NULL is a no-op. */
void tr_audit_sink_close(tr_audit_sink *s);

#endif
