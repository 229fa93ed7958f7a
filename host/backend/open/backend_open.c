// Backends by name and pipelines per device (backend_open.h).
// Test: tests/unit/test_backend_spec.c (parsing, resolution without a GPU,
// CPU pipeline sets); tests/unit/test_backend_cuda.c (label gpu).
#include "backend/open/backend_open.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"

#ifdef HSD_HAVE_CUDA
#include "backend_cuda.h"
#include "device.h"
#endif

int hsd_backend_built_with_cuda(void) {
#ifdef HSD_HAVE_CUDA
    return 1;
#else
    return 0;
#endif
}

enum hsd_status hsd_backend_spec_resolve(struct hsd_backend_spec *spec) {
    if (spec->kind == HSD_BACKEND_CPU) return HSD_OK;
#ifdef HSD_HAVE_CUDA
    struct hsd_cuda_probe probe;
    enum hsd_status s = hsd_cuda_probe(&probe);
    if (s) return s;
    const int count = probe.count;
    if (count == 0)
        return hsd_fail(HSD_ERR_NO_DEVICE, "--backend cuda: %s (use --backend cpu)", probe.why);
    if (spec->all || spec->n_ids == 0) {
        spec->all = 0;
        spec->n_ids = count < HSD_MAX_DEVICES ? count : HSD_MAX_DEVICES;
        for (int i = 0; i < spec->n_ids; i++) spec->ids[i] = i;
        return HSD_OK;
    }
    for (int i = 0; i < spec->n_ids; i++)
        if (spec->ids[i] >= count)
            return hsd_fail(HSD_ERR_NO_DEVICE, "--backend: no GPU %d (this machine has %d: 0..%d)",
                            spec->ids[i], count, count - 1);
    return HSD_OK;
#else
    return hsd_fail(HSD_ERR_UNSUPPORTED,
                    "--backend cuda: this hsd was built without the CUDA backend (no nvcc at "
                    "build time, or -DHSD_CUDA=OFF); use --backend cpu");
#endif
}

enum hsd_status hsd_backend_open(const struct hsd_backend_spec *spec, int i, int threads,
                                 struct hsd_backend **out) {
    *out = NULL;
    if (spec->kind == HSD_BACKEND_CPU) return hsd_backend_cpu_create(out, threads);
#ifdef HSD_HAVE_CUDA
    if (i < 0 || i >= spec->n_ids)
        return hsd_fail(HSD_ERR_INVALID_ARG, "backend: device index %d of %d", i, spec->n_ids);
    return hsd_backend_cuda_create(out, spec->ids[i]);
#else
    (void)i;
    (void)threads;
    return hsd_fail(HSD_ERR_UNSUPPORTED, "this hsd was built without the CUDA backend");
#endif
}

enum hsd_status hsd_backend_open_one(const char *text, int threads, struct hsd_backend **out) {
    *out = NULL;
    struct hsd_backend_spec spec;
    enum hsd_status s = hsd_backend_spec_parse(text ? text : "cpu", &spec);
    if (s) return s;
    int all = spec.kind == HSD_BACKEND_CUDA && (spec.all || !spec.n_ids);
    if (spec.kind == HSD_BACKEND_CUDA && spec.n_ids > 1)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "--backend %s: this command runs on one GPU (give one, e.g. cuda:%d)", text,
                        spec.ids[0]);
    if ((s = hsd_backend_spec_resolve(&spec))) return s;
    if (all) spec.n_ids = 1;  // "cuda": the first visible GPU
    return hsd_backend_open(&spec, 0, threads, out);
}

size_t hsd_backend_peak_bytes(const struct hsd_backend *be) {
#ifdef HSD_HAVE_CUDA
    if (be && be->kind == HSD_BACKEND_CUDA) return hsd_backend_cuda_peak_bytes(be);
#else
    (void)be;
#endif
    return 0;
}

void hsd_pipeline_set_free(struct hsd_pipeline_set *set) {
    for (int i = 0; i < set->n; i++) {
        hsd_pipeline_free(set->pipes[i]);
        hsd_backend_destroy(set->bes[i]);
        set->pipes[i] = NULL;
        set->bes[i] = NULL;
    }
    set->n = 0;
}

#ifdef HSD_HAVE_CUDA
// GPU i's pipeline, its weights from disk (receive = 0) or left for the
// broadcast (receive = 1); its uploads recorded for the broadcast.
static enum hsd_status load_gpu(struct hsd_pipeline_set *set, int i,
                                const struct hsd_pipeline_config *pc, int receive, int rec) {
    struct hsd_pipeline_config c = *pc;
    struct hsd_backend *be = set->bes[i];
    c.backend = be;
    be->weight_mode = receive ? HSD_WEIGHTS_RECEIVE : HSD_WEIGHTS_NORMAL;
    hsd_backend_cuda_record_uploads(be, rec);
    enum hsd_status s = hsd_pipeline_load(&set->pipes[i], &c);
    hsd_backend_cuda_record_uploads(be, 0);
    be->weight_mode = HSD_WEIGHTS_NORMAL;
    if (s) return hsd_fail_context(s, "%s: ", be->desc);
    return HSD_OK;
}
#endif

enum hsd_status hsd_pipeline_set_load(struct hsd_pipeline_set *set,
                                      const struct hsd_pipeline_config *pc,
                                      const struct hsd_backend_spec *spec_in, int cpu_workers) {
    memset(set, 0, sizeof *set);
    struct hsd_backend_spec spec = *spec_in;
    enum hsd_status s = hsd_backend_spec_resolve(&spec);
    if (s) return s;
    struct hsd_pipeline_config c = *pc;
    c.backend = NULL;
    if (spec.kind == HSD_BACKEND_CPU) {
        if (cpu_workers < 1 || cpu_workers > HSD_MAX_DEVICES)
            return hsd_fail(HSD_ERR_INVALID_ARG, "CPU workers: %d (1..%d)", cpu_workers,
                            HSD_MAX_DEVICES);
        for (int i = 0; i < cpu_workers; i++) {
            if ((s = hsd_pipeline_load(&set->pipes[i], &c))) {
                hsd_pipeline_set_free(set);
                return hsd_fail_context(s, "CPU worker %d: ", i);
            }
            set->n = i + 1;
        }
        return HSD_OK;
    }
#ifdef HSD_HAVE_CUDA
    int n = spec.n_ids;
    for (int i = 0; i < n; i++) {
        if ((s = hsd_backend_open(&spec, i, 0, &set->bes[i]))) goto fail;
        set->n = i + 1;
    }
    int bcast = n > 1 && hsd_backend_cuda_have_nccl();
    if (n > 1 && !bcast) HSD_WARN("no NCCL in this build: each of the %d GPUs loads from disk", n);
    for (int i = 0; i < n; i++) {
        HSD_INFO("loading models on %s%s", set->bes[i]->desc,
                 bcast && i ? " (weights to come by broadcast)" : "");
        if ((s = load_gpu(set, i, &c, bcast && i > 0, bcast))) goto fail;
    }
    if (bcast) {
        s = hsd_backend_cuda_broadcast(set->bes, n);
        if (s == HSD_OK) {
            set->broadcast = 1;
        } else {
            HSD_WARN("weight broadcast failed (%s); loading GPUs 1..%d from disk", hsd_last_error(),
                     n - 1);
            hsd_clear_error();
            for (int i = 1; i < n; i++) {
                hsd_pipeline_free(set->pipes[i]);
                set->pipes[i] = NULL;
                if ((s = load_gpu(set, i, &c, 0, 0))) goto fail;
            }
        }
    }
    return HSD_OK;
fail:
    hsd_pipeline_set_free(set);
    return s;
#else
    (void)cpu_workers;
    return hsd_fail(HSD_ERR_UNSUPPORTED, "this hsd was built without the CUDA backend");
#endif
}
