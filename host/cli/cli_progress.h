// The step progress bar of generate and edge (on a terminal only; logs and
// pipes get the result lines), and the clock both time their stages with.
#ifndef HSD_CLI_PROGRESS_H
#define HSD_CLI_PROGRESS_H

struct hsd_cli_progress {
    int enabled;  // stderr is a terminal and -q was not given
    double t0;    // when the bar started, hsd_cli_now_s()
};

// Monotonic seconds.
double hsd_cli_now_s(void);
void hsd_cli_progress_start(struct hsd_cli_progress *p, int quiet);
// An hsd_progress_fn: `user` is a struct hsd_cli_progress.
void hsd_cli_on_progress(void *user, int done, int total);

#endif
