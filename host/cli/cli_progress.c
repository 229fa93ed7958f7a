#include "cli/cli_progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double hsd_cli_now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

void hsd_cli_progress_start(struct hsd_cli_progress *p, int quiet) {
    p->enabled = !quiet && isatty(STDERR_FILENO);
    p->t0 = hsd_cli_now_s();
}

void hsd_cli_on_progress(void *user, int done, int total) {
    struct hsd_cli_progress *pr = user;
    if (!pr->enabled || total <= 0) return;
    int width = 30, fill = done * width / total;
    fprintf(stderr, "\r[%.*s%*s] %d/%d steps  %.1f s", fill, "##############################",
            width - fill, "", done, total, hsd_cli_now_s() - pr->t0);
    if (done == total) fputc('\n', stderr);
    fflush(stderr);
}
