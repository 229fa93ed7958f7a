// timestep_embedding: diffusers models/embeddings.py get_timestep_embedding,
// reproduced step by step in float32 as torch evaluates it, so the
// rounding of the sin/cos arguments (t * freq, ~6e-5 absolute at t = 999)
// is torch's and not a more precise one:
//   exponent = -math.log(max_period) * arange(half, dtype=float32)
//   exponent = exponent / (half - downscale_freq_shift)
//   emb = exp(exponent);  emb = t[:, None].float() * emb[None, :]
//   emb = cat([sin(emb), cos(emb)], -1)   (flipped to [cos, sin])
//   odd dim: zero pad of the last column.
// A Python float multiplying or dividing a float32 tensor is first rounded
// to float32 (ATen's scalar promotion), hence the (float) casts below.
//
// Test: ctest -R cpu_ops (flip, shift 0/1, odd dim).
#include <math.h>

#include "backend/cpu/cpu_internal.h"
#include "core/status.h"

enum hsd_status hsd_cpu_timestep_embedding(struct hsd_backend *be,
                                           const struct hsd_timestep_embedding_params *p) {
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "timestep_embedding: NULL params");
    if (p->n <= 0 || p->dim <= 0) {
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "timestep_embedding: dims must be positive (n=%d dim=%d)", p->n, p->dim);
    }
    if (!p->out || !p->t) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "timestep_embedding: out and t must be non-NULL");
    }
    const int half = p->dim / 2;
    if (!(p->max_period > 0.0f)) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "timestep_embedding: max_period must be > 0 (got %g)",
                        (double)p->max_period);
    }
    if (half > 0 && !((double)half - (double)p->shift != 0.0)) {
        // torch would divide by zero and return NaN/inf frequencies.
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "timestep_embedding: half dim %d - shift %g must be non-zero", half,
                        (double)p->shift);
    }
    const float neg_log_period = (float)(-log((double)p->max_period));
    const float denom = (float)((double)half - (double)p->shift);
    const float *t = p->t;  // [n]
    float *out = p->out;    // [n, dim]
    // Sine half first unless flipped ([cos, sin]).
    const int sin_at = p->flip_sin_to_cos ? half : 0;
    const int cos_at = p->flip_sin_to_cos ? 0 : half;
    for (int b = 0; b < p->n; b++) {
        float *row = out + (size_t)b * p->dim;
        for (int j = 0; j < half; j++) {
            const float exponent = (neg_log_period * (float)j) / denom;
            const float arg = t[b] * expf(exponent);
            row[sin_at + j] = sinf(arg);
            row[cos_at + j] = cosf(arg);
        }
        if (p->dim % 2) row[p->dim - 1] = 0.0f;
    }
    return HSD_OK;
}
