// diffusers resnet.py ResnetBlock2D (resnet2d.h): loading and forward,
// moved out of unet_build.c / unet_forward.c so the VAE shares them.
#include "models/resnet2d.h"

enum hsd_status hsd_resnet2d_build(struct hsd_loader *ld, struct hsd_resnet2d *r,
                                   const char *pre, int cin, int cout, int temb_dim, int groups,
                                   int narrow_mid) {
    enum hsd_status s;
    r->cin = cin;
    r->cout = cout;
    r->temb_dim = temb_dim;
    int64_t c1[4] = {narrow_mid ? HSD_ANY : cout, cin, 3, 3};
    if ((s = hsd_loader_get(ld, &r->norm1_g, 1, HSD_DIMS(cin), 0, "%s.norm1.weight", pre)))
        return s;
    if ((s = hsd_loader_get(ld, &r->norm1_b, 1, HSD_DIMS(cin), 0, "%s.norm1.bias", pre)))
        return s;
    if ((s = hsd_loader_get(ld, &r->conv1_w, 4, c1, 1, "%s.conv1.weight", pre))) return s;
    int cmid = (int)c1[0];
    r->cmid = cmid;
    if (cmid % groups)
        return hsd_fail(HSD_ERR_SHAPE,
                        "%s: tensor '%s.conv1.weight': inner width %d is not divisible by "
                        "norm_num_groups %d",
                        ld->path, pre, cmid, groups);
    if ((s = hsd_loader_get(ld, &r->conv1_b, 1, HSD_DIMS(cmid), 0, "%s.conv1.bias", pre)))
        return s;
    r->temb_w = r->temb_b = NULL;
    if (temb_dim) {
        if ((s = hsd_loader_get(ld, &r->temb_w, 2, HSD_DIMS(cmid, temb_dim), 0,
                                "%s.time_emb_proj.weight", pre)))
            return s;
        if ((s = hsd_loader_get(ld, &r->temb_b, 1, HSD_DIMS(cmid), 0, "%s.time_emb_proj.bias",
                                pre)))
            return s;
    }
    if ((s = hsd_loader_get(ld, &r->norm2_g, 1, HSD_DIMS(cmid), 0, "%s.norm2.weight", pre)))
        return s;
    if ((s = hsd_loader_get(ld, &r->norm2_b, 1, HSD_DIMS(cmid), 0, "%s.norm2.bias", pre)))
        return s;
    if ((s = hsd_loader_get(ld, &r->conv2_w, 4, HSD_DIMS(cout, cmid, 3, 3), 1,
                            "%s.conv2.weight", pre)))
        return s;
    if ((s = hsd_loader_get(ld, &r->conv2_b, 1, HSD_DIMS(cout), 0, "%s.conv2.bias", pre)))
        return s;
    r->short_w = r->short_b = NULL;
    if (cin != cout) {  // diffusers: use_in_shortcut = in_channels != out_channels
        if ((s = hsd_loader_get(ld, &r->short_w, 4, HSD_DIMS(cout, cin, 1, 1), 1,
                                "%s.conv_shortcut.weight", pre)))
            return s;
        if ((s = hsd_loader_get(ld, &r->short_b, 1, HSD_DIMS(cout), 0, "%s.conv_shortcut.bias",
                                pre)))
            return s;
    }
    return HSD_OK;
}

// diffusers ResnetBlock2D.forward (time_embedding_norm "default",
// output_scale_factor 1): out = conv2(silu(gn2(conv1(silu(gn1(x))) +
// proj(silu(temb))))) + shortcut(x); the shortcut add is fused into conv2.
enum hsd_status hsd_resnet2d_forward(struct hsd_fwd *f, void *out, const void *x,
                                     const void *temb_silu, const struct hsd_resnet2d *r, int n,
                                     int h, int w, int groups, float eps) {
    enum hsd_status s;
    int hw = h * w;
    size_t mark = f->used;
    void *t1 = hsd_fwd_act(f, (size_t)n * hw * r->cin);
    if ((s = hsd_fwd_gnorm(f, t1, x, r->norm1_g, r->norm1_b, n, hw, r->cin, groups, eps, 1)))
        return s;
    void *t2 = hsd_fwd_act(f, (size_t)n * hw * r->cmid);
    if ((s = hsd_fwd_conv(f, t2, t1, r->conv1_w, r->conv1_b, NULL, n, h, w, r->cin, r->cmid, 3,
                          1)))
        return s;
    if (r->temb_dim) {
        void *tp = hsd_fwd_act(f, (size_t)n * r->cmid);
        if ((s = hsd_fwd_linear(f, tp, temb_silu, r->temb_w, r->temb_b, NULL, n, r->temb_dim,
                                r->cmid)))
            return s;
        struct hsd_add_bias_params ab = {.x = t2, .v = tp, .n = n, .p = hw, .c = r->cmid};
        HSD_FWD_RUN(f, add_bias, &ab);
    }
    void *t3 = t1;  // t1 is dead; reuse when it is big enough
    if (r->cmid > r->cin) t3 = hsd_fwd_act(f, (size_t)n * hw * r->cmid);
    if ((s = hsd_fwd_gnorm(f, t3, t2, r->norm2_g, r->norm2_b, n, hw, r->cmid, groups, eps, 1)))
        return s;
    const void *sc = x;
    if (r->short_w) {
        // t2 is dead after norm2: the shortcut goes there when it fits (the
        // VAE decoder's 256 -> 128 ResNet at 512^2 then peaks 134 MB lower).
        void *t4 = r->cmid >= r->cout ? t2 : hsd_fwd_act(f, (size_t)n * hw * r->cout);
        if ((s = hsd_fwd_linear(f, t4, x, r->short_w, r->short_b, NULL, n * hw, r->cin,
                                r->cout)))
            return s;
        sc = t4;
    }
    if ((s = hsd_fwd_conv(f, out, t3, r->conv2_w, r->conv2_b, sc, n, h, w, r->cmid, r->cout, 3,
                          1)))
        return s;
    f->used = mark;
    return HSD_OK;
}
