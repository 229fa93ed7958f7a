// Where the CLIP vocabulary shipped with hsd is at run time, for models
// that bring none (SD 1.x single-file checkpoints). In order:
//   1. $HSD_CLIP_BPE_GZ (a bpe_simple_vocab_16e6.txt.gz anywhere);
//   2. the installed copy, <prefix>/share/hybridsd/ (cmake --install);
//   3. the source tree's host/text/data/ (a build run from its checkout).
// The last two paths are compiled in by host/CMakeLists.txt.
#include <stdio.h>
#include <stdlib.h>

#include "io/file.h"
#include "text/clip_tokenizer.h"

#ifndef HSD_CLIP_VOCAB_INSTALLED
#define HSD_CLIP_VOCAB_INSTALLED ""
#endif
#ifndef HSD_CLIP_VOCAB_SOURCE
#define HSD_CLIP_VOCAB_SOURCE ""
#endif

enum hsd_status hsd_clip_default_vocab(char *out, size_t cap) {
    const char *env = getenv("HSD_CLIP_BPE_GZ");
    if (env && *env) {
        if (hsd_path_too_long(snprintf(out, cap, "%s", env), cap))
            return hsd_fail(HSD_ERR_INVALID_ARG, "HSD_CLIP_BPE_GZ: path too long");
        if (!hsd_is_file(out))
            return hsd_fail(HSD_ERR_NOT_FOUND, "HSD_CLIP_BPE_GZ=%s: no such file", env);
        return HSD_OK;
    }
    const char *const candidates[] = {HSD_CLIP_VOCAB_INSTALLED, HSD_CLIP_VOCAB_SOURCE};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        if (!*candidates[i] || hsd_path_too_long(snprintf(out, cap, "%s", candidates[i]), cap))
            continue;
        if (hsd_is_file(out)) return HSD_OK;
    }
    return hsd_fail(HSD_ERR_NOT_FOUND,
                    "the CLIP vocabulary shipped with hsd is in neither '%s' nor '%s'; set "
                    "HSD_CLIP_BPE_GZ to a bpe_simple_vocab_16e6.txt.gz",
                    HSD_CLIP_VOCAB_INSTALLED, HSD_CLIP_VOCAB_SOURCE);
}
