/*
 * A bump allocator for everything one configuration snapshot owns, so the
 * snapshot is freed in one call and no string in it is freed twice or
 * leaked on an error path.
 */
#ifndef TREATY_CONFIG_CONFIG_ARENA_H
#define TREATY_CONFIG_CONFIG_ARENA_H

#include <stddef.h>

typedef struct tr_arena tr_arena;

tr_arena *tr_arena_new(void);
void tr_arena_free(tr_arena *a);

/* Zeroed memory for `n` objects of `size` bytes, aligned for any type.
 * NULL when out of memory or when n * size overflows. */
void *tr_arena_calloc(tr_arena *a, size_t n, size_t size);

/* A NUL-terminated copy of s[0..n).  NULL when out of memory. */
char *tr_arena_strndup(tr_arena *a, const char *s, size_t n);

#endif
