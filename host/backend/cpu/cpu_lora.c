// lora: the unfused LoRA side product of backend.h, per sample. Samples
// that chose the adapter come in runs of consecutive rows (a request's
// unconditional and conditional rows, requests admitted together); each
// run is two GEMMs of rank r (down into tmp, tmp scaled per sample, then up
// accumulated into out with beta 1, as Punica's SGMV shrink/expand), and
// rows outside every run are never read or written.
//
// Test: ctest -R test_lora (against a direct triple loop). Time: hsd bench
// unet --lora (bench/RESULTS.md "LoRA").
#include <cblas.h>

#include "backend/cpu/cpu_internal.h"
#include "core/status.h"

enum hsd_status hsd_cpu_lora(struct hsd_backend *be, const struct hsd_lora_params *p) {
    if (!p || !p->out || !p->in || !p->down || !p->up || !p->tmp || !p->scale)
        return hsd_fail(HSD_ERR_INVALID_ARG, "lora: NULL operand");
    if (p->n <= 0 || p->tokens <= 0 || p->k <= 0 || p->r <= 0 || p->n_out <= 0 ||
        p->ldo < p->n_out || p->scale_ld < 1)
        return hsd_fail(HSD_ERR_INVALID_ARG, "lora: bad dims n=%d tokens=%d k=%d r=%d n_out=%d",
                        p->n, p->tokens, p->k, p->r, p->n_out);
    hsd_cpu_blas_threads(be);
    const size_t t = (size_t)p->tokens;
    float *tmp = p->tmp;
    for (int b = 0; b < p->n;) {
        if (p->scale[(size_t)b * p->scale_ld] * p->mult == 0.0f) {
            b++;
            continue;
        }
        int e = b + 1;
        while (e < p->n && p->scale[(size_t)e * p->scale_ld] * p->mult != 0.0f) e++;
        const int m = (int)((size_t)(e - b) * t);
        const float *in = (const float *)p->in + (size_t)b * t * p->k;
        float *out = (float *)p->out + (size_t)b * t * p->ldo;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, p->r, p->k, 1.0f, in, p->k,
                    p->down, p->k, 0.0f, tmp, p->r);
        for (int i = b; i < e; i++) {
            const float s = p->scale[(size_t)i * p->scale_ld] * p->mult;
            float *row = tmp + (size_t)(i - b) * t * p->r;
            for (size_t j = 0; j < t * (size_t)p->r; j++) row[j] *= s;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, p->n_out, p->r, 1.0f, tmp, p->r,
                    p->up, p->r, 1.0f, out, p->ldo);
        b = e;
    }
    return HSD_OK;
}
