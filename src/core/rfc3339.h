/*
 * Times as people type and read them on the command line: RFC 3339
 * timestamps and "1h ago" forms.  Pure: "now" is an argument.
 */
#ifndef TREATY_CORE_RFC3339_H
#define TREATY_CORE_RFC3339_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parses a time argument into Unix milliseconds:
 *   - RFC 3339: 2024-05-01T12:00:00Z, with optional fraction and a
 *     numeric offset (+02:00); 't'/'z' and a space for 'T' are accepted;
 *   - a date alone, 2024-05-01, meaning 00:00 UTC;
 *   - "now";
 *   - a duration back from now: digits then s, m, h, d or w ("90s",
 *     "15m", "1h", "2d", "1w").
 * 0, or -1 when s is none of these (or out of range).
 */
int tr_time_arg_parse(const char *s, int64_t now_ms, int64_t *out_ms);

/* "2024-05-01T12:00:00.123Z" into buf (at least 25 bytes); -1 if the
 * buffer is too small or the year is outside 0000..9999. */
int tr_rfc3339_format(int64_t ms, char *buf, size_t len);

#endif
