// Bump allocator for activations: one block reserved up front, allocations
// are 64-byte aligned (cache line / AVX-512 vector), freed all at once or
// back to a mark. The step loop allocates only from an arena (docs/architecture.md §4).
#ifndef HSD_CORE_ARENA_H
#define HSD_CORE_ARENA_H

#include <stddef.h>

#include "core/status.h"

struct hsd_arena {
    unsigned char *base;
    size_t cap;
    size_t used;
    size_t peak;
};

enum hsd_status hsd_arena_init(struct hsd_arena *a, size_t cap_bytes);
void hsd_arena_free(struct hsd_arena *a);
// NULL when the arena is full (the caller sizes arenas; see hsd_arena_peak).
void *hsd_arena_alloc(struct hsd_arena *a, size_t bytes);
static inline size_t hsd_arena_mark(const struct hsd_arena *a) { return a->used; }
void hsd_arena_reset_to(struct hsd_arena *a, size_t mark);

#endif
