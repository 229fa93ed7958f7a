// The request state machine: every legal path of docs/architecture.md §6, final
// states are final (an illegal transition aborts: checked in a child).
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "request_state.h"
#include "testutil.h"

static int aborts(enum hsd_req_state s, enum hsd_req_event e) {
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        hsd_req_transition(s, e);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

int main(void) {
    enum hsd_req_state s = HSD_REQ_QUEUED;
    s = hsd_req_transition(s, HSD_REQ_EV_ADMIT);
    CHECK(s == HSD_REQ_ADMITTED);
    s = hsd_req_transition(s, HSD_REQ_EV_STEP);
    CHECK(s == HSD_REQ_RUNNING);
    CHECK(hsd_req_transition(s, HSD_REQ_EV_STEP) == HSD_REQ_RUNNING);
    CHECK(hsd_req_transition(s, HSD_REQ_EV_REQUEUE) == HSD_REQ_RUNNING);
    CHECK(hsd_req_transition(s, HSD_REQ_EV_FINISH) == HSD_REQ_DONE);
    CHECK(hsd_req_transition(s, HSD_REQ_EV_CANCEL) == HSD_REQ_CANCELLED);
    CHECK(hsd_req_transition(s, HSD_REQ_EV_DEADLINE) == HSD_REQ_EXPIRED);
    CHECK(hsd_req_transition(s, HSD_REQ_EV_FAIL) == HSD_REQ_FAILED);
    CHECK(hsd_req_transition(HSD_REQ_ADMITTED, HSD_REQ_EV_FINISH) == HSD_REQ_DONE);  // k = 0
    CHECK(hsd_req_transition(HSD_REQ_QUEUED, HSD_REQ_EV_CANCEL) == HSD_REQ_CANCELLED);
    CHECK(hsd_req_transition(HSD_REQ_QUEUED, HSD_REQ_EV_DEADLINE) == HSD_REQ_EXPIRED);
    for (int f = HSD_REQ_DONE; f <= HSD_REQ_EXPIRED; f++) {
        CHECK(hsd_req_state_final((enum hsd_req_state)f));
        CHECKF(aborts((enum hsd_req_state)f, HSD_REQ_EV_STEP), "final state %d moved", f);
    }
    CHECK(aborts(HSD_REQ_QUEUED, HSD_REQ_EV_STEP));    // never computed before admission
    CHECK(aborts(HSD_REQ_QUEUED, HSD_REQ_EV_FINISH));
    CHECK(aborts(HSD_REQ_RUNNING, HSD_REQ_EV_ADMIT));
    return hsd_test_finish();
}
