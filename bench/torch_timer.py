"""CUDA-event timing shared by the bench/ scripts (gpu_unet_bench.py,
sdpa_bench.py): warm-up calls, then each timed call after an L2 flush, on
the GPU with CUDA events or on the CPU with the host clock."""
import time


class Timer:
    """CUDA events (with an L2 flush before each timed call) or a host clock."""

    def __init__(self, torch, device):
        self.torch, self.device = torch, device
        self.flush = None
        if device.type == "cuda":
            l2 = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 50 << 20)
            self.flush = torch.empty(2 * l2, dtype=torch.uint8, device=device)

    def run(self, fn, warmup, reps):
        torch = self.torch
        for _ in range(warmup):
            fn()
        if self.flush is None:
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
            return times
        torch.cuda.synchronize()
        times = []
        for i in range(reps):
            self.flush.fill_(i & 0xFF)
            a = torch.cuda.Event(enable_timing=True)
            b = torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        return times
