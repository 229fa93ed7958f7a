#include "request_state.h"

#include "core/assert.h"

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

int hsd_req_state_final(enum hsd_req_state s) {
    return s == HSD_REQ_DONE || s == HSD_REQ_FAILED || s == HSD_REQ_CANCELLED ||
           s == HSD_REQ_EXPIRED;
}

// The one place transitions are decided (nanomsg req.c style): every event
// is legal in some states only; anything else is a scheduler bug.
enum hsd_req_state hsd_req_transition(enum hsd_req_state s, enum hsd_req_event e) {
    switch (s) {
    // QUEUED: accepted into the bounded queue, nothing computed yet.
    case HSD_REQ_QUEUED:
        switch (e) {
        case HSD_REQ_EV_ADMIT: return HSD_REQ_ADMITTED;
        case HSD_REQ_EV_CANCEL: return HSD_REQ_CANCELLED;
        case HSD_REQ_EV_DEADLINE: return HSD_REQ_EXPIRED;
        case HSD_REQ_EV_FAIL: return HSD_REQ_FAILED;
        default: break;
        }
        break;
    // ADMITTED: text encoded, latent and sampler state made; waits for its
    // first U-Net batch.
    case HSD_REQ_ADMITTED:
        switch (e) {
        case HSD_REQ_EV_STEP: return HSD_REQ_RUNNING;
        case HSD_REQ_EV_FINISH: return HSD_REQ_DONE;  // k = 0: hand over at once
        case HSD_REQ_EV_CANCEL: return HSD_REQ_CANCELLED;
        case HSD_REQ_EV_DEADLINE: return HSD_REQ_EXPIRED;
        case HSD_REQ_EV_FAIL: return HSD_REQ_FAILED;
        case HSD_REQ_EV_REQUEUE: return HSD_REQ_ADMITTED;
        default: break;
        }
        break;
    // RUNNING(step i): at least one step taken; joins batches between steps.
    case HSD_REQ_RUNNING:
        switch (e) {
        case HSD_REQ_EV_STEP: return HSD_REQ_RUNNING;
        case HSD_REQ_EV_FINISH: return HSD_REQ_DONE;
        case HSD_REQ_EV_CANCEL: return HSD_REQ_CANCELLED;
        case HSD_REQ_EV_DEADLINE: return HSD_REQ_EXPIRED;
        case HSD_REQ_EV_FAIL: return HSD_REQ_FAILED;
        // A failed device's batch goes back to the pool at the same step:
        // the sampler state only advances after a successful U-Net call.
        case HSD_REQ_EV_REQUEUE: return HSD_REQ_RUNNING;
        default: break;
        }
        break;
    // Final states: the reply has been (or is being) sent; nothing moves.
    case HSD_REQ_DONE:
    case HSD_REQ_FAILED:
    case HSD_REQ_CANCELLED:
    case HSD_REQ_EXPIRED:
        break;
    }
    HSD_ASSERT(!"impossible request state transition");
    return s;
}
