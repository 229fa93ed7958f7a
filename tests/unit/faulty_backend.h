// TEST DOUBLE of a failing GPU, for tests only (never linked into the
// library or the CLI). It wraps a real backend (the CPU one) and forwards
// every op to it, until `fail_after_ops` compute ops have run; from then on
// every op, synchronize and allocation fail with HSD_ERR_DEVICE
// ("simulated sticky device error"), forever, as the CUDA backend does after
// a sticky CUDA error (an illegal address, an Xid): the device is lost for
// the process. free keeps working, so the pipeline on it can be freed.
//
// It says it is a GPU (kind HSD_BACKEND_CUDA, desc "fake-gpu:N", N counting
// the fakes made in this process) so STATUS and the metrics show it as one.
// Used by tests/unit/test_sched_faulty.c (multi-GPU serving, issue 6).
#ifndef HSD_TEST_FAULTY_BACKEND_H
#define HSD_TEST_FAULTY_BACKEND_H

#include "backend/backend.h"

// Wraps `inner` and takes ownership of it (hsd_backend_destroy on the fake
// destroys both); on failure the caller still owns it. fail_after_ops < 0:
// never fail (a counting pass-through); 0: fail at the first compute op.
enum hsd_status hsd_backend_faulty_create(struct hsd_backend **out, struct hsd_backend *inner,
                                          int fail_after_ops);

// Compute ops forwarded so far (to size fail_after_ops from a measured
// U-Net call), and whether it has failed yet.
long hsd_backend_faulty_ops(const struct hsd_backend *be);
int hsd_backend_faulty_tripped(const struct hsd_backend *be);
// Fails it now, before any further op or allocation.
void hsd_backend_faulty_trip(struct hsd_backend *be);

#endif
