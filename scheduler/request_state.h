// Request lifecycle (DESIGN.md §6): QUEUED -> ADMITTED -> RUNNING(step i)
// -> DONE | FAILED | CANCELLED | EXPIRED. The scheduler issue builds the
// state machine on this enum; names are shared with logs and metrics.
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

const char *hsd_req_state_name(enum hsd_req_state s);

#endif
