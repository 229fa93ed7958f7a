// diffusers models/resnet.py ResnetBlock2D as SD uses it (pre-norm,
// time_embedding_norm "default", output_scale_factor 1, SiLU, 1x1
// conv_shortcut when the widths differ): the U-Net's, with a time embedding
// projection, and the VAE's (temb_channels=None: no time_emb_proj).
//   out = conv2(silu(gn2(conv1(silu(gn1(x))) [+ proj(silu(temb))]))) + shortcut(x)
#ifndef HSD_MODELS_RESNET2D_H
#define HSD_MODELS_RESNET2D_H

#include "models/fwd.h"
#include "models/loader.h"

// cmid < cout in structurally pruned U-Nets.
struct hsd_resnet2d {
    int cin, cmid, cout;
    int temb_dim;                 // 0: no time embedding (VAE)
    void *norm1_g, *norm1_b;      // [cin]
    void *conv1_w, *conv1_b;      // [cmid, 3, 3, cin], [cmid]
    void *temb_w, *temb_b;        // [cmid, temb_dim], [cmid], or NULL
    void *norm2_g, *norm2_b;      // [cmid]
    void *conv2_w, *conv2_b;      // [cout, 3, 3, cmid], [cout]
    void *short_w, *short_b;      // [cout, cin] or NULL (1x1 conv_shortcut)
};

// Loads the block at diffusers prefix `pre` ("down_blocks.0.resnets.1").
// narrow_mid: read cmid from conv1's shape (pruned models), else it must be
// cout. cmid must divide into `groups` (norm2).
enum hsd_status hsd_resnet2d_build(struct hsd_loader *ld, struct hsd_resnet2d *r,
                                   const char *pre, int cin, int cout, int temb_dim, int groups,
                                   int narrow_mid);

// out [n, h, w, cout] from x [n, h, w, cin]; temb_silu [n, temb_dim] =
// silu(time embedding), ignored (may be NULL) without time embedding.
// GroupNorms use `groups` and `eps` (U-Net: config norm_eps; VAE: 1e-6).
// out may be x (in place, if the buffer holds max(cin, cout) channels): x
// is consumed by norm1 and the shortcut before conv2 writes out, adding x
// as its residual in place (the VAE's two-buffer plan relies on this).
enum hsd_status hsd_resnet2d_forward(struct hsd_fwd *f, void *out, const void *x,
                                     const void *temb_silu, const struct hsd_resnet2d *r, int n,
                                     int h, int w, int groups, float eps);

#endif
