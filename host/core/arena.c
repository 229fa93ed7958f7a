#include "core/arena.h"

#include <stdlib.h>
#include <string.h>

#include "core/assert.h"

enum { ARENA_ALIGN = 64 };

enum hsd_status hsd_arena_init(struct hsd_arena *a, size_t cap_bytes) {
    memset(a, 0, sizeof *a);
    cap_bytes = (cap_bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (cap_bytes == 0) cap_bytes = ARENA_ALIGN;
    a->base = aligned_alloc(ARENA_ALIGN, cap_bytes);
    if (!a->base)
        return hsd_fail(HSD_ERR_NOMEM, "cannot reserve %zu bytes for an arena", cap_bytes);
    a->cap = cap_bytes;
    return HSD_OK;
}

void hsd_arena_free(struct hsd_arena *a) {
    free(a->base);
    memset(a, 0, sizeof *a);
}

void *hsd_arena_alloc(struct hsd_arena *a, size_t bytes) {
    size_t need = (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < bytes || need > a->cap - a->used) return NULL;
    void *p = a->base + a->used;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

void hsd_arena_reset_to(struct hsd_arena *a, size_t mark) {
    HSD_ASSERT(mark <= a->used);
    a->used = mark;
}
