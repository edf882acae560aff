/* The snapshot arena (config_arena.h): a list of chunks, freed together. */
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_arena.h"

#define CHUNK_SIZE (16 * 1024)
#define ALIGN alignof(max_align_t)

typedef struct chunk {
    struct chunk *next;
    size_t used, size;
    alignas(max_align_t) unsigned char data[];
} chunk;

struct tr_arena {
    chunk *head;
};

tr_arena *
tr_arena_new(void)
{
    return calloc(1, sizeof(tr_arena));
}

void
tr_arena_free(tr_arena *a)
{
    if (a == NULL)
        return;
    for (chunk *c = a->head, *next; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    free(a);
}

void *
tr_arena_calloc(tr_arena *a, size_t n, size_t size)
{
    size_t want, padded;
    chunk *c = a->head;

    if (size != 0 && n > SIZE_MAX / 2 / size)
        return NULL;
    want = n * size;
    if (want == 0)
        want = 1;
    padded = (want + ALIGN - 1) & ~(size_t)(ALIGN - 1);

    if (c == NULL || c->size - c->used < padded) {
        size_t sz = padded > CHUNK_SIZE ? padded : CHUNK_SIZE;
        c = malloc(sizeof(chunk) + sz);
        if (c == NULL)
            return NULL;
        c->used = 0;
        c->size = sz;
        /* A big one-off block goes behind the current chunk so the rest
         * of the current chunk stays usable. */
        if (a->head != NULL && sz > CHUNK_SIZE) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += padded;
    memset(p, 0, want);
    return p;
}

char *
tr_arena_strndup(tr_arena *a, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *p = tr_arena_calloc(a, n + 1, 1);
    if (p != NULL && n > 0)
        memcpy(p, s, n);
    return p;
}
