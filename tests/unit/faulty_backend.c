// TEST DOUBLE of a failing GPU (see faulty_backend.h): a backend whose op
// table forwards to a real backend's until a set number of compute ops,
// then fails everything with HSD_ERR_DEVICE for good.
#include "faulty_backend.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

struct faulty {
    struct hsd_backend be;          // first: the op table gets this pointer back
    struct hsd_backend_ops ops;     // per instance: optional slots follow the inner's
    struct hsd_backend *inner;
    long fail_after;                // < 0: never
    atomic_long ops_done;
    atomic_int tripped;
};

static atomic_int g_made;  // "fake-gpu:N"

// 1 when the op must fail: the device already failed, or this compute op is
// the first one past the limit (which trips it for good).
static int dead(struct faulty *f, int compute) {
    if (atomic_load(&f->tripped)) return 1;
    if (!compute) return 0;
    if (f->fail_after >= 0 && atomic_load(&f->ops_done) >= f->fail_after) {
        atomic_store(&f->tripped, 1);
        return 1;
    }
    atomic_fetch_add(&f->ops_done, 1);
    return 0;
}

static enum hsd_status fail(struct faulty *f) {
    return hsd_fail(HSD_ERR_DEVICE, "%s: simulated sticky device error (after %ld compute ops)",
                    f->be.desc, (long)atomic_load(&f->ops_done));
}

static struct faulty *F(struct hsd_backend *be) { return (struct faulty *)be; }

static void f_destroy(struct hsd_backend *be) {
    struct faulty *f = F(be);
    hsd_backend_destroy(f->inner);
    free(f);
}

static void *f_alloc(struct hsd_backend *be, size_t bytes) {
    struct faulty *f = F(be);
    if (dead(f, 0)) {
        fail(f);
        return NULL;
    }
    return f->inner->ops->alloc(f->inner, bytes);
}

// Always forwarded: freeing must work on a lost device too.
static void f_free(struct hsd_backend *be, void *p) {
    struct faulty *f = F(be);
    f->inner->ops->free(f->inner, p);
}

static enum hsd_status f_upload(struct hsd_backend *be, void *dst, const float *src,
                                size_t count) {
    struct faulty *f = F(be);
    if (dead(f, 0)) return fail(f);
    return f->inner->ops->upload(f->inner, dst, src, count);
}

static enum hsd_status f_download(struct hsd_backend *be, float *dst, const void *src,
                                  size_t count) {
    struct faulty *f = F(be);
    if (dead(f, 0)) return fail(f);
    return f->inner->ops->download(f->inner, dst, src, count);
}

static enum hsd_status f_upload_f32(struct hsd_backend *be, void *dst, const float *src,
                                    size_t count) {
    struct faulty *f = F(be);
    if (dead(f, 0)) return fail(f);
    return f->inner->ops->upload_f32(f->inner, dst, src, count);
}

static enum hsd_status f_synchronize(struct hsd_backend *be) {
    struct faulty *f = F(be);
    if (dead(f, 0)) return fail(f);
    return f->inner->ops->synchronize(f->inner);
}

static enum hsd_status f_graph_begin(struct hsd_backend *be, const struct hsd_graph_key *key) {
    struct faulty *f = F(be);
    if (dead(f, 0)) return fail(f);
    return f->inner->ops->graph_begin(f->inner, key);
}

static enum hsd_status f_graph_end(struct hsd_backend *be, int ok) {
    struct faulty *f = F(be);
    if (dead(f, 0)) return fail(f);
    return f->inner->ops->graph_end(f->inner, ok);
}

// The compute ops: each one counts, then forwards or fails.
#define FAULTY_OP(op, params)                                                         \
    static enum hsd_status f_##op(struct hsd_backend *be, const struct params *p) {   \
        struct faulty *f = F(be);                                                     \
        if (dead(f, 1)) return fail(f);                                               \
        return f->inner->ops->op(f->inner, p);                                        \
    }
FAULTY_OP(conv2d, hsd_conv2d_params)
FAULTY_OP(linear, hsd_linear_params)
FAULTY_OP(group_norm, hsd_group_norm_params)
FAULTY_OP(layer_norm, hsd_layer_norm_params)
FAULTY_OP(attention, hsd_attention_params)
FAULTY_OP(geglu, hsd_geglu_params)
FAULTY_OP(upsample_nearest2x, hsd_upsample_params)
FAULTY_OP(concat_channels, hsd_concat_params)
FAULTY_OP(add_bias, hsd_add_bias_params)
FAULTY_OP(add, hsd_eltwise_params)
FAULTY_OP(silu, hsd_eltwise_params)
FAULTY_OP(gelu, hsd_eltwise_params)
FAULTY_OP(quick_gelu, hsd_eltwise_params)
FAULTY_OP(relu, hsd_eltwise_params)
FAULTY_OP(tanh_clamp, hsd_tanh_clamp_params)
FAULTY_OP(timestep_embedding, hsd_timestep_embedding_params)
#undef FAULTY_OP

enum hsd_status hsd_backend_faulty_create(struct hsd_backend **out, struct hsd_backend *inner,
                                          int fail_after_ops) {
    *out = NULL;
    if (!inner) return hsd_fail(HSD_ERR_INVALID_ARG, "faulty backend: no inner backend");
    struct faulty *f = calloc(1, sizeof *f);
    if (!f) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    const struct hsd_backend_ops *in = inner->ops;
    // Slots this file does not know yet (an op added to backend.h later)
    // are the inner's own, called with the fake; that works because the
    // fake shares the inner's impl and element size. They never fail.
    f->ops = *in;
    f->ops.name = "faulty (test double)";
    f->ops.destroy = f_destroy;
    f->ops.alloc = f_alloc;
    f->ops.free = f_free;
    f->ops.upload = f_upload;
    f->ops.download = f_download;
    f->ops.synchronize = f_synchronize;
#define WRAP(op) f->ops.op = in->op ? f_##op : NULL
    WRAP(upload_f32);
    WRAP(graph_begin);
    WRAP(graph_end);
    WRAP(conv2d);
    WRAP(linear);
    WRAP(group_norm);
    WRAP(layer_norm);
    WRAP(attention);
    WRAP(geglu);
    WRAP(upsample_nearest2x);
    WRAP(concat_channels);
    WRAP(add_bias);
    WRAP(add);
    WRAP(silu);
    WRAP(gelu);
    WRAP(quick_gelu);
    WRAP(relu);
    WRAP(tanh_clamp);
    WRAP(timestep_embedding);
#undef WRAP
    f->be = *inner;
    f->be.ops = &f->ops;
    f->be.kind = HSD_BACKEND_CUDA;
    f->be.device = atomic_fetch_add(&g_made, 1);
    snprintf(f->be.desc, sizeof f->be.desc, "fake-gpu:%d", f->be.device);
    f->inner = inner;
    f->fail_after = fail_after_ops;
    atomic_init(&f->ops_done, 0);
    atomic_init(&f->tripped, 0);
    *out = &f->be;
    return HSD_OK;
}

long hsd_backend_faulty_ops(const struct hsd_backend *be) {
    return atomic_load(&((struct faulty *)be)->ops_done);
}

void hsd_backend_faulty_trip(struct hsd_backend *be) {
    atomic_store(&((struct faulty *)be)->tripped, 1);
}

int hsd_backend_faulty_tripped(const struct hsd_backend *be) {
    return atomic_load(&((struct faulty *)be)->tripped);
}
