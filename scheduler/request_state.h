// Request lifecycle (docs/architecture.md §6): QUEUED -> ADMITTED -> RUNNING(step i)
// -> DONE | FAILED | CANCELLED | EXPIRED, decided in one switch
// (hsd_req_transition) that aborts on an impossible transition.
#ifndef HSD_SCHED_REQUEST_STATE_H
#define HSD_SCHED_REQUEST_STATE_H

enum hsd_req_state {
    HSD_REQ_QUEUED,
    HSD_REQ_ADMITTED,
    HSD_REQ_RUNNING,
    HSD_REQ_DONE,
    HSD_REQ_FAILED,
    HSD_REQ_CANCELLED,
    HSD_REQ_EXPIRED,
};

enum hsd_req_event {
    HSD_REQ_EV_ADMIT,     // text encoded, state set up
    HSD_REQ_EV_STEP,      // one U-Net step taken
    HSD_REQ_EV_FINISH,    // reached its split k: RESULT goes out
    HSD_REQ_EV_CANCEL,    // CANCEL received or the client went away
    HSD_REQ_EV_DEADLINE,  // its deadline passed before it finished
    HSD_REQ_EV_FAIL,      // compute failed (not retryable) or shutdown
    HSD_REQ_EV_REQUEUE,   // its device failed; run the same step elsewhere
};

const char *hsd_req_state_name(enum hsd_req_state s);
int hsd_req_state_final(enum hsd_req_state s);
enum hsd_req_state hsd_req_transition(enum hsd_req_state s, enum hsd_req_event e);

#endif
