#include "request_state.h"

const char *hsd_req_state_name(enum hsd_req_state s) {
    switch (s) {
    case HSD_REQ_QUEUED: return "queued";
    case HSD_REQ_ADMITTED: return "admitted";
    case HSD_REQ_RUNNING: return "running";
    case HSD_REQ_DONE: return "done";
    case HSD_REQ_FAILED: return "failed";
    case HSD_REQ_CANCELLED: return "cancelled";
    case HSD_REQ_EXPIRED: return "expired";
    }
    return "invalid";
}
