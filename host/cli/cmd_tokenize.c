// hsd tokenize: the CLIP token ids SD's text encoder gets for a prompt (as
// transformers' CLIPTokenizer(prompt, padding="max_length", max_length=77,
// truncation=True)), one line of space-separated ids; -v adds the tokens.
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "text/clip_tokenizer.h"

static void usage(FILE *f) {
    fprintf(f, "usage: hsd tokenize --tokenizer PATH [--max-len 77] [-v] [--] TEXT\n\n"
               "  --tokenizer PATH  a diffusers model root (reads tokenizer/), a tokenizer\n"
               "                    folder (vocab.json + merges.txt) or OpenAI's\n"
               "                    bpe_simple_vocab_16e6.txt.gz\n"
               "  --max-len N       ids to print: BOS, tokens (truncated), EOS, padding\n"
               "  -v                also print each token with its id\n");
}

int hsd_cmd_tokenize(int argc, char **argv) {
    const char *path = NULL;
    int max_len = 77, verbose = 0, c;
    static const struct option opts[] = {{"tokenizer", required_argument, 0, 't'},
                                         {"max-len", required_argument, 0, 'm'},
                                         {"verbose", no_argument, 0, 'v'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:m:vh", opts, NULL)) != -1) {
        if (c == 't') path = optarg;
        else if (c == 'm') {
            max_len = hsd_cli_parse_int("tokenize", "--max-len", optarg, 2, 1 << 20);
            if (max_len < 0) return 2;
        } else if (c == 'v') verbose = 1;
        else if (c == 'h') {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    if (!path) {
        fprintf(stderr, "hsd tokenize: no tokenizer: pass --tokenizer PATH (a diffusers model "
                        "root, a tokenizer folder or bpe_simple_vocab_16e6.txt.gz)\n");
        return 2;
    }
    const char *text = argv[optind];
    struct hsd_clip_tokenizer *t = NULL;
    if (hsd_clip_tokenizer_load(&t, path)) return hsd_cli_fail("tokenize");
    int32_t *ids = malloc((size_t)max_len * sizeof *ids);
    if (!ids) {
        hsd_clip_tokenizer_free(t);
        fprintf(stderr, "hsd tokenize: out of memory\n");
        return 1;
    }
    int n = 0;
    if (hsd_clip_tokenize(t, text, strlen(text), ids, max_len, &n)) {
        free(ids);
        hsd_clip_tokenizer_free(t);
        return hsd_cli_fail("tokenize");
    }
    for (int i = 0; i < max_len; i++) printf(i ? " %d" : "%d", (int)ids[i]);
    printf("\n");
    // diffusers warns when CLIP truncates a prompt; so do we (on stderr).
    if (n == max_len) {
        int32_t *more = malloc(((size_t)max_len + 1) * sizeof *more);
        int n2 = 0;
        if (more && !hsd_clip_tokenize(t, text, strlen(text), more, max_len + 1, &n2) &&
            n2 > max_len)
            fprintf(stderr, "hsd tokenize: warning: the prompt was truncated to %d tokens\n",
                    max_len - 2);
        free(more);
    }
    if (verbose) {
        for (int i = 0; i < n; i++) {
            const char *tok = hsd_clip_tokenizer_token(t, ids[i]);
            printf("%4d %6d  %s\n", i, (int)ids[i], tok ? tok : "?");
        }
        if (n < max_len)
            printf("     (+%d padding: %d)\n", max_len - n, (int)hsd_clip_tokenizer_pad(t));
    }
    free(ids);
    hsd_clip_tokenizer_free(t);
    return 0;
}
