// A1111's extra-network tags in a prompt (a1111_request.h): <lora:NAME>,
// <lora:NAME:SCALE>, <lora:NAME:TE:UNET>. Matched as A1111's
// modules/extra_networks.py re_extra_net = r"<(\w+):([^>]+)>" (\w here:
// ASCII letters, digits, '_' and every non-ASCII byte, so UTF-8 letters
// count, as in Python's str regex); every match is removed from the prompt
// (parse_prompt replaces it with ""), its arguments split on ':'. The
// multipliers follow A1111's extra_networks_lora.py: TE defaults to 1 and
// UNET to TE. hsd applies one scale to a LoRA's U-Net and text-encoder
// layers alike, so TE and UNET must agree, and its other extra networks
// (hypernet, lyco, ...) and named arguments (te=, unet=, dyn=) are refused
// rather than silently skipped. A LoRA named twice adds its scales (A1111
// applies both). Untrusted bytes: fuzzed by fuzz_a1111_request.
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/a1111_request.h"

// The bound every pipeline enforces on a request's LoRA scale
// (pipeline/pipeline.c hsd_pipeline_validate_params).
#define LORA_SCALE_MAX 16.0

__attribute__((format(printf, 3, 4))) static int fail(char *msg, size_t cap, const char *fmt,
                                                      ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return 422;
}

static int is_word(unsigned char c) {
    return c >= 0x80 || c == '_' || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

// A multiplier as Python's float() reads it for these values: surrounding
// blanks allowed, finite, nothing else after the number.
static int multiplier(const char *a, size_t n, double *out) {
    char buf[64];
    while (n && (*a == ' ' || *a == '\t')) a++, n--;
    while (n && (a[n - 1] == ' ' || a[n - 1] == '\t')) n--;
    if (!n || n >= sizeof buf) return -1;
    memcpy(buf, a, n);
    buf[n] = '\0';
    char *end;
    *out = strtod(buf, &end);
    return *end || !isfinite(*out) ? -1 : 0;
}

static int lora_names(char *list, size_t cap, const struct hsd_a1111_settings *s) {
    size_t l = 0;
    list[0] = '\0';
    for (int i = 0; i < s->n_loras && l < cap; i++)
        l += (size_t)snprintf(list + l, cap - l, "%s'%s'", i ? ", " : "", s->loras[i]);
    return s->n_loras;
}

// One tag: type [t, t + tn), arguments [a, a + an).
static int tag(const char *t, size_t tn, const char *a, size_t an,
               const struct hsd_a1111_settings *s, float *scale, char *msg, size_t cap) {
    if (tn != 4 || memcmp(t, "lora", 4))
        return fail(msg, cap, "<%.*s:...> in the prompt: extra network '%.*s' is not supported "
                              "by hsd edge (LoRAs are: <lora:NAME:SCALE>)",
                    (int)tn, t, (int)tn, t);
    int n = 1;
    for (size_t i = 0; i < an; i++) n += a[i] == ':';
    if (n > 3)
        return fail(msg, cap, "<lora:%.*s>: too many arguments (A1111's form is "
                              "<lora:NAME:SCALE>)", (int)an, a);
    const char *arg[3];
    size_t len[3];
    for (int i = 0, o = 0; i < n; i++) {
        const char *c = memchr(a + o, ':', an - (size_t)o);
        arg[i] = a + o;
        len[i] = (size_t)((c ? c : a + an) - arg[i]);
        o += (int)len[i] + 1;
    }
    for (int i = 0; i < n; i++)
        if (memchr(arg[i], '=', len[i]))
            return fail(msg, cap, "<lora:%.*s>: named arguments (te=, unet=, dyn=) are not "
                                  "supported by hsd edge", (int)an, a);
    int idx = -1;
    for (int i = 0; i < s->n_loras && idx < 0; i++)
        if (strlen(s->loras[i]) == len[0] && !memcmp(s->loras[i], arg[0], len[0])) idx = i;
    if (idx < 0) {
        char list[HSD_PIPELINE_MAX_LORAS * 70];
        if (!lora_names(list, sizeof list, s))
            return fail(msg, cap, "LoRA '%.*s' not found: this edge has no LoRAs (start it with "
                                  "--lora NAME=FILE)", (int)len[0], arg[0]);
        return fail(msg, cap, "LoRA '%.*s' not found (this edge has %s)", (int)len[0], arg[0],
                    list);
    }
    double te = 1.0, unet;
    if (n > 1 && multiplier(arg[1], len[1], &te))
        return fail(msg, cap, "<lora:%.*s>: '%.*s' is not a number", (int)an, a, (int)len[1],
                    arg[1]);
    unet = te;
    if (n > 2 && multiplier(arg[2], len[2], &unet))
        return fail(msg, cap, "<lora:%.*s>: '%.*s' is not a number", (int)an, a, (int)len[2],
                    arg[2]);
    if (unet != te)
        return fail(msg, cap, "<lora:%.*s>: hsd applies one scale to a LoRA's text encoder and "
                              "U-Net; give one multiplier", (int)an, a);
    double sum = (double)scale[idx] + te;
    if (!(fabs(sum) <= LORA_SCALE_MAX))
        return fail(msg, cap, "LoRA '%s': scale %g is outside [-%g, %g]", s->loras[idx], sum,
                    LORA_SCALE_MAX, LORA_SCALE_MAX);
    scale[idx] = (float)sum;
    return 0;
}

int hsd_a1111_extra_networks(char *prompt, const struct hsd_a1111_settings *s, float *scale,
                             char *msg, size_t cap) {
    char *w = prompt;
    const char *r = prompt;
    while (*r) {
        if (*r == '<') {
            const char *t = r + 1;
            while (is_word((unsigned char)*t)) t++;
            const char *e = t > r + 1 && *t == ':' ? strchr(t + 1, '>') : NULL;
            if (e && e > t + 1) {
                int st = tag(r + 1, (size_t)(t - r - 1), t + 1, (size_t)(e - t - 1), s, scale,
                             msg, cap);
                if (st) return st;
                r = e + 1;
                continue;
            }
        }
        *w++ = *r++;
    }
    *w = '\0';
    return 0;
}
