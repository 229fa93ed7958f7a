// A1111 modules/prompt_parser.py parse_prompt_attention, token by token of
// its re_attention regex (alternatives in the regex's order):
//   \(  \)  \[  \]  \\  \   |  (  |  [  |  :\s*([+-]?[.\d]+)\s*\)  |  )  |  ]
//   |  [^\\()\[\]:]+  |  :
// and re_break (\s*\bBREAK\b\s*) inside plain text runs.
#include "text/prompt_emphasis.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ROUND_MULT 1.1
#define SQUARE_MULT (1 / 1.1)
#define BREAK_WEIGHT -1.0

struct parser {
    struct hsd_emphasis *e;
    int cap;
    int *round, *square;  // stacks of piece indices
    int n_round, n_square;
};

static int is_space(unsigned char c) {
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

static int is_word(unsigned char c) {
    return c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c >= 0x80;
}

static int is_special(char c) {
    return c == '\\' || c == '(' || c == ')' || c == '[' || c == ']' || c == ':';
}

static enum hsd_status push(struct parser *p, const char *s, size_t len, double weight) {
    struct hsd_emphasis *e = p->e;
    if (e->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 8;
        void *np = realloc(e->pieces, (size_t)cap * sizeof *e->pieces);
        if (!np) return hsd_fail(HSD_ERR_NOMEM, "prompt emphasis: out of memory");
        e->pieces = np;
        p->cap = cap;
    }
    char *t = malloc(len + 1);
    if (!t) return hsd_fail(HSD_ERR_NOMEM, "prompt emphasis: out of memory");
    if (len) memcpy(t, s, len);
    t[len] = '\0';
    e->pieces[e->n++] = (struct hsd_emphasis_piece){t, len, weight, 0};
    return HSD_OK;
}

static void multiply_range(struct hsd_emphasis *e, int start, double m) {
    for (int i = start; i < e->n; i++) e->pieces[i].weight *= m;
}

// A plain text run, split at BREAK: \s*\bBREAK\b\s* (re.split keeps the
// pieces between, even empty ones).
static enum hsd_status plain(struct parser *p, const char *s, size_t len) {
    size_t start = 0;
    for (size_t i = 0; i + 5 <= len; i++) {
        if (memcmp(s + i, "BREAK", 5) || (i > 0 && is_word((unsigned char)s[i - 1])) ||
            (i + 5 < len && is_word((unsigned char)s[i + 5])))
            continue;
        size_t a = i, b = i + 5;
        while (a > start && is_space((unsigned char)s[a - 1])) a--;
        while (b < len && is_space((unsigned char)s[b])) b++;
        enum hsd_status st = push(p, s + start, a - start, 1.0);
        if (!st) st = push(p, "BREAK", 5, BREAK_WEIGHT);
        if (st) return st;
        start = b;
        i = b - 1;
    }
    return push(p, s + start, len - start, 1.0);
}

// At s[0] == ':' inside round brackets: the weight alternative
// :\s*([+-]?[.\d]+)\s*\) . Returns the bytes it spans (0: not a weight;
// the ':' is literal), or fails for a weight that is not a number.
static enum hsd_status weight_token(size_t *used, double *w, const char *s, size_t len,
                                    size_t offset) {
    *used = 0;
    size_t i = 1;
    while (i < len && s[i] && (is_space((unsigned char)s[i]) || strchr("+-.0123456789", s[i]))) i++;
    if (i >= len || s[i] != ')') return HSD_OK;  // literal ':' (text follows, as in A1111)
    // Every byte up to ')' is a weight character: it must be one number,
    // [+-]?(\d+\.?\d*|\.\d+), between optional spaces.
    size_t a = 1, b = i;
    while (a < b && is_space((unsigned char)s[a])) a++;
    while (b > a && is_space((unsigned char)s[b - 1])) b--;
    size_t k = a, digits = 0, dots = 0;
    if (k < b && (s[k] == '+' || s[k] == '-')) k++;
    for (; k < b; k++) {
        if (s[k] >= '0' && s[k] <= '9') digits++;
        else if (s[k] == '.' && !dots) dots++;
        else break;
    }
    if (k != b || !digits)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "prompt emphasis: malformed weight '%.*s' at byte %zu: write (text:1.2) "
                        "with one number, or \\( \\) for literal brackets",
                        (int)(i - 1), s + 1, offset + 1);
    char *num = malloc(b - a + 1);
    if (!num) return hsd_fail(HSD_ERR_NOMEM, "prompt emphasis: out of memory");
    memcpy(num, s + a, b - a);
    num[b - a] = '\0';
    *w = strtod(num, NULL);  // correctly rounded, as Python's float()
    free(num);
    if (!isfinite(*w))
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "prompt emphasis: weight at byte %zu is out of range", offset + 1);
    *used = i + 1;
    return HSD_OK;
}

// Merges neighbours of equal weight (A1111 does this before tokenizing).
static enum hsd_status merge_runs(struct hsd_emphasis *e) {
    int o = 0;
    for (int i = 0; i < e->n; i++) {
        struct hsd_emphasis_piece *q = &e->pieces[i];
        if (o > 0 && e->pieces[o - 1].weight == q->weight) {
            struct hsd_emphasis_piece *d = &e->pieces[o - 1];
            char *t = realloc(d->text, d->len + q->len + 1);
            if (!t) return hsd_fail(HSD_ERR_NOMEM, "prompt emphasis: out of memory");
            memcpy(t + d->len, q->text, q->len + 1);
            d->text = t;
            d->len += q->len;
            free(q->text);
            q->text = NULL;
        } else {
            e->pieces[o++] = *q;
        }
    }
    e->n = o;
    for (int i = 0; i < e->n; i++)
        e->pieces[i].is_break =
            e->pieces[i].weight == BREAK_WEIGHT && !strcmp(e->pieces[i].text, "BREAK");
    return HSD_OK;
}

static enum hsd_status stack_push(int **stack, int *n, int value) {
    int *ns = realloc(*stack, (size_t)(*n + 1) * sizeof **stack);
    if (!ns) return hsd_fail(HSD_ERR_NOMEM, "prompt emphasis: out of memory");
    ns[(*n)++] = value;
    *stack = ns;
    return HSD_OK;
}

static enum hsd_status parse(struct parser *p, const char *s, size_t len) {
    struct hsd_emphasis *e = p->e;
    enum hsd_status st = HSD_OK;
    for (size_t i = 0; i < len && !st;) {
        char c = s[i];
        size_t used;
        double w;
        if (c == '\\') {
            int esc = i + 1 < len && strchr("()[]\\", s[i + 1]) && s[i + 1];
            st = push(p, s + i + 1, (size_t)esc, 1.0);  // a lone '\' becomes ""
            i += 1 + (size_t)esc;
        } else if (c == '(') {
            st = stack_push(&p->round, &p->n_round, e->n);
            i++;
        } else if (c == '[') {
            st = stack_push(&p->square, &p->n_square, e->n);
            i++;
        } else if (c == ':' && p->n_round) {
            if ((st = weight_token(&used, &w, s + i, len - i, i))) break;
            if (used) {
                multiply_range(e, p->round[--p->n_round], w);
                i += used;
            } else {
                st = push(p, ":", 1, 1.0);
                i++;
            }
        } else if (c == ')' && p->n_round) {
            multiply_range(e, p->round[--p->n_round], ROUND_MULT);
            i++;
        } else if (c == ']' && p->n_square) {
            multiply_range(e, p->square[--p->n_square], SQUARE_MULT);
            i++;
        } else if (c == ':' || c == ')' || c == ']') {
            // Outside brackets a weight-looking ":1.2)" is one literal token
            // in A1111 (its else branch); as single characters it reads the
            // same once merged, except for BREAK splitting, which cannot
            // occur in ":" + digits.
            st = plain(p, s + i, 1);
            i++;
        } else {
            size_t j = i;
            while (j < len && !is_special(s[j])) j++;
            st = plain(p, s + i, j - i);
            i = j;
        }
    }
    if (st) return st;
    // Unclosed brackets, bottom of the stack first.
    for (int k = 0; k < p->n_round; k++) multiply_range(e, p->round[k], ROUND_MULT);
    for (int k = 0; k < p->n_square; k++) multiply_range(e, p->square[k], SQUARE_MULT);
    if (!e->n && (st = push(p, "", 0, 1.0))) return st;
    // The weights multiply float32 hidden states (torch in A1111).
    for (int k = 0; k < e->n; k++)
        if (!isfinite((float)e->pieces[k].weight))
            return hsd_fail(HSD_ERR_INVALID_ARG,
                            "prompt emphasis: weights multiply out of float range");
    return merge_runs(e);
}

enum hsd_status hsd_emphasis_parse(struct hsd_emphasis *out, const char *text, size_t len) {
    memset(out, 0, sizeof *out);
    if (!text && len) return hsd_fail(HSD_ERR_INVALID_ARG, "prompt emphasis: NULL text");
    struct parser p = {.e = out};
    enum hsd_status st = parse(&p, text, len);
    free(p.round);
    free(p.square);
    if (st) hsd_emphasis_free(out);
    return st;
}

void hsd_emphasis_free(struct hsd_emphasis *e) {
    if (!e) return;
    for (int i = 0; i < e->n; i++) free(e->pieces[i].text);
    free(e->pieces);
    e->pieces = NULL;
    e->n = 0;
}
