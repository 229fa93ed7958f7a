// Sampler state shared by every kind: setup, stepping, serialization, and
// the numpy arithmetic the diffusers timestep schedules are written in.
// The per-kind maths lives in sampler_<kind>.c.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "backend/step_math.h"
#include "core/assert.h"
#include "sampling/sampler.h"
#include "sampling/sampler_internal.h"

// No FMA contraction: diffusers' float32 ops round one by one (GCC: off in
// ISO C mode, which the build uses; clang contracts unless told).
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

static const struct hsd_sampler_ops *const kind_ops[HSD_SAMPLER_COUNT] = {
    [HSD_SAMPLER_DPMPP_2M] = &hsd_sampler_ops_dpmpp_2m,
    [HSD_SAMPLER_DDIM] = &hsd_sampler_ops_ddim,
    [HSD_SAMPLER_EULER] = &hsd_sampler_ops_euler,
    [HSD_SAMPLER_EULER_A] = &hsd_sampler_ops_euler_a,
    [HSD_SAMPLER_PNDM] = &hsd_sampler_ops_pndm,
    [HSD_SAMPLER_LCM] = &hsd_sampler_ops_lcm,
};

static const struct hsd_sampler_ops *ops_of(const struct hsd_sampler *s) {
    HSD_ASSERT((unsigned)s->kind < HSD_SAMPLER_COUNT);
    return kind_ops[s->kind];
}

const char *hsd_sampler_name(enum hsd_sampler_kind k) {
    return (unsigned)k < HSD_SAMPLER_COUNT ? kind_ops[k]->name : "unknown";
}

enum hsd_status hsd_sampler_parse(const char *name, enum hsd_sampler_kind *out) {
    for (int k = 0; k < HSD_SAMPLER_COUNT; k++) {
        if (strcmp(name, kind_ops[k]->name) == 0) {
            *out = (enum hsd_sampler_kind)k;
            return HSD_OK;
        }
    }
    return hsd_fail(HSD_ERR_INVALID_ARG,
                    "unknown sampler '%s' (expected dpmpp-2m, ddim, euler, euler-a, pndm or lcm)", name);
}

// ---------------------------------------------------------------------------
// numpy emulation (float64)

void hsd_np_linspace(double *out, double start, double stop, int num) {
    // numpy function_base.py linspace (endpoint=True): y = arange(num) *
    // step + start, the last value replaced by stop; num == 1 gives start.
    if (num <= 0) return;
    if (num == 1) {
        out[0] = 0.0 * (stop - start) + start;
        return;
    }
    const int div = num - 1;
    const double delta = stop - start;
    const double step = delta / div;
    for (int i = 0; i < num; i++) {
        double y = (double)i;
        if (step == 0) {
            y = y / div * delta;  // numpy's denormal branch (gh-5437)
        } else {
            y = y * step;
        }
        out[i] = y + start;
    }
    out[num - 1] = stop;
}

int hsd_np_arange(double *out, int cap, double start, double stop, double step) {
    // numpy multiarraymodule.c arange: length = ceil((stop - start) / step);
    // element 1 is start + step and DOUBLE_fill continues with
    // start + i * (element1 - start).
    double len_f = ceil((stop - start) / step);
    if (!(len_f > 0)) return 0;
    if (len_f > cap) return -1;
    int len = (int)len_f;
    if (out) {
        const double next = start + step;
        const double delta = next - start;
        out[0] = start;
        if (len > 1) out[1] = next;
        for (int i = 2; i < len; i++) out[i] = start + i * delta;
    }
    return len;
}

double hsd_np_round(double x) {
    // ndarray.round() rounds half to even, as rint in the default mode.
    return nearbyint(x);
}

double hsd_np_interp_grid(double x, const float *fp, int n) {
    // numpy compiled_base.c arr_interp with xp = arange(n): outside the
    // range the end values; on a grid point (or the last) the value itself;
    // otherwise slope * (x - xp[j]) + fp[j].
    if (x < 0) return fp[0];
    if (x > n - 1) return fp[n - 1];
    int j = (int)floor(x);
    if (j >= n - 1 || x == (double)j) return fp[j];
    const double slope = ((double)fp[j + 1] - (double)fp[j]) / ((double)(j + 1) - (double)j);
    return slope * (x - (double)j) + (double)fp[j];
}

float hsd_sigma_from_alpha_cumprod(float ac) {
    // ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5, float32 tensor ops
    // (pow(x, 0.5) is sqrt in torch's pow kernel).
    return sqrtf((1.0f - ac) / ac);
}

enum hsd_timestep_spacing hsd_sampler_spacing(const struct hsd_sampler *s,
                                              enum hsd_timestep_spacing class_default) {
    return s->sched.timestep_spacing == HSD_SPACING_DEFAULT ? class_default
                                                           : s->sched.timestep_spacing;
}

enum hsd_status hsd_sampler_check_index(const struct hsd_sampler *s, long long t) {
    if (t < 0 || t >= s->sched.num_train_timesteps) {
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "%s with %d steps: timestep %lld is outside [0, %d) for this scheduler "
                        "config (diffusers would index out of range); use fewer steps",
                        hsd_sampler_name(s->kind), s->n_steps, t, s->sched.num_train_timesteps);
    }
    return HSD_OK;
}

enum hsd_status hsd_sampler_check_first_unique(const struct hsd_sampler *s) {
    for (int i = 1; i < s->n_timesteps; i++) {
        if (s->timesteps[i] == s->timesteps[0]) {
            return hsd_fail(HSD_ERR_UNSUPPORTED,
                            "%s with %d steps: the first timestep %g repeats, and diffusers "
                            "would then start at its second occurrence",
                            hsd_sampler_name(s->kind), s->n_steps, (double)s->timesteps[0]);
        }
    }
    return HSD_OK;
}

// ---------------------------------------------------------------------------
// lifecycle

static size_t slots_total(const struct hsd_sampler_ops *ops) {
    return (size_t)(ops->history_slots + ops->scratch_slots);
}

enum hsd_status hsd_sampler_init(struct hsd_sampler *s, enum hsd_sampler_kind kind,
                                 const struct hsd_noise_schedule *sched, int n_steps,
                                 size_t n_latent, const struct hsd_torch_rng *rng) {
    memset(s, 0, sizeof *s);
    if ((unsigned)kind >= HSD_SAMPLER_COUNT) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "sampler kind %d unknown", (int)kind);
    }
    if (n_steps < 1 || n_steps > HSD_SAMPLER_MAX_STEPS) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "%d sampling steps: expected 1..%d", n_steps,
                        HSD_SAMPLER_MAX_STEPS);
    }
    if (n_latent < 1 || n_latent > HSD_SAMPLER_MAX_LATENT) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "latent of %zu elements: expected 1..%zu", n_latent,
                        HSD_SAMPLER_MAX_LATENT);
    }
    enum hsd_status st = hsd_noise_schedule_validate(sched);
    if (st != HSD_OK) return hsd_fail_context(st, "scheduler config");
    if (!rng && (kind == HSD_SAMPLER_EULER_A || kind == HSD_SAMPLER_LCM)) {
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "%s draws noise every step: pass the generator of the initial latent",
                        kind_ops[kind]->name);
    }
    if (n_steps > sched->num_train_timesteps) {
        // DDIMScheduler.set_timesteps raises this; the others index out of range.
        return hsd_fail(HSD_ERR_INVALID_ARG, "%d steps exceed num_train_timesteps %d", n_steps,
                        sched->num_train_timesteps);
    }
    s->kind = kind;
    s->sched = *sched;
    s->n_steps = n_steps;
    s->n_latent = n_latent;
    if (rng) {
        s->rng = *rng;
    } else {
        hsd_torch_rng_seed(&s->rng, 0);
    }
    const struct hsd_sampler_ops *ops = kind_ops[kind];
    float *ac = malloc((size_t)sched->num_train_timesteps * sizeof *ac);
    if (!ac) {
        memset(s, 0, sizeof *s);
        return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    }
    st = hsd_noise_schedule_alphas_cumprod(sched, ac);
    if (st == HSD_OK) st = ops->setup(s, ac);
    free(ac);
    if (st != HSD_OK) {
        memset(s, 0, sizeof *s);
        return st;
    }
    HSD_ASSERT(s->n_timesteps >= 1 && s->n_timesteps <= HSD_SAMPLER_MAX_STEPS + 1);
    s->buf_len = slots_total(ops) * n_latent;
    if (s->buf_len) {
        s->buf = calloc(s->buf_len, sizeof *s->buf);
        if (!s->buf) {
            memset(s, 0, sizeof *s);
            return hsd_fail(HSD_ERR_NOMEM, "out of memory for %zu sampler history floats",
                            slots_total(ops) * n_latent);
        }
    }
    return HSD_OK;
}

void hsd_sampler_free(struct hsd_sampler *s) {
    if (!s) return;
    free(s->buf);
    s->buf = NULL;
    s->buf_len = 0;
}

enum hsd_status hsd_sampler_copy(struct hsd_sampler *dst, const struct hsd_sampler *src) {
    *dst = *src;
    dst->buf = NULL;
    if (src->buf_len) {
        dst->buf = malloc(src->buf_len * sizeof *dst->buf);
        if (!dst->buf) {
            memset(dst, 0, sizeof *dst);
            return hsd_fail(HSD_ERR_NOMEM, "out of memory copying a sampler");
        }
        memcpy(dst->buf, src->buf, src->buf_len * sizeof *dst->buf);
    }
    return HSD_OK;
}

int hsd_sampler_n_calls(const struct hsd_sampler *s) { return s->n_timesteps; }

int hsd_sampler_done(const struct hsd_sampler *s) { return s->step >= s->n_timesteps; }

float hsd_sampler_timestep(const struct hsd_sampler *s) {
    HSD_ASSERT(s->step >= 0 && s->step < s->n_timesteps);
    return s->timesteps[s->step];
}

float hsd_sampler_init_noise_sigma(const struct hsd_sampler *s) {
    if (!ops_of(s)->scales_input) return 1.0f;  // DDIM/PNDM/DPM: init_noise_sigma = 1.0
    // Euler*: self.sigmas.max() (float32), or (max**2 + 1) ** 0.5 unless
    // the spacing is linspace/trailing.
    float m = 0.0f;
    for (int i = 0; i <= s->n_timesteps; i++) {
        if ((float)s->sigmas[i] > m) m = (float)s->sigmas[i];
    }
    enum hsd_timestep_spacing sp = hsd_sampler_spacing(s, ops_of(s)->default_spacing);
    if (sp == HSD_SPACING_LINSPACE || sp == HSD_SPACING_TRAILING) return m;
    return sqrtf(m * m + 1.0f);
}

// EulerDiscreteScheduler.scale_model_input: sample / ((sigma**2 + 1) ** 0.5).
static float input_divisor(const struct hsd_sampler *s) {
    const float sigma = (float)s->sigmas[s->step];
    return sqrtf(sigma * sigma + 1.0f);
}

void hsd_sampler_scale_model_input(const struct hsd_sampler *s, float *out, const float *x) {
    HSD_ASSERT(s->step >= 0 && s->step < s->n_timesteps);
    const size_t n = s->n_latent;
    if (!ops_of(s)->scales_input) {
        if (out != x) memcpy(out, x, n * sizeof *out);
        return;
    }
    const float d = input_divisor(s);
    for (size_t i = 0; i < n; i++) out[i] = x[i] / d;
}

static const enum hsd_step_kind step_kind[HSD_SAMPLER_COUNT] = {
    [HSD_SAMPLER_DPMPP_2M] = HSD_STEP_DPMPP_2M, [HSD_SAMPLER_DDIM] = HSD_STEP_DDIM,
    [HSD_SAMPLER_EULER] = HSD_STEP_EULER,       [HSD_SAMPLER_EULER_A] = HSD_STEP_EULER_A,
    [HSD_SAMPLER_PNDM] = HSD_STEP_PNDM,         [HSD_SAMPLER_LCM] = HSD_STEP_LCM,
};

enum hsd_status hsd_sampler_plan_step(struct hsd_sampler *s, struct hsd_step_row *row,
                                      struct hsd_torch_rng *rng_after) {
    if (s->step < 0 || s->step >= s->n_timesteps) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s sampler: all %d model calls were already made",
                        hsd_sampler_name(s->kind), s->n_timesteps);
    }
    const struct hsd_sampler_ops *ops = ops_of(s);
    memset(row, 0, sizeof *row);
    row->kind = step_kind[s->kind];
    row->uncond_row = -1;
    if (s->sched.prediction_type == HSD_PRED_V) row->flags |= HSD_STEP_V_PRED;
    if (ops->scales_input) {
        row->flags |= HSD_STEP_SCALE_INPUT;
        row->input_div = input_divisor(s);
    }
    ops->plan(s, row);
    *rng_after = s->rng;
    // Ancestral noise: randn_tensor(model_output.shape, generator) on the
    // host, from a copy of the generator (committed with the step).
    // LCM draws none on its last step (its re-noising is skipped there).
    if (ops->ancestral && (row->kind != HSD_STEP_LCM || (row->flags & HSD_STEP_NOISE)))
        hsd_torch_randn(rng_after, hsd_sampler_slot(s, 0), s->n_latent);
    return HSD_OK;
}

size_t hsd_sampler_slot_floats(const struct hsd_sampler *s) {
    HSD_ASSERT(s->buf_len <= (size_t)HSD_STEP_SLOTS * s->n_latent);
    return s->buf_len;
}

void hsd_sampler_commit_step(struct hsd_sampler *s, const struct hsd_torch_rng *rng_after) {
    HSD_ASSERT(s->step >= 0 && s->step < s->n_timesteps);
    const struct hsd_sampler_ops *ops = ops_of(s);
    if (ops->advance) ops->advance(s);
    s->rng = *rng_after;
    s->step++;
}

enum hsd_status hsd_sampler_step(struct hsd_sampler *s, float *x, const float *model_out) {
    struct hsd_step_row row;
    struct hsd_torch_rng rng;
    enum hsd_status st = hsd_sampler_plan_step(s, &row, &rng);
    if (st != HSD_OK) return st;
    // The CPU backend's sampler_step op, on this one item.
    for (size_t e = 0; e < s->n_latent; e++)
        hsd_step_element(&row, &x[e], model_out[e], s->buf, e, s->n_latent);
    hsd_sampler_commit_step(s, &rng);
    return HSD_OK;
}

// ---------------------------------------------------------------------------
// serialization
//
// Version 1, all little-endian:
//   "HSDSMPL\0"  u32 version  u32 kind  u64 total length (bytes, CRC included)
//   schedule:  u32 num_train_timesteps  f64 beta_start  f64 beta_end
//              u32 beta_schedule  i32 steps_offset  i32 set_alpha_to_one
//              i32 clip_sample  f32 clip_sample_range  u32 prediction_type
//              u32 timestep_spacing  i32 skip_prk_steps
//   progress:  u32 n_steps  u32 step  u64 n_latent  u32 n_timesteps
//              i32 lower_order_nums  i32 counter  i32 n_ets
//   tables:    f32 timesteps[n_timesteps]  f64 sigmas[n_timesteps + 1]
//              f32 alpha_prod[n_timesteps]  f32 alpha_prod_prev[n_timesteps]
//   rng:       u32 mt[624]  u32 index  u32 has_next_double  f64 next_double
//              u32 has_next_float  f32 next_float  u32 flavor
//   history:   u32 live slots  f32 [slots * n_latent]
//   u32 CRC-32 (zlib) of every byte before it.
// Version 2 (written for lcm states only, so every other state keeps
// version 1's bytes): the schedule block ends with u32
// original_inference_steps and f32 timestep_scaling, LCMScheduler's keys.
// The tables are derived data: deserialize recomputes them from the schedule
// and requires bit equality, so both ends agree on the maths, not only on
// the inputs.

static const char MAGIC[8] = {'H', 'S', 'D', 'S', 'M', 'P', 'L', '\0'};
enum { FORMAT_VERSION = 1, FORMAT_VERSION_LCM = 2 };
enum {
    HEADER_BYTES = 8 + 4 + 4 + 8,
    SCHED_BYTES = 4 + 8 + 8 + 4 + 4 + 4 + 4 + 4 + 4 + 4 + 4,
    SCHED_LCM_BYTES = 4 + 4,  // version 2's addition
    PROGRESS_BYTES = 4 + 4 + 8 + 4 + 4 + 4 + 4,
    RNG_BYTES = 624 * 4 + 4 + 4 + 8 + 4 + 4 + 4,
};

static size_t table_bytes(int n_timesteps) {
    return (size_t)n_timesteps * 4 + (size_t)(n_timesteps + 1) * 8 + (size_t)n_timesteps * 8;
}

static size_t sched_bytes(enum hsd_sampler_kind kind) {
    return SCHED_BYTES + (kind == HSD_SAMPLER_LCM ? SCHED_LCM_BYTES : 0);
}

size_t hsd_sampler_serialized_size(const struct hsd_sampler *s) {
    const int live = ops_of(s)->live_slots(s);
    return HEADER_BYTES + sched_bytes(s->kind) + PROGRESS_BYTES + table_bytes(s->n_timesteps) +
           RNG_BYTES + 4 + (size_t)live * s->n_latent * 4 + 4;
}

struct writer {
    unsigned char *p;
};

static void put_u32(struct writer *w, uint32_t v) {
    for (int i = 0; i < 4; i++) *w->p++ = (unsigned char)(v >> (8 * i));
}
static void put_u64(struct writer *w, uint64_t v) {
    for (int i = 0; i < 8; i++) *w->p++ = (unsigned char)(v >> (8 * i));
}
static void put_i32(struct writer *w, int v) { put_u32(w, (uint32_t)v); }
static void put_f32(struct writer *w, float v) {
    uint32_t b;
    memcpy(&b, &v, 4);
    put_u32(w, b);
}
static void put_f64(struct writer *w, double v) {
    uint64_t b;
    memcpy(&b, &v, 8);
    put_u64(w, b);
}

enum hsd_status hsd_sampler_serialize(const struct hsd_sampler *s, void *buf, size_t cap) {
    const size_t size = hsd_sampler_serialized_size(s);
    if (cap < size) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "sampler state needs %zu bytes, buffer has %zu", size,
                        cap);
    }
    const int live = ops_of(s)->live_slots(s);
    struct writer w = {buf};
    memcpy(w.p, MAGIC, 8);
    w.p += 8;
    const int lcm = s->kind == HSD_SAMPLER_LCM;
    put_u32(&w, lcm ? FORMAT_VERSION_LCM : FORMAT_VERSION);
    put_u32(&w, (uint32_t)s->kind);
    put_u64(&w, size);
    const struct hsd_noise_schedule *sc = &s->sched;
    put_u32(&w, (uint32_t)sc->num_train_timesteps);
    put_f64(&w, sc->beta_start);
    put_f64(&w, sc->beta_end);
    put_u32(&w, (uint32_t)sc->beta_schedule);
    put_i32(&w, sc->steps_offset);
    put_i32(&w, sc->set_alpha_to_one);
    put_i32(&w, sc->clip_sample);
    put_f32(&w, sc->clip_sample_range);
    put_u32(&w, (uint32_t)sc->prediction_type);
    put_u32(&w, (uint32_t)sc->timestep_spacing);
    put_i32(&w, sc->skip_prk_steps);
    if (lcm) {
        put_u32(&w, (uint32_t)sc->original_inference_steps);
        put_f32(&w, sc->timestep_scaling);
    }
    put_u32(&w, (uint32_t)s->n_steps);
    put_u32(&w, (uint32_t)s->step);
    put_u64(&w, s->n_latent);
    put_u32(&w, (uint32_t)s->n_timesteps);
    put_i32(&w, s->lower_order_nums);
    put_i32(&w, s->counter);
    put_i32(&w, s->n_ets);
    for (int i = 0; i < s->n_timesteps; i++) put_f32(&w, s->timesteps[i]);
    for (int i = 0; i <= s->n_timesteps; i++) put_f64(&w, s->sigmas[i]);
    for (int i = 0; i < s->n_timesteps; i++) put_f32(&w, s->alpha_prod[i]);
    for (int i = 0; i < s->n_timesteps; i++) put_f32(&w, s->alpha_prod_prev[i]);
    for (int i = 0; i < 624; i++) put_u32(&w, s->rng.mt[i]);
    put_u32(&w, (uint32_t)s->rng.index);
    put_u32(&w, (uint32_t)s->rng.has_next_double);
    put_f64(&w, s->rng.next_double);
    put_u32(&w, (uint32_t)s->rng.has_next_float);
    put_f32(&w, s->rng.next_float);
    put_u32(&w, (uint32_t)s->rng.flavor);
    put_u32(&w, (uint32_t)live);
    const size_t nf = (size_t)live * s->n_latent;
    for (size_t i = 0; i < nf; i++) put_f32(&w, s->buf[i]);
    const size_t body = (size_t)(w.p - (unsigned char *)buf);
    // zlib's crc32 takes a uInt length: feed it in pieces.
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t off = 0; off < body;) {
        size_t chunk = body - off < (1u << 30) ? body - off : (1u << 30);
        crc = crc32(crc, (const unsigned char *)buf + off, (uInt)chunk);
        off += chunk;
    }
    put_u32(&w, (uint32_t)crc);
    HSD_ASSERT((size_t)(w.p - (unsigned char *)buf) == size);
    return HSD_OK;
}

struct reader {
    const unsigned char *p, *end;
};

static uint32_t get_u32(struct reader *r) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)r->p[i] << (8 * i);
    r->p += 4;
    return v;
}
static uint64_t get_u64(struct reader *r) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)r->p[i] << (8 * i);
    r->p += 8;
    return v;
}
static int get_i32(struct reader *r) {
    uint32_t u = get_u32(r);
    int v;
    memcpy(&v, &u, 4);  // two's complement reinterpretation, no UB
    return v;
}
static float get_f32(struct reader *r) {
    uint32_t b = get_u32(r);
    float v;
    memcpy(&v, &b, 4);
    return v;
}
static double get_f64(struct reader *r) {
    uint64_t b = get_u64(r);
    double v;
    memcpy(&v, &b, 8);
    return v;
}

static enum hsd_status bad_state(const char *why) {
    return hsd_fail(HSD_ERR_FORMAT, "sampler state: %s", why);
}

static int same_bits_f32(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }
static int same_bits_f64(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

// Everything but the history, into a fresh object `t` (allocated by init).
static enum hsd_status read_state(struct hsd_sampler *t, struct reader *r, size_t len,
                                  int *live_out) {
    const unsigned char *start = r->p;
    if (len < HEADER_BYTES + SCHED_BYTES + PROGRESS_BYTES) return bad_state("truncated header");
    if (memcmp(r->p, MAGIC, 8) != 0) return bad_state("bad magic (not a sampler state)");
    r->p += 8;
    uint32_t version = get_u32(r);
    if (version != FORMAT_VERSION && version != FORMAT_VERSION_LCM) {
        return hsd_fail(HSD_ERR_FORMAT, "sampler state: version %u, this build reads %d and %d",
                        version, FORMAT_VERSION, FORMAT_VERSION_LCM);
    }
    uint32_t kind = get_u32(r);
    if (kind >= HSD_SAMPLER_COUNT) return bad_state("unknown sampler kind");
    if ((version == FORMAT_VERSION_LCM) != (kind == HSD_SAMPLER_LCM))
        return bad_state("lcm states are version 2, every other kind version 1");
    const size_t sbytes = sched_bytes((enum hsd_sampler_kind)kind);
    if (len < HEADER_BYTES + sbytes + PROGRESS_BYTES) return bad_state("truncated header");
    uint64_t total = get_u64(r);
    if (total != len) {
        return hsd_fail(HSD_ERR_FORMAT, "sampler state: header says %llu bytes, got %zu",
                        (unsigned long long)total, len);
    }
    // The CRC covers everything: check it before trusting any field.
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t off = 0; off < len - 4;) {
        size_t chunk = len - 4 - off < (1u << 30) ? len - 4 - off : (1u << 30);
        crc = crc32(crc, start + off, (uInt)chunk);
        off += chunk;
    }
    struct reader tail = {start + len - 4, start + len};
    if ((uint32_t)crc != get_u32(&tail)) return bad_state("CRC mismatch (corrupted)");

    struct hsd_noise_schedule sc;
    memset(&sc, 0, sizeof sc);
    uint32_t n_train = get_u32(r);
    if (n_train > HSD_NOISE_SCHEDULE_MAX_TRAIN) return bad_state("num_train_timesteps too large");
    sc.num_train_timesteps = (int)n_train;
    sc.beta_start = get_f64(r);
    sc.beta_end = get_f64(r);
    uint32_t beta_schedule = get_u32(r);
    sc.steps_offset = get_i32(r);
    sc.set_alpha_to_one = get_i32(r);
    sc.clip_sample = get_i32(r);
    sc.clip_sample_range = get_f32(r);
    uint32_t pred = get_u32(r), spacing = get_u32(r);
    sc.skip_prk_steps = get_i32(r);
    sc.original_inference_steps = 50;  // LCMScheduler's defaults (unused by other kinds)
    sc.timestep_scaling = 10.0f;
    if (kind == HSD_SAMPLER_LCM) {
        uint32_t orig = get_u32(r);
        if (orig < 1 || orig > HSD_NOISE_SCHEDULE_MAX_TRAIN) return bad_state("bad original steps");
        sc.original_inference_steps = (int)orig;
        sc.timestep_scaling = get_f32(r);
    }
    if (beta_schedule > HSD_BETA_SQUAREDCOS || pred > HSD_PRED_V || spacing > HSD_SPACING_TRAILING) {
        return bad_state("schedule enum out of range");
    }
    if (!isfinite(sc.beta_start) || !isfinite(sc.beta_end)) return bad_state("non-finite beta");
    sc.beta_schedule = (enum hsd_beta_schedule)beta_schedule;
    sc.prediction_type = (enum hsd_prediction)pred;
    sc.timestep_spacing = (enum hsd_timestep_spacing)spacing;

    uint32_t n_steps = get_u32(r), step = get_u32(r);
    uint64_t n_latent = get_u64(r);
    uint32_t n_timesteps = get_u32(r);
    int lower_order_nums = get_i32(r), counter = get_i32(r), n_ets = get_i32(r);
    if (n_steps < 1 || n_steps > HSD_SAMPLER_MAX_STEPS) return bad_state("n_steps outside 1..1000");
    if (n_latent < 1 || n_latent > HSD_SAMPLER_MAX_LATENT) return bad_state("n_latent out of range");
    if (n_timesteps < 1 || n_timesteps > HSD_SAMPLER_MAX_STEPS + 1) {
        return bad_state("n_timesteps out of range");
    }
    if (step > n_timesteps) return bad_state("step past the last model call");

    // Fixed-size parts are known now; the live slot count follows them.
    size_t fixed = HEADER_BYTES + sbytes + PROGRESS_BYTES + table_bytes((int)n_timesteps) +
                   RNG_BYTES + 4;
    if (len < fixed + 4) return bad_state("truncated");
    struct reader after = {start + fixed - 4, start + len};
    uint32_t live = get_u32(&after);
    if (live > 8) return bad_state("too many history slots");
    if ((uint64_t)(len - fixed - 4) != (uint64_t)live * n_latent * 4) {
        return bad_state("length does not match the history it declares");
    }

    // Recompute the tables from the schedule (init validates the schedule).
    struct hsd_torch_rng rng;
    memset(&rng, 0, sizeof rng);
    enum hsd_status st =
        hsd_sampler_init(t, (enum hsd_sampler_kind)kind, &sc, (int)n_steps, (size_t)n_latent, &rng);
    if (st != HSD_OK) return hsd_fail_context(HSD_ERR_FORMAT, "sampler state");
    if ((uint32_t)t->n_timesteps != n_timesteps) return bad_state("n_timesteps disagrees with N");
    for (int i = 0; i < t->n_timesteps; i++) {
        if (!same_bits_f32(get_f32(r), t->timesteps[i])) return bad_state("timesteps differ");
    }
    for (int i = 0; i <= t->n_timesteps; i++) {
        if (!same_bits_f64(get_f64(r), t->sigmas[i])) return bad_state("sigmas differ");
    }
    for (int i = 0; i < t->n_timesteps; i++) {
        if (!same_bits_f32(get_f32(r), t->alpha_prod[i])) return bad_state("alpha table differs");
    }
    for (int i = 0; i < t->n_timesteps; i++) {
        if (!same_bits_f32(get_f32(r), t->alpha_prod_prev[i])) {
            return bad_state("alpha table differs");
        }
    }
    for (int i = 0; i < 624; i++) t->rng.mt[i] = get_u32(r);
    uint32_t index = get_u32(r), has_d = get_u32(r);
    double next_d = get_f64(r);
    uint32_t has_f = get_u32(r);
    float next_f = get_f32(r);
    uint32_t flavor = get_u32(r);
    if (index > 624 || has_d > 1 || has_f > 1 || flavor >= HSD_TORCH_NORMAL_COUNT) {
        return bad_state("generator fields out of range");
    }
    if (!isfinite(next_d) || !isfinite(next_f)) return bad_state("non-finite cached normal");
    if ((!has_d && !same_bits_f64(next_d, 0.0)) || (!has_f && !same_bits_f32(next_f, 0.0f))) {
        return bad_state("cached normal set without its flag");
    }
    t->rng.index = (int)index;
    t->rng.has_next_double = (int)has_d;
    t->rng.next_double = next_d;
    t->rng.has_next_float = (int)has_f;
    t->rng.next_float = next_f;
    t->rng.flavor = (int)flavor;

    t->step = (int)step;
    t->lower_order_nums = lower_order_nums;
    t->counter = counter;
    t->n_ets = n_ets;
    const struct hsd_sampler_ops *ops = ops_of(t);
    if (!ops->progress_ok(t)) return bad_state("history counters disagree with the step");
    if ((int)live != ops->live_slots(t)) return bad_state("wrong number of history slots");
    r->p += 4;  // the slot count, read above
    *live_out = (int)live;
    return HSD_OK;
}

enum hsd_status hsd_sampler_deserialize(struct hsd_sampler *s, const void *buf, size_t len) {
    memset(s, 0, sizeof *s);
    struct hsd_sampler *t = calloc(1, sizeof *t);  // ~22 KB: keep it off the stack
    if (!t) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    struct reader r = {buf, (const unsigned char *)buf + len};
    int live = 0;
    enum hsd_status st = read_state(t, &r, len, &live);
    if (st == HSD_OK) {
        const size_t nf = (size_t)live * t->n_latent;
        for (size_t i = 0; i < nf; i++) {
            float v = get_f32(&r);
            if (!isfinite(v)) {
                st = bad_state("non-finite value in the history");
                break;
            }
            t->buf[i] = v;
        }
    }
    if (st == HSD_OK) {
        *s = *t;
    } else {
        hsd_sampler_free(t);
    }
    free(t);
    return st;
}

int hsd_sampler_no_history_live_slots(const struct hsd_sampler *s) {
    (void)s;
    return 0;
}

int hsd_sampler_no_history_progress_ok(const struct hsd_sampler *s) {
    return s->lower_order_nums == 0 && s->counter == 0 && s->n_ets == 0;
}
