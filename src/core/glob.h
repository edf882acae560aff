/*
 * Shell-style glob matching over short identifiers (actor ids in route
 * policies).
 *
 * Syntax: `*` matches any run of bytes (including none), `?` matches
 * exactly one byte, `\x` matches the byte x literally (so `\*` is a star);
 * a trailing lone `\` matches a backslash.  Every other byte matches
 * itself, case-sensitively.  There are no character classes, and `/` is
 * not special.  Matching is byte-oriented: `?` is one byte, not one UTF-8
 * character.
 *
 * Cost is O(len(pattern) * len(subject)) in the worst case, with no
 * recursion, so hostile patterns such as `a*a*a*a*b` stay cheap.
 */
#ifndef TREATY_CORE_GLOB_H
#define TREATY_CORE_GLOB_H

#include <stdbool.h>
#include <stddef.h>

/* True when the whole subject s[0..slen) matches pattern p[0..plen). */
bool tr_glob_match(const char *p, size_t plen, const char *s, size_t slen);

/* The same over NUL-terminated strings. */
bool tr_glob_match_cstr(const char *pattern, const char *subject);

#endif
