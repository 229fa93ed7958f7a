// LoRA adapters applied unfused, as low-rank side products after the
// layers they target (Punica / S-LoRA style): y += s_b * (alpha/r) * B (A x)
// with s_b the scale that batch row b chose, so requests with different
// LoRA sets (or none) share one U-Net call and the base weights are never
// changed (they may be fp16-resident or shared between devices). Why
// unfused and not merged per LoRA set: bench/RESULTS.md "LoRA".
//
// A file is read once (hsd_lora_file_open: every tensor name through
// models/lora_keys.h, shapes checked pairwise); a model then attaches it
// (its U-Net layers to a U-Net, its text-encoder layers to a text encoder)
// and gets an adapter index; before each forward the caller selects one
// scale per (row, adapter), 0 = off.
#ifndef HSD_MODELS_LORA_H
#define HSD_MODELS_LORA_H

#include "backend/backend.h"
#include "models/fwd.h"
#include "models/lora_keys.h"

struct hsd_lora_layer {
    enum hsd_lora_part part;
    char layer[HSD_LORA_LAYER_MAX];  // models/lora_keys.h spelling
    int r, k, n_out;                 // down (lora_A) [r, k], up (lora_B) [n_out, r]
    float alpha;                     // the file's, else r (PEFT's default: scale 1)
    float *down, *up;                // host fp32
};

struct hsd_lora_file {
    char path[4096];
    struct hsd_lora_layer *layers;
    int n_layers;
    int n_part[HSD_LORA_N_PARTS];    // layers per model part
};

// Reads a .safetensors LoRA (F32/F16/BF16; 1x1-conv [.., .., 1, 1] tensors
// taken as linear). Fails naming the key for an unknown name, a missing
// half, a rank mismatch or a non-scalar alpha.
enum hsd_status hsd_lora_file_open(struct hsd_lora_file **out, const char *path);
void hsd_lora_file_free(struct hsd_lora_file *f);

// One layer a model lets LoRA target: the linear whose weight buffer is
// `weight`, writing columns [col, col + n_out) of its output (q, k and v
// are packed into one GEMM) from k inputs.
struct hsd_lora_target {
    char layer[HSD_LORA_LAYER_MAX];
    const void *weight;
    int col, n_out, k;
};

struct hsd_lora_set;  // a model's attached adapters

// Attaches f's layers of `part` to the model whose targets are given:
// every such layer must name a target of the same shape, else nothing is
// attached and the error names the layer and what did not fit ("model" is
// for messages: "U-Net", "edge U-Net", ...). *set is created on first use.
// *adapter receives the adapter's index (0, 1, ... per set).
enum hsd_status hsd_lora_attach(struct hsd_lora_set **set, struct hsd_backend *be,
                                const struct hsd_lora_target *targets, int n_targets,
                                const struct hsd_lora_file *f, enum hsd_lora_part part,
                                const char *model, int *adapter);
void hsd_lora_set_free(struct hsd_lora_set *set);
int hsd_lora_set_adapters(const struct hsd_lora_set *set);

// Scales of the next forwards: scale[b * n_adapters + a] for rows b < rows
// (rows beyond get no LoRA). NULL / rows 0: none.
enum hsd_status hsd_lora_select(struct hsd_lora_set *set, const float *scale, int rows);
// 1 when the selection has a non-zero scale: the next forward runs lora
// ops, whose per-row scales a recorded CUDA graph would freeze, so such a
// forward is not recorded (models/unet_forward.c).
int hsd_lora_active(const struct hsd_lora_set *set);

// After the linear with weight `weight` wrote out [n * tokens, ldo] from in
// [n * tokens, k]: adds every attached adapter's side product for the rows
// that selected it (planning: reserves its scratch). No-op without a set or
// a hook on `weight`.
enum hsd_status hsd_lora_apply(struct hsd_fwd *f, const struct hsd_lora_set *set,
                               const void *weight, void *out, int ldo, const void *in, int n,
                               int tokens);

#endif
